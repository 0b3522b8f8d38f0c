""""Run model" dock widget: one model from the registry on image layers of the viewer.

Choose a model, map each of its card inputs (in card order) to an image layer,
choose the device and Run. The layers are turned into Volumes on their source
grid (UI thread), `core.inference.predict` runs in a worker thread with a
napari progress bar and a Cancel, and the result comes back as a labels (names
and colours from the card) or image layer on the input layer's grid, carrying
``metadata["provenance"]``. Cancel or an error adds nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import napari.viewer
from magicgui.widgets import ComboBox, Container, PushButton
from napari.utils.notifications import show_error, show_warning

from ...core.device_names import DEVICES
from ...core.models import ModelCard, default_registry
from ...core.progress import CancelToken
from ..dock_layout import adopt
from ..layers import layer_to_volume, volume_to_layer_data
from .task_panel import TaskPanel


class RunModelWidget(TaskPanel, Container):
    """Run a registry model on the viewer's image layers.

    Attributes tests may set: ``model.value`` (card id), ``inputs[i].value``
    (image layer name for card input i), ``device.value``; ``run()``,
    ``cancel()``; ``synchronous = True`` runs on the calling thread.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.synchronous = False
        self._cards: dict[str, ModelCard] = {}
        # Callable choices: napari calls reset_choices() on layer changes; a static list would empty.
        self.model = ComboBox(label="Model", choices=self._model_choices)
        self.refresh_button = PushButton(text="Refresh models")
        self.inputs_box = Container(labels=True, label="Inputs")
        self.inputs: list[ComboBox] = []
        self.device = ComboBox(label="Device", choices=list(DEVICES), value="auto")
        self.extend([self.model, self.refresh_button, self.inputs_box, self.device,
                     *self.task_controls("Choose a model and its inputs, then Run.")])
        self.model.changed.connect(self._build_inputs)
        self.refresh_button.changed.connect(self.refresh)
        viewer.layers.events.inserted.connect(self._update_layer_choices)
        viewer.layers.events.removed.connect(self._update_layer_choices)
        self.refresh()
        adopt(self)  # one scrollable tab in the shared dock column

    # -- choices ------------------------------------------------------------------------
    def refresh(self, *_: Any) -> None:
        """Read the registry again (e.g. after adding a model in the Model manager)."""
        try:
            cards = default_registry().cards()
        except (OSError, ValueError) as exc:
            show_error(f"Could not read the model list: {exc}")
            cards = []
        self._cards = {c.id: c for c in cards}
        current = self.model.value
        self.model.reset_choices()
        if current in self._cards:
            self.model.value = current
        self._build_inputs()

    def _model_choices(self, _widget: Any = None) -> list[tuple[str, str]]:
        """(label, card id) per card; a name shared by several cards gets the id, or one hides the other."""
        names = Counter(c.name for c in self._cards.values())
        return [(c.name + (f" [{c.id}]" if names[c.name] > 1 else "")
                 + ("" if c.available else " (weights missing)"), c.id) for c in self._cards.values()]

    def card(self) -> ModelCard | None:
        """Card of the chosen model."""
        return self._cards.get(self.model.value) if self.model.value else None

    def image_layers(self) -> list[str]:
        """Names of the viewer's 3D image layers."""
        from napari.layers import Image

        return [layer.name for layer in self._viewer.layers
                if isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb]

    def _layer_choices(self, _widget: Any = None) -> list[str]:
        return self.image_layers()

    def _build_inputs(self, *_: Any) -> None:
        card = self.card()
        names = card.inputs if card else []
        self.inputs_box.clear()
        self.inputs = [ComboBox(label=f"{i + 1}. {name}", choices=self._layer_choices) for i, name in
                       enumerate(names)]
        self.inputs_box.extend(self.inputs)
        self._guess_inputs(force=True)

    def _update_layer_choices(self, *_: Any) -> None:
        for box in self.inputs:
            current = box.value
            box.reset_choices()
            if current in box.choices:
                box.value = current
        self._guess_inputs()

    def _guess_inputs(self, force: bool = False) -> None:
        """Pick the layer named like each contrast, else the selected image layer; keep user choices."""
        card, layers = self.card(), self.image_layers()
        if card is None or not layers:
            return
        active = self._viewer.layers.selection.active
        fallback = active.name if active is not None and active.name in layers else layers[0]
        for contrast, box in zip(card.inputs, self.inputs, strict=True):
            match = [n for n in layers if n.lower() == contrast.lower()]
            if force or box.value is None:
                box.value = match[0] if match else fallback

    # -- running --------------------------------------------------------------------------
    def run(self, *_: Any) -> None:
        """Run the chosen model on the chosen layers (worker thread unless `synchronous`)."""
        card = self.card()
        if card is None:
            show_warning("Choose a model first (add it in the Model manager if it is not listed).")
            return
        if not card.available:
            show_error(f"The weights of {card.name} are missing; add its folder in the Model manager.")
            return
        chosen = [box.value for box in self.inputs]
        if any(name is None or name not in self._viewer.layers for name in chosen):
            show_warning(f"Choose an image layer for each input: {', '.join(card.inputs)}.")
            return
        layers = [self._viewer.layers[name] for name in chosen]
        try:  # UI thread: layer -> Volume on its source grid; the worker sees only Volumes
            volumes = [layer_to_volume(layer.data, {"metadata": layer.metadata, "scale": layer.scale,
                                                    "translate": layer.translate}, name=layer.name)
                       for layer in layers]
        except ValueError as exc:
            show_error(str(exc))
            return
        device = self.device.value

        def work(progress: Any, cancel: CancelToken, notify: Any) -> Any:
            # The same task as `napari-brain-dl run`; the engine caches the loaded model.
            from ...core.tasks.run_model import run_model

            progress(0, 1, f"Loading {card.name}")
            return run_model(card, volumes, device=device, progress=progress, cancel=cancel, notify=notify)

        self._source = layers[0].name
        self.start_task(work, f"{card.name}", f"Running {card.name}...", self._add_result, self._error)

    def _add_result(self, prediction: Any) -> None:
        from napari.layers import Layer

        if self.cancelled_result():
            return
        card, prov = self.card(), dict(prediction.provenance)
        added = []
        for key, volume in prediction.outputs.items():
            data, kwargs, kind = _layer_data(card, key, volume, self._source, prov)
            added.append(self._viewer.add_layer(Layer.create(data, kwargs, kind)))
        self._finish(f"{prov.get('model_name', card.id if card else '')} finished in "
                     f"{prov.get('seconds', 0):.1f} s on {prov.get('device', '?')}.")
        if added:
            self._viewer.layers.selection.active = added[0]

    def _error(self, exc: BaseException) -> None:
        self.task_failed(exc, "The model run")


def _layer_data(card: ModelCard | None, key: str, volume: Any, source: str,
                prov: dict[str, Any]) -> tuple[Any, dict[str, Any], str]:
    """Layer data tuple for one model output, on its input's grid."""
    model_id = prov.get("model_id", card.id if card else "model")
    meta = {"provenance": prov}
    if key == "labels":
        from napari.utils.colormaps import DirectLabelColormap

        labels = card.labels if card else []
        colors: dict[int | None, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
        colors.update({lab.value: (*(c / 255 for c in lab.color), 1.0) for lab in labels if lab.value})
        kwargs: dict[str, Any] = {"metadata": meta, "opacity": 0.5}
        if len(labels) > 1:
            kwargs["colormap"] = DirectLabelColormap(color_dict=colors)
            kwargs["features"] = {"index": [lab.value for lab in labels],
                                  "name": [lab.name for lab in labels]}
        return volume_to_layer_data(volume, "labels", name=f"{source} {model_id}", **kwargs)
    cmap = "gray" if card is not None and card.output_kind == "image" else "inferno"
    return volume_to_layer_data(volume, "image", name=f"{source} {model_id} {key}", metadata=meta,
                                colormap=cmap, blending="additive" if cmap != "gray" else "translucent")
