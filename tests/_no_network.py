"""A pytest plugin that blocks network access for the whole test session.

Registered once in ``tests/conftest.py`` (``pytest_plugins``). From ``pytest_configure`` to
``pytest_unconfigure`` every Python-level way out of the machine raises `NetworkBlockedError`:

- ``connect`` / ``connect_ex`` / ``bind`` / ``sendto`` / ``sendmsg`` on AF_INET / AF_INET6 sockets
  (``socket.create_connection``, urllib, http.client, requests, asyncio all end there);
- name resolution of anything but a numeric or loopback address (``getaddrinfo``,
  ``gethostbyname[_ex]``, ``gethostbyaddr``), so not even a DNS query leaves.

Allowed, always: AF_UNIX sockets and socket pairs (Qt and Xvfb talk over ``/tmp/.X11-unix``,
multiprocessing and asyncio use socket pairs) and ``socket.gethostname()`` (no traffic).

The explicit allow-list for loopback (127.0.0.0/8, ::1, "localhost"):

- ``bind`` to a loopback address, always: it sends nothing, and urllib3 probes IPv6 that way when
  it is imported (``HAS_IPV6 = _has_ipv6("::1")``, pulled in by the model libraries);
- ``connect`` / ``sendto`` to loopback only in a test marked ``@pytest.mark.allow_loopback("why")``,
  e.g. a future dask ``LocalCluster``. Nothing in the suite needs it today.

A real host is never allowed.

Every blocked attempt is recorded with the test that made it; a code path that catches the
error and carries on still fails the session at the end, with the attempts listed in the
terminal summary. Tests that provoke a block on purpose take the `network_attempts` fixture,
which forgets their own attempts. Child processes (``subprocess`` runs of the CLI) are not
covered: the guard lives in this interpreter.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkBlockedError(OSError):
    """Raised instead of touching the network during the test session."""


@dataclass
class _Guard:
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (test id, description)
    current: str = "(collection)"
    allow_loopback: bool = False
    saved: dict[str, Any] = field(default_factory=dict)


_GUARD = _Guard()


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_numeric(host: Any) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return True


def _refuse(what: str) -> None:
    _GUARD.attempts.append((_GUARD.current, what))
    raise NetworkBlockedError(f"Network access blocked during tests: {what}.")


def _check_address(sock: socket.socket, address: Any, verb: str) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # AF_UNIX (X11, Qt, multiprocessing) and friends stay local
    host = address[0] if isinstance(address, tuple) and address else address
    if _is_loopback(host) and (_GUARD.allow_loopback or verb == "bind"):
        return
    if verb == "bind" and host in ("", None):
        _refuse(f"bind to all interfaces {address!r}")
    _refuse(f"{verb} {address!r}")


def _wrap_method(name: str) -> Any:
    real = getattr(socket.socket, name)

    def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        if name == "sendto":  # sendto(data, address) or sendto(data, flags, address)
            address = args[-1] if len(args) > 1 else None
        elif name == "sendmsg":
            address = args[3] if len(args) > 3 else kwargs.get("address")
        else:
            address = args[0] if args else None
        if address is not None:
            _check_address(self, address, name)
        return real(self, *args, **kwargs)

    guarded.__name__ = name
    return guarded


def _wrap_resolver(name: str) -> Any:
    real = getattr(socket, name)

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        local = host is None or _is_loopback(host)  # /etc/hosts, no query leaves
        numeric = _is_numeric(host) and name != "gethostbyaddr"  # reverse lookups are queries
        if not (local or numeric):
            _refuse(f"{name}({host!r})")
        return real(host, *args, **kwargs)

    guarded.__name__ = name
    return guarded


_METHODS = ("connect", "connect_ex", "bind", "sendto", "sendmsg")
_RESOLVERS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")


def install() -> None:
    """Patch the socket module (idempotent)."""
    if _GUARD.saved:
        return
    for name in _METHODS:
        _GUARD.saved[f"socket.{name}"] = getattr(socket.socket, name)
        setattr(socket.socket, name, _wrap_method(name))
    for name in _RESOLVERS:
        _GUARD.saved[name] = getattr(socket, name)
        setattr(socket, name, _wrap_resolver(name))


def uninstall() -> None:
    """Put the real socket functions back."""
    for key, value in _GUARD.saved.items():
        if key.startswith("socket."):
            setattr(socket.socket, key.removeprefix("socket."), value)
        else:
            setattr(socket, key, value)
    _GUARD.saved.clear()


def is_installed() -> bool:
    """True while the guard is active."""
    return bool(_GUARD.saved)


# -- pytest hooks ---------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_loopback(reason): let this test use 127.0.0.1 / ::1 (never a real host)"
    )
    install()


def pytest_unconfigure(config: pytest.Config) -> None:
    uninstall()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _GUARD.current = item.nodeid
    _GUARD.allow_loopback = item.get_closest_marker("allow_loopback") is not None
    yield
    _GUARD.current, _GUARD.allow_loopback = "(between tests)", False


@pytest.fixture
def network_attempts() -> Iterator[Callable[[], list[tuple[str, str]]]]:
    """A function listing the blocked attempts of this test; they are forgotten afterwards
    (the test provoked them on purpose)."""
    before = len(_GUARD.attempts)
    yield lambda: list(_GUARD.attempts[before:])
    del _GUARD.attempts[before:]


def recorded_attempts() -> list[tuple[str, str]]:
    """Every blocked attempt so far that no test claimed (a copy)."""
    return list(_GUARD.attempts)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _GUARD.attempts and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _GUARD.attempts:
        return
    terminalreporter.section("network access attempted (blocked)", red=True)
    for test, what in _GUARD.attempts:
        terminalreporter.write_line(f"{test}: {what}")
