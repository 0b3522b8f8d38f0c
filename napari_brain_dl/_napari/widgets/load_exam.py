""""Load exam" dock widget: several series of one exam -> aligned layers on one grid.

Pick files and/or a DICOM folder; the series are read in a worker thread and
listed (contrast, editable; file; shape; spacing; orientation). Choose the
reference grid and whether to register, then Load: every series is put on the
reference grid by `core.study.align_study` and shown as an image layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import napari
import napari.viewer
from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, Table
from napari.utils.notifications import show_error, show_info, show_warning

from ...core.progress import CancelToken
from .. import display, reader_preference
from ..dock_layout import adopt
from ..layers import study_to_layer_data
from . import in_turns, is_cancelled, run_task

CONTRASTS = ("t1", "t1c", "t2", "flair", "pd", "mra", "dwi", "other")
COLUMNS = ("contrast", "file", "shape", "spacing (mm)", "orientation")
REGISTER = {"auto": None, "yes": True, "no": False}
_FILTER = "Scans (*.nii *.nii.gz *.mgz *.mgh *.nrrd *.nhdr *.mha *.mhd);;All files (*)"


class LoadExamWidget(Container):
    """Load the series of one exam as aligned layers.

    Attributes tests may set: ``files.value``, ``folder.value``, ``table``,
    ``reference.value``, ``register.value``; ``synchronous = True`` runs the
    work on the calling thread.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = viewer
        self.synchronous = False
        self._series: list[tuple[str, Any]] = []  # (path, Volume), in table order
        self._cancel: CancelToken | None = None
        self.files = FileEdit(mode="rm", label="Files", filter=_FILTER)
        self.folder = FileEdit(mode="d", label="DICOM folder", value="")
        self.table = Table(value={column: [] for column in COLUMNS}, label="Series")
        self.reference = ComboBox(label="Reference grid", choices=["auto"], value="auto")
        self.register = ComboBox(label="Register", choices=list(REGISTER), value="auto",
                                 tooltip="auto: register only when the headers say the series "
                                         "are not in one space")
        self.load_button = PushButton(text="Load exam")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(label="Progress", value=0, max=1, visible=False)
        self.status = Label(label="", value="Choose the files or the DICOM folder of one exam.")
        self.status.native.setWordWrap(True)  # a long error stays readable here, unlike a toast
        self.reader_button = PushButton(text="Open scans with Brain DL in File > Open",
                                        tooltip="Sets napari's reader preference for NIfTI, MGZ, NRRD "
                                                "and MHA (Preferences > Plugins), so napari stops asking")
        self.reader_button.visible = bool(reader_preference.missing())
        self.extend([self.files, self.folder, self.table, self.reference, self.register,
                     self.load_button, self.cancel_button, self.bar, self.status, self.reader_button])
        self.reader_button.changed.connect(self.prefer_reader)
        self.files.changed.connect(self.read_series)
        self.folder.changed.connect(self.read_series)
        self.load_button.changed.connect(self.load)
        self.cancel_button.changed.connect(self.cancel)
        self.table.changed.connect(self._update_reference_choices)
        display.install(viewer)
        adopt(self)  # one scrollable tab in the shared dock column

    def prefer_reader(self, *_: Any) -> None:
        """The user's click: make this plugin napari's reader for the scan formats."""
        changed = reader_preference.prefer()
        reader_preference.remember(True)
        self._show_reader_answer(True, changed)

    def offer_reader(self) -> bool:
        """Ask once (first exam loaded) whether File > Open should use Brain DL; True if asked."""
        viewer = getattr(self._viewer, "__wrapped__", self._viewer)  # napari hands plugins a proxy
        window = getattr(getattr(viewer, "window", None), "_qt_window", None)
        return reader_preference.offer(window, on_answer=self._show_reader_answer)

    def _show_reader_answer(self, yes: bool, changed: list[str]) -> None:
        self.reader_button.visible = bool(reader_preference.missing())
        if yes:
            self.status.value = (f"File > Open now opens {', '.join(changed)} with Brain DL (change it in "
                                 "Preferences > Plugins)." if changed else "Brain DL already opens scans.")

    # -- reading the series ---------------------------------------------------------
    def paths(self) -> list[str]:
        """Chosen files, then the DICOM folder."""
        files = [str(p) for p in (self.files.value or ()) if str(p) not in ("", ".")]
        folder = str(self.folder.value or "")
        if folder not in ("", ".") and Path(folder).is_dir():
            files.append(folder)
        return files

    def read_series(self, *_: Any) -> None:
        """Read every chosen series (worker thread) and list them in the table."""
        self._show_normalised_paths()
        paths = self.paths()
        self._fill_table([])  # the table never lists an exam other than the chosen files
        if not paths:
            return
        self._start("Reading", lambda progress, cancel, _notify: _read_all(paths, progress, cancel),
                    self._show_series)

    def _show_normalised_paths(self) -> None:
        """Show the chosen paths absolute and without ``..`` (as typed they can hide the folder)."""
        for field, many in ((self.files, True), (self.folder, False)):
            raw = [str(p) for p in (field.value if many else [field.value]) or () if str(p) not in ("", ".")]
            clean = [os.path.abspath(p) for p in raw]
            if clean != raw:
                with field.changed.blocked():
                    field.value = clean if many else clean[0]

    def _show_series(self, read: tuple[list[tuple[str, Any]], list[str]]) -> None:
        """List what was read; name the files that could not be read (the others still load)."""
        series, failed = read
        self._fill_table(series)
        text = f"{len(series)} series read; check the contrasts, then Load exam."
        if failed:
            text = f"{len(series)} series read; skipped {len(failed)}: " + " ".join(failed)
            more = f" (and {len(failed) - 1} more; see Load exam)" if len(failed) > 1 else ""
            first = failed[0] if len(failed[0]) <= 160 else failed[0][:157] + "..."
            show_warning(f"Skipped {first}{more}")
        self._finish(text)

    def _fill_table(self, series: list[tuple[str, Any]]) -> None:
        from ...core.study import guess_contrast

        self._series = series
        rows = []
        for path, vol in series:
            guess = vol.meta.get("series_contrast") or guess_contrast(path)
            rows.append([guess, Path(path).name, " x ".join(map(str, vol.shape)),
                         " x ".join(f"{s:.2f}" for s in vol.spacing), vol.axcodes])
        self.table.value = {column: [row[i] for row in rows] for i, column in enumerate(COLUMNS)}
        self._update_reference_choices()

    def contrasts(self) -> list[str]:
        """Contrast names as they stand in the table (lower case)."""
        return [str(self.table.data[row, 0]).strip().lower() for row in range(len(self._series))]

    def _update_reference_choices(self, *_: Any) -> None:
        names = [c for c in dict.fromkeys(self.contrasts()) if c]
        current = self.reference.value
        self.reference.choices = ["auto", *names]
        self.reference.value = current if current in self.reference.choices else "auto"

    # -- loading the exam -------------------------------------------------------------
    def load(self, *_: Any) -> None:
        """Align every listed series onto the reference grid and add them as layers."""
        from ...core.study import align_study

        if not self._series:
            show_warning("Choose the files or the DICOM folder of an exam first.")
            return
        names = self.contrasts()
        unknown = [n for n in names if n not in CONTRASTS]
        if unknown:
            show_warning(f"Unknown contrast {unknown[0]!r}: use one of {', '.join(CONTRASTS)}.")
            return
        if len(set(names)) != len(names):
            show_error("Two series have the same contrast; give each series its own contrast.")
            return
        volumes = {name: vol for name, (_, vol) in zip(names, self._series, strict=True)}
        for name, vol in volumes.items():
            vol.name = name
        reference = None if self.reference.value == "auto" else self.reference.value
        register = REGISTER[self.register.value]

        def work(progress: Any, cancel: CancelToken, _notify: Any) -> tuple[Any, list[Any]]:
            from napari.layers import Layer

            study = align_study(volumes, reference, register, progress=progress, cancel=cancel)
            display.warm_up()  # napari's lazy imports happen here, not on the UI thread
            # windows, reorientation and the layer models are built off the UI thread
            return study, [Layer.create(*data) for data in study_to_layer_data(study)]

        self._start("Loading", work, self._add_layers)

    def _add_layers(self, result: tuple[Any, list[Any]]) -> None:
        """Add the layers one per event-loop turn, so the window repaints between them."""
        study, layers = result
        self.load_button.enabled = False  # until the last layer is in

        def done() -> None:
            self._viewer.layers.selection.active = self._viewer.layers[study.reference]
            notes = ", ".join(f"{c}: {a}" for c, a in study.alignment.items())
            self._finish(f"Exam loaded on the {study.reference} grid ({notes}).")
            self.offer_reader()  # the first exam only; a remembered answer is never asked again

        in_turns([*(lambda layer=layer: self._viewer.add_layer(layer) for layer in layers), done],
                 self.synchronous)

    def cancel(self, *_: Any) -> None:
        """Ask the running step to stop; the viewer is left as it was."""
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.value = "Cancelling..."

    # -- worker plumbing ----------------------------------------------------------------
    def _start(self, verb: str, work: Any, on_done: Any) -> None:
        self._cancel = CancelToken()
        self.load_button.enabled = False
        self.cancel_button.enabled = True
        self.bar.visible, self.bar.max, self.bar.value = True, 1, 0
        self.status.value = f"{verb}..."
        self._worker = run_task(work, on_done=on_done, on_progress=self._progress,
                                on_error=self._error, synchronous=self.synchronous, cancel=self._cancel)

    def _progress(self, done: int, total: int, text: str) -> None:
        self.bar.max = max(int(total), 1)
        self.bar.value = min(int(done), self.bar.max)
        self.status.value = text

    def _error(self, exc: BaseException) -> None:
        if is_cancelled(exc):
            show_info("Loading cancelled; nothing was added.")
            self._finish("Cancelled.")
            return
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        show_error(text if len(text) < 90 else "Loading failed; the reason is in the Load exam panel.")
        self._finish(f"Failed: {text}")

    def _finish(self, text: str) -> None:
        self.load_button.enabled = True
        self.cancel_button.enabled = False
        self.bar.visible = False
        self.status.value = text
        self._cancel = None


def _read_all(paths: list[str], progress: Any, cancel: CancelToken
              ) -> tuple[list[tuple[str, Any]], list[str]]:
    """Load every path (all series of a multi-series DICOM folder).

    Returns:
        The (path, Volume) pairs read, and one sentence per path that could not be read
        (a bad file never blocks the good ones).
    """
    from ...core.io import SeriesChoiceError, load

    out: list[tuple[str, Any]] = []
    failed: list[str] = []
    for index, path in enumerate(paths):
        cancel.raise_if_cancelled()
        progress(index, len(paths), f"Reading {Path(path).name}")
        try:
            try:
                out.append((path, load(path)))
            except SeriesChoiceError as exc:
                if not Path(path).is_dir():
                    raise
                out.extend((path, load(path, series_uid=uid)) for uid in exc.choices)
        except (OSError, ValueError) as exc:  # ImageReadError is a ValueError
            name = Path(path).name
            reason = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).replace(str(path), name)
            failed.append(f"{reason.rstrip('.')}." if name in reason else f"{name}: {reason.rstrip('.')}.")
    progress(len(paths), len(paths), "Series read")
    return out, failed
