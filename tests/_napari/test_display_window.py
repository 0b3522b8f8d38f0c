"""Default windows of new image layers: lesion-aware (percentiles inside the brain, per contrast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_brain_dl._napari.display import window_presets
from napari_brain_dl._napari.layers import volume_to_layer_data
from napari_brain_dl.core import io


@pytest.mark.parametrize(("contrast", "lesion_label"), [("t2f", 2), ("t1c", 3)])
def test_default_window_keeps_the_lesion_below_white(data_dir: Path, contrast: str,
                                                     lesion_label: int) -> None:
    """FLAIR oedema and T1c enhancement keep their texture: 95 % of their voxels are inside the window."""
    folder = data_dir / "brats_gli_00001"
    scan = io.load(folder / f"{contrast}.nii.gz")
    seg = np.asarray(io.load(folder / "seg-BraTS23_1.nii.gz").data)
    data = np.asarray(scan.data, float)
    brain = data[data > 0]
    low, high = volume_to_layer_data(scan)[1]["contrast_limits"]
    assert high >= np.percentile(brain, 99.0)  # was 2101 (FLAIR) and 4421 (T1c): lesions flat white
    assert np.percentile(data[seg == lesion_label], 95) < high
    assert low <= np.percentile(brain, 1.0)


def test_presets_of_a_head_without_a_constant_background() -> None:
    rng = np.random.default_rng(0)
    head = rng.normal(100, 10, (32, 32, 32))
    head[:8] = rng.normal(5, 2, (8, 32, 32))  # noisy air, no constant background
    presets = window_presets(head)
    assert list(presets) == ["lesion", "brain", "auto", "full"]
    assert 50 < presets["lesion"][0] < 100 < presets["lesion"][1] < 140  # the head's voxels only
    assert window_presets(np.zeros((4, 4, 4)))["lesion"] == (0.0, 1.0)
