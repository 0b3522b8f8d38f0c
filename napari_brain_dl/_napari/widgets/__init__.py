"""Dock widgets (one module each) and the helper that runs their work off the UI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...core.progress import Cancelled, CancelToken

#: The work a widget hands to `run_task`: work(progress, cancel, notify) -> result.
Work = Callable[[Callable[[int, int, str], None], CancelToken, Callable[[str], None]], Any]


def run_task(work: Work, *, on_done: Callable[[Any], None], on_progress: Callable[[int, int, str], None],
             on_error: Callable[[BaseException], None], on_note: Callable[[str], None] | None = None,
             synchronous: bool = False, cancel: CancelToken | None = None) -> Any:
    """Run `work` in a napari worker thread (or inline when `synchronous`).

    `work` gets a thread-safe ``progress(done, total, text)`` callback (relayed
    to `on_progress` on the UI thread), a `CancelToken` and a ``notify(text)``
    callback for notes such as out-of-memory fallbacks (relayed to `on_note`).
    `on_done` gets the result, `on_error` the exception (`Cancelled` included)
    and nothing else sees it; all run on the UI thread, so only they may touch
    layers and widgets.

    Returns:
        The worker (threaded) or None (synchronous).
    """
    cancel = cancel or CancelToken()
    on_note = on_note or show_warning_later
    if synchronous:
        try:
            result = work(on_progress, cancel, on_note)
        except Exception as exc:  # handed to the widget, like the threaded path
            on_error(exc)
            return None
        on_done(result)
        return None

    from napari.qt.threading import create_worker
    from qtpy.QtCore import QObject, Signal

    class _Relay(QObject):
        progressed = Signal(int, int, str)
        noted = Signal(str)

    relay = _Relay()
    relay.progressed.connect(on_progress)
    relay.noted.connect(on_note)
    # Handlers passed at creation: errors reach on_error only, never a re-raise on the UI thread.
    def progress(done: float, total: float, text: str) -> None:  # Qt's int signal garbles a float
        relay.progressed.emit(int(done), int(total), str(text))

    worker = create_worker(work, progress, cancel, relay.noted.emit, _start_thread=False,
                           _connect={"returned": on_done, "errored": on_error}, _ignore_errors=True)
    worker._brain_dl_relay = relay  # keep the relay alive as long as the worker
    worker.start()
    return worker


#: Pause between two `in_turns` steps. Not 0: Qt runs zero-delay timers posted by a zero-delay
#: timer in the same pass, so no repaint or input would come between the steps.
TURN_MS = 15


def in_turns(steps: list[Callable[[], None]], synchronous: bool = False) -> None:
    """Run `steps` in order, each in its own event-loop turn (`TURN_MS` apart), so the window
    repaints and takes input between them.

    Adding a layer makes napari and vispy build its visuals on the UI thread (0.1-0.3 s each);
    one layer per turn keeps every freeze to one layer's worth. `synchronous` (tests): all now.
    """
    pending = list(steps)
    if synchronous:
        for step in pending:
            step()
        return
    from qtpy.QtCore import QTimer

    def next_step() -> None:
        if pending:
            pending.pop(0)()
        if pending:
            QTimer.singleShot(TURN_MS, next_step)

    next_step()


def show_warning_later(text: str) -> None:
    """Default note handler: a napari warning notification."""
    from napari.utils.notifications import show_warning

    show_warning(text)


def is_cancelled(exc: BaseException) -> bool:
    """True when `exc` means the user pressed Cancel."""
    return isinstance(exc, Cancelled)
