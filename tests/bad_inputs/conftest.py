"""Print the bad-input table (case -> command -> outcome -> message) at the end of the session."""

from __future__ import annotations

from typing import Any

from .corpus import ROWS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    terminalreporter.section("bad-input corpus: case -> message")
    width = max(len(r[0]) for r in ROWS)
    where = max(len(r[1]) for r in ROWS)
    for case, command, outcome, message in ROWS:
        line = f"{case:<{width}}  {command:<{where}}  {outcome:<8} {message}"
        terminalreporter.write_line(line[:220])
