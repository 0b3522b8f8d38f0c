"""Progress callbacks and cancellation shared by every long-running core function.

Core functions take ``progress(done, total, text)`` and a `CancelToken`; the
widget turns them into a napari progress bar and a Cancel button, the CLI
into a line on stderr. Neither is required.
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol


class ProgressCallback(Protocol):
    """Called with work done so far, total work, and what is happening."""

    def __call__(self, done: int, total: int, text: str) -> None: ...


class Cancelled(Exception):
    """Raised inside a core function when its `CancelToken` was cancelled."""


class CancelToken:
    """Thread-safe flag a UI sets and a worker polls between steps.

    Example:
        >>> token = CancelToken()
        >>> token.cancel()
        >>> token.cancelled
        True
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the running work to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once `cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `Cancelled` when cancellation was requested."""
        if self._event.is_set():
            raise Cancelled("Cancelled by the user.")


def no_progress(done: int, total: int, text: str) -> None:
    """A progress callback that ignores everything."""


def check(cancel: CancelToken | None) -> None:
    """Raise `Cancelled` if `cancel` is set (accepts None)."""
    if cancel is not None:
        cancel.raise_if_cancelled()


def stderr_progress(done: int, total: int, text: str) -> None:
    """Progress for the command line: one updating line on stderr."""
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r[{done}/{total}] {text}".ljust(70) + end)
    sys.stderr.flush()
