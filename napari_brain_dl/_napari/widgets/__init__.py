"""Dock widgets (one module each) and the helper that runs their work off the UI thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...core.progress import Cancelled, CancelToken

#: Signature of the work a widget hands to `run_task`: work(progress, cancel) -> result.
Work = Callable[[Callable[[int, int, str], None], CancelToken], Any]


def run_task(work: Work, *, on_done: Callable[[Any], None], on_progress: Callable[[int, int, str], None],
             on_error: Callable[[BaseException], None], synchronous: bool = False,
             cancel: CancelToken | None = None) -> Any:
    """Run `work` in a napari worker thread (or inline when `synchronous`).

    `work` gets a thread-safe ``progress(done, total, text)`` callback (relayed
    to `on_progress` on the UI thread) and a `CancelToken`. `on_done` gets the
    result, `on_error` the exception (`Cancelled` included); both run on the
    UI thread, so only they may touch layers and widgets.

    Returns:
        The worker (threaded) or None (synchronous).
    """
    cancel = cancel or CancelToken()
    if synchronous:
        try:
            result = work(on_progress, cancel)
        except Exception as exc:  # handed to the widget, like the threaded path
            on_error(exc)
            return None
        on_done(result)
        return None

    from napari.qt.threading import create_worker
    from qtpy.QtCore import QObject, Signal

    class _Relay(QObject):
        progressed = Signal(int, int, str)

    relay = _Relay()
    relay.progressed.connect(on_progress)
    worker = create_worker(work, relay.progressed.emit, cancel, _start_thread=False,
                           _ignore_errors=True)  # on_error reports them
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker._brain_dl_relay = relay  # keep the relay alive as long as the worker
    worker.start()
    return worker


def is_cancelled(exc: BaseException) -> bool:
    """True when `exc` means the user pressed Cancel."""
    return isinstance(exc, Cancelled)
