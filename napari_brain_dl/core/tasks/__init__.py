"""One module per task, one public function each (torch loads only when a task runs).

Example:
    >>> from napari_brain_dl.core.tasks import parcellate, run_model, segment_tumor, skullstrip
"""

from __future__ import annotations

from .click_segment import ClickSegmenter, click_segment
from .measure import tumor_measurements
from .parcellate import Parcellation, parcellate
from .run_model import run_model
from .skullstrip import skullstrip
from .super_resolve import SuperResolution, super_resolve
from .synthesize import Synthesis, synthesize
from .tumor import TumorSegmentation, segment_tumor

__all__ = [
    "ClickSegmenter",
    "Parcellation",
    "SuperResolution",
    "Synthesis",
    "TumorSegmentation",
    "click_segment",
    "parcellate",
    "run_model",
    "segment_tumor",
    "skullstrip",
    "super_resolve",
    "synthesize",
    "tumor_measurements",
]
