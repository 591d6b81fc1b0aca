"""The reactor: processes' sockets wake the scheduler, on a bare engine."""

from __future__ import annotations

import socket

import pytest

from lunatic_mp.vm.engine import Engine
from lunatic_mp.vm.reactor import READ, WRITE, Reactor


@pytest.fixture
def pair():
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_dispatch_calls_back_with_ready_events(pair):
    left, right = pair
    reactor = Reactor()
    seen: list[int] = []
    reactor.watch(left.fileno(), READ | WRITE, seen.append)
    assert reactor.watching
    assert reactor.dispatch(0) == 1
    assert seen == [WRITE]  # writable at once, nothing to read yet
    right.send(b"x")
    reactor.dispatch(0)
    assert seen[-1] == READ | WRITE
    reactor.unwatch(left.fileno())
    reactor.unwatch(left.fileno())  # twice is harmless
    assert not reactor.watching
    assert reactor.dispatch(0) == 0
    reactor.close()


def test_watch_again_replaces_events_and_callback(pair):
    left, right = pair
    reactor = Reactor()
    first: list[int] = []
    second: list[int] = []
    reactor.watch(left.fileno(), WRITE, first.append)
    reactor.watch(left.fileno(), READ, second.append)
    right.send(b"x")
    reactor.dispatch(0)
    assert (first, second) == ([], [READ])
    reactor.close()


def test_scheduler_sleeps_on_watched_sockets_until_one_is_ready(pair):
    """With no process ready and no timer, a watched socket keeps the scheduler waiting (rather
    than returning: something can still happen), and its readiness wakes it."""
    left, right = pair
    engine = Engine(max_processes=4)
    try:
        got: list[bytes] = []

        def on_ready(events: int) -> None:
            got.append(left.recv(16))
            engine.reactor.unwatch(left.fileno())

        engine.reactor.watch(left.fileno(), READ, on_ready)
        engine.scheduler.call_later(0.0, lambda: right.send(b"ping"))
        assert engine.scheduler.run(until=lambda: bool(got), timeout=30)
        assert got == [b"ping"]
        assert not engine.scheduler.run(timeout=30)  # nothing watched, nothing due: returns
    finally:
        engine.close()
