"""3D Grad-CAM with every choice explicit: target, layer, sign, upsampling.

- target: a function of the model output returning one score per sample (the class
  logit for a classifier, the sum of a class's logits over a region for a segmentation
  model, see `class_target` / `region_target`);
- layer: a module name (default: the model's ``default_cam_layer`` or its last 3D
  convolution with a kernel larger than 1);
- weights: gradients averaged over all three spatial axes (not two);
- sign: ``relu`` (evidence for the target, the usual Grad-CAM), ``abs`` or ``signed``;
- upsampling: trilinear to the model input's size; no min-max normalisation (MONAI's
  default normaliser maps the maximum to 0 and inverts maps).

captum's ``LayerGradCam`` computes the map and removes its hooks whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..errors import InputError

SIGNS = ("relu", "abs", "signed")
Target = Callable[[torch.Tensor], torch.Tensor]


class LayerError(InputError):
    """The requested layer does not exist or cannot be hooked."""


def class_target(index: int) -> Target:
    """Score = logit of class `index` of a (B, K) classifier output."""

    def target(out: torch.Tensor) -> torch.Tensor:
        return out[:, index]

    return target


def region_target(index: int, region: torch.Tensor) -> Target:
    """Score = sum of class `index` logits over `region` (Seg-Grad-CAM), output (B, K, ...)."""

    def target(out: torch.Tensor) -> torch.Tensor:
        mask = region.to(out.device, out.dtype)
        return (out[:, index] * mask).flatten(1).sum(1)

    return target


def candidate_layers(module: nn.Module, limit: int = 12) -> list[str]:
    """Names of hookable convolutional blocks (last `limit`), for messages and menus."""
    names = [
        name
        for name, sub in module.named_modules()
        if name and any(isinstance(m, nn.Conv3d) for m in sub.modules())
    ]
    return names[-limit:]


def default_layer(module: nn.Module) -> str:
    """The model's declared CAM layer, else its last 3D convolution with a kernel > 1."""
    declared = getattr(module, "default_cam_layer", None)
    if declared:
        return str(declared)
    convs = [
        name for name, m in module.named_modules() if isinstance(m, nn.Conv3d) and max(m.kernel_size) > 1
    ]
    if not convs:
        raise LayerError("The model has no 3D convolution with a kernel larger than 1 to use for Grad-CAM.")
    return convs[-1]


def resolve_layer(module: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """The layer called `name` (or the default), with a clear message when it does not exist."""
    if isinstance(module, torch.jit.ScriptModule):
        raise LayerError("Grad-CAM needs layer hooks, which TorchScript models do not offer; use occlusion.")
    name = name or default_layer(module)
    layers = dict(module.named_modules())
    if name not in layers or not name:
        choices = ", ".join(candidate_layers(module)) or "none"
        raise LayerError(f"The model has no layer called {name!r}; choose one of: {choices}.")
    return name, layers[name]


def gradcam(
    module: nn.Module,
    x: torch.Tensor,
    target: Target,
    layer: str | None = None,
    sign: str = "relu",
) -> tuple[np.ndarray, str]:
    """Grad-CAM of `target` at `layer` for input x (1, C, d, h, w); returns (map (d, h, w), layer name).

    Computed by captum's ``LayerGradCam`` (gradients averaged over every spatial axis, channels
    summed) and upsampled by ``LayerAttribution.interpolate`` (trilinear, ``align_corners=False``).

    Example:
        >>> cam, layer = gradcam(net, x, class_target(1))  # doctest: +SKIP
        >>> cam.shape == tuple(x.shape[2:]), layer  # doctest: +SKIP
        (True, 'blocks.3')
    """
    from captum.attr import LayerAttribution, LayerGradCam

    if sign not in SIGNS:
        raise ValueError(f"Unknown sign handling {sign!r}; choose one of {', '.join(SIGNS)}.")
    name, layer_module = resolve_layer(module, layer)

    def score(inp: torch.Tensor) -> torch.Tensor:
        out = module(inp)
        value = target(out[0] if isinstance(out, (tuple, list)) else out)
        return value.reshape(len(inp), -1).sum(1)  # one score per sample, as captum needs

    try:
        cam = LayerGradCam(score, layer_module).attribute(x.detach(), relu_attributions=sign == "relu")
    except AssertionError as err:
        if "did not obtain any outputs" not in str(err):
            raise
        raise LayerError(f"Layer {name!r} is not used by the model's forward pass; choose another.") from err
    except RuntimeError as err:
        if "not have been used in the graph" not in str(err):
            raise
        raise LayerError(f"Layer {name!r} takes no part in computing the target; choose another.") from err
    cam = cam[0] if isinstance(cam, tuple) else cam
    if cam.ndim != 5:
        raise LayerError(
            f"Layer {name!r} has no 3D feature maps (Grad-CAM shape {tuple(cam.shape)}); choose a conv block."
        )
    if sign == "abs":
        cam = cam.abs()
    cam = LayerAttribution.interpolate(cam.detach().float(), tuple(x.shape[2:]), "trilinear")
    return cam[0, 0].cpu().numpy(), name
