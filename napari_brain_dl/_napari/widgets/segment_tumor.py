""""Segment tumour" dock widget: FLAIR + T1c (T1, T2 optional) -> BraTS labels, clicks, edits, export.

Choose the exam's contrasts among the viewer's image layers (preselected from their
names), the model and whether to estimate the uncertainty (test-time augmentation),
then Run: `core.tasks.tumor.segment_tumor` runs in a worker thread with progress and
Cancel, and the result comes back as a "tumor" labels layer on FLAIR's grid (classes
named and coloured; the status bar names the class under the cursor), plus with TTA an
uncertainty layer and a list of slices to review. Cancel or an error adds nothing.

Refine (`tumor_boundary`) edits the BraTS labels, or starts from nothing (tighter / looser per
region, clicks, scribbles, box, lasso, paint; one undo / redo) keeping core and enhancing;
measurements, autosave, Save JSON and export of the current tumour layer are in `tumor_results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import napari.viewer
from magicgui.widgets import CheckBox, ComboBox, Container
from napari.utils.notifications import show_info

from ...core.models import default_registry, resolve_model
from ...core.progress import CancelToken
from ...core.tasks.tumor import DEFAULT_MODEL
from .. import display
from ..dock_layout import adopt
from ..layers import (
    GEOMETRY,
    is_synthetic_layer,
    layer_contrast,
    layer_volume,
    same_layer,
    volume_to_layer_data,
)
from . import in_turns
from .run_model import DEVICES
from .task_panel import TaskPanel
from .tumor_boundary import TumourEditPanel, remember
from .tumor_clicks import TUMOR_KIND, display_to_voxel, voxel_to_display
from .tumor_results import TumorResults, layer_measurements, tumor_layer_kwargs

NONE = "(none)"
CONTRASTS = (("flair", "FLAIR"), ("t1c", "T1c"), ("t1", "T1"), ("t2", "T2"))
__all__ = ["SegmentTumorWidget", "display_to_voxel", "voxel_to_display"]


class SegmentTumorWidget(TaskPanel, Container):
    """Segment a brain tumour from the viewer's image layers.

    Attributes tests may set: ``flair.value``, ``t1c.value``, ``t1.value``, ``t2.value``
    (layer names, "(none)" for the optional ones), ``model.value`` (after
    ``add_model(card path)`` for a model outside the registry), ``device.value``,
    ``tta.value``, ``click_refine.value``, ``allow_synthetic.value``, ``synchronous``; ``run()``,
    ``cancel()``; ``edits`` (Refine: boundary, clicks, strokes, one history) and ``results``
    (measurements, autosave, export).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._synchronous = False
        self._extra_models: list[str] = []
        self._review: list[dict[str, int]] = []
        self.flair = ComboBox(label="FLAIR", choices=self._layer_choices, nullable=True)
        self.t1c = ComboBox(label="T1c", choices=self._layer_choices, nullable=True)
        self.t1 = ComboBox(label="T1 (optional)", choices=self._optional_choices)
        self.t2 = ComboBox(label="T2 (optional)", choices=self._optional_choices)
        self.model = ComboBox(label="Model", choices=self._model_choices)
        self.device = ComboBox(label="Device", choices=list(DEVICES), value="auto")
        self.tta = CheckBox(text="Uncertainty (TTA, 4x slower)", value=False)
        self.click_refine = CheckBox(text="Whole tumour: click-model outline", value=True,
                                     tooltip="With FLAIR and T1c (or T1 in its place), the click model "
                                             "re-outlines the default model's whole tumour from one click at "
                                             "its centre")
        self.allow_synthetic = CheckBox(text="Allow synthetic contrasts", tooltip="Recorded in the result",
                                        value=False)
        self.review = ComboBox(label="Review slice", choices=self._review_choices, visible=False)
        self.results = TumorResults(viewer, self.flair_layer)
        self.results.label = "Result"
        self.edits = TumourEditPanel(viewer, self._edit_exam, lambda: self.results.layer,
                                     on_change=self._edited)
        self.edits.label = "Refine"
        self.extend([self.flair, self.t1c, self.t1, self.t2, self.model, self.device, self.tta,
                     self.click_refine, self.allow_synthetic,
                     *self.task_controls("Choose FLAIR and T1c, then Run."),
                     self.review, self.edits, self.results])
        self.review.changed.connect(self.go_to_review)
        self.flair.changed.connect(self._flair_changed)
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        adopt(self)  # one scrollable tab in the shared dock column

    @property
    def synchronous(self) -> bool:
        """Run the work on the calling thread (tests)."""
        return self._synchronous

    @synchronous.setter
    def synchronous(self, value: bool) -> None:
        self._synchronous = bool(value)
        self.edits.synchronous = self.results.synchronous = self._synchronous

    # -- choices --------------------------------------------------------------------------------
    def image_layers(self) -> list[str]:
        """Names of the viewer's 3D image layers."""
        from napari.layers import Image

        return [layer.name for layer in self._viewer.layers
                if isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb]

    def _layer_choices(self, _widget: Any = None) -> list[str]:
        return self.image_layers()

    def _optional_choices(self, _widget: Any = None) -> list[str]:
        return [NONE, *self.image_layers()]

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:

        try:
            cards = [c for c in default_registry().cards()
                     if {"flair", "t1c"} <= {i.lower() for i in c.inputs} and c.task == "segmentation"
                     and c.inference.get("mode") != "click"]  # the click model is for clicks (Refine)
        except (OSError, ValueError):
            cards = []
        cards.sort(key=lambda c: c.id != DEFAULT_MODEL)  # the first choice is the default
        choices = [(c.name + ("" if c.available else " (weights missing)"), c.id) for c in cards]
        if DEFAULT_MODEL not in [c.id for c in cards]:
            choices.insert(0, (f"{DEFAULT_MODEL} (not installed)", DEFAULT_MODEL))
        return choices + [(path, path) for path in self._extra_models]

    def add_model(self, path: str) -> None:
        """Offer a model card file that is not in the registry, and choose it."""
        self._extra_models.append(str(path))
        self.model.reset_choices()
        self.model.value = str(path)

    def _layers_changed(self, *_: Any) -> None:
        layers = self.image_layers()
        for box in (self.flair, self.t1c, self.t1, self.t2):
            current = box.value
            box.reset_choices()
            if current in box.choices:
                box.value = current
        for contrast, _ in CONTRASTS:  # preselect by name, keeping the user's choices
            box = getattr(self, contrast)
            if box.value in (None, NONE):
                match = [n for n in layers
                         if layer_contrast(self._viewer.layers[n]) == contrast]
                if match:
                    box.value = match[0]
        self.results.update_buttons()

    def _flair_changed(self, *_: Any) -> None:
        self.edits.reset()
        self.results.update_buttons()

    def flair_layer(self) -> Any:
        """The chosen FLAIR layer, or None."""
        name = self.flair.value
        return self._viewer.layers[name] if name and name in self._viewer.layers else None

    def _volumes(self) -> dict[str, Any]:
        """Chosen layers as Volumes on their source grids (UI thread); ValueError with a sentence.

        A missing FLAIR is None here only when the user allowed synthetic contrasts (it is
        synthesized in the worker from whatever else is chosen); T1c is never synthesized (without
        it only the whole tumour is given); a synthetic layer needs the same consent.
        """
        allow = bool(self.allow_synthetic.value)
        chosen = {label: getattr(self, key).value for key, label in CONTRASTS}
        chosen = {label: name if name in self._viewer.layers else None for label, name in chosen.items()}
        missing = [label for label in ("FLAIR", "T1c") if chosen[label] is None]
        if missing == ["T1c"]:  # no contrast agent: whole tumour only (the result says why)
            missing = []
        if len(missing) == 2 or (missing and not allow):
            hint = " (or tick 'Allow synthetic contrasts' to synthesize it)" if len(missing) == 1 else ""
            raise ValueError(f"Choose the {missing[0]} image layer: tumour segmentation needs FLAIR and "
                             f"T1c{hint}.")
        for label, name in chosen.items():
            if name is not None and is_synthetic_layer(self._viewer.layers[name]) and not allow:
                raise ValueError(f"The {label} layer {name!r} is synthetic, not acquired; tick "
                                 "'Allow synthetic contrasts' to use it (the result will record it).")
        return {label: layer_volume(self._viewer.layers[name]) if name is not None else None
                for label, name in chosen.items()}

    # -- running ---------------------------------------------------------------------------------
    def run(self, *_: Any) -> None:
        """Segment the tumour (worker thread unless `synchronous`); the result is added on FLAIR's grid."""
        try:
            volumes = self._volumes()
        except ValueError as exc:
            self.say(str(exc))
            return
        model, device, tta = self.model.value or DEFAULT_MODEL, self.device.value, bool(self.tta.value)
        allow = bool(self.allow_synthetic.value)
        refine = None if self.click_refine.value else False  # on: the default model's cascade

        def work(progress: Any, cancel: CancelToken, notify: Any) -> Any:
            from ...core.tasks.tumor import segment_tumor

            progress(0, 1, "Loading the model")
            synthetic = []
            for label in [name for name in ("FLAIR",) if volumes[name] is None and allow]:  # never T1c
                from ...core.tasks.synthesize import synthesize

                progress(0, 1, f"Synthesizing the missing {label}")
                made = synthesize({k: v for k, v in volumes.items() if v is not None}, label,
                                  device=device, progress=progress, cancel=cancel)
                volumes[label] = made.image
                synthetic.append(made.image)
            seg = segment_tumor(volumes["FLAIR"], volumes["T1c"], volumes["T1"], volumes["T2"], model=model,
                                device=device, tta=tta, click_refine=refine, progress=progress, cancel=cancel,
                                notify=notify)
            progress(1, 1, "Preparing the result layers")
            return _prepare_result(seg, synthetic, model)  # layer models and measurements, off the UI thread

        self._source = self.flair_layer()
        self.start_task(work, "Segment tumour", "Segmenting the tumour...", self._add_result, self._error)

    def _add_result(self, result: PreparedResult) -> None:
        """Add the prepared layers one per event-loop turn (each repaint comes between them)."""
        if self.cancelled_result():
            return
        steps = [lambda pair=pair: self._add_synthetic(*pair) for pair in result.synthetic]
        steps += [lambda: self._add_tumor(result)]
        if result.uncertainty is not None:
            steps.append(lambda: self._viewer.add_layer(result.uncertainty))
        steps += [lambda: self._follow(result), lambda: self._done(result)]
        in_turns(steps, self.synchronous)

    def _add_synthetic(self, layer: napari.layers.Layer, target: str | None) -> None:
        """Shown, marked, and chosen, so clicks and exports have their grid."""
        self._viewer.add_layer(layer)
        box = self.flair if target == "FLAIR" else self.t1c
        box.value = layer.name

    def _add_tumor(self, result: PreparedResult) -> None:
        with self.results.adding():  # attached in the next turn, with the worker's measurements
            self._viewer.add_layer(result.tumor)

    def _follow(self, result: PreparedResult) -> None:
        """Measurements table and RANO lines (measured in the worker), Refine's probabilities."""
        seg = result.seg
        self.results.attach(result.tumor, dict(seg.provenance), kind="brats",
                            measurements=result.measurements)
        remember(result.tumor, seg.probabilities, seg.provenance.get("thresholds"))  # Refine moves outlines
        self.edits.reset()

    def _done(self, result: PreparedResult) -> None:
        seg, prov = result.seg, result.seg.provenance
        self._viewer.layers.selection.active = result.tumor
        self.show_review(seg.review_slices)
        for note in seg.notes:
            show_info(note)
        self._finish(f"Tumour segmented in {prov.get('seconds', 0):.1f} s on {prov.get('device', '?')}"
                     + (f"; {len(self._review)} slices to review." if seg.uncertainty is not None else "."))

    def _error(self, exc: BaseException) -> None:
        self.task_failed(exc, "The segmentation")

    # -- review slices ----------------------------------------------------------------------------
    def _review_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        return [(f"slice {r['index']} ({r['uncertain_voxels']} uncertain voxels)", i)
                for i, r in enumerate(self._review)]

    def show_review(self, slices: list[dict[str, int]]) -> None:
        """List the slices to review (most uncertain first); the list shows only when there are some."""
        self._review = list(slices)
        self.review.reset_choices()
        self.review.visible = bool(self._review)

    def go_to_review(self, choice: int | None = None) -> None:
        """Move the viewer to a slice to review (index into the review list)."""
        layer = self._source if getattr(self, "_source", None) in self._viewer.layers else self.flair_layer()
        if choice is None or layer is None or not 0 <= choice < len(self._review):
            return
        entry = self._review[choice]
        voxel = [0, 0, 0]
        voxel[entry["axis"]] = entry["index"]
        transform = layer.metadata.get(GEOMETRY, {}).get("orientation_transform")
        axis = int(transform[entry["axis"]][0]) if transform is not None else entry["axis"]
        point = voxel_to_display(layer, voxel)[axis]
        self._viewer.dims.set_point(axis, float(layer.translate[axis] + layer.scale[axis] * point))

    # -- refine --------------------------------------------------------------------------------------
    def _edit_exam(self) -> tuple[Any, Any, Any, str]:
        from ...core.tasks.click_segment import click_t1c_input

        volumes = self._volumes()
        if volumes["FLAIR"] is None:
            raise ValueError("Refining needs the FLAIR layer; Run once to synthesize it.")
        t1c_input = click_t1c_input([name for name, v in volumes.items() if v is not None]) or "T1c"
        return self.flair_layer(), volumes["FLAIR"], volumes[t1c_input], t1c_input

    def _edited(self, layer: napari.layers.Layer, measurements: dict[str, Any] | None = None) -> None:
        """Refine changed `layer`: its worker's `measurements` go in now; without them (napari paint)
        the results measure after the quiet time, in a worker."""
        if measurements is not None or not same_layer(layer, self.results.layer):
            self.results.attach(layer, kind="brats", measurements=measurements)
        self.results.edit(measured=measurements is not None)


@dataclass
class PreparedResult:
    """A segmentation and its napari layer models, built in the worker thread."""

    seg: Any  # core TumorSegmentation
    tumor: Any  # Labels layer "tumor" on FLAIR's grid
    uncertainty: Any | None  # Image layer, with test-time augmentation only
    synthetic: list[tuple[Any, str | None]]  # (Image layer marked synthetic, the contrast it stands for)
    measurements: dict[str, Any]  # tumor_measurements of `tumor`'s labels


def _prepare_result(seg: Any, synthetic: list[Any], model: str | None) -> PreparedResult:
    """Layer models (reoriented for display, windowed, coloured) and measurements of a result.

    Pure computation (napari layer models, no Qt widgets): runs in the worker, so the UI
    thread only adds the ready layers.
    """
    from napari.layers import Layer

    from .synthesize import synthetic_layer_kwargs

    display.warm_up()  # scans opened with File > Open came without Load exam's warm-up
    images = [(Layer.create(*volume_to_layer_data(image, "image", name=image.name,
                                                  metadata={"synthetic": True}, **synthetic_layer_kwargs())),
               image.meta.get("synthesis", {}).get("target")) for image in synthetic]
    prov = dict(seg.provenance)
    tumor = Layer.create(*volume_to_layer_data(seg.labels, "labels", name="tumor",
                                               metadata={"provenance": prov, TUMOR_KIND: "brats"},
                                               **tumor_layer_kwargs(_card_labels(model))))
    uncertainty = None
    if seg.uncertainty is not None:
        uncertainty = Layer.create(*volume_to_layer_data(
            seg.uncertainty, "image", name="tumor uncertainty", colormap="inferno", blending="additive",
            contrast_limits=(0.0, 0.5), metadata={"provenance": prov}))
    return PreparedResult(seg, tumor, uncertainty, images, layer_measurements(seg.labels, "brats"))


def _card_labels(model: str | None) -> list[Any]:
    """Label table of the model's card (for colours), empty when unknown."""

    try:
        return list(resolve_model(model or DEFAULT_MODEL).labels)
    except Exception:  # an unknown or broken card only loses its colours
        return []
