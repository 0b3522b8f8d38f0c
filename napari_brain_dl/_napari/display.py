"""Radiology-style display for a napari viewer.

`install(viewer)` (idempotent) gives the viewer:

* axial view first, radiological convention (patient left on screen right);
  `set_convention(viewer, "neurological")` flips the horizontal screen axis
  through ``viewer.camera.orientation`` (no data is copied);
* coronal/sagittal views upright (superior at the top, anterior on the left);
* orientation letters (R/L, A/P, S/I) at the four edges of the canvas (of every
  cell in grid view), updated when the displayed axes, the camera orientation or
  the convention change. They are napari canvas text overlays
  (``viewer.canvas.overlays``, napari >= 0.9), not a layer; an older napari gets a
  points layer hidden from the layer list instead;
* the slider named after the plane it moves through ("axial", "coronal", "sagittal");
* window/level: presets from `window_presets` ("lesion", the default: percentiles
  inside the brain; "brain", "auto", "full") and
  **Ctrl + left-drag** on the canvas: horizontal drag changes the width,
  vertical drag the level of the selected image layer (Ctrl keeps napari's
  pan (left-drag) and zoom (wheel / right-drag) untouched);
* new layers with this plugin's layer geometry (e.g. a labels layer created
  with napari's "new labels" button over a scan) inherit the scan's geometry
  record, so they save back onto its native grid.

Layers are shown in voxel space reoriented to (S, P, L); see `layers.py`.
"""

from __future__ import annotations

import importlib
import weakref
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from .layers import GEOMETRY, same_display_grid, same_layer

if TYPE_CHECKING:
    import napari


LETTERS_LAYER = "orientation letters"  # the points layer of napari < 0.9 (no canvas overlays)
#: Canvas text overlay (``viewer.canvas.overlays`` key) of each screen edge's letter.
LETTER_OVERLAYS = {"top": "brain_dl_letter_top", "bottom": "brain_dl_letter_bottom",
                   "left": "brain_dl_letter_left", "right": "brain_dl_letter_right"}
_EDGE_POSITION = {"top": "top_center", "bottom": "bottom_center", "left": "middle_left",
                  "right": "middle_right"}
#: The plane one moves through along each display axis (S, P, L): the slider's name.
PLANES = ("axial", "coronal", "sagittal")
#: Letters at the low and high index end of each display axis (S, P, L).
AXIS_LETTERS = (("I", "S"), ("A", "P"), ("R", "L"))
CONVENTIONS = ("radiological", "neurological")
#: Window presets (see `window_presets`); the first is a new layer's default.
PRESETS = ("lesion", "brain", "auto", "full")
#: Upper percentile of the brain's voxels of the "lesion" window, per contrast (99.5 otherwise).
LESION_UPPER = {"flair": 99.9, "t2": 99.9}
#: Delay of a letters update after the events that call for it (see `_update_letters_soon`).
LETTERS_DELAY_MS = 15
_STATES: dict[int, dict[str, Any]] = {}  # id(viewer) -> display state (cleared when it dies)


def _state(viewer: napari.viewer.Viewer) -> dict[str, Any] | None:
    """Display state of `viewer` (unwrapping napari's plugin proxy), None when not installed."""
    return _STATES.get(id(getattr(viewer, "__wrapped__", viewer)))


def brain_voxels(sample: np.ndarray) -> np.ndarray:
    """The voxels of the head or brain in a flattened finite `sample`.

    A skull-stripped or masked scan has a constant background at its minimum (a
    fifth of the voxels or more): every voxel above it counts. Otherwise (a whole
    head) the voxels above the mean intensity, a crude foreground.
    """
    if sample.size == 0:
        return sample
    low = sample.min()
    if np.count_nonzero(sample == low) >= 0.2 * sample.size:
        return sample[sample > low]
    return sample[sample > sample.mean()]


def window_presets(data: Any, contrast: str = "other") -> dict[str, tuple[float, float]]:
    """Contrast limits for the window presets of one image (each contrast gets its own).

    * ``lesion`` (the default of a new layer): 0.5th percentile of the brain's
      voxels (`brain_voxels`) to its `LESION_UPPER` percentile for that contrast
      (99.9 for FLAIR and T2, where oedema is the brightest tissue; 99.5 else, as
      vessels outshine T1c enhancement), so lesions keep their texture instead of
      saturating and the background does not pull the window down;
    * ``brain``: 2nd to 99.8th percentile of the brain's voxels, giving grey/white
      contrast; for CT-like data (values below -500) the classic brain window
      W 80 / L 40 HU;
    * ``auto``: 0.5th to 99.5th percentile of all voxels;
    * ``full``: minimum to maximum.

    Example:
        >>> window_presets(np.arange(1000.0).reshape(10, 10, 10))["full"]
        (0.0, 999.0)
    """
    array = np.asarray(data)
    sample = array[:: max(1, array.shape[0] // 64)] if array.ndim == 3 else array
    sample = sample[np.isfinite(sample)].astype(np.float64, copy=False)
    if sample.size == 0:
        return dict.fromkeys(PRESETS, (0.0, 1.0))
    low, high = float(sample.min()), float(sample.max())
    auto = tuple(float(v) for v in np.percentile(sample, [0.5, 99.5]))
    brain_part = brain_voxels(sample)
    if low < -500:
        brain = (0.0, 80.0)
        lesion = brain
    elif brain_part.size:
        brain = tuple(float(v) for v in np.percentile(brain_part, [2.0, 99.8]))
        upper = LESION_UPPER.get(contrast, 99.5)
        lesion = tuple(float(v) for v in np.percentile(brain_part, [0.5, upper]))
    else:
        brain = lesion = auto
    return {name: _valid((lo, hi)) for name, (lo, hi) in
            {"lesion": lesion, "brain": brain, "auto": auto, "full": (low, high)}.items()}


def _valid(limits: tuple[float, float]) -> tuple[float, float]:
    lo, hi = limits
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def apply_window(layer: napari.layers.Layer, preset: str) -> None:
    """Set an image layer's contrast limits to the named preset."""
    from .layers import layer_contrast

    limits = window_presets(layer.data, layer_contrast(layer))[preset]
    layer.contrast_limits_range = (min(limits[0], layer.contrast_limits_range[0]),
                                   max(limits[1], layer.contrast_limits_range[1]))
    layer.contrast_limits = limits


def install(viewer: napari.viewer.Viewer) -> None:
    """Give `viewer` the radiology display (idempotent; safe on any viewer)."""
    if _state(viewer) is not None:
        return
    real = getattr(viewer, "__wrapped__", viewer)
    _STATES[id(real)] = {"convention": "radiological", "busy": False}
    weakref.finalize(real, _STATES.pop, id(real), None)
    viewer.layers.events.inserted.connect(lambda event: _later(_on_inserted, viewer, event.value))
    viewer.layers.events.removed.connect(lambda event: _update_letters_soon(viewer))
    viewer.dims.events.order.connect(lambda event: _later(_refresh, viewer))
    viewer.dims.events.ndisplay.connect(lambda event: _later(_refresh, viewer))
    viewer.dims.events.current_step.connect(lambda event: _update_letters_soon(viewer))
    if _grid(viewer) is not None:
        _grid(viewer).events.enabled.connect(lambda event: _update_letters_soon(viewer))
    camera = _camera(viewer)
    for name in ("zoom", "center", "orientation"):  # letters follow a flip; stay on screen when panning
        if hasattr(camera.events, name):
            getattr(camera.events, name).connect(lambda event: _update_letters_soon(viewer))
    canvas = getattr(viewer, "canvas", None)
    if canvas is not None and hasattr(canvas.events, "size"):
        canvas.events.size.connect(lambda event: _update_letters_soon(viewer))
    viewer.mouse_drag_callbacks.append(window_level_drag)
    _warm_letters(viewer)
    for layer in list(viewer.layers):
        _on_inserted(viewer, layer)


def _later(func: Any, *args: Any, delay_ms: int = 0) -> None:
    """Run `func` once the current layer-list event is over (adding layers inside it breaks Qt),
    `delay_ms` later; at once without a Qt application."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    if QApplication.instance() is None:
        func(*args)
    else:
        QTimer.singleShot(delay_ms, lambda: func(*args))


def convention(viewer: napari.viewer.Viewer) -> str:
    """The viewer's current left/right convention."""
    return (_state(viewer) or {}).get("convention", "radiological")


def set_convention(viewer: napari.viewer.Viewer, name: str) -> None:
    """Switch between "radiological" (patient left on screen right) and "neurological"."""
    if name not in CONVENTIONS:
        raise ValueError(f"Convention must be one of {CONVENTIONS}, not {name!r}.")
    install(viewer)
    _state(viewer)["convention"] = name  # type: ignore[index]
    _refresh(viewer)


def show_axial(viewer: napari.viewer.Viewer) -> None:
    """Axial view: slider on inferior/superior, anterior at the top."""
    if viewer.dims.ndim >= 3:
        viewer.dims.ndisplay = 2
        order = list(range(viewer.dims.ndim))
        viewer.dims.order = tuple(order[:-3] + order[-3:])
    _refresh(viewer)


def _has_display_geometry(viewer: napari.viewer.Viewer) -> bool:
    return any(GEOMETRY in layer.metadata for layer in viewer.layers)


def _on_inserted(viewer: napari.viewer.Viewer, layer: napari.layers.Layer) -> None:
    if layer.name == LETTERS_LAYER or layer not in viewer.layers:
        return
    if GEOMETRY not in layer.metadata:
        others = [x for x in viewer.layers if GEOMETRY in x.metadata and not same_layer(x, layer)]
        for other in others:
            if same_display_grid(layer, other):
                layer.metadata[GEOMETRY] = dict(other.metadata[GEOMETRY])
                break
    if GEOMETRY in layer.metadata and sum(GEOMETRY in x.metadata for x in viewer.layers) == 1:
        show_axial(viewer)  # first scan of the session: axial, radiological, centred
        viewer.reset_view()
    _update_letters_soon(viewer)


def _refresh(viewer: napari.viewer.Viewer) -> None:
    """Camera orientation for the displayed axes and convention, then letters."""
    displayed = list(viewer.dims.displayed)
    if len(displayed) == 2 and viewer.dims.ndim >= 3:
        axis_of = {d: d - (viewer.dims.ndim - 3) for d in displayed}  # display axis 0 S, 1 P, 2 L
        vertical, horizontal = axis_of[displayed[0]], axis_of[displayed[1]]
        up = "up" if vertical == 0 else "down"  # superior at the top; anterior at the top
        if horizontal == 2:  # left/right on screen: the convention decides
            right = "right" if convention(viewer) == "radiological" else "left"
        elif horizontal == 1:  # sagittal: anterior on the left
            right = "right"
        else:  # superior/inferior horizontal (unusual order): superior on the right
            right = "right"
        _camera(viewer).orientation2d = (up, right)
    _update_letters_soon(viewer)


def grid(viewer: napari.viewer.Viewer) -> Any:
    """The viewer's grid-view model (napari >= 0.9 keeps it on ``viewer.canvas``)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def _camera(viewer: napari.viewer.Viewer) -> Any:
    scene = getattr(viewer, "scene", None)  # napari >= 0.9; viewer.camera before
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def _grid(viewer: napari.viewer.Viewer) -> Any:
    """The viewer's grid model (``viewer.canvas.grid`` in napari >= 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return getattr(canvas, "grid", None) or getattr(viewer, "grid", None)


def _visible_box(viewer: napari.viewer.Viewer,
                 displayed: list[int]) -> dict[int, tuple[float, float, float]] | None:
    """World range (low, high, inset) of each displayed dimension on the canvas; None if unknown.

    The inset is 16 screen pixels in world units, so a letter is drawn inside the canvas edge.
    """
    size = getattr(getattr(viewer, "canvas", None), "size", None)  # (height, width), napari >= 0.9
    camera = _camera(viewer)
    zoom = float(getattr(camera, "zoom", 0.0))
    if size is None or min(size) <= 1 or zoom <= 0 or len(displayed) != 2:
        return None
    centre = np.asarray(camera.center, dtype=float)[-2:]
    half = np.asarray(size, dtype=float) / (2 * zoom)
    return {dim: (centre[i] - half[i], centre[i] + half[i], 16 / zoom) for i, dim in enumerate(displayed)}


def _on_screen(value: float, box: tuple[float, float, float] | None) -> float:
    """`value` moved inside the visible range `box` (low, high, inset), if it is known."""
    if box is None:
        return value
    low, high, inset = box
    return float(np.clip(value, low + inset, max(high - inset, low + inset)))


def _letters_layer(viewer: napari.viewer.Viewer) -> Any:
    if LETTERS_LAYER in viewer.layers:
        return viewer.layers[LETTERS_LAYER]
    active = viewer.layers.selection.active
    layer = viewer.add_points(
        np.zeros((0, viewer.dims.ndim)), name=LETTERS_LAYER, size=0, face_color="transparent",
        border_color="transparent", border_width=0, blending="translucent_no_depth",
        text={"string": "{letter}", "color": "yellow", "size": 14, "anchor": "center"},
        features={"letter": np.array([], dtype=object)})
    layer.editable = False
    viewer.layers.selection.active = active  # the letters are never the layer being worked on
    return layer


#: What napari imports lazily when the first layers arrive (pandas for the letters' features,
#: SciPy and the histogram for image layers, the shapes layer for RANO lines): about 1 s on the UI
#: thread otherwise.
_LAZY_IMPORTS = ("pandas", "napari.layers.points", "napari.layers.shapes", "napari.components.histogram",
                 "scipy.linalg", "scipy.sparse", "scipy.spatial", "scipy.constants", "OpenGL.arrays")


def warm_up() -> None:
    """Do on a worker thread what napari and vispy otherwise do on the UI thread when the first
    layers arrive: their lazy imports (a module missing in this napari is skipped), the first
    shapes layer's set-up (about 170 ms, then 6 ms; the RANO lines are one) and vispy's dash
    patterns, which every line visual (a labels layer's polygon tool among them) computes in
    Python the first time (about 80 ms; vispy caches them)."""

    for name in _LAZY_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    from napari.layers import Shapes

    Shapes([np.zeros((2, 3)), np.ones((2, 3))], shape_type="line", edge_color=["cyan", "yellow"])
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas
    except ImportError:
        return
    DashAtlas()


def update_letters(viewer: napari.viewer.Viewer) -> None:
    """Put orientation letters at the four edges of the displayed slice."""
    state = _state(viewer)
    if state is None or state["busy"]:
        return
    state["busy"] = True
    try:
        _update_letters(viewer)
    finally:
        state["busy"] = False


def _update_letters_soon(viewer: napari.viewer.Viewer) -> None:
    """One letters update after a burst of events (adding layers fires dozens of them).

    `LETTERS_DELAY_MS` later, not in the same event-loop pass: the first letters build text
    visuals and a second repaint, which would otherwise add to the new layer's own freeze.
    """
    state = _state(viewer)
    if state is None or state.get("letters_pending"):
        return
    state["letters_pending"] = True

    def run() -> None:
        state["letters_pending"] = False
        update_letters(viewer)

    _later(run, delay_ms=LETTERS_DELAY_MS)


def screen_letters(viewer: napari.viewer.Viewer) -> dict[str, str]:
    """The orientation letter at each screen edge ("top", "bottom", "left", "right") of the 2D view.

    Read from the displayed axes and the camera's 2D orientation, so it holds for any
    convention or flip; empty in 3D or with fewer than three dimensions.

    Example (axial, radiological): ``{"top": "A", "bottom": "P", "left": "R", "right": "L"}``.
    """
    displayed = list(viewer.dims.displayed)
    offset = viewer.dims.ndim - 3
    if len(displayed) != 2 or offset < 0:
        return {}

    def ends(dim: int) -> tuple[str, str]:  # letters at the low and high index end
        return AXIS_LETTERS[dim - offset] if dim >= offset else ("", "")

    vertical, horizontal = (str(x) for x in _camera(viewer).orientation2d)
    low, high = ends(displayed[0])
    top, bottom = (low, high) if vertical == "down" else (high, low)  # "down": index grows downwards
    low, high = ends(displayed[1])
    left, right = (low, high) if horizontal == "right" else (high, low)
    return {"top": top, "bottom": bottom, "left": left, "right": right}


def _canvas_overlays(viewer: napari.viewer.Viewer) -> Any:
    """napari's canvas overlays (``viewer.canvas.overlays``, napari >= 0.9); None before."""
    real = getattr(viewer, "__wrapped__", viewer)  # napari hands plugin widgets a proxy of the viewer
    overlays = getattr(getattr(real, "canvas", None), "overlays", None)
    return overlays if overlays is not None and hasattr(overlays, "__setitem__") else None


def _letter_overlay(edge: str, text: str, opacity: float) -> Any:
    from napari.components.overlays import TextOverlay

    return TextOverlay(text=text, position=_EDGE_POSITION[edge], color="yellow", font_size=14, box=False,
                       gridded=True, visible=True, opacity=opacity)


def _warm_letters(viewer: napari.viewer.Viewer) -> None:
    """Create the letter overlays now, transparent and holding every letter, so vispy builds their
    visuals, compiles their shaders and renders the glyphs on a paint of the still empty viewer,
    not in the freeze when the first scan arrives (about 0.3 s there otherwise)."""
    overlays = _canvas_overlays(viewer)
    if overlays is None or any(key in overlays for key in LETTER_OVERLAYS.values()):
        return
    glyphs = "".join(dict.fromkeys("".join(letter for pair in AXIS_LETTERS for letter in pair)))
    for edge, key in LETTER_OVERLAYS.items():
        overlays[key] = _letter_overlay(edge, glyphs, opacity=0.0)


def _show_overlay_letters(viewer: napari.viewer.Viewer, overlays: Any, letters: dict[str, str]) -> None:
    """Write `letters` into the four canvas text overlays (created on first use); none shown if empty.

    ``gridded``: in grid view every cell gets its letters (all cells share one camera).
    """
    for edge, key in LETTER_OVERLAYS.items():
        text = letters.get(edge, "")
        overlay = overlays.get(key) if hasattr(overlays, "get") else None
        if overlay is None:
            if text:
                overlays[key] = _letter_overlay(edge, text, opacity=1.0)
            continue
        if overlay.text != text:
            overlay.text = text
        if overlay.visible != bool(text):
            overlay.visible = bool(text)
        if text and overlay.opacity != 1.0:
            overlay.opacity = 1.0


def _update_letters(viewer: napari.viewer.Viewer) -> None:
    scans = [x for x in viewer.layers if GEOMETRY in x.metadata and x.name != LETTERS_LAYER]
    overlays = _canvas_overlays(viewer)
    if not scans or viewer.dims.ndim < 3:
        if overlays is not None:
            _show_overlay_letters(viewer, overlays, {})
        if LETTERS_LAYER in viewer.layers:
            viewer.layers.remove(LETTERS_LAYER)
        return
    ndim = viewer.dims.ndim
    labels = (*tuple(viewer.dims.axis_labels)[: ndim - 3], *PLANES)
    if tuple(viewer.dims.axis_labels) != labels:
        viewer.dims.axis_labels = labels  # the slider says which plane it moves through, not "-3"
    if overlays is not None:
        _show_overlay_letters(viewer, overlays, screen_letters(viewer))
        return
    _update_letters_layer(viewer, scans)


def _update_letters_layer(viewer: napari.viewer.Viewer, scans: list[Any]) -> None:
    """napari < 0.9: the letters as a text-only points layer at the image edges, kept on screen."""
    ndim = viewer.dims.ndim
    corners = [np.asarray(x.extent.world) for x in scans if x.ndim == ndim]
    if not corners:
        return
    extent = np.array([np.min([c[0] for c in corners], axis=0), np.max([c[1] for c in corners], axis=0)])
    layer = _letters_layer(viewer)
    offset = ndim - 3
    points, letters = [], []
    displayed = list(viewer.dims.displayed)
    if len(displayed) == 2:
        view = _visible_box(viewer, displayed)  # zoomed in, the scan's edges leave the canvas
        for index, dim in enumerate(displayed):
            other = displayed[1 - index]
            lo, hi = extent[0, dim], extent[1, dim]
            margin = 0.04 * (hi - lo)
            mid = _on_screen(0.5 * (extent[0, other] + extent[1, other]), view and view[other])
            for end, position in ((0, lo - margin), (1, hi + margin)):
                point = np.array(viewer.dims.point, dtype=float)
                point[dim], point[other] = _on_screen(position, view and view[dim]), mid
                points.append(point)
                letters.append(AXIS_LETTERS[dim - offset][end] if dim >= offset else "")
    grid = _grid(viewer)
    # one letters layer cannot label every grid cell; hidden, it takes no cell of its own
    visible = len(displayed) == 2 and not (grid is not None and grid.enabled)
    data = np.array(points).reshape(-1, ndim)
    if layer.visible != visible:
        layer.visible = visible
    if data.shape != layer.data.shape or not np.allclose(data, layer.data) \
            or list(layer.features.get("letter", [])) != letters:  # redraw only what changed
        layer.data = data
        layer.features = {"letter": np.array(letters, dtype=object)}
        layer.text.refresh(layer.features)
    if viewer.layers.index(layer) != len(viewer.layers) - 1:
        viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))
    _hide_in_layer_list(viewer)


def _hide_in_layer_list(viewer: napari.viewer.Viewer) -> None:
    """Hide the letters' row in napari's layer list (they are part of the display, not a layer
    anyone works on); every other row is shown. No window (a headless viewer): nothing to do."""
    real = getattr(viewer, "__wrapped__", viewer)
    window = getattr(real, "window", None)
    qt_viewer = getattr(window, "_qt_viewer", None)
    view = getattr(qt_viewer, "layers", None) if qt_viewer is not None else None
    model = view.model() if view is not None and hasattr(view, "setRowHidden") else None
    if model is None:
        return
    for row in range(model.rowCount()):
        name = model.index(row, 0).data()
        view.setRowHidden(row, str(name) == LETTERS_LAYER)


def window_level_drag(viewer: napari.viewer.Viewer, event: Any) -> Generator[None, None, None]:
    """Ctrl + left-drag: horizontal changes the window width, vertical the level."""
    if event.button != 1 or "Control" not in {str(getattr(m, "name", m)) for m in event.modifiers}:
        return
    layer = target_image(viewer)
    if layer is None:
        return
    start = np.asarray(event.pos, dtype=float)
    lo, hi = (float(v) for v in layer.contrast_limits)
    span = max(float(np.subtract(*layer.contrast_limits_range[::-1])), 1e-6)
    event.handled = True
    yield
    while event.type == "mouse_move":
        dx, dy = np.asarray(event.pos, dtype=float) - start
        width = max((hi - lo) * float(np.exp(dx / 200.0)), span * 1e-4)
        level = 0.5 * (lo + hi) - dy * span / 500.0  # drag up = brighter
        layer.contrast_limits = (level - width / 2, level + width / 2)
        event.handled = True
        yield


def target_image(viewer: napari.viewer.Viewer) -> Any:
    from napari.layers import Image

    active = viewer.layers.selection.active
    if isinstance(active, Image):
        return active
    images = [x for x in viewer.layers if isinstance(x, Image) and x.visible]
    return images[-1] if images else None


def show_view(viewer: napari.viewer.Viewer, view: str) -> None:
    """Show the "axial", "coronal" or "sagittal" plane (display axes S, P, L)."""
    planes = {"axial": (0, 1, 2), "coronal": (1, 0, 2), "sagittal": (2, 0, 1)}
    if view not in planes:
        raise ValueError(f"View must be one of {', '.join(planes)}, not {view!r}.")
    install(viewer)
    viewer.dims.ndisplay = 2
    extra = tuple(range(viewer.dims.ndim - 3))
    viewer.dims.order = extra + tuple(len(extra) + a for a in planes[view])
    viewer.reset_view()

