"""Figures of the exam report (matplotlib, Agg): key axial slices with overlays, volumes over time.

Slices are shown in the radiological convention: every volume is reoriented exactly (axis
permutation and flips, `volume.reorient`) to `DISPLAY_AXCODES` (S, P, L), so an axial slice
has anterior at the top and columns running from the patient's right (screen left) to the
patient's left (screen right). Each panel carries the letters R, L, A, P on its edges.
"""

from __future__ import annotations

import io as _io
from typing import TYPE_CHECKING, Any

import numpy as np

from .volume import DISPLAY_AXCODES, Volume, reorient

if TYPE_CHECKING:
    from .report import ExamReport

#: BraTS 2023 label colours (as in the viewer): 1 necrotic core, 2 edema, 3 enhancing (4: older ET).
LABEL_COLORS = {1: (1.0, 0.15, 0.1), 2: (0.1, 0.85, 0.2), 3: (1.0, 0.9, 0.0), 4: (1.0, 0.9, 0.0)}
LABEL_NAMES = {1: "necrotic / non-enhancing core", 2: "edema", 3: "enhancing"}
SYNTHETIC_COLOR = "#d000d0"


def shown(volume: Volume) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(data in display orientation S, P, L; its voxel spacing along those axes)."""
    vol, _ = reorient(volume, DISPLAY_AXCODES)
    return np.asarray(vol.data), vol.spacing


def key_slices(exam: ExamReport, count: int = 3) -> list[int]:
    """Axial slice indices (display axis 0) to show: the largest tumour section and two more.

    With labels: the slice of largest tumour area and the slices at a quarter and three
    quarters of the axial extent of the largest connected tumour component. Otherwise the
    heatmap's peak slice, else the middle.
    """
    if exam.labels is not None:
        data, _ = shown(exam.labels)
        area = (_largest_component(data > 0)).sum(axis=(1, 2))
        if area.any():
            rows = np.flatnonzero(area)
            lo, hi = int(rows[0]), int(rows[-1])
            picks = [int(np.argmax(area)), lo + (hi - lo) // 4, lo + 3 * (hi - lo) // 4]
            return sorted(dict.fromkeys(picks))[:count]
    if exam.heatmaps:
        data, _ = shown(exam.heatmaps[0].volume)
        return [int(np.argmax(np.abs(data).sum(axis=(1, 2))))]
    data, _ = shown(next(iter(exam.scans.values())))
    return [data.shape[0] // 2]


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of `mask` (the main tumour, not a small false positive)."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask
    return lab == int(np.argmax(np.bincount(lab.ravel())[1:])) + 1


def _window(data: np.ndarray) -> tuple[float, float]:
    fg = data[data > data.min()] if np.any(data > data.min()) else data.ravel()
    lo, hi = np.percentile(fg, [0.5, 99.5]) if fg.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1)


def _letters(ax: Any) -> None:
    style = {"color": "white", "fontsize": 11, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.02, 0.5, "R", ha="left", va="center", **style)
    ax.text(0.98, 0.5, "L", ha="right", va="center", **style)
    ax.text(0.5, 0.98, "A", ha="center", va="top", **style)
    ax.text(0.5, 0.02, "P", ha="center", va="bottom", **style)


def _base(ax: Any, data: np.ndarray, spacing: tuple[float, float, float], k: int) -> None:
    lo, hi = _window(data)
    ax.imshow(data[k], cmap="gray", vmin=lo, vmax=hi, aspect=spacing[1] / spacing[2],
              interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("black")


def _labels_rgba(labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    rgba = np.zeros((*labels.shape, 4), np.float32)
    for value, color in LABEL_COLORS.items():
        rgba[labels == value] = (*color, alpha)
    return rgba


def slice_figure(exam: ExamReport, k: int) -> Any:
    """One row of panels for axial slice `k`: scans, the labels overlay, heatmaps, synthetic images."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    panels = _panels(exam)
    cols = min(5, len(panels))
    rows = -(-len(panels) // cols)
    lines = max(t.count("\n") for t, _, _ in panels)
    fig = Figure(figsize=(3.3 * cols, (3.4 + 0.2 * lines) * rows), facecolor="white", layout="constrained")
    for i, (title, draw, synthetic) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        draw(ax, k)
        _letters(ax)
        head, _, below = title.partition("\n")  # heatmaps: their check verdicts go under the image
        ax.set_title(head, fontsize=9, color=SYNTHETIC_COLOR if synthetic else "black")
        if below:
            ax.set_xlabel(below, fontsize=8)
        if synthetic:
            for spine in ax.spines.values():
                spine.set_edgecolor(SYNTHETIC_COLOR)
                spine.set_linewidth(4)
            ax.text(0.5, 0.1, "SYNTHETIC - not acquired", transform=ax.transAxes, ha="center",
                    color="white", fontsize=9, fontweight="bold",
                    bbox={"facecolor": SYNTHETIC_COLOR, "edgecolor": "none", "pad": 2})
    return fig


def _panels(exam: ExamReport) -> list[tuple[str, Any, bool]]:
    """(title, draw(ax, k), synthetic) for every panel of a slice row."""
    scans = {name: shown(vol) for name, vol in exam.scans.items()}
    ref_name = next(iter(scans))
    panels: list[tuple[str, Any, bool]] = []

    def scan_panel(name: str) -> Any:
        return lambda ax, k: _base(ax, *scans[name], k)

    for name in scans:
        synthetic = name in exam.synthetic
        panels.append((f"{name} (SYNTHETIC)" if synthetic else name, scan_panel(name), synthetic))
    if exam.labels is not None:
        labels, _ = shown(exam.labels)
        for name in [n for n in scans if n not in exam.synthetic][:2] or [ref_name]:
            def overlay(ax: Any, k: int, name: str = name) -> None:
                _base(ax, *scans[name], k)
                ax.imshow(_labels_rgba(labels[k]), aspect=scans[name][1][1] / scans[name][1][2],
                          interpolation="nearest")
            panels.append((f"{name} + tumour labels", overlay, name in exam.synthetic))
    for heat in exam.heatmaps:
        hdata, _ = shown(heat.volume)
        scale = float(np.abs(hdata).max()) or 1.0

        def heat_panel(ax: Any, k: int, hdata: np.ndarray = hdata, scale: float = scale) -> None:
            _base(ax, *scans[ref_name], k)
            h = np.abs(hdata[k]) / scale
            ax.imshow(np.ma.masked_less(h, 0.15), cmap="inferno", vmin=0, vmax=1, alpha=0.6,
                      aspect=scans[ref_name][1][1] / scans[ref_name][1][2], interpolation="bilinear")
        verdicts = "\n".join(f"{c['name']}: {c['verdict']}" for c in heat.checks) or "checks not run"
        panels.append((f"{heat.name}\n{verdicts}", heat_panel, False))
    return panels


def history_figure(history: list[tuple[str, dict[str, Any]]]) -> Any:
    """Whole tumour, tumour core and enhancing volume (mL) over the exams of one patient."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.2), facecolor="white")
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(history))
    for key, label, color in (("whole_tumor_ml", "whole tumour", "#2a9d2a"),
                              ("tumor_core_ml", "tumour core", "#d62728"),
                              ("enhancing_ml", "enhancing", "#c8a800")):
        ax.plot(x, [m.get(key, np.nan) for _, m in history], "o-", label=label, color=color)
    ax.set_xticks(x, [d for d, _ in history], rotation=20, fontsize=8)
    ax.set_ylabel("volume (mL)")
    ax.set_title("Volumes over time", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def png(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
