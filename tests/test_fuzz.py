"""Property-based tests (hypothesis) of the readers, the model-card parser and click coordinates.

The property everywhere: the input is accepted, or refused with the project's own clear error
(`ImageReadError`, `CardError`, `ValueError` with a sentence);
nothing else escapes. Examples and deadlines are bounded so the file runs in well under a minute;
the database is off so CI runs are reproducible (``derandomize``).
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_brain_dl.core import io
from napari_brain_dl.core.models.card import CardError, ModelCard

FUZZ = settings(max_examples=40, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _valid_nifti() -> bytes:
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    return img.to_bytes()


VALID = _valid_nifti()


def _load_bytes(blob: bytes, name: str) -> None:
    """io.load on `blob` written as `name`: a Volume or an ImageReadError, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(blob)
        try:
            volume = io.load(path)
        except io.ImageReadError as exc:
            assert name in str(exc) and "\n" not in str(exc)
            return
        assert volume.data.ndim == 3 and np.all(np.isfinite(volume.affine))


# -- readers --------------------------------------------------------------------------------------
@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=12),
       cut=st.integers(0, len(VALID)), gz=st.booleans())
def test_nifti_reader_with_mutated_bytes(edits: list[tuple[int, int]], cut: int, gz: bool) -> None:
    blob = bytearray(VALID)
    for at, value in edits:
        blob[at] = value
    blob = bytes(blob[:cut]) if cut > 0 else bytes(blob)
    _load_bytes(gzip.compress(blob) if gz else blob, "scan.nii.gz" if gz else "scan.nii")


FINITE_OR_NOT = st.floats(allow_nan=True, allow_infinity=True, width=32)


@FUZZ
@given(pixdim=st.lists(FINITE_OR_NOT, min_size=3, max_size=3),
       srow=st.lists(FINITE_OR_NOT, min_size=12, max_size=12),
       codes=st.tuples(st.integers(0, 4), st.integers(0, 4)),
       dims=st.lists(st.integers(-2, 8), min_size=1, max_size=7))
def test_nifti_reader_with_hostile_header_fields(pixdim: list[float], srow: list[float],
                                                 codes: tuple[int, int], dims: list[int]) -> None:
    header = bytearray(VALID[:348])
    hdr = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(bytes(header)))
    raw = hdr.binaryblock
    hdr_arr = np.frombuffer(raw, dtype=hdr.template_dtype).copy()
    hdr_arr["pixdim"][0][1:4] = pixdim
    hdr_arr["srow_x"][0], hdr_arr["srow_y"][0], hdr_arr["srow_z"][0] = srow[:4], srow[4:8], srow[8:]
    hdr_arr["qform_code"], hdr_arr["sform_code"] = codes
    dim = [len(dims), *dims, *[1] * (7 - len(dims))]
    hdr_arr["dim"][0] = dim
    _load_bytes(hdr_arr.tobytes() + VALID[348:], "scan.nii")


@FUZZ
@given(steps=st.lists(st.floats(-5, 15), min_size=2, max_size=6), duplicate=st.booleans())
def test_dicom_reader_with_any_slice_positions(steps: list[float], duplicate: bool) -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    positions = np.cumsum([0.0, *steps])
    if duplicate:
        positions = np.append(positions, positions[-1])
    series = generate_uid()
    with tempfile.TemporaryDirectory() as folder:
        for k, z in enumerate(positions):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = MRImageStorage, ExplicitVRLittleEndian
            meta.MediaStorageSOPInstanceUID = uid = generate_uid()
            ds = pydicom.Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, uid, "MR"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = "1.2.3", series, k + 1
            ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, float(z)], [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.Rows, ds.Columns = [1.0, 1.0], 4, 4
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.full((4, 4), k, np.uint16).tobytes()
            ds.save_as(Path(folder) / f"{k:03d}.dcm", enforce_file_format=True)
        try:
            volume = io.load(folder)
        except io.ImageReadError as exc:
            assert folder in str(exc) or "slice" in str(exc)
            return
        assert volume.shape[2] == len(positions) and np.all(np.isfinite(volume.affine))


# -- model cards ----------------------------------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 300) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=12,
)
VALID_CARD: dict[str, Any] = {
    "id": "toy", "name": "Toy", "task": "segmentation", "inputs": ["T1"], "orientation": "RAS",
    "spacing": [1, 1, 1],
    "architecture": {"type": "meshnet", "channels": 2, "dilations": [1], "n_classes": 2},
    "labels": [{"value": 0, "name": "bg", "color": [0, 0, 0]}], "output": {"kind": "labels"},
    "weights": {"file": "w.pth"}, "preprocessing": [{"op": "zscore"}], "inference": {"mode": "whole"},
}


@FUZZ
@given(field=st.sampled_from(sorted(VALID_CARD)), value=JSON)
def test_card_parser_with_any_field_value(field: str, value: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        try:
            card = ModelCard.from_dict({**VALID_CARD, field: value}, folder=folder)
        except CardError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        assert card.id and card.inputs and card.output_kind in ("labels", "image", "probabilities")


@FUZZ
@given(data=JSON)
def test_card_parser_with_any_document(data: Any) -> None:
    with pytest.raises(CardError):
        ModelCard.from_dict(data)


@FUZZ
@given(text=st.text(max_size=200))
def test_card_file_with_any_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "card.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(CardError, match="card"):
            ModelCard.from_file(path)


# -- clicks and coordinates -----------------------------------------------------------------------
@FUZZ
@given(text=st.text(alphabet="0123456789-, .e+a", max_size=16))
def test_cli_click_index_parser(text: str) -> None:
    from napari_brain_dl.core.jobs.tumor import voxel_index

    try:
        index = voxel_index(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
        return
    assert len(index) == 3 and all(isinstance(v, int) for v in index)


CLICK_VALUE = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-50, 50) | st.text(max_size=3)


@FUZZ
@given(clicks=st.lists(st.lists(CLICK_VALUE, max_size=4), max_size=4),
       shape=st.tuples(*[st.integers(1, 40)] * 3))
def test_click_points_are_checked(clicks: list[list[Any]], shape: tuple[int, int, int]) -> None:
    from napari_brain_dl.core.tasks.click_segment import _as_points

    try:
        points = _as_points(clicks, shape, "positive")
    except ValueError as exc:
        assert "click" in str(exc)
        return
    assert points.shape == (len(clicks), 3)
    assert np.all(points >= 0) and np.all(points < np.asarray(shape))


@FUZZ
@given(perm=st.permutations([0, 1, 2]), flips=st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3),
       scales=st.tuples(*[st.floats(0.3, 5.0)] * 3), shape=st.tuples(*[st.integers(2, 9)] * 3),
       point=st.tuples(*[st.floats(-3, 12)] * 3))
def test_display_voxel_round_trip(perm: list[int], flips: tuple[float, ...], scales: tuple[float, ...],
                                  shape: tuple[int, int, int], point: tuple[float, float, float]) -> None:
    """A click anywhere on the display maps to the voxel under it, or to None outside the grid."""
    from types import SimpleNamespace

    from napari_brain_dl._napari.layers import volume_to_layer_data
    from napari_brain_dl._napari.widgets.tumor_clicks import display_to_voxel, voxel_to_display
    from napari_brain_dl.core.volume import Volume

    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for axis, world in enumerate(perm):
        affine[world, axis] = flips[axis] * scales[axis]
    index = np.indices(shape)
    code = (index[0] * 10000 + index[1] * 100 + index[2]).astype(np.int32)
    data, kwargs, _ = volume_to_layer_data(Volume(code, affine), "image")
    layer = SimpleNamespace(data=data, metadata=kwargs["metadata"])
    voxel = display_to_voxel(layer, np.asarray(point))
    rounded = np.rint(point).astype(int)
    inside = bool(np.all(rounded >= 0) and np.all(rounded < np.asarray(data.shape)))
    assert (voxel is not None) == inside
    if voxel is not None:
        value = int(data[tuple(rounded)])
        assert voxel == (value // 10000, value // 100 % 100, value % 100)
        np.testing.assert_array_equal(voxel_to_display(layer, voxel), rounded)
