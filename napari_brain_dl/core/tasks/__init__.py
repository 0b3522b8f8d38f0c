"""One module per task, one public function each (torch loads only when a task runs).

Example:
    >>> from napari_brain_dl.core.tasks import parcellate, run_model, skullstrip
"""

from __future__ import annotations

from .parcellate import Parcellation, parcellate
from .run_model import run_model
from .skullstrip import skullstrip

__all__ = ["Parcellation", "parcellate", "run_model", "skullstrip"]
