"""Colours of tumour labels layers and their legend (shared by the Segment tumour widget's parts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.tasks.tumor import CLASS_NAMES

if TYPE_CHECKING:
    import napari


#: Default class colours (RGB 0-255) when the model card has none.
DEFAULT_COLORS = {1: (230, 50, 50), 2: (60, 200, 60), 3: (255, 215, 0)}


def tumor_layer_kwargs(labels: list[Any] | None = None, kind: str = "brats") -> dict[str, Any]:
    """Colormap and class-name features of a tumour labels layer (colours from card labels if any)."""
    from napari.utils.colormaps import DirectLabelColormap

    names = {0: "background", **CLASS_NAMES} if kind == "brats" else {0: "background", 1: "whole tumour"}
    colors = {v: DEFAULT_COLORS.get(v, (255, 215, 0)) for v in names if v}
    colors.update({int(lab.value): tuple(lab.color) for lab in labels or [] if lab.value in colors})
    cmap: dict[int | None, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    cmap.update({v: (*(c / 255 for c in rgb), 1.0) for v, rgb in colors.items()})
    return {"colormap": DirectLabelColormap(color_dict=cmap), "opacity": 0.5,
            "features": {"index": list(names), "name": list(names.values())}}


def legend_html(kind: str, layer: napari.layers.Layer = None) -> str:
    """Colour legend of a tumour labels layer (its own colours when it has them), as rich text."""
    names = {1: "whole tumour"} if kind == "whole" else dict(CLASS_NAMES)
    colours = {}
    for value in names:
        rgb = DEFAULT_COLORS.get(value, (255, 215, 0))
        try:
            rgba = layer.colormap.map(np.array([value]))[0] if layer is not None else None
        except (AttributeError, TypeError, ValueError, IndexError):
            rgba = None
        if rgba is not None and len(rgba) >= 3 and float(np.max(rgba[:3])) > 0:
            rgb = tuple(round(255 * float(c)) for c in rgba[:3])
        colours[value] = "#{:02x}{:02x}{:02x}".format(*rgb)
    # one line per class: a wrapped line must never put a swatch beside another class's name
    return "<br>".join(f'<span style="color:{colours[v]}; font-size:14pt">&#9632;</span> '
                       + (f"{v} {names[v]}" if len(names) > 1 else names[v]) for v in names)
