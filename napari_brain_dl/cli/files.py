"""Subcommands ``info`` (a scan's geometry as JSON) and ``demo`` (napari with every dock widget).

``convert`` is a job (`core.jobs.files.ConvertJob`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from ..core.errors import InputError
from ..core.jobs.files import IDENTIFIERS_HELP, ConvertJob
from ._common import Subparsers, add_job_options

QT_BINDINGS = ("PyQt6", "PySide6", "PyQt5", "PySide2")


def register(subparsers: Subparsers) -> None:
    """Add ``info`` and ``demo`` to an argparse ``add_subparsers()`` object."""
    info = subparsers.add_parser("info", help="print a scan's geometry as JSON")
    info.add_argument("path", type=Path, help="NIfTI/MGZ/NRRD file or DICOM folder")
    add_job_options(info, ConvertJob, ("volume", "series"))
    info.add_argument("--include-identifiers", action="store_true", help=IDENTIFIERS_HELP + "print them")
    info.set_defaults(func=cmd_info)

    demo = subparsers.add_parser("demo",
                                 help="open napari with the sample exam (or PATHS) and every dock widget")
    demo.add_argument("paths", nargs="*", type=Path, help="series of one exam (default: the sample exam)")
    demo.set_defaults(func=cmd_demo)


def cmd_info(args: argparse.Namespace) -> int:
    """``napari-brain-dl info PATH``: the scan's geometry (identifiers only when asked)."""
    from ..core import io

    volume = io.load(args.path, volume_index=args.volume, series_uid=args.series)
    info = volume.info(include_identifiers=args.include_identifiers)
    info["path"] = str(args.path)
    print(json.dumps(info, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``napari-brain-dl demo [PATHS]``: the viewer with the sample exam (or PATHS)."""
    if not any(importlib.util.find_spec(binding) for binding in QT_BINDINGS):
        raise InputError('The viewer needs a Qt binding and none is installed: '
                         'pip install "napari-brain-dl[qt]".')
    from .._napari.demo import launch

    launch([str(p) for p in args.paths])
    return 0
