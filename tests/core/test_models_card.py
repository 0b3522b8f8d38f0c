"""Model cards: parsing, validation, path confinement, shipped cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from napari_brain_dl.core.models.card import CardError, ModelCard, labels_from_colormap
from napari_brain_dl.core.resources import resources_dir

MINIMAL = {
    "id": "toy",
    "name": "Toy",
    "task": "segmentation",
    "inputs": ["T1"],
    "architecture": {"type": "meshnet", "channels": 2, "dilations": [1], "n_classes": 2},
}


def test_card_from_yaml_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "card.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **MINIMAL,
                "weights": {"file": "w.pth", "sha256": "AB" * 32},
                "labels": {0: "background", 1: "brain"},
                "spacing": 1,
            }
        )
    )
    card = ModelCard.from_file(path)
    assert card.inputs == ["T1"] and card.output_kind == "labels" and card.spacing == (1.0, 1.0, 1.0)
    assert card.intended_use.startswith("Research only") and card.sha256 == "ab" * 32
    assert card.label_names() == {0: "background", 1: "brain"}
    assert card.weights_path is None and not card.available  # the file is not there
    (tmp_path / "w.pth").write_bytes(b"x")
    assert ModelCard.from_file(path).weights_path == (tmp_path / "w.pth").resolve()


@pytest.mark.parametrize("bad", ["../outside.pth", "/etc/passwd", "sub/../../x.pth"])
def test_card_paths_cannot_escape_its_folder(tmp_path: Path, bad: str) -> None:
    (tmp_path / "card.json").write_text(__import__("json").dumps({**MINIMAL, "weights": {"file": bad}}))
    with pytest.raises(CardError, match="leaves the card's folder"):
        ModelCard.from_file(tmp_path / "card.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "astrology"}, "task: .astrology. is not one of"),
        ({"inputs": []}, "inputs"),
        ({"output": {"kind": "poem"}}, "output.kind: .poem. is not one of"),
        ({"orientation": "XYZ"}, "orientation"),
        ({"architecture": "meshnet"}, "architecture"),
        ({"preprocessing": [{"shape": 3}]}, "op"),
    ],
)
def test_card_validation_messages(change: dict, message: str) -> None:
    with pytest.raises(CardError, match=message):
        ModelCard.from_dict({**MINIMAL, **change})
    with pytest.raises(CardError, match="lacks"):
        ModelCard.from_dict({"id": "x"})


def test_shipped_cards_have_hashes_but_no_third_party_weights() -> None:
    folder = resources_dir() / "models"
    cards = {c.id: c for c in (ModelCard.from_file(p) for p in folder.glob("*.yaml"))}
    assert {"mindgrab", "model5_gw_ae", "model21_104class"} <= set(cards)
    for card in cards.values():
        assert card.sha256 and len(card.sha256) == 64 and card.intended_use
    # Only the project's own weights ship: each beside a card whose source is a script of this repository.
    own = {c.folder / c.weights["file"] for c in cards.values() if "scripts/train_" in str(c.source)}
    weights = {p for p in folder.iterdir() if p.suffix in (".pth", ".pt", ".bin", ".safetensors")}
    assert weights <= own
    for path in weights:
        assert path.stat().st_size < 20e6  # a few MB each
    assert len(cards["model21_104class"].labels) == 104 and cards["mindgrab"].inputs == ["T1"]


def test_labels_from_brainchop_colormap(data_dir: Path) -> None:
    labels = labels_from_colormap(data_dir / "brainchop_models" / "model21_104class" / "colormap.json")
    assert len(labels) == 104 and labels[1].name == "ctx-lh-bankssts" and labels[0].color == (0, 0, 0)


@pytest.mark.parametrize(("extra", "named"), [
    ({"postprocesing": [{"op": "argmax"}]}, "unknown field 'postprocesing' (did you mean 'postprocessing'?)"),
    ({"preprocessing": [{"op": "zscor"}]}, "preprocessing.0.op: 'zscor' is not one of"),
    ({"postprocessing": [{"op": "argmax"}, {"op": "largest_componnent"}]}, "postprocessing.1.op"),
    ({"output": {"kind": "lables"}}, "output.kind: 'lables'"),
])
def test_misspelt_fields_and_ops_are_refused_by_name(extra: dict, named: str) -> None:
    base = {"id": "x", "name": "x", "task": "segmentation", "inputs": ["T1"],
            "architecture": {"type": "meshnet"}}
    with pytest.raises(CardError) as info:
        ModelCard.from_dict({**base, **extra})
    assert named in str(info.value)


def test_published_json_schema_is_the_one_the_loader_uses() -> None:
    from napari_brain_dl.core.models.card_schema import json_schema

    published = Path(__file__).resolve().parents[2] / "docs" / "model-card.schema.json"
    assert json.loads(published.read_text()) == json_schema(), "regenerate docs/model-card.schema.json"
