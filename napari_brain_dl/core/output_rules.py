"""The rules every command obeys: outputs never touch its inputs, and none outlives a Ctrl-C.

An output may not be an input, lie inside an input folder, contain an input (an output
folder), or be named twice (``-o`` and ``--json`` the same file, or a result's provenance
sidecar). Checked on resolved paths, so ``./a/../FLAIR.nii.gz`` and links count too.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

SIDECAR_SUFFIX = ".json"


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_outputs_apart(
    outputs: Mapping[str, str | os.PathLike[str]],
    inputs: Iterable[str | os.PathLike[str]],
    *,
    folders: Iterable[str] = (),
    sidecars: Iterable[str] = (),
) -> None:
    """Raise `ValueError` when an output would replace, or write into, an input.

    Args:
        outputs: Option name -> path the command will write (a file, or a folder for the
            names in `folders`).
        inputs: Every file or folder the command reads.
        folders: Output names that are folders (they may not contain an input either).
        sidecars: Output names that get a provenance sidecar ``NAME.json`` beside them.

    Example:
        >>> check_outputs_apart({"output": "t2f.nii.gz"}, ["t2f.nii.gz"])  # doctest: +SKIP
        Traceback (most recent call last):
        ValueError: The output t2f.nii.gz is an input of this command; choose another name. Nothing was run.
    """
    folder_names, sidecar_names = set(folders), set(sidecars)
    written: dict[Path, str] = {}
    for name, value in outputs.items():
        paths = [_resolved(value)]
        if name in sidecar_names:
            paths.append(paths[0].with_name(paths[0].name + SIDECAR_SUFFIX))
        for path in paths:
            if path in written:
                raise ValueError(f"{_option(written[path])} and {_option(name)} would both write {value}; "
                                 "choose two names. Nothing was run.")
            written[path] = name
    for source in {_resolved(p) for p in inputs}:
        for path, name in written.items():
            if _inside(path, source):
                what = "is" if path == source else "lies inside"
                raise ValueError(f"The output {path} {what} the input {source}; choose an output outside "
                                 "the inputs. Nothing was run.")
            if name in folder_names and _inside(source, path):
                raise ValueError(f"The output folder {path} contains the input {source}; choose a folder "
                                 "outside the inputs. Nothing was run.")


def _option(name: str) -> str:
    return "OUTPUT" if name == "output" else f"--{name.replace('_', '-')}"


class OutputJournal:
    """The files one command moved into place, so an interrupted command can take them back.

    A result never stays without its provenance sidecar: on Ctrl-C the command removes what
    it wrote so far (`roll_back`) and names it.
    """

    def __init__(self) -> None:
        self.written: list[Path] = []

    def roll_back(self) -> list[Path]:
        """Remove every file written so far; return those removed."""
        removed = [p for p in self.written if p.is_file()]
        for path in removed:
            path.unlink(missing_ok=True)
        self.written.clear()
        return removed


_JOURNAL: contextvars.ContextVar[OutputJournal | None] = contextvars.ContextVar("journal", default=None)


@contextlib.contextmanager
def output_journal() -> Iterator[OutputJournal]:
    """Record, for the duration of the block, every file `io.atomic_output` moves into place."""
    journal = OutputJournal()
    token = _JOURNAL.set(journal)
    try:
        yield journal
    finally:
        _JOURNAL.reset(token)


def note_written(path: Path) -> None:
    """Tell the active journal (if any) that `path` was moved into place."""
    journal = _JOURNAL.get()
    if journal is not None:
        journal.written.append(Path(path))
