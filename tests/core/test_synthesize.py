"""`synthesize`: any present contrasts in, the scale of the input does not matter; grids, errors, cancel.

The model's quality is measured by subject-wise cross-validation (scripts/eval_synthesis.py,
numbers in the card and bench/README.md): the shipped ``synth-mri`` is trained on every subject
in ../shared/data that has the target, so no held-out real case is left to score it on here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from toy_volumes import as_ras, toy_head

from napari_brain_dl.core import io
from napari_brain_dl.core.models.registry import resolve_model
from napari_brain_dl.core.progress import Cancelled, CancelToken
from napari_brain_dl.core.synthetic import is_synthetic
from napari_brain_dl.core.tasks.synthesize import OUTPUT_UNITS, synthesis_methods, synthesize
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def t1c_crop(data_dir: Path) -> Volume:
    """A 112^3 block of brats_gli_00001's raw int16 T1c around the brain centre (keeps the test quick)."""
    vol = io.load(data_dir / "brats_gli_00001" / "t1c.nii.gz")
    data = np.asarray(vol.data)
    c = np.argwhere(data > 0).mean(0).astype(int)
    box = tuple(slice(max(0, int(k) - 56), max(0, int(k) - 56) + 112) for k in c)
    affine = vol.affine.copy()
    affine[:3, 3] = vol.affine[:3, :3] @ np.array([b.start for b in box]) + vol.affine[:3, 3]
    return Volume(np.ascontiguousarray(data[box]), affine, name="t1c")


def test_raw_zscored_and_float_inputs_give_the_same_image(t1c_crop: Volume) -> None:
    raw = np.asarray(t1c_crop.data)
    brain = raw > 0
    mean, sd = raw[brain].mean(), raw[brain].std()
    z = (raw - mean) / sd
    zscored = np.where(brain, z, z[brain].min()).astype(np.float32)  # as BraTS 2015 files: background = min
    floated = (raw.astype(np.float64) * 0.0137).astype(np.float64)
    outs = [synthesize({"T1c": t1c_crop.with_data(d)}, "FLAIR", device="cpu", flips=False).image.data
            for d in (raw.astype(np.int16), zscored, floated)]
    for other in outs[1:]:  # the darkest brain voxel equals the z-scored file's background: a local blip
        diff = np.abs(other[brain] - outs[0][brain])
        assert np.percentile(diff, 99.9) < 0.01 and np.percentile(diff, 99.99) < 0.05
        assert np.corrcoef(other[brain], outs[0][brain])[0, 1] > 0.999
    assert 0.3 < float(outs[0][brain].std()) < 3.0  # z-score units, not the source's


def test_any_subset_of_contrasts_is_used_and_named() -> None:
    heads = {"T1": toy_head(0), "T1c": toy_head(1), "T2": toy_head(2), "FLAIR": toy_head(3)}
    for sources, target in ((["T1c"], "FLAIR"), (["T1", "T2"], "FLAIR"), (["T1", "T1c", "FLAIR"], "T2"),
                            (["T2", "FLAIR"], "T1")):
        syn = synthesize({s: heads[s] for s in sources}, target, device="cpu", flips=False)
        assert syn.method == "synth-mri" and syn.sources == sources and syn.provenance["sources"] == sources
        assert syn.image.name == f"{target} (synthetic)" and is_synthetic(syn.image)
        assert syn.provenance["units"] == OUTPUT_UNITS and syn.provenance["weights_sha256"]
        assert not syn.notes  # every source used


def test_more_sources_change_the_result() -> None:
    a = synthesize({"T1c": toy_head(1)}, "FLAIR", device="cpu", flips=False).image.data
    b = synthesize({"T1c": toy_head(1), "T2": toy_head(2)}, "FLAIR", device="cpu", flips=False).image.data
    inside = toy_head(1).data > 0
    assert np.abs(a[inside] - b[inside]).mean() > 0.01


def test_card_turns_on_the_mirrored_pass_chosen_by_cross_validation() -> None:
    sources = {"T1c": toy_head(1), "T2": toy_head(2)}
    default = synthesize(sources, "FLAIR", device="cpu")
    mirrored = synthesize(sources, "FLAIR", device="cpu", flips=True).image.data
    single = synthesize(sources, "FLAIR", device="cpu", flips=False).image.data
    assert default.provenance["parameters"]["flips"] is True
    assert np.array_equal(default.image.data, mirrored)
    assert np.abs(mirrored - single).max() > 1e-3  # the second pass changes the image


def test_methods_for_the_widget() -> None:
    assert synthesis_methods(["t1c"], "flair") == ["synth-mri", "histogram"]
    assert synthesis_methods(["T1", "T1c"], "T2") == ["synth-mri", "histogram"]
    assert synthesis_methods(["FLAIR"], "T1") == ["synth-mri", "histogram"]
    assert synthesis_methods(["FLAIR", "T1c"], "FLAIR") == []
    assert synthesis_methods(["FLAIR", "T1"], "T1c") == []


def test_former_model_ids_resolve_to_the_new_model() -> None:
    for old in ("synth-flair-from-t1c", "synth-t2-from-t1"):
        assert resolve_model(old).id == "synth-mri"
    syn = synthesize({"T1c": toy_head(0)}, "FLAIR", method="synth-flair-from-t1c", device="cpu", flips=False)
    assert syn.method == "synth-mri" and syn.provenance["model_id"] == "synth-mri"


def test_output_on_first_source_grid_even_when_the_second_is_ras() -> None:
    lps, other = toy_head(0), as_ras(toy_head(1))
    assert lps.axcodes == "LPS" and other.axcodes == "RAS"
    syn = synthesize({"T1c": lps, "T1": other}, "FLAIR", method="histogram")
    assert syn.image.shape == lps.shape and np.array_equal(syn.image.affine, lps.affine)
    assert syn.image.meta["synthetic"] is True and syn.image.name == "FLAIR (synthetic)"
    assert syn.image.meta["synthesis"]["method"] == "histogram" and syn.provenance["synthetic"] is True
    back = synthesize({"T1": other, "T1c": lps}, "FLAIR", method="histogram")  # first given = RAS grid
    assert back.image.shape == other.shape and np.array_equal(back.image.affine, other.affine)
    assert any("reordered" in n and "exact" in n for n in back.notes)  # a flip apart: no interpolation
    assert np.allclose(back.image.data[::-1, ::-1], syn.image.data, atol=1e-4)  # same image, both grids


def test_model_output_on_ras_grid_matches_lps() -> None:
    lps = toy_head(2)
    a = synthesize({"T1c": lps, "T1": toy_head(3)}, "FLAIR", device="cpu", flips=False).image
    b = synthesize({"T1c": as_ras(lps), "T1": as_ras(toy_head(3))}, "FLAIR", device="cpu", flips=False).image
    assert np.array_equal(b.affine, as_ras(lps).affine)
    assert np.allclose(b.data[::-1, ::-1], a.data, atol=1e-3)
    outside = a.data[lps.data == 0]
    assert (outside == a.data[lps.data > 0].min()).all()  # the darkest brain value outside the head


def test_t1c_is_never_synthesised() -> None:
    with pytest.raises(ValueError, match="T1c is never synthesised") as err:
        synthesize({"FLAIR": toy_head(0), "T1": toy_head(1)}, "t1c")
    assert str(err.value).count(".") == 1  # one sentence


def test_target_already_present() -> None:
    with pytest.raises(ValueError, match="already present"):
        synthesize({"FLAIR": toy_head(0), "T1c": toy_head(1)}, "flair")


def test_no_usable_source() -> None:
    empty = Volume(np.zeros((96, 100, 92), np.float32), toy_head(0).affine, name="blank")
    with pytest.raises(ValueError, match="empty"):
        synthesize({"T1c": empty}, "FLAIR")
    with pytest.raises(ValueError, match="at least one"):
        synthesize({"T1c": None}, "FLAIR")


def test_2d_input_is_refused() -> None:
    flat = Volume(np.ones((120, 120, 1), np.float32), np.eye(4), name="slice")
    with pytest.raises(ValueError, match="2D"):
        synthesize({"T1c": flat}, "FLAIR", method="histogram")


def test_sources_in_different_space() -> None:
    far = toy_head(1)
    far.affine[:3, 3] += 400.0
    with pytest.raises(ValueError, match="different parts of space"):
        synthesize({"T1c": toy_head(0), "T1": far}, "FLAIR")


def test_unknown_contrast() -> None:
    with pytest.raises(ValueError, match="Unknown contrast"):
        synthesize({"T1c": toy_head(0)}, "PD")


def test_cancel_stops_the_model() -> None:
    token = CancelToken()
    seen: list[str] = []

    def progress(done: float, total: float, text: str) -> None:
        seen.append(text)
        token.cancel()

    with pytest.raises(Cancelled):
        synthesize({"T1c": toy_head(0)}, "FLAIR", device="cpu", progress=progress, cancel=token)
    assert seen
