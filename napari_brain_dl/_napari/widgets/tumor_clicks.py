"""Clicks on a scan: display <-> voxel geometry, and the markers that show them.

Refine's click tool (`tumor_boundary`) edits the tumour with the click model; its clicks
are voxel indices of FLAIR's own array (the core Volume), not napari display coordinates:
`display_to_voxel` / `voxel_to_display` convert through the layer geometry. `ClickMarkers`
shows them on the "tumor clicks" Points layer: positive green, negative magenta, queued
ones as soon as they are made.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import napari.viewer
import numpy as np

from ..layers import GEOMETRY

POINTS_LAYER = "tumor clicks"
COLORS = {True: (0.1, 0.9, 0.1, 1.0), False: (1.0, 0.0, 1.0, 1.0)}  # positive green, negative magenta
POINT_MM = 9  # click markers: large, with a white ring, so they show on any tissue
#: Layer metadata key marking a tumour labels layer: "brats" (labels 1-3) or "whole" (0/1 mask,
#: e.g. an autosave of an earlier version's click mode).
TUMOR_KIND = "brain_dl_tumor"

Voxel = tuple[int, int, int]


# -- geometry: display (layer data) index <-> voxel index of the source array ----------------
def _orientation(layer: napari.layers.Layer) -> tuple[np.ndarray, tuple[int, ...]]:
    """(nibabel orientation transform, native shape) of a layer; identity without a record."""
    record = layer.metadata.get(GEOMETRY)
    if record is None:
        return np.array([[0, 1], [1, 1], [2, 1]], float), tuple(np.shape(layer.data))
    return np.asarray(record["orientation_transform"], float), tuple(record["native_shape"])


def display_to_index(layer: napari.layers.Layer, point: Any) -> list[float]:
    """Continuous index (i, j, k) of the source array under a layer data point (may lie outside)."""
    transform, shape = _orientation(layer)
    d = np.asarray(point, float)[-3:]
    out = []
    for axis, (new_axis, flip) in enumerate(transform):
        value = float(d[int(new_axis)])
        out.append(shape[axis] - 1 - value if flip < 0 else value)
    return out


def display_to_voxel(layer: napari.layers.Layer, point: Any) -> Voxel | None:
    """Voxel index (i, j, k) of the source array under a layer data point; None outside the grid."""
    shape = _orientation(layer)[1]
    out = [int(v) for v in display_to_index(layer, np.rint(np.asarray(point, float)))]  # whole numbers
    if any(not 0 <= v < s for v, s in zip(out, shape, strict=True)):
        return None
    return out[0], out[1], out[2]


def voxel_to_display(layer: napari.layers.Layer, voxel: Any) -> np.ndarray:
    """Layer data index of a voxel index of the source array (inverse of `display_to_voxel`)."""
    transform, shape = _orientation(layer)
    out = np.zeros(3)
    for axis, (new_axis, flip) in enumerate(transform):
        value = float(voxel[axis])
        out[int(new_axis)] = shape[axis] - 1 - value if flip < 0 else value
    return out


class ClickMarkers:
    """The "tumor clicks" Points layer of a viewer: one marker per click, on a reference layer's grid."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer

    def layer(self, ref: napari.layers.Layer) -> Any:
        """The Points layer (created on `ref`'s grid on first use)."""
        layers = self._viewer.layers
        if POINTS_LAYER not in layers:
            layer = self._viewer.add_points(np.empty((0, 3)), name=POINTS_LAYER, size=POINT_MM, ndim=3,
                                            scale=ref.scale, translate=ref.translate, border_width=0.2,
                                            border_width_is_relative=True, border_color="white",
                                            out_of_slice_display=False)
            layer.mode = "pan_zoom"  # the clicks are ours, not napari's "add point" tool
        return layers[POINTS_LAYER]

    def show(self, ref: napari.layers.Layer, clicks: Sequence[tuple[Sequence[int], bool]]) -> None:
        """Show `clicks` ((voxel of `ref`'s source array, positive), in order) and nothing else."""
        if not clicks and POINTS_LAYER not in self._viewer.layers:
            return
        points = self.layer(ref)
        coords = np.array([voxel_to_display(ref, v) for v, _ in clicks]).reshape(-1, 3)
        points.data = coords
        points.features = {"sign": ["positive" if p else "negative" for _, p in clicks]}
        if len(coords):
            points.face_color = np.array([COLORS[bool(p)] for _, p in clicks])
        points.refresh()

    def clear(self) -> None:
        """Remove every marker (the layer stays, empty)."""
        if POINTS_LAYER in self._viewer.layers:
            layer = self._viewer.layers[POINTS_LAYER]
            layer.data = np.empty((0, 3))
            layer.features = {"sign": []}
