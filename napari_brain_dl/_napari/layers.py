"""Core `Volume`s and results <-> napari layer data tuples, geometry kept exact.

Every volume is shown reoriented to `DISPLAY_AXCODES` (S, P, L): a pure axis
permutation/flip of the stored array (a numpy view, no interpolation), so
axis 0 (the slider) is inferior -> superior, rows run anterior -> posterior and
columns run patient right -> left. The layer `scale` is the voxel spacing and
the `translate` the grid origin expressed along those display axes, so scans on
different grids of one exam overlap in the viewer.

Display happens in voxel space, like ITK-SNAP: a residual oblique rotation of
the scan is *not* shown (slices are voxel planes), but it stays in the stored
source affine, so everything written back lands exactly where it came from.

Layer metadata (key `GEOMETRY`) keeps what is needed to go back voxel for
voxel: the source affine, the orientation transform, the native shape and the
source Volume meta. `layer_to_volume` undoes the display orientation with
`restore_orientation` and returns a Volume on the source's own grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.volume import DISPLAY_AXCODES, Volume, reorient, restore_orientation, voxel_spacing

if TYPE_CHECKING:
    import napari


#: Key of the geometry record in `layer.metadata`.
GEOMETRY = "brain_dl_geometry"

#: RAS+ world -> display world (S, P, L): S = +z, P = -y, L = -x.
RAS_TO_DISPLAY = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])

LayerDataTuple = tuple[Any, dict[str, Any], str]


def same_layer(a: Any, b: Any) -> bool:
    """True when `a` and `b` are the same napari layer.

    napari hands plugin widgets proxies (a new wrapper object on each access), so
    ``a is b`` is false for one layer; compare napari's unique id instead.
    """
    if a is None or b is None:
        return a is b
    return bool(getattr(a, "unique_id", id(a)) == getattr(b, "unique_id", id(b)))


def display_geometry(volume: Volume) -> tuple[Volume, np.ndarray, dict[str, Any]]:
    """Reorient `volume` for display and compute its layer scale/translate.

    Returns:
        The reoriented Volume (data is a view), the orientation transform, and
        the layer keyword arguments ``scale`` and ``translate`` (mm).
    """
    shown, transform = reorient(volume, DISPLAY_AXCODES)
    scale = voxel_spacing(shown.affine)
    translate = RAS_TO_DISPLAY @ shown.affine[:3, 3]
    return shown, transform, {"scale": tuple(float(s) for s in scale),
                              "translate": tuple(float(t) for t in translate)}


def geometry_record(volume: Volume, transform: np.ndarray, **extra: Any) -> dict[str, Any]:
    """The metadata needed to map a displayed array back onto `volume`'s grid."""
    return {
        "source_affine": np.array(volume.affine, dtype=np.float64),
        "orientation_transform": np.array(transform, dtype=np.float64),
        "native_shape": tuple(int(s) for s in volume.shape),
        "source_axcodes": volume.axcodes,
        "source_meta": dict(volume.meta),
        "warnings": list(volume.warnings),
        **extra,
    }


def volume_to_layer_data(volume: Volume, layer_type: str = "image", name: str | None = None,
                         **kwargs: Any) -> LayerDataTuple:
    """A napari layer data tuple showing `volume` in the display orientation.

    Args:
        volume: Scan or result on its own grid.
        layer_type: "image" or "labels".
        name: Layer name (defaults to the volume name).
        **kwargs: Extra layer keyword arguments (colormap, opacity, metadata...).

    Example:
        >>> data, kw, kind = volume_to_layer_data(load("t1c.nii.gz"))  # doctest: +SKIP
        >>> viewer.add_image(data, **kw)  # doctest: +SKIP
    """
    shown, transform, geo = display_geometry(volume)
    data = np.asarray(shown.data)
    if layer_type == "labels":
        data = as_label_array(data)
    metadata = dict(kwargs.pop("metadata", {}))
    metadata[GEOMETRY] = geometry_record(volume, transform, **metadata.pop(GEOMETRY, {}))
    layer_kw: dict[str, Any] = {"name": name or volume.name, "metadata": metadata, **geo}
    if layer_type == "image":
        from ..core.study import guess_contrast
        from .display import window_presets  # numpy only

        contrast = guess_contrast(str(volume.name))
        if contrast == "other":
            contrast = guess_contrast(str(volume.meta.get("path", "")))
        layer_kw.update(colormap="gray", contrast_limits=window_presets(data, contrast)["lesion"],
                        interpolation2d="linear")
    layer_kw.update(kwargs)
    return data, layer_kw, layer_type


def as_label_array(data: np.ndarray) -> np.ndarray:
    """Integer label array (uint8 when it fits, else uint16/int32), from any numeric input."""
    data = np.asarray(data)
    if data.dtype.kind == "f":
        data = np.rint(np.nan_to_num(data))
    low, high = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if low >= 0 and high < 256:
        return data.astype(np.uint8, copy=False)
    if low >= 0 and high < 65536:
        return data.astype(np.uint16, copy=False)
    return data.astype(np.int32, copy=False)


def layer_to_volume(data: Any, meta: dict[str, Any], name: str | None = None) -> Volume:
    """Map a displayed layer back onto its source grid (exact inverse of `volume_to_layer_data`).

    Without a geometry record (a layer not made by this plugin), the affine is
    rebuilt from the layer's scale and translate in the display orientation.

    Args:
        data: Layer data in display orientation.
        meta: Layer attributes (``layer.as_layer_data_tuple()[1]``) or just
            ``{"metadata": layer.metadata, "scale": ..., "translate": ...}``.
        name: Volume name (defaults to the layer name).
    """
    array = np.asarray(data)
    if array.ndim != 3:
        raise ValueError(f"Only 3D layers can be saved as scans; this one is {array.ndim}D.")
    record = (meta.get("metadata") or {}).get(GEOMETRY)
    name = name or str(meta.get("name", "layer"))
    if record is None:
        affine = np.eye(4)
        affine[:3, :3] = RAS_TO_DISPLAY.T @ np.diag(meta.get("scale", (1.0, 1.0, 1.0))[-3:])
        affine[:3, 3] = RAS_TO_DISPLAY.T @ np.asarray(meta.get("translate", (0.0, 0.0, 0.0))[-3:])
        return Volume(array, affine, name=name, meta={"geometry": "rebuilt from layer scale/translate"})
    native = restore_orientation(array, np.asarray(record["orientation_transform"]))
    if tuple(native.shape) != tuple(record["native_shape"]):
        raise ValueError(f"Layer {name!r} has shape {array.shape}, which does not match its source "
                         f"grid {tuple(record['native_shape'])}.")
    return Volume(native, np.asarray(record["source_affine"]), name=name,
                  meta=dict(record.get("source_meta", {})))


def layer_volume(layer: napari.layers.Layer) -> Volume:
    """A napari layer as a core Volume on its scan's own grid (see `layer_to_volume`)."""
    return layer_to_volume(layer.data, {"metadata": layer.metadata, "scale": layer.scale,
                                        "translate": layer.translate}, name=layer.name)


def layer_contrast(layer: napari.layers.Layer) -> str:
    """Contrast of a layer ("flair", "t1c", ... or "other"): Load exam's record, else its name or file."""
    from ..core.study import guess_contrast

    record = layer.metadata.get(GEOMETRY) or {}
    if record.get("contrast"):
        return str(record["contrast"]).lower()
    by_name = guess_contrast(layer.name)
    path = str(record.get("source_meta", {}).get("path", ""))
    return by_name if by_name != "other" else guess_contrast(path)


def is_synthetic_layer(layer: napari.layers.Layer) -> bool:
    """True for a layer holding a synthetic (not acquired) image."""
    record = layer.metadata.get(GEOMETRY) or {}
    return bool(layer.metadata.get("synthetic") or record.get("source_meta", {}).get("synthetic"))


def labels_like(layer: napari.layers.Layer, name: str = "labels") -> LayerDataTuple:
    """An empty labels layer tuple on the same grid and geometry record as `layer`."""
    record = layer.metadata.get(GEOMETRY, {})
    return (np.zeros(layer.data.shape, np.uint8),
            {"name": name, "scale": tuple(layer.scale), "translate": tuple(layer.translate),
             "metadata": {GEOMETRY: dict(record)}}, "labels")


def study_to_layer_data(study: Any) -> list[LayerDataTuple]:
    """Image layer tuples for every aligned volume of a `core.study.Study`.

    Each layer's geometry record carries the reference grid, the contrast and
    how it was aligned ("reference", "same grid", "resampled", "registered (rigid)").
    """
    reference = study.volumes[study.reference]
    grid = {"shape": tuple(reference.shape), "affine": np.array(reference.affine)}
    out = []
    for contrast, volume in study.volumes.items():
        record = {"contrast": contrast, "reference": study.reference, "reference_grid": grid,
                  "alignment": study.alignment.get(contrast, "")}
        visible = contrast == study.reference
        out.append(volume_to_layer_data(volume, "image", name=contrast, visible=visible,
                                        metadata={GEOMETRY: record}))
    return out


def same_display_grid(layer: napari.layers.Layer, other: Any, atol: float = 1e-4) -> bool:
    """True when two layers share data shape, scale and translate."""
    return (tuple(np.shape(layer.data)) == tuple(np.shape(other.data))
            and np.allclose(layer.scale, other.scale, atol=atol)
            and np.allclose(layer.translate, other.translate, atol=atol))
