"""Skull stripping: a brain mask on the scan's own grid.

With a model (mindgrab card, weights file or folder as distributed) the mask
comes from the network. Without one, a classical fallback needing no weights:
nilearn's packaged MNI152 template (package data, no download) is registered
onto the scan with SimpleITK (rigid, then affine, mutual information) and its
brain mask is carried across.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__
from ..headers import itk_reason
from ..models.card import ModelCard
from ..progress import CancelToken, ProgressCallback, check
from ..volume import Volume


def skullstrip(
    volume: Volume,
    model: str | Path | ModelCard | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    notify: Callable[[str], None] | None = None,
) -> Volume:
    """Brain mask (uint8 0/1) with the input's exact shape and affine.

    Args:
        volume: A head scan (any orientation and voxel size; T1 works best).
        model: mindgrab card, weights file or model folder; None uses the template fallback.
        device: auto | cpu | cuda | mps (model only).
        progress: ``progress(done, total, text)``.
        cancel: Cancel token polled between steps.
        notify: Receives plain sentences (e.g. out-of-memory fallback).

    Example:
        >>> t1 = load("t1_crop.nii.gz")  # doctest: +SKIP
        >>> mask = skullstrip(t1, "/data/brainchop_models/mindgrab", device="cpu")  # doctest: +SKIP
        >>> mask.same_grid(t1), round(mask.data.sum() * t1.voxel_volume_ml)  # doctest: +SKIP
        (True, 1593)
    """
    if model is not None:
        from ..inference import predict

        pred = predict(model, volume, device=device, progress=progress, cancel=cancel, notify=notify)
        mask = (pred.primary.data > 0).astype(np.uint8)
        return volume.with_data(
            mask,
            name=f"{volume.name}_brainmask",
            provenance=pred.provenance,
            model_id=pred.provenance["model_id"],
        )
    start = time.perf_counter()
    mask = template_brain_mask(volume, progress=progress, cancel=cancel)
    prov = {
        "model_id": "mni152-registration",
        "method": "SimpleITK rigid + affine registration of nilearn's MNI152 template, brain mask resampled",
        "weights_sha256": None,
        "seconds": round(time.perf_counter() - start, 3),
        "device": "cpu",
        **_versions(),
    }
    return volume.with_data(mask, name=f"{volume.name}_brainmask", provenance=prov, model_id=prov["model_id"])


def check_head_scan(volume: Volume) -> None:
    """Refuse, before any registration, what the template cannot be matched to.

    An image without a finite voxel (all NaN / infinite), a mask or label map (integer values,
    few of them: `study.is_label_image`), or one whose content is not head-sized (a slab of one or
    two slices, say: `tumor.check_head_image`).

    Raises:
        ValueError: One sentence naming the volume and what is wrong.
    """
    from ..study import is_label_image
    from .tumor import check_head_image

    data = np.asarray(volume.data)
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).any():
        raise ValueError(f"{volume.name} has no finite voxel (every voxel is NaN or infinite); "
                         "there is no head to strip.")
    if data.dtype == bool or is_label_image(volume):
        values = np.unique(data[:: max(1, data.shape[0] // 32)])
        shown = ", ".join(f"{v:g}" for v in values[:4]) + (", ..." if values.size > 4 else "")
        raise ValueError(f"{volume.name} looks like a mask or label map ({values.size} integer values: "
                         f"{shown}), not a head scan; give the skull strip a T1 (or other) MRI.")
    check_head_image(volume, "head")


def _versions() -> dict[str, Any]:
    import nilearn
    import SimpleITK as sitk


    return {
        "package_version": __version__,
        "nilearn_version": nilearn.__version__,
        "simpleitk_version": sitk.Version.VersionString(),
    }


def template_brain_mask(
    volume: Volume, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
) -> np.ndarray:
    """Register the MNI152 template onto `volume` and return its brain mask there (uint8).

    Raises:
        ValueError: `check_head_scan` refuses the volume, or the registration fails (one sentence).
        Cancelled: `cancel` was set; polled between steps and at every optimiser iteration.

    Example:
        >>> mask = template_brain_mask(load("chris_t1.nii.gz"))  # doctest: +SKIP
    """
    import SimpleITK as sitk
    from nilearn import datasets

    from ..dicom import sitk_from_volume

    check_head_scan(volume)
    report = progress or (lambda d, t, s: None)
    report(0, 4, "loading the MNI152 template")
    template = datasets.load_mni152_template(resolution=2)
    brain = datasets.load_mni152_brain_mask(resolution=2)
    tmpl = Volume(np.asarray(template.get_fdata(), np.float32), template.affine, "mni152")
    tmask = Volume(np.asarray(brain.get_fdata(), np.float32), brain.affine, "mni152_mask")
    fixed_full = sitk_from_volume(volume.with_data(np.nan_to_num(np.asarray(volume.data, np.float32))))
    fixed = _downsample(fixed_full, 3.0)
    moving = sitk.Cast(sitk_from_volume(tmpl), sitk.sitkFloat32)
    # The template is skull-stripped: compare it with the scan only inside its (dilated) brain,
    # so the scan's skull, scalp and neck do not pull the match.
    moving_mask = sitk.BinaryDilate(sitk.Cast(sitk_from_volume(tmask) > 0.5, sitk.sitkUInt8), [3, 3, 3])
    check(cancel)

    def register(initial: sitk.Transform, shrink: list[int], iterations: int) -> sitk.Transform:
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        reg.SetMetricSamplingStrategy(reg.REGULAR)
        reg.SetMetricSamplingPercentage(0.25)
        reg.SetMetricMovingMask(moving_mask)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0, minStep=1e-3, numberOfIterations=iterations, relaxationFactor=0.6
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel(shrink)
        reg.SetSmoothingSigmasPerLevel([s / 2.0 for s in shrink])
        reg.SetInitialTransform(initial, inPlace=False)
        stopped: list[BaseException] = []

        def poll() -> None:  # an exception escaping into ITK would print a traceback: stop instead
            if not stopped:
                try:
                    check(cancel)
                except BaseException as exc:  # Cancelled, or KeyboardInterrupt delivered here
                    stopped.append(exc)
            if stopped:
                reg.StopRegistration()  # ends this level; the next level's first poll ends it too

        reg.AddCommand(sitk.sitkIterationEvent, poll)
        try:
            result = reg.Execute(fixed, moving)
        except RuntimeError as exc:
            if stopped:
                raise stopped[0] from None
            raise ValueError(f"The MNI152 template could not be registered onto {volume.name} "
                             f"({itk_reason(exc)}); is it a whole-head MRI?") from exc
        if stopped:
            raise stopped[0]
        return result

    report(1, 4, "rigid registration")
    init = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    rigid = _unwrap(register(init, [4, 2], 100))
    check(cancel)
    report(2, 4, "similarity and affine registration")
    similarity = _unwrap(register(_promote(rigid, sitk.Similarity3DTransform()), [4, 2], 100))
    check(cancel)
    final = _unwrap(register(_promote(similarity, sitk.AffineTransform(3)), [2, 1], 100))
    check(cancel)
    report(3, 4, "carrying the brain mask across")
    warped = sitk.Resample(sitk_from_volume(tmask), fixed_full, final, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask = sitk.GetArrayFromImage(warped).transpose(2, 1, 0) > 0.5
    report(4, 4, "done")
    return mask.astype(np.uint8)


def _promote(source: Any, target: Any) -> Any:
    """Start `target` (similarity/affine) from the rotation and translation of `source`."""
    target.SetCenter(source.GetCenter())
    target.SetMatrix(source.GetMatrix())
    target.SetTranslation(source.GetTranslation())
    return target


def _unwrap(transform: Any) -> Any:
    """The single transform inside a CompositeTransform returned by registration."""
    import SimpleITK as sitk

    if transform.GetName() == "CompositeTransform":
        composite = sitk.CompositeTransform(transform)
        return composite.GetNthTransform(composite.GetNumberOfTransforms() - 1)
    return transform


def _downsample(image: Any, spacing: float) -> Any:
    """Resample `image` to isotropic `spacing` mm (same origin and direction) for registration."""
    import SimpleITK as sitk

    old = np.array(image.GetSpacing())
    if old.min() >= spacing:
        return image
    size = [max(8, round(n * s / spacing)) for n, s in zip(image.GetSize(), old, strict=True)]
    smoothed = sitk.SmoothingRecursiveGaussian(image, float(spacing / 2))
    return sitk.Resample(
        smoothed,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        [spacing] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )
