"""The weight-free skull strip (MNI152 template registration) on scans it cannot strip.

All-NaN scans, one- or two-slice slabs and binary label maps are refused at once with one
sentence; a cancel (or a Ctrl-C arriving inside an ITK iteration) stops the registration
cleanly instead of surfacing as an ITK RuntimeError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bad_inputs.commands import run_cli
from bad_inputs.corpus import base_affine, head, save_nifti
from napari_brain_dl.core.progress import Cancelled, CancelToken
from napari_brain_dl.core.tasks.skullstrip import template_brain_mask
from napari_brain_dl.core.volume import Volume


def _all_nan(folder: Path) -> Path:
    return save_nifti(np.full(head().shape, np.nan, np.float32), folder / "nan.nii.gz")


def _two_slices(folder: Path) -> Path:
    return save_nifti(np.ascontiguousarray(head()[:, :, 9:11]), folder / "slab.nii.gz")


def _binary_mask(folder: Path) -> Path:
    return save_nifti((head() > 50).astype(np.uint8), folder / "mask.nii.gz")


@pytest.mark.parametrize(("make", "word"), [(_all_nan, "NaN"), (_two_slices, "brain MRI"),
                                            (_binary_mask, "label map")])
def test_template_skull_strip_refuses_at_once(tmp_path: Path, make: object, word: str) -> None:
    scan = make(tmp_path)  # type: ignore[operator]
    out = tmp_path / "out"
    result = run_cli(["skullstrip", str(scan), str(out / "brain.nii.gz")], out)
    assert result.code == 3 and "Traceback" not in result.err and len(result.error_lines) == 1, result.err
    assert word.lower() in result.err.lower() and scan.name.split(".")[0] in result.err, result.err
    assert result.files == []


class _InterruptOnSecondPoll(CancelToken):
    """Raises KeyboardInterrupt on its second poll, as a Ctrl-C delivered inside a callback would."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0

    def raise_if_cancelled(self) -> None:
        self.polls += 1
        if self.polls == 2:
            raise KeyboardInterrupt


def test_cancel_and_ctrl_c_stop_the_registration(capfd: pytest.CaptureFixture[str]) -> None:
    scan = Volume(head(), base_affine(), name="head")
    token = CancelToken()

    def cancel_when_registering(done: int, total: int, text: str) -> None:
        if "registration" in text:
            token.cancel()

    with pytest.raises(Cancelled):
        template_brain_mask(scan, progress=cancel_when_registering, cancel=token)
    interrupt = _InterruptOnSecondPoll()
    with pytest.raises(KeyboardInterrupt):
        template_brain_mask(scan, cancel=interrupt)
    assert interrupt.polls == 2
    assert "Traceback" not in capfd.readouterr().err
