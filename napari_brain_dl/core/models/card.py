"""Model cards: what a model is, what it expects and what it returns.

A card is a small YAML or JSON file beside (or describing) a model's weights.
It names the task, the inputs in order, the preprocessing and postprocessing
steps, the output kind (labels with names and colours, an image, or
probability channels), the architecture, the weights file with its sha256,
the licence, the intended use and measured metrics.

Every path written in a card is relative to the card's folder and may not
leave it (no ``..``, no absolute paths): a card cannot point the loader at an
arbitrary file on the machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

from ..config_files import load_config_file
from ..errors import InputError
from .card_schema import Output, Task, check_card_fields

TASKS: tuple[str, ...] = get_args(Task)
OUTPUT_KINDS: tuple[str, ...] = get_args(Output.model_fields["kind"].annotation)
DEFAULT_INTENDED_USE = "Research only, not for diagnosis."


class CardError(InputError):
    """A model card is missing, unreadable or inconsistent; the message says which field."""


@dataclass
class LabelInfo:
    """One output label: its integer value, name and RGB colour (0-255)."""

    value: int
    name: str
    color: tuple[int, int, int] = (255, 0, 0)


@dataclass
class ModelCard:
    """Everything the engine needs to know about one model.

    Attributes:
        id: Stable identifier, e.g. "mindgrab".
        name: Human readable name.
        task: One of `TASKS`.
        inputs: Ordered contrast names, e.g. ["T1c", "T1", "T2", "FLAIR"].
        orientation: Axis codes the model expects ("LIA", "RAS") or None to keep the input's.
        spacing: Voxel size (mm) the model expects, or None.
        preprocessing: Ordered steps, each a dict with an "op" key
            (conform, resample, scale, zscore, crop_foreground, clip).
        postprocessing: Ordered steps (softmax, sigmoid, argmax, threshold,
            largest_component, fill_holes).
        output: {"kind": labels|image|probabilities, "channels": [...], ...}.
        labels: Label table for labels output.
        architecture: {"type": meshnet|torchscript|monai|monai_bundle|project, ...}.
        weights: {"file": relative path, "sha256": hex, "format": auto|...}.
        inference: {"mode": whole|sliding_window, "roi_size": [...], "overlap": 0.25,
            "crop": "head"|"none", "margin": 8, "divisible": 1, "amp": true}.
        license: Licence of the weights.
        intended_use: Defaults to "Research only, not for diagnosis."
        metrics: Measured metrics on named cases.
        source: Where the weights come from (URL or citation).
        trusted: The card's author asserts the model may run code (pickles, `$` configs);
            honoured only for cards shipped with the package (the user's own trust marks
            live in the user folder, see `registry.trust`).
        folder: Folder the card was read from (paths resolve inside it).
        weights_path: Resolved weights file, when known (set by the registry).

    Example:
        >>> card = ModelCard.from_dict({"id": "toy", "name": "Toy", "task": "segmentation",
        ...                             "inputs": ["T1"], "architecture": {"type": "meshnet"}})
        >>> card.inputs, card.output_kind
        (['T1'], 'labels')
    """

    id: str
    name: str
    task: str
    inputs: list[str]
    architecture: dict[str, Any]
    orientation: str | None = None
    spacing: tuple[float, float, float] | None = None
    preprocessing: list[dict[str, Any]] = field(default_factory=list)
    postprocessing: list[dict[str, Any]] = field(default_factory=list)
    output: dict[str, Any] = field(default_factory=lambda: {"kind": "labels"})
    labels: list[LabelInfo] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)
    license: str = "unknown"
    intended_use: str = DEFAULT_INTENDED_USE
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    description: str = ""
    trusted: bool = False
    required_inputs: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    folder: Path | None = None
    weights_path: Path | None = None
    card_path: Path | None = None

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: str | Path | None = None) -> ModelCard:
        """Build and validate a card from a parsed YAML/JSON mapping.

        Raises:
            CardError: A field is missing, unknown or of the wrong type (one sentence).
        """
        try:
            return cls._parse(data, folder)
        except CardError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CardError(f"The model card has a field of the wrong type or shape ({detail}).") from exc

    @classmethod
    def _parse(cls, data: dict[str, Any], folder: str | Path | None) -> ModelCard:
        if not isinstance(data, dict):
            raise CardError("A model card must be a mapping of fields.")
        missing = [k for k in ("id", "name", "task", "inputs", "architecture") if k not in data]
        if missing:
            raise CardError(f"The model card lacks the field(s): {', '.join(missing)}.")
        try:
            check_card_fields(data)
        except ValueError as exc:
            raise CardError(f"The model card has {exc}.") from None
        task = str(data["task"])
        if task not in TASKS:
            raise CardError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}.")
        inputs = data["inputs"]
        if isinstance(inputs, str):
            inputs = [inputs]
        if not inputs or not all(isinstance(i, str) for i in inputs):
            raise CardError("'inputs' must list the input contrasts in order, e.g. [T1].")
        output = dict(data.get("output") or {"kind": "labels"})
        if output.get("kind", "labels") not in OUTPUT_KINDS:
            raise CardError(f"Unknown output kind {output.get('kind')!r}; expected {OUTPUT_KINDS}.")
        output.setdefault("kind", "labels")
        arch = data["architecture"]
        if not isinstance(arch, dict) or "type" not in arch:
            raise CardError("'architecture' must be a mapping with a 'type'.")
        spacing = data.get("spacing")
        if spacing is not None:
            spacing = tuple(
                float(s) for s in ([spacing] * 3 if isinstance(spacing, (int, float)) else spacing)
            )
            if len(spacing) != 3:
                raise CardError("'spacing' must be one number or three.")
        card = cls(
            id=str(data["id"]),
            name=str(data["name"]),
            task=task,
            inputs=list(inputs),
            architecture=dict(arch),
            orientation=data.get("orientation"),
            spacing=spacing,  # type: ignore[arg-type]
            preprocessing=[dict(s) for s in data.get("preprocessing") or []],
            postprocessing=[dict(s) for s in data.get("postprocessing") or []],
            output=output,
            labels=_parse_labels(data.get("labels")),
            weights=dict(data.get("weights") or {}),
            inference=dict(data.get("inference") or {}),
            license=str(data.get("license", "unknown")),
            intended_use=str(data.get("intended_use") or DEFAULT_INTENDED_USE),
            metrics=dict(data.get("metrics") or {}),
            source=str(data.get("source", "")),
            description=str(data.get("description", "")),
            trusted=bool(data.get("trusted", False)),
            required_inputs=[str(i) for i in data.get("required_inputs") or []],
            aliases=[str(a) for a in data.get("aliases") or []],
            folder=Path(folder).resolve() if folder is not None else None,
        )
        for step in card.preprocessing + card.postprocessing:
            if "op" not in step:
                raise CardError(f"Every pre/postprocessing step needs an 'op': {step}.")
        if card.orientation is not None and (
            len(card.orientation) != 3 or not set(card.orientation.upper()) <= set("LRAPSI")
        ):
            raise CardError(f"'orientation' must be three letters like RAS or LIA, got {card.orientation!r}.")
        # Validate every relative path now so a hostile card fails early.
        for rel in card.relative_paths():
            card.resolve(rel)
        if card.weights.get("file") and card.folder is not None:
            candidate = card.resolve(card.weights["file"])
            card.weights_path = candidate if candidate.exists() else None
        return card

    @classmethod
    def from_file(cls, path: str | Path) -> ModelCard:
        """Read a card from a .yaml/.yml/.json file.

        Example:
            >>> card = ModelCard.from_file("resources/models/mindgrab.yaml")  # doctest: +SKIP
        """
        path = Path(path)
        if not path.is_file():
            raise CardError(f"The model card {path} does not exist.")
        try:
            data = load_config_file(path)
        except (OSError, ValueError) as exc:
            raise CardError(f"The model card {path} could not be read ({exc}).") from exc
        try:
            card = cls.from_dict(data, folder=path.parent)
        except CardError as exc:
            raise CardError(f"The model card {path}: {exc}") from exc
        card.card_path = path.resolve()
        return card

    # ------------------------------------------------------------------ helpers
    def relative_paths(self) -> list[str]:
        """Every file path the card names (weights, architecture config)."""
        paths = [self.weights.get("file"), self.architecture.get("config"), self.architecture.get("bundle")]
        paths.append(self.output.get("colormap"))
        return [p for p in paths if p]

    def resolve(self, relative: str) -> Path:
        """Resolve a path named in the card inside the card's folder.

        Raises:
            CardError: The path is absolute or leaves the card's folder.
        """
        if self.folder is None:
            raise CardError(f"Card {self.id!r} has no folder to resolve {relative!r} against.")
        rel = Path(relative)
        target = (self.folder / rel).resolve()
        if rel.is_absolute() or not target.is_relative_to(self.folder):
            raise CardError(
                f"Card {self.id!r}: the path {relative!r} leaves the card's folder; "
                "paths in a card must stay beside it."
            )
        return target

    @property
    def output_kind(self) -> str:
        """labels, image or probabilities."""
        return str(self.output.get("kind", "labels"))

    @property
    def sha256(self) -> str | None:
        """Expected sha256 of the weights file (lower case) or None."""
        value = self.weights.get("sha256")
        return str(value).lower() if value else None

    def label_names(self) -> dict[int, str]:
        """{value: name} for labels output."""
        return {lab.value: lab.name for lab in self.labels}

    def with_weights(self, path: str | Path) -> ModelCard:
        """A copy whose weights file is `path` (chosen explicitly by the user)."""
        return replace(self, weights_path=Path(path).absolute())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for `models list --json` and reports)."""
        return {
            "id": self.id,
            "name": self.name,
            "task": self.task,
            "inputs": self.inputs,
            "orientation": self.orientation,
            "spacing": list(self.spacing) if self.spacing else None,
            "output": self.output,
            "architecture": self.architecture.get("type"),
            "weights_sha256": self.sha256,
            "weights_path": str(self.weights_path) if self.weights_path else None,
            "available": self.available,
            "license": self.license,
            "intended_use": self.intended_use,
            "metrics": self.metrics,
            "source": self.source,
            "card_path": str(self.card_path) if self.card_path else None,
            "labels": len(self.labels),
        }

    @property
    def available(self) -> bool:
        """True when the model can run now (weights found, or none needed)."""
        if self.architecture.get("type") == "monai_bundle" and not self.weights.get("file"):
            return self.folder is not None
        return self.weights_path is not None and self.weights_path.exists()


def _parse_labels(raw: Any) -> list[LabelInfo]:
    """Labels from a list of {value,name,color} or a {value: name} mapping."""
    if not raw:
        return []
    out: list[LabelInfo] = []
    items = raw.items() if isinstance(raw, dict) else enumerate(raw)
    for key, item in items:
        if isinstance(item, str):
            out.append(LabelInfo(int(key), item))
        elif isinstance(item, dict):
            color = tuple(int(c) for c in item.get("color", (255, 0, 0)))[:3]
            out.append(LabelInfo(int(item.get("value", key)), str(item.get("name", key)), color))  # type: ignore[arg-type]
        else:
            raise CardError(f"Cannot read label entry {item!r}.")
    return out


def labels_from_colormap(path: str | Path) -> list[LabelInfo]:
    """Labels from a brainchop colormap.json ({"R": [...], "G": [...], "B": [...], "labels": [...]}).

    Example:
        >>> labels = labels_from_colormap("model21_104class/colormap.json")  # doctest: +SKIP
        >>> labels[1].name
        'ctx-lh-bankssts'
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    names = data.get("labels") or [str(i) for i in range(len(data["R"]))]
    return [
        LabelInfo(i, str(n), (int(data["R"][i]), int(data["G"][i]), int(data["B"][i])))
        for i, n in enumerate(names)
    ]
