"""sha256 of files and folders, cached by (path, size, modification time): a scan read by many
records, or a weights file checked on every load, is hashed once."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_HASHES: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str | None:
    """sha256 of a file (of every file, sorted by name, for a folder); None when it does not exist.

    Hashes are cached by (path, size, mtime), so a scan read by many records is hashed once.
    """
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def file_sha256(file: Path) -> str:
    """Hex sha256 of one file, cached by (path, size, modification time)."""
    stat = file.stat()
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]
