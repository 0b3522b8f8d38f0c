"""npe2 sample data: "Brain exam (MNI152 + simulated lesion)"."""

from __future__ import annotations

from ..core.sample import sample_exam
from .layers import volume_to_layer_data
from .reader import _install_display

LESION_COLORS = {None: "transparent", 0: "transparent", 1: "#d62728", 2: "#ffd700", 3: "#1f9bff"}


def brain_exam() -> list[tuple]:
    """The MNI152 T1 with a simulated lesion, and the simulated lesion labels."""
    from napari.utils.colormaps import DirectLabelColormap

    image, labels = sample_exam()
    _install_display()
    return [
        volume_to_layer_data(image),
        volume_to_layer_data(labels, "labels", opacity=0.5,
                             colormap=DirectLabelColormap(color_dict=LESION_COLORS)),
    ]
