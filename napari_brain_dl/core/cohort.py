"""Find the subjects of a cohort folder and read back the cohort CSV a batch writes.

Two layouts are recognised:

- BIDS: ``sub-<label>/[ses-<label>/]anat/*.nii[.gz]``; the contrast comes from the BIDS suffix
  (``T1w``, ``T2w``, ``FLAIR``, ``PDw``); a ``ce-<agent>`` entity on a T1w makes it T1c.
- One folder per subject (optionally one sub-folder per session): contrasts are guessed from
  the file names (``t2f``/``flair``, ``t1c``, ``t1n``/``t1``, ``t2w``/``t2``... as in Load exam).
  Files that look like labels or masks (``seg``, ``label``, ``mask``) are not scans.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCAN_SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh", ".nrrd", ".mha")
_NOT_SCANS = re.compile(r"(^|[-_.])(seg|segmentation|labels?|mask|brainmask|dseg)([-_.]|$)", re.I)
_BIDS_SUFFIX = {"T1w": "t1", "T2w": "t2", "FLAIR": "flair", "PDw": "pd", "T2starw": "t2star"}


@dataclass
class Subject:
    """One exam of a cohort: its id (``sub-01`` or ``sub-01_ses-02``) and its scans by contrast.

    Attributes:
        id: Unique key, also the name of its output folder.
        subject: Subject label (several sessions share it).
        session: Session label, or None.
        files: Contrast ("flair", "t1c", "t1", "t2", ...) -> scan file.
        notes: Sentences about what discovery decided (duplicates, unrecognised files).
    """

    id: str
    subject: str
    session: str | None = None
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def is_scan(path: Path) -> bool:
    """True for an image file that is not a label map, a mask or hidden.

    Hidden files (``._t2f.nii.gz`` from macOS, ``.t2f.nii.gz.x1y2.nii.gz`` left by a killed
    write) are never scans.
    """
    name = path.name.lower()
    return (path.is_file() and not name.startswith(".") and name.endswith(SCAN_SUFFIXES)
            and not _NOT_SCANS.search(name))


def is_bids(root: str | os.PathLike[str]) -> bool:
    """True when `root` looks like a BIDS dataset (dataset_description.json or sub-* folders)."""
    root = Path(root)
    return (root / "dataset_description.json").is_file() or any(
        p.is_dir() for p in root.glob("sub-*")
    )


def discover(root: str | os.PathLike[str]) -> list[Subject]:
    """Every exam under `root` (BIDS or one folder per subject), sorted by id.

    Raises:
        FileNotFoundError: `root` is not a folder.
        ValueError: No subject folder at all.

    Example:
        >>> [s.id for s in discover("/data/cohort")]  # doctest: +SKIP
        ['sub-01', 'sub-02_ses-1', 'sub-02_ses-2']
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"The input folder {root} does not exist.")
    subjects = _bids(root) if is_bids(root) else _folders(root)
    if not subjects:
        raise ValueError(f"{root} holds no subject folders (BIDS sub-* or one folder per subject).")
    return sorted(subjects, key=lambda s: s.id)


def bids_contrast(path: Path) -> str | None:
    """Contrast of a BIDS file name (``sub-01_ce-gd_T1w.nii.gz`` -> "t1c"), None if not a scan."""
    stem = re.sub(r"\.(nii\.gz|nii|mgz|mgh|nrrd|mha)$", "", path.name)
    parts = stem.split("_")
    contrast = _BIDS_SUFFIX.get(parts[-1])
    if contrast == "t1" and any(p.startswith("ce-") for p in parts[:-1]):
        return "t1c"
    return contrast


def _bids(root: Path) -> list[Subject]:
    out = []
    for sub in sorted(p for p in root.glob("sub-*") if p.is_dir()):
        sessions = sorted(p for p in sub.glob("ses-*") if p.is_dir()) or [None]
        for ses in sessions:
            folder = (ses or sub) / "anat"
            label = ses.name if ses is not None else None
            subject = Subject(f"{sub.name}_{label}" if label else sub.name, sub.name, label)
            for file in sorted(folder.glob("*")) if folder.is_dir() else []:
                if is_scan(file):
                    _add(subject, bids_contrast(file), file)
            out.append(subject)
    return out


def _folders(root: Path) -> list[Subject]:
    from .study import guess_contrast

    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        scans = [f for f in sorted(folder.iterdir()) if is_scan(f)]
        sessions = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        groups = [(None, scans)] if scans or not sessions else [
            (s.name, [f for f in sorted(s.iterdir()) if is_scan(f)]) for s in sessions
        ]
        for session, files in groups:
            subject = Subject(f"{folder.name}_{session}" if session else folder.name, folder.name, session)
            for file in files:
                _add(subject, guess_contrast(file.name), file)
            out.append(subject)
    return out


def _add(subject: Subject, contrast: str | None, file: Path) -> None:
    if contrast in (None, "other"):
        subject.notes.append(f"{file.name}: contrast not recognised; not used.")
    elif contrast in subject.files:
        subject.notes.append(f"{file.name}: a second {contrast}; {subject.files[contrast].name} is used.")
    else:
        subject.files[contrast] = file


# -- the cohort CSV ------------------------------------------------------------------------------------
def read_cohort(csv_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a cohort CSV written by `core.batch.run_batch`.

    Raises:
        FileNotFoundError: No such file.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def subject_files(csv_path: str | os.PathLike[str], subject: str) -> tuple[list[Path], list[Path]]:
    """Input scans and output files of one subject (or ``subject_session``) of a cohort CSV.

    Output paths in the CSV are relative to the CSV's folder (the batch output folder).

    Raises:
        ValueError: The subject is not in the CSV, or it has no inputs.

    Example:
        >>> scans, results = subject_files("out/cohort.csv", "sub-02")  # doctest: +SKIP
    """
    rows = read_cohort(csv_path)
    row = next((r for r in rows if subject in (r.get("id"), r.get("subject"))), None)
    if row is None:
        known = ", ".join(r.get("id", "?") for r in rows[:10])
        raise ValueError(f"{subject!r} is not in {csv_path} (subjects: {known}...).")
    inputs = [Path(p) for p in (row.get("inputs") or "").split(";") if p]
    if not inputs:
        raise ValueError(f"{subject!r} has no input scans in {csv_path}.")
    base = Path(csv_path).resolve().parent
    outputs = [base / p for p in (row.get("outputs") or "").split(";") if p]
    return inputs, [p for p in outputs if p.exists()]
