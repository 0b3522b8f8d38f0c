"""Where tumour-label autosaves go (no Qt): the user data folder, keyed by the exam.

By default an autosave never touches the exam's folder (a shared drive or a PACS export
must not get files nobody asked for): it goes to
``<user data folder>/autosave/<exam key>/<FLAIR stem><suffix>``, where the user data
folder is platformdirs' ``user_data_path("napari-brain-dl")`` (``$NAPARI_BRAIN_DL_HOME``
wins) and the exam key is the FLAIR file's stem plus a short hash of its absolute path,
so two exams with the same file name never share an autosave. Only when the user chose
"beside the exam" does it go there, and only if the folder is writable for the user as
themselves: its permission bits are checked too, because ``os.access`` says yes to root
for any folder.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from platformdirs import user_data_path

if TYPE_CHECKING:
    import napari


APP = "napari-brain-dl"
SUFFIX = {"brats": "_tumor_autosave.nii.gz", "whole": "_tumor_clicks_autosave.nii.gz"}
GEOMETRY = "brain_dl_geometry"


def source_meta(layer: napari.layers.Layer) -> dict[str, Any]:
    """Meta of the Volume a layer was made from (path, dicom_files...); empty when unknown."""
    return (layer.metadata.get(GEOMETRY) or {}).get("source_meta", {}) if layer is not None else {}


def user_autosave_root() -> Path:
    """``<user data folder>/autosave`` (platformdirs; ``$NAPARI_BRAIN_DL_HOME`` wins)."""
    env = os.environ.get("NAPARI_BRAIN_DL_HOME")
    if env:
        return Path(env) / "autosave"

    return user_data_path(APP, appauthor=False) / "autosave"


def exam_stem(layer: napari.layers.Layer) -> str:
    """The FLAIR file's stem ("t2f" for t2f.nii.gz; a DICOM folder's name), else the layer name."""
    from ..core.io import contrast_stem

    source = source_meta(layer).get("path")
    if not source:
        return str(layer.name)
    path = Path(source)
    return path.name if path.is_dir() else contrast_stem(path)


def exam_key(layer: napari.layers.Layer) -> str:
    """A folder name for this exam: its stem and 10 hex digits of its absolute path's sha256.

    Without a path (a layer made in the session) the hash covers the name, shape and affine.
    """
    source = source_meta(layer).get("path")
    if source:
        text = str(Path(source).resolve())
    else:
        record = layer.metadata.get(GEOMETRY) or {}
        affine = np.asarray(record.get("source_affine", np.eye(4)), float).round(4).tolist()
        text = f"{layer.name}|{record.get('native_shape', np.shape(layer.data))}|{affine}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in exam_stem(layer))
    return f"{safe}-{digest}"


def writable_as_user(folder: Path) -> bool:
    """True when the current user may write into `folder` by its permission bits and `os.access`."""
    try:
        info = folder.stat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or not os.access(folder, os.W_OK | os.X_OK):
        return False
    if not hasattr(os, "geteuid"):  # Windows: os.access reflects the read-only attribute
        return True
    if info.st_uid == os.geteuid():
        return bool(info.st_mode & stat.S_IWUSR)
    if info.st_gid in {os.getegid(), *os.getgroups()}:
        return bool(info.st_mode & stat.S_IWGRP)
    return bool(info.st_mode & stat.S_IWOTH)


def beside_path(layer: napari.layers.Layer, kind: str = "brats") -> Path | None:
    """``<exam folder>/<FLAIR stem><suffix>``; None when the exam's folder is unknown."""
    source = source_meta(layer).get("path")
    if not source:
        return None
    return Path(source).parent / f"{exam_stem(layer)}{SUFFIX[kind]}"


def user_path(layer: napari.layers.Layer, kind: str = "brats") -> Path:
    """``<user data folder>/autosave/<exam key>/<FLAIR stem><suffix>``."""
    return user_autosave_root() / exam_key(layer) / f"{exam_stem(layer)}{SUFFIX[kind]}"


def autosave_path(layer: napari.layers.Layer, kind: str = "brats", beside: bool = False) -> tuple[Path, bool]:
    """Where this exam's autosave goes: (path, True) beside the exam only when `beside` was
    chosen and its folder is writable for the user; else (user data folder path, False)."""
    near = beside_path(layer, kind) if beside else None
    if near is not None and writable_as_user(near.parent):
        return near, True
    return user_path(layer, kind), False


def existing_autosave(layer: napari.layers.Layer, kind: str = "brats") -> Path | None:
    """The newest autosave of this exam (user data folder or beside the exam), if any."""
    if layer is None:
        return None
    found = [p for p in (user_path(layer, kind), beside_path(layer, kind)) if p is not None and p.exists()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None
