"""The session-wide network guard (tests/_no_network.py) is on and blocks every way out.

The guard itself makes the whole suite the proof that nothing touches the network: any blocked
attempt, even one the product swallows, fails the session (see the plugin's docstring).
"""

from __future__ import annotations

import multiprocessing
import socket
import urllib.error
import urllib.request
from collections.abc import Callable

import _no_network
import pytest
from _no_network import NetworkBlockedError

Attempts = Callable[[], list[tuple[str, str]]]


def test_guard_is_installed_for_the_session() -> None:
    assert _no_network.is_installed()
    assert socket.socket.connect.__name__ == "connect" and socket.socket.connect.__module__ == "_no_network"


def test_tcp_udp_dns_and_urllib_are_blocked(network_attempts: Attempts) -> None:
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("203.0.113.7", 80), timeout=1)  # TEST-NET-3: never routed anyway
    with pytest.raises(NetworkBlockedError):
        socket.getaddrinfo("example.com", 443)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(NetworkBlockedError):
        udp.sendto(b"x", ("192.0.2.1", 53))
    with pytest.raises((NetworkBlockedError, urllib.error.URLError)):
        urllib.request.urlopen("http://example.com", timeout=1)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as tcp6, pytest.raises(NetworkBlockedError):
        tcp6.connect_ex(("2001:db8::1", 443))
    with socket.socket() as server, pytest.raises(NetworkBlockedError):
        server.bind(("", 0))  # listening on every interface
    attempts = network_attempts()
    assert len(attempts) >= 5 and all("test_tcp_udp_dns" in test for test, _ in attempts)


def test_loopback_connect_needs_the_marker(network_attempts: Attempts) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # binding sends nothing (urllib3 probes IPv6 this way)
        server.listen(1)
        with socket.socket() as client, pytest.raises(NetworkBlockedError):
            client.connect(server.getsockname())
    assert network_attempts()


@pytest.mark.allow_loopback("this test checks the allow-list itself")
def test_loopback_allowed_with_marker_but_never_a_real_host() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            peer, _ = server.accept()
            client.sendall(b"ok")
            assert peer.recv(2) == b"ok"
            peer.close()
    with pytest.raises(NetworkBlockedError):
        socket.create_connection(("198.51.100.1", 80), timeout=1)
    _no_network._GUARD.attempts.pop()  # provoked on purpose


def test_local_sockets_still_work() -> None:
    a, b = socket.socketpair()  # AF_UNIX: Qt, asyncio and multiprocessing use these
    with a, b:
        a.sendall(b"ping")
        assert b.recv(4) == b"ping"
    parent, child = multiprocessing.Pipe()  # a socket pair too
    child.send("hello")
    assert parent.recv() == "hello"
    assert socket.gethostname()  # no traffic


def test_nothing_so_far_tried_the_network() -> None:
    assert _no_network.recorded_attempts() == []
