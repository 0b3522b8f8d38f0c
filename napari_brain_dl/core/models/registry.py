"""Find models: shipped cards, user folders, and weights recognised by sha256.

Cards ship in ``resources/models/*.yaml``. Third-party weights (brainchop's
mindgrab, model5_gw_ae, model21_104class) are not shipped: their cards carry
the sha256 of the public file, so when the user points at the file (or the
folder as distributed) the registry recognises it and remembers where it is.

User settings live in ``user_dir()/models.json`` (never in the install folder)::

    {"folders": [...], "weights": {"mindgrab": "/path/model.pth"}, "trusted": ["<sha256>"]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..resources import read_user_settings, resources_dir, user_dir, write_user_settings
from .card import CardError, ModelCard, labels_from_colormap
from .loaders import sha256_file

CARD_SUFFIXES = (".yaml", ".yml", ".json")
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt", ".bin", ".ts")


SETTINGS_NAME = "models.json"  # in the user folder: added folders, weights, trust decisions


def settings_path() -> Path:
    """Where the user's model settings are stored."""
    return user_dir() / SETTINGS_NAME


def _read_settings() -> dict[str, Any]:
    data = read_user_settings(SETTINGS_NAME)
    data.setdefault("folders", [])
    data.setdefault("weights", {})
    data.setdefault("trusted", [])
    return data


def _write_settings(data: dict[str, Any]) -> None:
    write_user_settings(SETTINGS_NAME, data)


def trusted_hashes() -> set[str]:
    """sha256 values of weights/configs the user marked trusted."""
    return set(_read_settings()["trusted"])


def trust(target: ModelCard | str | Path, trusted: bool = True) -> str:
    """Mark a model trusted (or not): its pickles/configs may then import their own code.

    Args:
        target: A card (its weights file, or bundle config), a file path, or a sha256.
        trusted: False removes the mark.

    Returns:
        The sha256 the decision was stored under.

    Example:
        >>> trust("/models/legacy_full_pickle.pt")  # doctest: +SKIP
    """
    if isinstance(target, ModelCard):
        path = target.weights_path or _bundle_config(target)
        if path is None:
            raise ValueError(f"Model {target.id!r} has no file to trust.")
        digest = sha256_file(path)
    elif isinstance(target, str) and len(target) == 64 and not Path(target).exists():
        digest = target.lower()
    else:
        digest = sha256_file(target)
    data = _read_settings()
    marks = set(data["trusted"])
    marks = marks | {digest} if trusted else marks - {digest}
    data["trusted"] = sorted(marks)
    _write_settings(data)
    return digest


def _bundle_config(card: ModelCard) -> Path | None:
    if card.architecture.get("type") == "monai_bundle" and card.architecture.get("config"):
        return card.resolve(card.architecture["config"])
    return None


class Registry:
    """All models the user can run.

    Example:
        >>> reg = Registry()
        >>> [c.id for c in reg.cards()]  # doctest: +SKIP
        ['mindgrab', 'model21_104class', 'model5_gw_ae']
        >>> card = reg.identify("/data/brainchop_models/mindgrab")  # doctest: +SKIP
        >>> card.available  # doctest: +SKIP
        True
    """

    def __init__(self, shipped: str | Path | None = None) -> None:
        self.shipped = Path(shipped) if shipped else resources_dir() / "models"

    # ------------------------------------------------------------------ folders
    def folders(self) -> list[Path]:
        """User model folders (stored in the user's settings)."""
        return [Path(p) for p in _read_settings()["folders"]]

    def add_folder(self, path: str | Path) -> Path:
        """Add a folder of cards / weights / model folders; remembered across sessions."""
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder.")
        data = _read_settings()
        if str(folder) not in data["folders"]:
            data["folders"].append(str(folder))
            _write_settings(data)
        return folder

    def remove_folder(self, path: str | Path) -> None:
        """Forget a user folder."""
        data = _read_settings()
        data["folders"] = [f for f in data["folders"] if Path(f) != Path(path).expanduser().resolve()]
        _write_settings(data)

    # ------------------------------------------------------------------ cards
    def shipped_cards(self) -> list[ModelCard]:
        """Cards shipped with the package, with any weights the user attached."""
        links = _read_settings()["weights"]
        cards = []
        for path in sorted(self.shipped.glob("*.y*ml")) if self.shipped.is_dir() else []:
            card = ModelCard.from_file(path)
            linked = links.get(card.id)
            if card.weights_path is None and linked and Path(linked).is_file():
                card.weights_path = Path(linked)
            cards.append(card)
        return cards

    def cards_in(self, folder: str | Path) -> list[ModelCard]:
        """Cards in one folder and its sub-folders, and weights recognised by sha256 (unreadable skipped)."""
        return _scan_folder(Path(folder), self)

    def cards(self) -> list[ModelCard]:
        """Shipped cards then cards found in user folders (unreadable cards skipped)."""
        cards = {c.id: c for c in self.shipped_cards()}
        for folder in self.folders():
            for card in self.cards_in(folder):
                if card.id not in cards or (card.available and not cards[card.id].available):
                    cards[card.id] = card
        return list(cards.values())

    def get(self, model_id: str) -> ModelCard:
        """Card by id.

        Raises:
            KeyError: No such model.
        """
        cards = self.cards()
        for card in cards:
            if card.id == model_id:
                return card
        for card in cards:  # a former id (e.g. synth-flair-from-t1c -> synth-mri)
            if model_id in card.aliases:
                return card
        raise KeyError(f"No model called {model_id!r}; known: {', '.join(c.id for c in self.cards())}.")

    def by_sha256(self, digest: str) -> ModelCard | None:
        """The shipped/user card whose weights have this sha256."""
        for card in self.shipped_cards():
            if card.sha256 == digest:
                return card
        return None

    # ------------------------------------------------------------------ identify
    def identify(self, spec: str | Path | ModelCard, *, remember: bool = False) -> ModelCard:
        """Card for a card file, a weights file, a model folder, a bundle folder or a model id.

        Args:
            spec: What the user pointed at.
            remember: Store the link between a recognised weights file and its card.

        Raises:
            CardError: Not recognisable as a model.
        """
        if isinstance(spec, ModelCard):
            return spec
        path = Path(spec).expanduser()
        if not path.exists():
            try:
                return self.get(str(spec))
            except KeyError as exc:
                raise CardError(
                    f"{spec} is neither an existing file or folder nor a known model id."
                ) from exc
        path = path.resolve()
        if path.is_dir():
            card = self._identify_folder(path)
        elif path.suffix.lower() in CARD_SUFFIXES and _looks_like_card(path):
            card = ModelCard.from_file(path)
        else:
            card = self._identify_weights(path)
        if (
            remember
            and card.weights_path is not None
            and card.card_path
            and card.card_path.parent == self.shipped.resolve()
        ):
            self.attach_weights(card, card.weights_path)
        return card

    def attach_weights(self, card: ModelCard, path: str | Path) -> None:
        """Remember that `path` holds the weights of shipped card `card`."""
        data = _read_settings()
        data["weights"][card.id] = str(Path(path).resolve())
        _write_settings(data)

    def _identify_weights(self, path: Path) -> ModelCard:
        digest = sha256_file(path)
        card = self.by_sha256(digest)
        if card is None:
            raise CardError(
                f"{path.name} is not a known model (sha256 {digest[:12]}...); give its model card, "
                "or the folder that holds it with its description."
            )
        return card.with_weights(path)

    def _identify_folder(self, folder: Path) -> ModelCard:
        cards = [
            p for p in sorted(folder.iterdir()) if p.suffix.lower() in CARD_SUFFIXES and _looks_like_card(p)
        ]
        if cards:
            return ModelCard.from_file(cards[0])
        if (folder / "configs").is_dir():
            from .bundle import card_from_bundle

            return card_from_bundle(folder)
        weights = [
            p
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in (".pth", ".pt", ".safetensors")
        ]
        for w in weights:
            card = self.by_sha256(sha256_file(w))
            if card is not None:
                return card.with_weights(w)
        if weights and ((folder / "layers.json").is_file() or (folder / "model.json").is_file()):
            return card_from_brainchop_folder(folder, weights[0])
        raise CardError(f"{folder} holds no model card, MONAI bundle or recognised weights.")


def _looks_like_card(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")[:20000]
    except (OSError, UnicodeDecodeError):
        return False
    return "architecture" in text and "task" in text and "inputs" in text


def _scan_folder(folder: Path, registry: Registry) -> list[ModelCard]:
    found: list[ModelCard] = []
    for entry in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []:
        for path in sorted(entry.iterdir()):
            if path.suffix.lower() in CARD_SUFFIXES and _looks_like_card(path):
                try:
                    found.append(ModelCard.from_file(path))
                except CardError:
                    continue
            elif path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES and path.stat().st_size < 2**31:
                card = registry.by_sha256(sha256_file(path))
                if card is not None:
                    found.append(card.with_weights(path))
    return found


def card_from_brainchop_folder(folder: Path, weights: Path) -> ModelCard:
    """A card for an unknown brainchop MeshNet folder (layers.json/model.json + weights)."""
    config = "layers.json" if (folder / "layers.json").is_file() else "model.json"
    labels = labels_from_colormap(folder / "colormap.json") if (folder / "colormap.json").is_file() else []
    card = ModelCard.from_dict(
        {
            "id": folder.name,
            "name": f"brainchop {folder.name}",
            "task": "segmentation",
            "inputs": ["T1"],
            "orientation": "LIA",
            "spacing": 1.0,
            "preprocessing": [
                {"op": "conform", "shape": [256, 256, 256], "spacing": 1.0},
                {"op": "scale", "low": 0.0, "high": 1.0},
            ],
            "postprocessing": [{"op": "argmax"}],
            "output": {"kind": "labels"},
            "architecture": {"type": "meshnet", "config": config},
            "weights": {"file": weights.name},
            "license": "unknown (third-party weights)",
            "inference": {"mode": "whole", "crop": "head"},
        },
        folder=folder,
    )
    card.labels = labels
    return card


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry (shipped cards + the user's folders)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Registry()
    return _DEFAULT


def resolve_model(spec: str | Path | ModelCard) -> ModelCard:
    """Card for a model id, card file, weights file or model folder.

    Example:
        >>> card = resolve_model("/data/brainchop_models/mindgrab")  # doctest: +SKIP
        >>> card.id
        'mindgrab'
    """
    return default_registry().identify(spec)


def list_models() -> list[ModelCard]:
    """Every model card the registry knows (available or not)."""
    return default_registry().cards()
