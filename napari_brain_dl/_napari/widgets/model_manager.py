""""Model manager" dock widget: the models the registry knows, adding models, trust.

Lists every card (shipped and from the user's folders) with whether its weights
are present and whether it is trusted; adds a model folder, a folder of models
or a single weights/card file (weights are recognised by their sha256); shows
the selected card read-only; Trust / Untrust after a confirmation sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import napari.viewer
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton, Table, TextEdit
from napari.utils.notifications import show_error, show_info

from ...core.models import CardError, ModelCard, default_registry, loaders, sha256_file, trust
from ..dock_layout import adopt

COLUMNS = ("task", "inputs", "weights", "trusted")  # rows are headed by the model id
TRUST_SENTENCE = ("Trusting {name} lets its files import and run Python code on this computer when the "
                  "model loads. Trust it only if you know where it comes from. Trust {name}?")


def weights_digest(card: ModelCard) -> str | None:
    """sha256 of the card's weights file when present, else the card's expected sha256."""
    if card.weights_path is not None and Path(card.weights_path).is_file():
        return sha256_file(card.weights_path)
    return card.sha256


def is_trusted(card: ModelCard) -> bool:
    """Trusted as loading sees it: a shipped card or the user's decision, never a card's own claim."""
    return loaders.is_trusted(card, weights_digest(card))


def card_text(card: ModelCard) -> str:
    """Plain-text summary of a card for the read-only view."""
    labels = ", ".join(f"{lab.value} {lab.name}" for lab in card.labels[:12])
    if len(card.labels) > 12:
        labels += f", ... ({len(card.labels)} labels)"
    metrics = "; ".join(f"{k}: {v}" for k, v in card.metrics.items()) or "none given"
    weights = str(card.weights_path) if card.available else f"missing ({card.weights.get('file', 'no file')})"
    lines = [
        card.name, card.description, "",
        f"Task: {card.task}",
        "Inputs (in order): " + ", ".join(f"{i + 1}. {name}" for i, name in enumerate(card.inputs)),
        f"Output: {card.output_kind}" + (f" - {labels}" if labels else ""),
        f"Expected grid: {card.orientation or 'input orientation'}, "
        + (f"{' x '.join(f'{s:g}' for s in card.spacing)} mm" if card.spacing else "input spacing"),
        f"Weights: {weights}",
        f"sha256: {card.sha256 or 'not given'}",
        f"Licence: {card.license}",
        f"Intended use: {card.intended_use} (research, not diagnosis)"
        if "diagnos" not in card.intended_use.lower() else f"Intended use: {card.intended_use}",
        f"Metrics: {metrics}",
        f"Source: {card.source or 'not given'}",
        f"Card: {card.card_path or card.folder}",
    ]
    return "\n".join(line for line in lines if line is not None)


def add_models(path: str | Path) -> list[ModelCard]:
    """Add a model (folder, card or weights file) or a folder of models to the registry.

    A single model is identified (weights by sha256) and, for a shipped card,
    its weights are remembered; anything else is added as a user folder.

    Returns:
        The cards that became known or available.

    Raises:
        FileNotFoundError: `path` does not exist.
        CardError: A file that is not a recognisable model.
    """
    reg = default_registry()
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    try:
        card = reg.identify(path, remember=True)
    except CardError:
        if path.is_file():
            raise
        card = None
    if card is not None:
        if not _is_shipped(card) and card.folder is not None:
            reg.add_folder(card.folder)
        return [card]
    # A folder holding several models: remember it, and link shipped cards to weights found in it.
    reg.add_folder(path)
    shipped = {c.id for c in reg.shipped_cards()}
    found = []
    for sub in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        try:
            card = reg.identify(sub, remember=True)
        except (CardError, OSError, ValueError):
            continue
        if card.id in shipped or card.available:
            found.append(card)
    if not found:
        raise CardError(f"No model card or recognised weights were found in {path}.")
    return found


def _is_shipped(card: ModelCard) -> bool:
    shipped = default_registry().shipped.resolve()
    return card.card_path is not None and card.card_path.parent == shipped


class ModelManagerWidget(Container):
    """List, add and trust models.

    Attributes tests may set: ``folder.value`` / ``file.value`` (adds the model),
    ``model.value`` (card shown), ``trust_button.clicked()``; replace
    ``confirm`` (question -> bool) to answer the trust dialog.
    """

    def __init__(self, viewer: napari.viewer.Viewer | None = None) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self._cards: dict[str, ModelCard] = {}
        self.confirm: Callable[[str], bool] = _ask
        self.table = Table(value={"data": [], "index": [], "columns": list(COLUMNS)}, label="Models")
        self.folder = FileEdit(mode="d", label="Add folder", value="",
                               tooltip="A model folder (e.g. brainchop's mindgrab) or a folder of models")
        self.file = FileEdit(mode="r", label="Add file", value="",
                             tooltip="A model card (.yaml/.json) or a weights file recognised by its sha256")
        self.model = ComboBox(label="Model", choices=lambda _w: list(self._cards))  # survives reset_choices()
        self.details = TextEdit(label="Card", value="")
        self.details.native.setReadOnly(True)
        self.details.native.setMinimumHeight(220)
        self.trust_button = PushButton(text="Trust")
        self.refresh_button = PushButton(text="Refresh")
        self.status = Label(label="", value="")
        self.extend([self.table, self.folder, self.file, self.model, self.details, self.trust_button,
                     self.refresh_button, self.status])
        self.table.read_only = True
        self.folder.changed.connect(self._add_from)
        self.file.changed.connect(self._add_from)
        self.model.changed.connect(self.show_card)
        self.trust_button.changed.connect(self.toggle_trust)
        self.refresh_button.changed.connect(self.refresh)
        self.table.native.cellClicked.connect(self._row_clicked)
        self.refresh()
        adopt(self)  # one scrollable tab in the shared dock column

    # -- listing ----------------------------------------------------------------------
    def cards(self) -> list[ModelCard]:
        """Cards as listed (refresh() reads the registry again)."""
        return list(self._cards.values())

    def refresh(self, *_: Any) -> None:
        """Read the registry again and list every card."""
        try:
            cards = default_registry().cards()
        except (CardError, OSError, ValueError) as exc:
            show_error(f"Could not read the model list: {exc}")
            cards = []
        self._cards = {c.id: c for c in cards}
        rows = [[c.task, ", ".join(c.inputs), "present" if c.available else "missing",
                 "yes" if is_trusted(c) else "no"] for c in cards]
        # "index" is needed, or magicgui reads the mapping as columns named data/columns
        self.table.value = {"data": rows, "index": [c.id for c in cards], "columns": list(COLUMNS)}
        self.table.native.resizeColumnsToContents()
        current = self.model.value
        self.model.reset_choices()
        if current in self._cards:
            self.model.value = current
        self.show_card()
        self.status.value = f"{len(cards)} models, {sum(c.available for c in cards)} with weights."

    def _row_clicked(self, row: int, _column: int) -> None:
        ids = list(self._cards)
        if 0 <= row < len(ids):
            self.model.value = ids[row]

    def selected(self) -> ModelCard | None:
        """The card shown in the details view."""
        return self._cards.get(self.model.value) if self.model.value else None

    def show_card(self, *_: Any) -> None:
        """Show the selected card read-only and label the trust button."""
        card = self.selected()
        self.details.value = card_text(card) if card else "No model selected."
        trusted = card is not None and is_trusted(card)
        self.trust_button.text = "Untrust" if trusted else "Trust..."
        self.trust_button.enabled = (card is not None and not loaders.trusted_by_package(card)
                                     and weights_digest(card) is not None)

    # -- adding -----------------------------------------------------------------------
    def _add_from(self, value: Any) -> None:
        text = str(value or "")
        if text in ("", "."):
            return
        self.add(text)

    def add(self, path: str | Path) -> list[ModelCard]:
        """Add a model or a folder of models; errors become one notification."""
        try:
            found = add_models(path)
        except (CardError, OSError, ValueError) as exc:
            show_error(f"Could not add {Path(path).name}: {str(exc).splitlines()[0]}")
            return []
        self.refresh()
        self.model.value = found[0].id
        ready = [c.id for c in found if self._cards.get(c.id, c).available]
        show_info(f"Added {', '.join(c.id for c in found)}"
                  + (f"; ready to run: {', '.join(ready)}." if ready else "; its weights are still missing."))
        return found

    # -- trust ----------------------------------------------------------------------------
    def toggle_trust(self, *_: Any) -> None:
        """Trust (after confirmation) or untrust the selected model; stored in user settings."""
        card = self.selected()
        digest = weights_digest(card) if card else None
        if card is None or digest is None:
            show_error("Select a model whose weights are known before changing its trust.")
            return
        trusted = is_trusted(card)
        if not trusted and not self.confirm(TRUST_SENTENCE.format(name=card.name)):
            return
        try:
            trust(digest, trusted=not trusted)
        except (OSError, ValueError) as exc:
            show_error(f"Could not store the trust decision: {exc}")
            return
        show_info(f"{card.name} is {'no longer ' if trusted else ''}trusted.")
        self.refresh()


def _ask(question: str) -> bool:
    """Yes/No dialog; True on Yes."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(None, "Trust this model?", question,
                                  QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes
