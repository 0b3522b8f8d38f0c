"""The CLI's progress: a tqdm bar on a terminal, plain lines (no carriage return) in logs."""

from __future__ import annotations

import io

import pytest

from napari_brain_dl.core.progress import StderrProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    show = StderrProgress()
    for done in range(11):
        show(done, 10, "Running model" if done < 10 else "Writing")
    show(0, 3, "Next task")
    show(3, 3, "Next task")
    show(1, 4, "Refused")  # a command that stops here prints only its error sentence
    show.drop()
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 2, lines  # nothing in the first two seconds but each final state
    assert lines[0].startswith("[10/10] Writing 100% ") and lines[1].startswith("[3/3] Next task 100% ")


def test_lines_at_most_once_a_second(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tqdm.std

    clock = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])
    show = StderrProgress()
    for done in range(21):
        show(done, 20, "Running model")
        clock[0] += 0.25  # four calls a second
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("[8/20] Running model 40% ")  # after the first two seconds
    assert lines[-1].startswith("[20/20] Running model 100% ")
    assert 4 <= len(lines) <= 5 and len(set(lines)) == len(lines), lines


def test_bar_on_a_terminal_and_an_unfinished_bar_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    show = StderrProgress()
    show(2, 5, "Running model")
    assert term.getvalue().startswith("\rRunning model:") and "2/5" in term.getvalue()
    written = len(term.getvalue())
    show.drop()
    assert "3/5" not in term.getvalue()[written:] and show._bar is None
    show(1, 5, "again")  # a new bar after a dropped one
    assert "1/5" in term.getvalue()[written:]
    show.drop()
