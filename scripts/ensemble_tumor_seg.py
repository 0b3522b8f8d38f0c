#!/usr/bin/env python
"""Combine independently trained tumour-segmentation runs into the shipped ensemble card.

The shipped ``brats-tumor-seg`` weights are the mean of the logits of three runs of
``scripts/train_tumor_seg.py`` (the card's header lists the commands):

    python scripts/ensemble_tumor_seg.py --members RUN_A.safetensors RUN_B.safetensors \
        --describe "member 0: ..." --describe "member 1: ..."

Each member is a float16 ``UNet3D`` state dict as written by ``train_tumor_seg.py``, or an ensemble
file written by this script (its members are taken one by one, so a member can be added). The script
stores them in one file (``members.<i>.<name>``), sets ``architecture.members`` in the card, and
measures Dice of every visible case through the real ``predict`` path with the new card
(brats_2013_pat0006_1 held out: no member was trained on it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import brats_data as bd  # noqa: E402
import yaml  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from train_tumor_seg import MODEL_ID, fmt, predict_cases  # noqa: E402

from napari_brain_dl.core.models.loaders import sha256_file  # noqa: E402


def member_states(path: Path) -> list[dict]:
    """The network state dicts in `path`: one for a single run, each member's for an ensemble file."""
    state = load_file(str(path))
    if not all(k.startswith("members.") for k in state):
        return [state]
    count = 1 + max(int(k.split(".")[1]) for k in state)
    return [{k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"members.{i}.")}
            for i in range(count)]


def combine(members: list[Path], target: Path) -> int:
    """Write the members' tensors (ensemble files expanded) into one safetensors file; return their count."""
    states = [s for path in members for s in member_states(path)]
    save_file({f"members.{i}.{k}": v.contiguous() for i, s in enumerate(states) for k, v in s.items()},
              str(target))
    return len(states)


def card_text(template: dict, header: list[str], n: int, sha: str, dice: dict, source: str,
              members: str = "") -> str:
    """The ensemble card: the template with members, weights, source and metrics replaced.

    `members` is an optional sentence on the members' own held-out scores (ends with a space).
    """
    val = dice[bd.VALIDATION[0]]
    train = "; ".join(
        f"{k.replace('brats_2013_', '')} WT {v['WT']:.2f} TC {v['TC']:.2f} ET {v['ET']:.2f}"
        for k, v in dice.items() if k not in bd.VALIDATION
    )
    card = dict(template)
    card["name"] = f"Brain tumour segmentation (ensemble of {n} 3D U-Nets, BraTS regions)"
    card["architecture"] = {**template["architecture"], "members": n}
    card["weights"] = {**template["weights"], "sha256": sha}
    card["source"] = source
    card["metrics"] = {
        "validation_case": template["metrics"]["validation_case"],
        "dice_WT": round(val["WT"], 3), "dice_TC": round(val["TC"], 3), "dice_ET": round(val["ET"], 3),
        "note": (
            "One held-out case only, measured through the napari-brain-dl predict path with this card; "
            f"not a benchmark. The ensemble of {n} was decided on before it was measured and ships "
            "regardless of its score (picking members by their pat0006 Dice would be selection on the "
            f"validation case). {members}Training-case Dice (not independent): {train}."
        ),
    }
    lines = ["# Model card: ensemble of project 3D U-Nets for brain-tumour (glioma) segmentation.",
             "# Written by scripts/ensemble_tumor_seg.py from runs of scripts/train_tumor_seg.py:"]
    lines += [f"#   {h}" for h in header]
    metrics = {"metrics": card.pop("metrics")}
    body = yaml.safe_dump(card, sort_keys=False, width=100, default_flow_style=None)
    body += yaml.safe_dump(metrics, sort_keys=False, width=100, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=Path, nargs="+", required=True, help="member weights (safetensors)")
    ap.add_argument("--describe", action="append", default=[], help="how a member was made (card header)")
    ap.add_argument("--source", required=True, help="the card's 'source' text (training data and runs)")
    ap.add_argument("--members-note", default="", help="sentence on the members' own scores (card note)")
    ap.add_argument("--template", type=Path, default=ROOT / "resources" / "models" / f"{MODEL_ID}.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "models")
    args = ap.parse_args(argv)

    template = yaml.safe_load(args.template.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"{MODEL_ID}.safetensors"
    n = combine(args.members, weights)
    sha = sha256_file(weights)
    card_path = args.out / f"{MODEL_ID}.yaml"
    pending = {"WT": float("nan"), "TC": float("nan"), "ET": float("nan")}
    card_path.write_text(card_text(template, args.describe, n, sha, {bd.VALIDATION[0]: pending}, args.source),
                         encoding="utf-8")
    dice = predict_cases(card_path)
    note = f"{args.members_note.strip()} " if args.members_note.strip() else ""
    text = card_text(template, args.describe, n, sha, dice, args.source, note)
    card_path.write_text(text, encoding="utf-8")
    print(f"validation {bd.VALIDATION[0]}: {fmt({k: dice[bd.VALIDATION[0]][k] for k in ('WT', 'TC', 'ET')})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
