"""Screenshots of the Synthesize and Super-resolve widgets on real scans.

Run under a virtual display (napari's canvas needs a real GL context)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_synthesis.py \
        ../shared/data docs/screenshots

        [--model-dir /tmp/synth_cv/fold0 --only-synthesis | --only-superres]

Writes synthesize.png (brats_gli_00001, held out by CV fold 0, with that fold's model given by
--model-dir: FLAIR synthesised from T1, T1c and T2, beside the real FLAIR, T1c and T2, on the
tumour's centre slice) and super_resolve.png (chris_PD, 2.4 mm slices, coronal view: B-spline
beside the self-supervised result), each in a 1366x768 window with every Brain DL dock open
(scripts/screens.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not another install's


def main(data: Path, out: Path, model_dir: Path | None = None, only_synthesis: bool = False,
         only_superres: bool = False) -> None:
    """Open each case, run the widget(s), screenshot the whole window.

    `model_dir`: a folder holding a ``synth-mri`` card and weights (a CV fold's) used instead of the
    shipped ones, through a temporary copy of the resources folder.
    """
    os.environ.setdefault("NAPARI_BRAIN_DL_HOME", tempfile.mkdtemp())
    if model_dir is not None:
        import shutil

        from napari_brain_dl.core.resources import resources_dir

        res = Path(tempfile.mkdtemp()) / "resources"
        shutil.copytree(resources_dir(), res)
        for f in ("synth-mri.yaml", "synth-mri.safetensors"):
            shutil.copy(model_dir / f, res / "models" / f)
        os.environ["NAPARI_BRAIN_DL_RESOURCES"] = str(res)
    from napari.layers import Layer
    from screens import Screen, settle

    from napari_brain_dl._napari import display
    from napari_brain_dl._napari.reader import read_paths

    def screen_with(title: str, paths: list[Path]) -> Screen:
        screen = Screen(title=f"napari-brain-dl: {title}")
        display.install(screen.viewer)
        for path in paths:
            for data, kwargs, kind in read_paths(str(path)):
                screen.viewer.add_layer(Layer.create(data, kwargs, kind))
        return screen

    def run(widget: object) -> None:
        start = time.perf_counter()
        widget.run()  # type: ignore[attr-defined]
        while not widget.run_button.enabled:  # type: ignore[attr-defined]
            settle(0.2)
        seconds = time.perf_counter() - start
        print(f"{type(widget).__name__}: {seconds:.0f} s; {widget.status.value}")  # type: ignore[attr-defined]

    out.mkdir(parents=True, exist_ok=True)
    if not only_superres:
        synthesis_shot(data, out, screen_with, run)
    if not only_synthesis:
        superres_shot(data, out, screen_with, run)


def synthesis_shot(data: Path, out: Path, screen_with: Any, run: Any) -> None:
    """synthesize.png: FLAIR synthesised for brats_gli_00001 beside the real one."""
    from screens import settle

    from napari_brain_dl._napari.widgets.synthesize import focus_point, show_side_by_side

    case = data / "brats_gli_00001"  # held out by CV fold 0: that fold's model never saw it
    scans = [case / f"{n}.nii.gz" for n in ("t1n", "t1c", "t2w", "t2f", "seg-BraTS23_1")]
    screen = screen_with("Synthesize", scans)
    viewer, widget = screen.viewer, screen.widgets["Synthesize"]
    widget.t1.value, widget.t1c.value, widget.t2.value = "t1n", "t1c", "t2w"
    widget.flair.value, widget.target.value, widget.device.value = "(none)", "FLAIR", "cpu"
    viewer.layers["seg-BraTS23_1"].visible = False  # only tells where the tumour is
    run(widget)
    layer = viewer.layers["FLAIR (synthetic)"]
    for other in viewer.layers:  # compare with the real FLAIR and the T1c
        other.visible = other.name in ("FLAIR (synthetic)", "t2f", "t1c", "t2w")
    viewer.layers.move(viewer.layers.index(layer), 0)  # grid order: synthetic, real FLAIR, then the rest
    viewer.layers.move(viewer.layers.index("t2f"), 1)
    settle(1)
    screen.front("Synthesize")
    show_side_by_side(viewer, layer, focus_point(viewer, layer))  # as the widget does, after the reorder
    screen.shot("Synthesize", out / "synthesize.png")
    viewer.close()
    print(f"saved {out}/synthesize.png")


def superres_shot(data: Path, out: Path, screen_with: Any, run: Any) -> None:
    """super_resolve.png: chris_PD, B-spline beside the self-supervised result, coronal."""
    from napari_brain_dl._napari import display

    screen = screen_with("Super-resolve", [data / "niivue_chris" / "chris_PD.nii.gz"])
    viewer, widget = screen.viewer, screen.widgets["Super-resolve"]
    controls = screen.widgets["Display"]
    widget.device.value = "cpu"
    widget.method.value = "bspline"
    run(widget)
    viewer.layers["chris_PD (super-resolved)"].name = "B-spline"
    widget.method.value = "self-supervised"
    run(widget)
    viewer.layers["chris_PD (super-resolved)"].name = "self-supervised SR"
    viewer.layers["chris_PD"].visible = False
    controls.view.value = "coronal"
    view = display.grid(viewer)
    view.shape, view.enabled = (1, -1), True
    viewer.reset_view()
    screen.shot("Super-resolve", out / "super_resolve.png")
    viewer.close()
    print(f"saved {out}/super_resolve.png")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--model-dir", type=Path, default=None, help="a CV fold's synth-mri card + weights")
    ap.add_argument("--only-synthesis", action="store_true", help="leave super_resolve.png as it is")
    ap.add_argument("--only-superres", action="store_true", help="leave synthesize.png as it is")
    a = ap.parse_args()
    main(a.data, a.out, a.model_dir, a.only_synthesis, a.only_superres)
