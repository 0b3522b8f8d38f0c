"""Cancel (or Ctrl+C) at several points of a run: nothing partial is left and the next run works.

Core tasks are cancelled at the 1st, 2nd, 3rd ... progress report; the command line is
interrupted during the model run and in the middle of writing the file; the Run model and
Segment tumour widgets are cancelled at several progress reports, and a model that raises
mid-run leaves the viewer usable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import yaml

from bad_inputs.commands import run_cli, write_tiny_card
from bad_inputs.corpus import build_corpus
from napari_brain_dl.core import io
from napari_brain_dl.core.inference import predict
from napari_brain_dl.core.progress import Cancelled, CancelToken
from napari_brain_dl.core.tasks.tumor import segment_tumor


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_corpus(tmp_path_factory.mktemp("cancel"))[0].path


def _canceller(at: int) -> tuple[CancelToken, Any, list[int]]:
    token, calls = CancelToken(), []

    def progress(done: int, total: int, text: str) -> None:
        calls.append(done)
        if len(calls) == at:
            token.cancel()

    return token, progress, calls


def _window_card(folder: Path) -> str:
    path = Path(write_tiny_card(folder))
    card = yaml.safe_load(path.read_text())
    card["inference"] = {"mode": "sliding_window", "roi_size": [12, 12, 12], "overlap": 0.25, "crop": "none"}
    path.write_text(yaml.safe_dump(card))
    return str(path)


@pytest.mark.parametrize("at", [1, 2, 4, 7])
def test_core_run_cancelled_at_several_windows(good: Path, tmp_path: Path, at: int) -> None:
    card, volume = _window_card(tmp_path / "m"), io.load(good)
    token, progress, calls = _canceller(at)
    with pytest.raises(Cancelled):
        predict(card, volume, device="cpu", progress=progress, cancel=token)
    assert len(calls) == at  # stopped at the next check, not at the end
    again = predict(card, volume, device="cpu")  # the next run works (the cached model is intact)
    assert again.primary.shape == volume.shape


@pytest.mark.parametrize("at", [1, 3, 5])
def test_tumour_tta_cancelled_between_passes(good: Path, rule_card: str, at: int) -> None:
    volume = io.load(good)
    token, progress, calls = _canceller(at)
    with pytest.raises(Cancelled):
        segment_tumor(volume, volume, model=rule_card, device="cpu", tta=True, progress=progress,
                      cancel=token)
    assert len(calls) == at
    assert segment_tumor(volume, volume, model=rule_card, device="cpu").labels.shape == volume.shape


@pytest.mark.parametrize("where", ["model", "writing"])
def test_interrupted_command_leaves_no_file(good: Path, tmp_path: Path, rule_card: str, where: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl+C during the model run, or half-way through writing the output."""
    from napari_brain_dl.core import progress as progress_module

    if where == "model":
        def interrupt(done: int, total: int, text: str) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(progress_module, "stderr_progress", interrupt)
    else:
        real_save = nib.save

        def interrupt_save(img: Any, filename: Any, *args: Any, **kwargs: Any) -> None:
            real_save(img, filename, *args, **kwargs)
            with open(filename, "r+b") as fh:
                fh.truncate(100)
            raise KeyboardInterrupt

        monkeypatch.setattr(nib, "save", interrupt_save)
    out = tmp_path / "out"
    argv = ["segment", "--flair", str(good), "--t1c", str(good), "--model", rule_card, "--device", "cpu",
            "-o", str(out / "seg.nii.gz"), "--json", str(out / "seg.json")]
    result = run_cli(argv, out)
    assert result.code == 130 and "interrupted" in result.err and result.files == []
    monkeypatch.undo()
    assert run_cli(argv, out).code == 0 and (out / "seg.nii.gz").is_file()  # the next run works


# -- widgets (viewer) -----------------------------------------------------------------------------
def _labels(viewer: Any) -> list[Any]:
    return [layer for layer in viewer.layers if layer._type_string == "labels"]


@pytest.mark.viewer
def test_run_model_widget_cancelled_at_several_points(make_napari_viewer: Any, good: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from napari.layers import Layer

    from napari_brain_dl._napari.layers import volume_to_layer_data
    from napari_brain_dl._napari.widgets.run_model import RunModelWidget
    from napari_brain_dl.core.models import default_registry

    folder = tmp_path / "models"
    _window_card(folder)
    boom = yaml.safe_load((folder / "tiny.yaml").read_text())
    torch_module = __import__("torch")

    class Boom(torch_module.nn.Module):
        def forward(self, x: Any) -> Any:
            raise RuntimeError("the model failed on purpose")

    torch_module.jit.script(Boom()).save(str(folder / "boom.ts"))
    boom.update(id="boom", name="Boom", weights={"file": "boom.ts"})
    (folder / "boom.yaml").write_text(yaml.safe_dump(boom))
    default_registry().add_folder(folder)
    viewer = make_napari_viewer()
    viewer.add_layer(Layer.create(*volume_to_layer_data(io.load(good))))
    widget = RunModelWidget(viewer)
    widget.synchronous = True
    widget.model.value = "tiny-threshold"
    real = RunModelWidget._progress
    for at in (1, 2, 3, 5):
        count = [0]

        def progress(self: Any, done: int, total: int, text: str, at: int = at, count: list = count) -> None:
            count[0] += 1
            real(self, done, total, text)
            if count[0] == at:
                self.cancel()

        monkeypatch.setattr(RunModelWidget, "_progress", progress)
        widget.run()
        assert not _labels(viewer) and widget.run_button.enabled and len(viewer.layers) == 1, at
    monkeypatch.setattr(RunModelWidget, "_progress", real)
    errors: list[str] = []
    from napari_brain_dl._napari.widgets import task_panel

    monkeypatch.setattr(task_panel, "show_error", errors.append)
    widget.model.value = "boom"
    widget.run()  # raises mid-run
    assert len(errors) == 1 and "failed on purpose" in errors[0] and len(viewer.layers) == 1
    widget.model.value = "tiny-threshold"
    widget.run()  # the viewer and the widget still work
    assert len(_labels(viewer)) == 1 and np.asarray(_labels(viewer)[0].data).any()
