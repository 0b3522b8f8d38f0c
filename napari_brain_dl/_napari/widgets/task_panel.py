"""Run / Cancel plumbing shared by the model widgets: progress bar, status line, cancel token."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from napari.utils.notifications import show_error, show_info, show_warning

from ...core.progress import CancelToken
from . import Work, is_cancelled, run_task


class TaskPanel:
    """Mixin for a dock widget with ``run_button``, ``cancel_button``, ``status`` and ``synchronous``.

    `task_controls` creates those three (wired to the widget's ``run`` and `cancel`);
    `start_task` runs the work off the UI thread with the widget's own progress bar; `cancel`
    asks it to stop; `_finish` puts the buttons back. A result that arrives after
    Cancel is dropped by `cancelled_result`.
    """

    run_button: Any
    cancel_button: Any
    status: Any
    synchronous: bool
    run: Callable[..., Any]
    _cancel: CancelToken | None = None
    _running = False
    bar: Any = None
    _clock: Any = None
    _step = ""
    _started = 0.0
    worker: Any = None

    def task_controls(self, hint: str, run_text: str = "Run") -> list[Any]:
        """Create ``run_button``, ``cancel_button``, ``bar`` and ``status``, wire them to `run` / `cancel`.

        Returns the widgets to place: the Run / Cancel row, the progress bar (a percentage,
        shown while a task runs) and the status line showing `hint` (with the seconds elapsed
        while a task runs, so a long single step is never silent).
        """
        from magicgui.widgets import Container, Label, ProgressBar, PushButton
        from qtpy.QtCore import QTimer

        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(value=0, max=100, visible=False, label="")
        self.bar.native.setFormat("%p %")
        self.status = Label(label="", value=hint)
        wrapping(self.status)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self._clock = QTimer(self.status.native)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)
        row = Container(layout="horizontal", labels=False, widgets=[self.run_button, self.cancel_button])
        return [row, self.bar, self.status]

    def start_task(self, work: Work, title: str, status: str, on_done: Callable[[Any], None],
                   on_error: Callable[[BaseException], None]) -> None:
        """Disable Run, enable Cancel, show a progress bar and run `work` (inline when synchronous)."""
        self._cancel = CancelToken()
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self._running = True  # (no napari activity-panel bar: its updates process events, ~0.5 s)
        self.bar.tooltip = title
        self._step, self._started = status, time.monotonic()
        self.bar.value, self.bar.visible = 0, True
        self._clock.start()
        self.status.value = status
        self.worker = run_task(work, on_done=on_done, on_progress=self._progress, on_error=on_error,
                               on_note=show_warning, synchronous=self.synchronous, cancel=self._cancel)

    def cancel(self, *_: Any) -> None:
        """Stop the running task at its next check; nothing is added."""
        if self._cancel is not None:
            self._cancel.cancel()
            self.status.value = "Cancelling..."

    def cancelled_result(self) -> bool:
        """True (and the panel reset) when the result arrived after Cancel and must be dropped."""
        if self._cancel is None or self._cancel.cancelled:
            self._finish("Cancelled; nothing was added.")
            return True
        return False

    def task_failed(self, exc: BaseException, what: str) -> None:
        """Report a failed or cancelled task in one sentence; nothing was added.

        Cancel gives an info, a ValueError (bad input) its own sentence, anything
        else "<what> failed: <reason>".
        """
        if is_cancelled(exc):
            show_info(f"{what} cancelled; nothing was added.")
            self._finish("Cancelled; nothing was added.")
            return
        text = str(exc) if isinstance(exc, ValueError) else f"{what} failed: {one_sentence(exc)}"
        show_error(text)
        self._finish(text)

    def say(self, text: str) -> None:
        """A warning notification repeated on the status line (bad choices before a run)."""
        show_warning(text)
        self.status.value = text

    def _progress(self, done: int, total: int, text: str) -> None:
        if not self._running:
            return
        total = max(int(total), 1)
        self._step = text
        try:
            self.bar.value = round(100 * min(int(done), total) / total)
            self.status.value = text
        except RuntimeError:  # the dock was closed while the task ran: nobody to tell
            self._running = False

    def _tick(self) -> None:
        """Once a second while a task runs: the current step and the seconds elapsed."""
        if not self._running:
            self._clock.stop()
            return
        self.status.value = f"{self._step} ({time.monotonic() - self._started:.0f} s)"

    def _finish(self, text: str) -> None:
        self._clock.stop()
        self.bar.visible = False
        self._running = False
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self.status.value = text
        self._cancel = None


def wrapping(label: Any) -> Any:
    """A magicgui Label whose text wraps in the column's width: a long sentence never widens
    the dock (no sideways scrolling, no button pushed out of view). Returns `label`."""
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def one_sentence(exc: BaseException) -> str:
    """One line for a notification (TorchScript puts the real message on its last line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[-1] if "TorchScript interpreter" in lines[0] else lines[0]
    return re.sub(r"^[\w.]*(Error|Exception): ", "", line)
