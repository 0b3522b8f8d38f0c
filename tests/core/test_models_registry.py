"""Registry: shipped cards, weights recognised by sha256, user folders, trust."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_brain_dl.core.models.card import CardError
from napari_brain_dl.core.models.registry import Registry, settings_path, trust, trusted_hashes
from napari_brain_dl.core.resources import user_dir


def test_shipped_cards_listed_but_unavailable_without_weights() -> None:
    cards = {c.id: c for c in Registry().cards()}
    assert {"mindgrab", "model5_gw_ae", "model21_104class"} <= set(cards)
    assert not cards["mindgrab"].available


@pytest.mark.parametrize(
    ("rel", "model_id"),
    [
        ("mindgrab", "mindgrab"),
        ("mindgrab/model.pth", "mindgrab"),
        ("model21_104class/model.pth", "model21_104class"),
        ("model5_gw_ae", "model5_gw_ae"),
    ],
)
def test_public_weights_recognised_by_sha256(data_dir: Path, rel: str, model_id: str) -> None:
    card = Registry().identify(data_dir / "brainchop_models" / rel)
    assert card.id == model_id and card.available and card.weights_path.name == "model.pth"


def test_identify_remembers_weights_in_user_dir(data_dir: Path) -> None:
    reg = Registry()
    reg.identify(data_dir / "brainchop_models" / "mindgrab", remember=True)
    assert settings_path().parent == user_dir()
    assert reg.get("mindgrab").available
    assert json.loads(settings_path().read_text())["weights"]["mindgrab"].endswith("model.pth")


def test_user_folder_added_and_scanned(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "my_models"
    (folder / "grab").mkdir(parents=True)
    (folder / "grab" / "renamed.pth").symlink_to(data_dir / "brainchop_models" / "mindgrab" / "model.pth")
    reg = Registry()
    reg.add_folder(folder)
    assert Registry().folders() == [folder.resolve()]
    found = {c.id: c for c in Registry().cards()}
    assert found["mindgrab"].available and found["mindgrab"].weights_path.name == "renamed.pth"
    reg.remove_folder(folder)
    assert Registry().folders() == []


def test_unknown_weights_and_ids_explained(tmp_path: Path) -> None:
    (tmp_path / "mystery.pth").write_bytes(b"\x80\x02junk")
    with pytest.raises(CardError, match="not a known model"):
        Registry().identify(tmp_path / "mystery.pth")
    with pytest.raises(CardError, match="known model id"):
        Registry().identify("no-such-model")
    with pytest.raises(CardError, match="no model card"):
        Registry().identify(tmp_path)


def test_trust_is_stored_per_user(tmp_path: Path) -> None:
    (tmp_path / "w.pt").write_bytes(b"abc")
    digest = trust(tmp_path / "w.pt")
    assert digest in trusted_hashes() and (user_dir() / "models.json").is_file()
    trust(digest, trusted=False)
    assert digest not in trusted_hashes()
