"""Progress callbacks and cancellation shared by every long-running core function.

Core functions take ``progress(done, total, text)`` and a `CancelToken`; the
widget turns them into a napari progress bar and a Cancel button, the CLI
into a tqdm bar on stderr (plain lines when stderr is not a terminal). Neither is required.
"""

from __future__ import annotations

import atexit
import sys
import threading
from typing import Any, Protocol, TextIO

from tqdm import tqdm


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


class _Lines:
    """A file for tqdm that turns its carriage-return redraws into plain lines (logs, pipes)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").rstrip()
        if line and line != self.last:  # tqdm redraws the final state when it closes
            self.stream.write(line + "\n")
            self.last = line
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


class StderrProgress:
    """Progress for the command line through tqdm on stderr.

    A bar redrawn in place when stderr is a terminal; otherwise plain lines (no carriage
    return): none in the first two seconds (a command refusing its input prints its one error
    sentence alone), then at most one a second, and always the last. A new bar starts when
    the total changes, the count goes back, or stderr is another stream; an unfinished bar is
    dropped at exit.

    Example:
        >>> show = StderrProgress()
        >>> show(10, 10, "done")  # doctest: +SKIP
        [10/10] done 100% 00:00<00:00
    """

    def __init__(self) -> None:
        self._bar: Any = None
        self._stream: TextIO | None = None
        atexit.register(self.drop)

    def __call__(self, done: int, total: int, text: str) -> None:

        done, total = int(done), int(total)  # some tasks count in fractions: whole steps are shown
        bar = self._bar
        if bar is None or bar.total != total or done < bar.n or self._stream is not sys.stderr:
            self.drop()
            self._stream = stream = sys.stderr
            tty = bool(getattr(stream, "isatty", lambda: False)())
            lines = "[{n_fmt}/{total_fmt}] {desc} {percentage:.0f}% {elapsed}<{remaining}"
            bar = self._bar = tqdm(
                total=total,
                initial=done,
                desc=text,
                unit="step",
                file=stream if tty else _Lines(stream),
                position=0,
                mininterval=0.1 if tty else 1.0,
                delay=0.0 if tty else 2.0,
                dynamic_ncols=tty,
                ascii=not tty,
                bar_format=None if tty else lines,
            )
        bar.set_description_str(text, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.delay = 0.0  # the final state is written even when it came within the delay
            bar.close()
            self._bar = None

    def drop(self) -> None:
        """Close an unfinished bar without printing it again (the error message stays last)."""
        if self._bar is not None:
            self._bar.leave = False
            self._bar.close()
            self._bar = None


stderr_progress = StderrProgress()
"""The CLI's progress callback (a `StderrProgress`)."""
