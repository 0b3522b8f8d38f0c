""" "Explain" dock widget: a heatmap of what a model looked at, with the checks that say if it can be trusted.

Choose FLAIR (T1c optional), the model (a classifier; a segmentation model explains a
region: choose it as the mask), the method (Grad-CAM, fast occlusion, brute-force
occlusion), the class and the Grad-CAM layer, then Run: `core.tasks.classify.explain`
runs in a worker thread, its progress counting forward passes, with Cancel. The heatmap
comes back on FLAIR's grid with a perceptual colormap (inferno) and additive blending;
opacity and threshold act on it live; "Side by side" switches napari's grid mode. The
checks panel shows each check's verdict, number and sentence, and a matplotlib plot shows
the deletion / insertion curves against a random order.
"""

from __future__ import annotations

from typing import Any

import napari.viewer
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, Label

from ...core.models import default_registry, resolve_model
from ...core.progress import CancelToken
from ...core.tasks.classify import DEFAULT_MODEL, METHODS
from ..dock_layout import adopt
from ..layers import layer_volume, volume_to_layer_data
from .task_panel import TaskPanel

NONE = "(none)"
DEFAULT = "(default)"
PREDICTED = "(predicted)"
HEATMAP = "heatmap"
VERDICT_COLOURS = {"pass": "#2e9d4f", "warn": "#d49a00", "fail": "#d0342c"}
#: What each check asks, in plain words (shown under its verdict until a run explains its number).
CHECK_QUESTIONS = {
    "randomisation": "Does the map change when the model's weights are scrambled? If not, it shows "
                     "the image's edges, not what the model learned.",
    "deletion_insertion": "Does hiding the hottest voxels first lower the model's score faster than "
                          "hiding random ones (curves below)?",
    "localisation": "Does the map's hot part fall inside the reference mask (the tumour)?",
}
LEGEND_PT = 9
#: Words in a labels layer's name that make it the default reference mask.
MASK_WORDS = ("tumor", "tumour", "lesion", "seg", "mask")


class ExplainWidget(TaskPanel, Container):
    """Explain a model's decision on the viewer's image layers.

    Attributes tests may set: ``flair.value``, ``t1c.value``, ``mask.value`` (layer names or
    "(none)"), ``model.value``, ``method.value``, ``target.value``, ``layer.value``,
    ``checks.value``, ``synchronous``; ``run()``, ``cancel()``; after a run ``result`` (the
    `Explanation`), ``heatmap_layer``, ``check_labels`` and ``figure`` (matplotlib).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.synchronous = False
        self.result: Any = None
        self.heatmap_layer: napari.layers.Layer = None
        self.flair = ComboBox(label="FLAIR", choices=self._image_choices, nullable=True)
        self.t1c = ComboBox(label="T1c (optional)", choices=self._optional_images)
        self.mask = ComboBox(label="Reference mask", choices=self._label_choices)
        self.model = ComboBox(label="Model", choices=self._model_choices)
        self.method = ComboBox(label="Method", choices=list(METHODS), value="gradcam")
        self.target = ComboBox(label="Class", choices=self._class_choices)
        self.layer = ComboBox(label="Layer (Grad-CAM)", choices=self._layer_choices)
        self.checks = CheckBox(text="Reliability checks", value=True)
        self.opacity = FloatSlider(label="Opacity", min=0.0, max=1.0, step=0.05, value=0.6)
        self.threshold = FloatSlider(label="Threshold", min=0.0, max=0.95, step=0.05, value=0.2)
        self.side_by_side = CheckBox(text="Side by side (grid view)", value=False)
        self.check_labels = [Label(label=name, value="-") for name in CHECK_QUESTIONS]
        self.check_texts = {name: Label(value=text) for name, text in CHECK_QUESTIONS.items()}
        for text in self.check_texts.values():
            text.native.setWordWrap(True)
        self.extend(
            [
                self.flair,
                self.t1c,
                self.mask,
                self.model,
                self.method,
                self.target,
                self.layer,
                self.checks,
                *self.task_controls("Choose FLAIR and a model, then Run."),
                self.opacity,
                self.threshold,
                self.side_by_side,
                *[w for label in self.check_labels for w in (label, self.check_texts[label.label])],
            ]
        )
        self.figure, self.canvas = self._make_plot()
        self.model.changed.connect(self._model_changed)
        self.opacity.changed.connect(self._restyle)
        self.threshold.changed.connect(self._restyle)
        self.side_by_side.changed.connect(self._grid)
        viewer.layers.events.inserted.connect(self._layers_changed)
        viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        adopt(self)  # one scrollable tab in the shared dock column

    # -- choices ------------------------------------------------------------------------------------
    def _layers_of(self, kind: str) -> list[str]:
        from napari.layers import Image, Labels

        cls = Image if kind == "image" else Labels
        return [
            la.name
            for la in self._viewer.layers
            if isinstance(la, cls) and la.ndim == 3 and la.name != HEATMAP and not la.metadata.get("explain")
        ]

    def _image_choices(self, _w: Any = None) -> list[str]:
        return self._layers_of("image")

    def _optional_images(self, _w: Any = None) -> list[str]:
        return [NONE, *self._layers_of("image")]

    def _label_choices(self, _w: Any = None) -> list[str]:
        return [NONE, *self._layers_of("labels")]

    def _model_choices(self, _w: Any = None) -> list[tuple[str, str]]:

        try:
            cards = [
                c
                for c in default_registry().cards()
                if c.task in ("classification", "segmentation") and c.inference.get("mode") != "click"
            ]
        except (OSError, ValueError):
            cards = []
        cards.sort(key=lambda c: (c.id != DEFAULT_MODEL, c.task != "classification", c.id))
        return [(f"{c.name} [{c.task}]" + ("" if c.available else " (weights missing)"), c.id) for c in cards]

    def _card(self) -> Any:

        try:
            return resolve_model(self.model.value or DEFAULT_MODEL)
        except (OSError, ValueError):
            return None

    def _class_choices(self, _w: Any = None) -> list[tuple[str, Any]]:
        card = self._card()
        names = list(card.output.get("channels") or [lab.name for lab in card.labels]) if card else []
        return [(PREDICTED, None), *[(f"{i}: {n}", i) for i, n in enumerate(names)]]

    def _layer_choices(self, _w: Any = None) -> list[str]:
        from ...core.explain.gradcam import candidate_layers
        from ...core.models.loaders import build_module

        card = self._card()
        try:
            names = candidate_layers(build_module(card)) if card is not None else []
        except (ValueError, KeyError, TypeError):
            names = []  # TorchScript / bundles: layers are known only once loaded
        return [DEFAULT, *names]

    def _model_changed(self, *_: Any) -> None:
        self.target.reset_choices()
        self.layer.reset_choices()

    def _layers_changed(self, *_: Any) -> None:
        from ...core.study import guess_contrast

        for box in (self.flair, self.t1c, self.mask):
            current = box.value
            box.reset_choices()
            if current in box.choices:
                box.value = current
        for box, contrast in ((self.flair, "flair"), (self.t1c, "t1c")):
            if box.value in (None, NONE):
                match = [n for n in self._layers_of("image") if guess_contrast(n) == contrast]
                if match:
                    box.value = match[0]
        if self.mask.value in (None, NONE):
            tumours = self._tumour_layers()
            if tumours:
                self.mask.value = tumours[-1]

    def _tumour_layers(self) -> list[str]:
        """Labels layers that hold a tumour: made by Segment tumour, or named like one."""
        from .tumor_clicks import TUMOR_KIND

        names = self._layers_of("labels")
        made = [n for n in names if self._viewer.layers[n].metadata.get(TUMOR_KIND)]
        return made or [n for n in names if any(word in n.lower() for word in MASK_WORDS)]

    # -- running ------------------------------------------------------------------------------------
    def run(self, *_: Any) -> None:
        """Compute the heatmap and its checks (worker thread unless `synchronous`)."""
        try:
            if self.flair.value in (None, NONE) or self.flair.value not in self._viewer.layers:
                raise ValueError("Choose the FLAIR image layer.")
            flair = layer_volume(self._viewer.layers[self.flair.value])
            t1c = (
                layer_volume(self._viewer.layers[self.t1c.value])
                if self.t1c.value not in (None, NONE)
                else None
            )
            mask = (
                layer_volume(self._viewer.layers[self.mask.value])
                if self.mask.value not in (None, NONE)
                else None
            )
        except ValueError as exc:
            self.say(str(exc))
            return
        kwargs = {
            "model": self.model.value or DEFAULT_MODEL,
            "method": self.method.value,
            "target_class": self.target.value,
            "run_checks": bool(self.checks.value),
            "mask": mask,
            "layer": None if self.layer.value in (None, DEFAULT) else self.layer.value,
        }

        def work(progress: Any, cancel: CancelToken, notify: Any) -> Any:
            from ...core.tasks.classify import explain

            progress(0, 1, "Loading the model")
            return explain(flair, t1c, progress=progress, cancel=cancel, **kwargs)

        self._source = self._viewer.layers[self.flair.value]
        self.start_task(work, "Explain", "Computing the heatmap...", self._show, self._error)

    def _show(self, result: Any) -> None:
        from napari.layers import Layer

        if self.cancelled_result():
            return
        self.result = result
        if HEATMAP in self._viewer.layers:
            self._viewer.layers.remove(HEATMAP)
        data, kw, kind = volume_to_layer_data(
            result.heatmap,
            "image",
            name=HEATMAP,
            colormap="inferno",
            blending="additive",
            metadata={"provenance": result.provenance, "explain": True,
                      "checks": [check.to_dict() for check in result.checks]},  # for reports
        )
        self.heatmap_layer = self._viewer.add_layer(Layer.create(data, kw, kind))
        self._restyle()
        self._show_checks(result)
        self._plot(result)
        pred = result.classification
        head = f"{pred.predicted} ({max(pred.probabilities.values()):.0%})" if pred else result.target_class
        self._finish(
            f"{head}: {result.method} for {result.target_class}, {result.forward_passes} forward "
            f"passes, {result.seconds:.0f} s."
        )

    def _error(self, exc: BaseException) -> None:
        self.task_failed(exc, "The heatmap")

    # -- display --------------------------------------------------------------------------------------
    def _restyle(self, *_: Any) -> None:
        layer = self.heatmap_layer
        if layer is None or layer not in self._viewer.layers:
            return

        top = float(np.max(layer.data)) or 1.0
        layer.opacity = float(self.opacity.value)
        layer.contrast_limits = (float(self.threshold.value) * top, top)  # below threshold: black = clear

    def _grid_model(self) -> Any:
        from ..display import grid

        return grid(self._viewer)

    def _grid(self, *_: Any) -> None:
        self._grid_model().enabled = bool(self.side_by_side.value)

    def _show_checks(self, result: Any) -> None:
        for label in self.check_labels:
            found = result.check(label.label.replace(" ", "_"))
            text = self.check_texts[label.label]
            if found is None:
                label.value = "not run" + (" (no reference mask)" if label.label == "localisation" else "")
                label.native.setStyleSheet("")
                text.value = CHECK_QUESTIONS[label.label] + (
                    " Choose a reference mask to run it." if label.label == "localisation" else "")
                continue
            colour = VERDICT_COLOURS[found.verdict]
            label.value = f"{found.verdict.upper()} ({found.value:.2f})"
            label.native.setStyleSheet(f"color: {colour}; font-weight: bold;")
            label.tooltip = text.tooltip = CHECK_QUESTIONS[label.label]
            text.value = found.sentence
        summary = " ".join(c.sentence for c in result.checks)
        if summary:
            self.status.tooltip = summary

    def _make_plot(self) -> tuple[Any, Any]:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(3.4, 2.6), dpi=96, tight_layout=True)
        canvas = FigureCanvasQTAgg(figure)
        canvas.setMinimumHeight(230)
        self.native.layout().addWidget(canvas)
        return figure, canvas

    def _plot(self, result: Any) -> None:
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        found = result.check("deletion_insertion")
        if found is None:
            ax.text(0.5, 0.5, "checks not run", ha="center", va="center")
        else:
            x = found.details["fractions"]
            style = {"saliency": "-", "random": ":"}
            for key, values in found.details["curves"].items():
                kind, order = key.split("_")
                colour = "#d0342c" if kind == "deletion" else "#2a6fdb"
                auc = found.details["auc"][key]
                ax.plot(x, values, style[order], color=colour, label=f"{kind} ({order}) {auc:.2f}")
            ax.set_xlabel("fraction of brain voxels", fontsize=LEGEND_PT)
            ax.set_ylabel(f"p({result.target_class})", fontsize=LEGEND_PT)
            ax.tick_params(labelsize=LEGEND_PT - 1)
            ax.set_ylim(-0.02, 1.02)
            ax.legend(fontsize=LEGEND_PT, loc="best", framealpha=0.8)
        self.canvas.draw_idle()
