"""Optional parts of napari-brain-dl and the sentence that says how to get one that is missing.

``pip install "napari-brain-dl[batch]"`` adds the Dask cohort runner, ``[dicom-seg]`` the DICOM
SEG writer (highdicom), ``[qt]`` a Qt binding for the viewer.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS = {"distributed": "batch", "cryptography": "batch", "highdicom": "dicom-seg"}
PURPOSE = {"batch": "runs cohorts on Dask", "dicom-seg": "writes DICOM SEG with highdicom"}


class MissingExtraError(ImportError, ValueError):
    """An optional dependency is not installed; the message names the pip command."""


def require(module: str) -> ModuleType:
    """Import `module` of an optional extra, or raise `MissingExtraError` in one sentence.

    Example:
        >>> distributed = require("distributed")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS[module.split(".")[0]]
        raise MissingExtraError(f"This {PURPOSE[extra]}, which needs {module.split('.')[0]}, not installed: "
                                f'pip install "napari-brain-dl[{extra}]".') from exc
