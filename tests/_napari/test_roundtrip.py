"""Reader -> layer -> writer -> nibabel gives back the exact data and affine, for real scans.

A labels layer painted in the viewer lands on the expected native voxel on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from napari.layers import Layer

from napari_brain_dl._napari.layers import GEOMETRY
from napari_brain_dl._napari.reader import get_reader
from napari_brain_dl.core.io import load

CASES = {
    "ras_chris_t1": "niivue_chris/chris_t1.nii.gz",
    "lps_brats_t1c": "brats_gli_00001/t1c.nii.gz",
    "las_mni_2mm": "niivue_templates/MNI152_T1_2mm.nii.gz",
    "lia_t1_crop": "brainchop_models/t1_crop.nii.gz",
    "qform_only": "hippodeep/example_brain_t1.nii.gz",
    "sform_only": "brats_gli_00001/seg-BraTS23_1_mapped.nii.gz",
    "dicom_folder": "dicom_t1_axial",
}
#: Display axes are (S, P, L); letter -> (display axis, True when it runs the same way).
DISPLAY_AXIS = {"S": (0, True), "I": (0, False), "P": (1, True), "A": (1, False),
                "L": (2, True), "R": (2, False)}


def expected_native_voxel(display_index: tuple[int, int, int], axcodes: str,
                          shape: tuple[int, ...]) -> tuple[int, ...]:
    """Independent mapping: display voxel (S, P, L order) -> native voxel, from axcodes only."""
    native = []
    for axis, code in enumerate(axcodes):
        display_axis, same = DISPLAY_AXIS[code]
        index = display_index[display_axis]
        native.append(index if same else shape[axis] - 1 - index)
    return tuple(native)


@pytest.mark.parametrize("case", list(CASES))
def test_round_trip(case: str, data_dir: Path, viewer: Any, tmp_path: Path) -> None:
    source = data_dir / CASES[case]
    reader = get_reader(str(source))
    assert reader is not None
    (data, kwargs, kind), = reader(str(source))
    layer = viewer.add_layer(Layer.create(data, kwargs, kind))
    if source.is_dir():
        truth = load(source)
        truth_data, truth_affine = np.asarray(truth.data), truth.affine
    else:
        img = nib.load(str(source))
        truth_data, truth_affine = np.asanyarray(img.dataobj), img.affine

    out = tmp_path / "image.nii.gz"
    layer.save(str(out), plugin="napari-brain-dl")
    saved = nib.load(str(out))
    np.testing.assert_array_equal(np.asanyarray(saved.dataobj), truth_data)
    assert saved.get_data_dtype() == truth_data.dtype
    np.testing.assert_allclose(saved.affine, truth_affine, atol=1e-5)
    with pytest.raises(Exception, match="already exists"):
        layer.save(str(out), plugin="napari-brain-dl")

    # A labels layer made in the viewer over the scan, painted at a known display position.
    labels = viewer.add_labels(np.zeros(layer.data.shape, np.uint8), name="drawn",
                               scale=layer.scale, translate=layer.translate)
    viewer.layers.selection.active = labels
    _process_events()
    assert GEOMETRY in labels.metadata  # inherited from the scan it was drawn over
    shape = np.array(layer.data.shape)
    display_index = tuple(int(v) for v in (shape * np.array([0.55, 0.3, 0.2])).astype(int))
    world = np.asarray(layer.translate) + np.asarray(layer.scale) * display_index
    labels.brush_size = 1
    labels.paint(np.round(labels.world_to_data(world)), 7, refresh=True)
    mask_path = tmp_path / "mask.nii.gz"
    labels.save(str(mask_path), plugin="napari-brain-dl")
    mask = nib.load(str(mask_path))
    assert mask.get_data_dtype() == np.uint8
    np.testing.assert_allclose(mask.affine, truth_affine, atol=1e-5)
    voxels = np.argwhere(np.asanyarray(mask.dataobj) == 7)
    axcodes = "".join(nib.aff2axcodes(truth_affine))
    expected = expected_native_voxel(display_index, axcodes, truth_data.shape)
    assert [tuple(v) for v in voxels] == [expected]
    assert truth_data[expected] == layer.data[display_index]


def _process_events() -> None:
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()


def test_anisotropic_spacing_is_the_layer_scale(data_dir: Path, viewer: Any) -> None:
    source = data_dir / "niivue_chris/chris_PD.nii.gz"
    (data, kwargs, _), = get_reader(str(source))(str(source))
    assert data.shape == (54, 256, 191)  # S, P, L
    np.testing.assert_allclose(kwargs["scale"], (2.4, 0.86, 0.86), atol=0.02)


def test_reader_declines_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import napari.utils.notifications as notifications

    assert get_reader(str(tmp_path / "notes.txt")) is None
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    assert get_reader(str(bad))(str(bad)) == [(None,)]
    assert len(errors) == 1 and "broken.nii.gz" in errors[0]
