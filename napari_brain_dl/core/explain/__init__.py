"""Heatmaps that can be trusted: Grad-CAM, occlusion, and the checks shown beside them.

`frame` prepares a model's input as its card says and maps results back onto the scan's
grid; `gradcam` and `occlusion` compute maps on the model grid; `checks` computes the
randomisation, deletion/insertion and localisation checks. `core.tasks.classify` ties them
together for the CLI and the widget.
"""

from .checks import CheckResult, deletion_insertion, localisation, randomisation
from .frame import ModelFrame, prepare
from .gradcam import LayerError, candidate_layers, class_target, default_layer, gradcam, region_target
from .occlusion import OcclusionMap, count_monai_default_passes, occlusion

__all__ = [
    "CheckResult",
    "LayerError",
    "ModelFrame",
    "OcclusionMap",
    "candidate_layers",
    "class_target",
    "count_monai_default_passes",
    "default_layer",
    "deletion_insertion",
    "gradcam",
    "localisation",
    "occlusion",
    "prepare",
    "randomisation",
    "region_target",
]
