"""Thick-slice acquisition model and the B-spline resampling shared by super-resolution.

A thick slice is modelled as a box ("rect") slice profile: each acquired slice is the mean of
the underlying signal over the slice thickness, centred on the slice position; slices are
`spacing` apart, so ``spacing - thickness`` is the gap (negative: overlapping slices). The
high-resolution signal is treated as piecewise constant over each voxel, so averaging 4
consecutive 1 mm slices is exactly a 4 mm box centred on the middle of the group.

The same cubic B-spline resampling (SimpleITK, mirror boundary inside the image, nearest value
beyond its outer voxel edges) is used to build training pairs and at inference, so the network
learns to undo exactly the interpolation it will see.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Thick slices mirrored beyond each end before B-spline upsampling (its support is 2 samples).
EDGE_SLICES = 3


def slice_thickness(meta: dict, spacing: float) -> float:
    """Slice thickness (mm) from DICOM metadata ("slice_thickness"), else the slice spacing.

    Example:
        >>> slice_thickness({"slice_thickness": "3.0"}, 2.4), slice_thickness({}, 2.4)
        (3.0, 2.4)
    """
    raw = meta.get("slice_thickness")
    try:
        value = float(str(raw).split("\\")[0]) if raw not in (None, "") else 0.0
    except ValueError:
        value = 0.0
    return value if np.isfinite(value) and value > 0 else float(spacing)


def box_sample(data: np.ndarray, axis: int, width: float, start: float, step: float,
               count: int) -> np.ndarray:
    """Thick slices along `axis`: box averages of `width` voxels centred at ``start + j * step``.

    Positions and widths are in voxels of `data` (fractional values allowed); the signal is
    piecewise constant per voxel and extended by its edge values outside the array.

    Example:
        >>> box_sample(np.arange(8.0)[None, None], 2, 4.0, 1.5, 4.0, 2).tolist()
        [[[1.5, 5.5]]]
    """
    values = np.moveaxis(np.asarray(data, np.float64), axis, 0)
    length = values.shape[0]
    # cumulative integral at the voxel edges -0.5, 0.5, ..., length - 0.5
    edges = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)], axis=0)
    centres = start + step * np.arange(count)

    def integral(x: np.ndarray) -> np.ndarray:
        k = np.clip(np.floor(x + 0.5).astype(int), 0, length - 1)
        frac = (x + 0.5 - k).reshape((-1,) + (1,) * (values.ndim - 1))
        return edges[k] + frac * values[k]

    out = (integral(centres + width / 2) - integral(centres - width / 2)) / width
    return np.moveaxis(out, 0, axis).astype(np.float32)


def bspline_resample_index(data: np.ndarray, start: Sequence[float], step: Sequence[float],
                           shape: Sequence[int]) -> np.ndarray:
    """Cubic B-spline values of `data` on an axis-aligned grid given in its own voxel indices.

    Output voxel ``(a, b, c)`` sits at index ``start + step * (a, b, c)`` of `data`. Points up to
    half a voxel beyond the outer centres are interpolated (mirror boundary); points further out
    take the nearest value.

    Example:
        >>> x = np.arange(8.0)[:, None, None] * np.ones((1, 2, 2))
        >>> bspline_resample_index(x, (2, 0, 0), (0.5, 1, 1), (7, 2, 2))[:, 0, 0].round(1).tolist()
        [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    """
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(data, np.float32).transpose(2, 1, 0)))
    resampler = sitk.ResampleImageFilter()
    resampler.SetInterpolator(sitk.sitkBSpline)
    resampler.SetOutputOrigin([float(s) for s in start])
    resampler.SetOutputSpacing([float(s) for s in step])
    resampler.SetSize([int(s) for s in shape])
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    resampler.SetUseNearestNeighborExtrapolator(True)
    out = sitk.GetArrayFromImage(resampler.Execute(image))
    return np.ascontiguousarray(out.transpose(2, 1, 0))


def degrade_axis(data: np.ndarray, axis: int, *, thickness: float, spacing: float,
                 start: float) -> np.ndarray:
    """Simulate thick slices along `axis` of a high-resolution array, then B-spline back.

    Args:
        data: 3D array whose `axis` has high resolution.
        axis: Axis to degrade.
        thickness: Slice thickness in voxels of `data` along `axis`.
        spacing: Slice spacing in voxels of `data` along `axis`.
        start: Index (along `axis`) of the first thick-slice centre.

    Returns:
        An array of `data`'s shape: what B-spline upsampling of the thick slices gives.

    Example:
        >>> x = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32)
        >>> degrade_axis(x, 0, thickness=2.0, spacing=2.0, start=0.5).shape
        (8, 8, 8)
    """
    length = data.shape[axis]
    count = max(2, int(np.floor((length - 1 - start) / spacing)) + 1)
    thick = mirror_slices(box_sample(data, axis, thickness, start, spacing, count), axis, EDGE_SLICES)
    origin = [0.0, 0.0, 0.0]
    step = [1.0, 1.0, 1.0]
    origin[axis] = -start / spacing + EDGE_SLICES
    step[axis] = 1.0 / spacing
    return bspline_resample_index(thick, origin, step, data.shape)



def mirror_slices(data: np.ndarray, axis: int, count: int) -> np.ndarray:
    """`data` with `count` slices mirrored beyond both ends of `axis` (edge slice repeated once).

    Upsampling then continues the scan naturally past its outer slices instead of flat, as the
    training pairs and the through-plane inference both do.

    Example:
        >>> mirror_slices(np.arange(4.0), 0, 2).tolist()
        [1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0, 2.0]
    """
    count = min(int(count), data.shape[axis])
    return np.pad(data, [(count, count) if a == axis else (0, 0) for a in range(data.ndim)], mode="symmetric")
