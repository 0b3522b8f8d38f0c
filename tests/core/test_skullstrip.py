"""Skull stripping (mindgrab and the template fallback) and parcellation, on real scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl.core import io
from napari_brain_dl.core.image_metrics import dice
from napari_brain_dl.core.tasks import parcellate, skullstrip
from napari_brain_dl.core.volume import Volume


@pytest.fixture(scope="module")
def t1(data_dir: Path) -> Volume:
    return io.load(data_dir / "brainchop_models" / "t1_crop.nii.gz")  # LIA, 256^3


@pytest.fixture(scope="module")
def mindgrab_mask(data_dir: Path, t1: Volume) -> Volume:
    return skullstrip(t1, data_dir / "brainchop_models" / "mindgrab", device="cpu")


@pytest.mark.slow
def test_mindgrab_mask_on_lia_t1(mindgrab_mask: Volume, t1: Volume) -> None:
    assert mindgrab_mask.same_grid(t1) and mindgrab_mask.axcodes == "LIA"
    assert mindgrab_mask.data.dtype == np.uint8 and set(np.unique(mindgrab_mask.data)) == {0, 1}
    assert 1400 < mindgrab_mask.data.sum() * t1.voxel_volume_ml < 1800  # about 1.6 L
    prov = mindgrab_mask.meta["provenance"]
    assert prov["model_id"] == "mindgrab" and prov["weights_sha256"].startswith("31f1bda1")


@pytest.mark.slow
def test_template_fallback_needs_no_weights(mindgrab_mask: Volume, t1: Volume, data_dir: Path) -> None:
    mask = skullstrip(t1)  # nilearn's packaged MNI152, no download
    assert mask.same_grid(t1) and mask.meta["model_id"] == "mni152-registration"
    assert dice(mask.data, mindgrab_mask.data) > 0.85
    brats = io.load(data_dir / "brats_gli_00001" / "t1n.nii.gz")  # LPS, already stripped
    mask = skullstrip(brats)
    assert mask.same_grid(brats) and mask.axcodes == "LPS"
    assert dice(mask.data, np.asarray(brats.data) > 0) > 0.9


@pytest.mark.slow
def test_parcellation_104_regions_with_volumes(data_dir: Path, t1: Volume, mindgrab_mask: Volume) -> None:
    parc = parcellate(
        t1, data_dir / "brainchop_models" / "model21_104class", brain_mask=mindgrab_mask, device="cpu"
    )
    assert parc.labels.same_grid(t1) and len(parc.names) == 104
    assert parc.names[1] == "ctx-lh-bankssts"
    assert len(parc.regions) > 80
    total = sum(r["volume_ml"] for r in parc.regions)
    assert 900 < total < 1900
    assert all(r["volume_ml"] > 0 and r["name"] for r in parc.regions)
    assert not (parc.labels.data[mindgrab_mask.data == 0] > 0).mean() > 0.02


def test_bad_mask_grid_refused(t1: Volume) -> None:
    small = Volume(np.ones((4, 4, 4), np.uint8), np.eye(4))
    with pytest.raises(ValueError, match="not on the scan's grid"):
        parcellate(t1, "model21_104class", brain_mask=small)
