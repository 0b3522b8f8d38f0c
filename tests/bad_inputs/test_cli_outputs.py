"""Bad output targets: a file that already exists, a read-only folder, a full disk.

Every writing subcommand must refuse with one sentence naming the target, leave an existing
file byte for byte as it was and leave no temporary or half-written file. The tests run as
root in CI, where permission bits do not stop a write: the read-only folder is made read-only
(chmod) *and* reported unwritable by `os.access`; the full disk is an ENOSPC raised by the
writer after it has written part of the file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import pytest

from bad_inputs.commands import COMMANDS, available_commands, run_cli, write_tiny_card
from bad_inputs.corpus import ROWS, build_corpus

#: Commands that write a file, with the name of the file they write in COMMANDS' argv.
WRITERS = {"convert": "converted.nii.gz", "skullstrip": "mask.nii.gz", "run": "run.nii.gz",
           "segment": "seg.nii.gz", "click-segment": "mask.nii.gz", "explain": "heat.nii.gz",
           "synthesize": "flair_synthetic.nii.gz", "super-resolve": "sr.nii.gz", "report": "report.html"}
#: Writers fast enough to run to the end (the full disk strikes when the result is saved).
RUN_TO_THE_END = ("convert", "run", "segment", "skullstrip", "synthesize", "super-resolve")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, rule_card: str) -> tuple[str, dict[str, str]]:
    root = tmp_path_factory.mktemp("outputs")
    good = build_corpus(root / "corpus")[0].path
    cards = {"tiny": write_tiny_card(root / "tiny"), "rule": rule_card}
    return str(good), cards


def _writers() -> list[str]:
    return [c for c in available_commands() if c in WRITERS]


def _argv(command: str, inputs: tuple[str, dict[str, str]], out: Path) -> list[str]:
    good, cards = inputs
    return COMMANDS[command](good, good, cards, out)


@pytest.mark.parametrize("command", _writers())
def test_existing_target_is_never_replaced(command: str, inputs: Any, tmp_path: Path) -> None:
    target = tmp_path / WRITERS[command]
    target.write_bytes(b"keep me")
    result = run_cli(_argv(command, inputs, tmp_path), tmp_path)
    message = result.message
    ROWS.append(("target file already exists", command, "refused" if result.code == 3 else "ACCEPTED",
                 message.replace(str(tmp_path) + "/", "")[:150]))
    assert result.code == 3 and len(result.error_lines) == 1 and "already exists" in message
    assert target.name in message and target.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("command", _writers())
def test_read_only_folder(command: str, inputs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    real_access = os.access

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        if mode & os.W_OK and Path(path).resolve() == folder.resolve():
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    folder.chmod(0o555)
    try:
        result = run_cli(_argv(command, inputs, folder), folder)
    finally:
        folder.chmod(0o755)
    message = result.message
    ROWS.append(("read-only output folder", command, "refused" if result.code == 3 else "ACCEPTED",
                 message.replace(str(tmp_path) + "/", "")[:150]))
    assert result.code == 3 and len(result.error_lines) == 1, result.err
    assert "not writable" in message and "readonly" in message
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", [c for c in RUN_TO_THE_END if c in _writers()])
def test_full_disk_leaves_nothing(command: str, inputs: Any, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real_save = nib.save

    def full_disk(img: Any, filename: Any, *args: Any, **kwargs: Any) -> None:
        real_save(img, filename, *args, **kwargs)
        with open(filename, "r+b") as fh:  # half of it reached the disk, then the disk was full
            fh.truncate(os.path.getsize(filename) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(nib, "save", full_disk)
    result = run_cli(_argv(command, inputs, tmp_path), tmp_path)
    message = result.message
    ROWS.append(("disk full while writing", command, "refused" if result.code == 3 else "ACCEPTED",
                 message.replace(str(tmp_path) + "/", "")[:150]))
    assert result.code == 3 and len(result.error_lines) == 1, result.err
    assert "no space left" in message.lower() and WRITERS[command] in message
    assert list(tmp_path.iterdir()) == []  # no partial output, no temporary file, no sidecar
