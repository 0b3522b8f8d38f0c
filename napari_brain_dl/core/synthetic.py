"""Marking of synthetic images: a computed contrast must never pass for an acquired scan.

A synthetic `Volume` carries:
- a name like "FLAIR (synthetic)";
- ``meta["synthetic"] = True`` and ``meta["synthesis"]`` = {target, sources, method, model_id,
  weights_sha256, package_version, created};
- ``meta["description"]`` = "SYNTHETIC FLAIR from T1c by <method>" (written into files).

Files written with `save_synthetic` are NIfTI only (.nii.gz / .nii), whose header holds the
stamp reliably: ``descrip`` starts with "SYNTHETIC" and ``intent_name`` is "SYNTHETIC"; the
file name must end with ``_synthetic`` before the extension (a name without it is refused,
with the right name suggested). NRRD / MHA are refused: their free-text fields are dropped or
rewritten by many tools, so the stamp could be lost.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from .volume import Volume

SUFFIX = "_synthetic"
INTENT_NAME = "SYNTHETIC"
SYNTHETIC_WRITE_SUFFIXES = (".nii.gz", ".nii")


def describe(target: str, sources: Sequence[str], method: str) -> str:
    """The stamp text, e.g. "SYNTHETIC FLAIR from T1c by synth-flair-from-t1c"."""
    return f"SYNTHETIC {target} from {'+'.join(sources)} by {method}"


def mark_synthetic(
    volume: Volume,
    *,
    target: str,
    sources: Sequence[str],
    method: str,
    provenance: dict[str, Any] | None = None,
) -> Volume:
    """A copy of `volume` named, described and flagged as a synthetic `target` contrast.

    The source's file path is moved to ``meta["source_path"]`` so nothing can mistake the
    result for the file it was computed from.

    Example:
        >>> import numpy as np
        >>> v = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4), name="t1c")
        >>> s = mark_synthetic(v, target="FLAIR", sources=["T1c"], method="histogram")
        >>> s.name, s.meta["synthetic"], s.meta["description"]
        ('FLAIR (synthetic)', True, 'SYNTHETIC FLAIR from T1c by histogram')
    """

    prov = dict(provenance or {})
    meta = {k: v for k, v in volume.meta.items() if k not in ("path", "description")}
    if "path" in volume.meta:
        meta["source_path"] = volume.meta["path"]
    text = describe(target, sources, method)
    meta.update(
        synthetic=True,
        description=text,
        synthesis={
            "target": target,
            "sources": list(sources),
            "method": method,
            "model_id": prov.get("model_id"),
            "weights_sha256": prov.get("weights_sha256"),
            "package_version": __version__,
            "created": prov.get("created")
            or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
        provenance={**prov, "synthetic": True},
    )
    return Volume(volume.data, volume.affine.copy(), name=f"{target} (synthetic)", meta=meta,
                  warnings=[*volume.warnings, f"{text}: not an acquired scan."])


def is_synthetic(volume: Volume) -> bool:
    """True for a Volume marked synthetic, or read from a file stamped or named as synthetic."""
    meta = volume.meta
    if meta.get("synthetic") or str(meta.get("description", "")).upper().startswith(INTENT_NAME):
        return True
    path = meta.get("path")
    return bool(path) and _stem(Path(str(path))).endswith(SUFFIX)


def _stem(path: Path) -> str:
    from .io import contrast_stem

    return contrast_stem(path)


def synthetic_file_name(path: str | os.PathLike[str]) -> Path:
    """`path` with ``_synthetic`` before the extension (unchanged when it is already there).

    Example:
        >>> synthetic_file_name("out/flair.nii.gz").name
        'flair_synthetic.nii.gz'
    """
    from .io import suffix_of

    path = Path(path)
    stem, suffix = _stem(path), suffix_of(path)
    return path if stem.endswith(SUFFIX) else path.with_name(f"{stem}{SUFFIX}{suffix}")


def check_synthetic_path(path: str | os.PathLike[str]) -> Path:
    """Refuse an output name that is not NIfTI or lacks ``_synthetic`` (one sentence, right name given).

    Raises:
        ValueError: Wrong extension or missing suffix.
    """
    from .io import suffix_of

    path = Path(path)
    suffix = suffix_of(path)
    if suffix not in SYNTHETIC_WRITE_SUFFIXES:
        nifti = path.with_name(f"{_stem(path) if suffix else path.name}.nii.gz")
        raise ValueError(
            f"A synthetic image is written as NIfTI only (its header carries the SYNTHETIC stamp): "
            f"use {synthetic_file_name(nifti)} instead of {path.name}."
        )
    if not _stem(path).endswith(SUFFIX):
        raise ValueError(
            f"The file name of a synthetic image must end with '{SUFFIX}': "
            f"use {synthetic_file_name(path)} instead of {path}."
        )
    return path


def save_synthetic(volume: Volume, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a synthetic Volume as NIfTI, stamped in its header and file name (atomic write).

    The header's ``descrip`` is the stamp ("SYNTHETIC FLAIR from T1c by ...") and its
    ``intent_name`` is "SYNTHETIC"; the file name must end with ``_synthetic``.

    Raises:
        ValueError: The volume is not marked synthetic, or the name / format is refused.
        FileExistsError: `path` exists and `overwrite` is False.

    Example:
        >>> save_synthetic(result.image, "pat_flair_synthetic.nii.gz")  # doctest: +SKIP
    """
    from . import io

    path = check_synthetic_path(path)
    if not volume.meta.get("synthetic"):
        raise ValueError(f"{volume.name} is not marked synthetic; mark it with mark_synthetic first.")
    text = str(volume.meta.get("description") or f"{INTENT_NAME} image")
    if not text.upper().startswith(INTENT_NAME):
        text = f"{INTENT_NAME} {text}"
    return io.save(volume, path, overwrite=overwrite, description=text, intent_name=INTENT_NAME)
