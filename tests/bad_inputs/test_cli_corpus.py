"""Every CLI subcommand that reads a scan, against every case of the bad-input corpus.

A refused case must exit 3 with exactly one error sentence that names the file, leave no file
behind and print no traceback; an accepted one exits 0 (a warned one says why). Commands whose
accepted runs take seconds (real networks) get the refusals and the control only;
the accepted dtype / geometry cases run on the fast commands. The table of outcomes is printed at
the end of the session (tests/bad_inputs/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bad_inputs.commands import COMMANDS, GROUPS, PAIRED, available_commands, run_cli, write_tiny_card
from bad_inputs.corpus import ROWS, Case, build_corpus

#: Commands whose accepted runs are fast enough for every case (tiny or rule models, plain I/O).
FAST = {"info", "convert", "run", "skullstrip", "segment", "report"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, rule_card: str) -> tuple[list[Case], dict[str, str]]:
    root = tmp_path_factory.mktemp("bad_inputs")
    cases = build_corpus(root / "corpus")
    cards = {"tiny": write_tiny_card(root / "tiny"), "rule": rule_card}
    return cases, cards


def _scans(case: Case, good: Path) -> tuple[str, str]:
    first, second = {"good": (case.path, good), "self": (case.path, case.path),
                     "second": (good, case.path)}[case.pair]
    return str(first), str(second)


def _short(text: str, case: Case) -> str:
    return text.replace(str(case.path.parent) + "/", "")[:150]


def check_case(command: str, case: Case, good: Path, cards: dict[str, str], out: Path) -> list[str]:
    """Run one command on one case; return the broken promises (empty when all is well)."""
    expect = case.expectation(GROUPS.get(command, "brain"))
    first, second = _scans(case, good)
    result = run_cli(COMMANDS[command](first, second, cards, out), out)
    message = result.message
    left = [p.name for p in result.files]
    problems = []
    if result.code not in (0, 3) or "Traceback" in result.err:
        problems.append(f"crashed (exit {result.code}): {result.err.strip().splitlines()[-1:]}")
        outcome = "CRASH"
    elif expect == "refuse":
        outcome = "refused" if result.code == 3 else "ACCEPTED"
        if result.code != 3:
            problems.append("was accepted")
        elif len(result.error_lines) != 1:
            problems.append(f"{len(result.error_lines)} error lines")
        elif not any(n in message for n in case.names):
            problems.append(f"the message does not name the file: {message!r}")
        if case.problem.lower() not in message.lower():
            problems.append(f"the message does not say {case.problem!r}: {message!r}")
        if left:
            problems.append(f"left files behind: {left}")
    else:
        outcome = "warned" if expect == "warn" else "accepted"
        if result.code != 0:
            problems.append(f"was refused: {message!r}")
        elif expect == "warn" and case.problem.lower() not in (result.out + result.err).lower():
            problems.append(f"no warning about {case.problem!r}")
        if any(name.startswith(".") for name in left):
            problems.append(f"left a temporary file: {left}")
    ROWS.append((case.name, command, outcome, _short(message, case)))
    return [f"{command} / {case.name}: {p}" for p in problems]


@pytest.mark.parametrize("command", available_commands())
def test_every_case_ends_in_a_clear_outcome(
    command: str, corpus: tuple[list[Case], dict[str, str]], tmp_path: Path
) -> None:
    cases, cards = corpus
    good = cases[0].path
    failures: list[str] = []
    for i, case in enumerate(cases):
        if case.paired_only and command not in PAIRED:
            continue
        expect = case.expectation(GROUPS.get(command, "brain"))
        if command not in FAST and expect != "refuse" and i:
            continue  # slow command: the accepted cases run on the fast ones
        failures += check_case(command, case, good, cards, tmp_path / str(i))
    assert not failures, "\n".join(failures)
