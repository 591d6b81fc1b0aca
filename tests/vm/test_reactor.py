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


def test_a_descriptor_waited_on_stays_registered_and_wakes_every_wait(pair):
    """Wait, be woken by what arrives, read it, wait again: one registration for all of it."""
    left, right = pair
    left.setblocking(False)
    reactor = Reactor()
    woken: list[int] = []
    for round_ in range(100):
        reactor.wait(left.fileno(), READ, lambda round_=round_: woken.append(round_))
        assert reactor.watching
        reactor.dispatch(0)
        assert woken == list(range(round_))  # nothing to read yet: still waiting
        right.send(b"x")
        assert reactor.dispatch(0) == 1
        assert woken == list(range(round_ + 1))
        assert not reactor.watching  # fired: nobody waits
        assert left.recv(16) == b"x"
        assert reactor.registered == 1
    reactor.forget(left.fileno())
    assert reactor.registered == 0
    reactor.close()


def test_what_arrives_while_nobody_waits_calls_nothing(pair):
    left, right = pair
    reactor = Reactor()
    woken: list[str] = []
    reactor.wait(left.fileno(), READ, lambda: woken.append("first"))
    right.send(b"x")
    reactor.dispatch(0)
    right.send(b"y")  # an edge with no waiter: dropped
    assert reactor.dispatch(0) == 1
    assert woken == ["first"]
    assert not reactor.watching  # an idle bare engine still sees that nothing can happen
    reactor.close()


def test_a_cancelled_waiter_never_fires_and_forget_unregisters(pair):
    """A process that dies while it waits: its waiter is cancelled (the descriptor stays
    registered for the socket's other users) and the socket's close forgets it."""
    left, right = pair
    reactor = Reactor()
    woken: list[str] = []
    waiter = reactor.wait(left.fileno(), READ, lambda: woken.append("dead"))
    other = reactor.wait(left.fileno(), WRITE | READ, lambda: woken.append("other"))
    reactor.cancel(waiter)
    reactor.cancel(waiter)  # twice is harmless
    assert reactor.watching  # the other one still waits
    right.send(b"x")
    reactor.dispatch(0)
    assert woken == ["other"]
    reactor.cancel(other)  # fired already: a no-op
    assert not reactor.watching
    assert reactor.registered == 1
    reactor.wait(left.fileno(), READ, lambda: woken.append("forgotten"))
    reactor.forget(left.fileno())
    assert (reactor.registered, reactor.watching) == (0, False)
    right.send(b"y")
    assert reactor.dispatch(0) == 0
    assert woken == ["other"]
    reactor.close()


def test_readers_and_writers_of_one_descriptor_wake_by_direction(pair):
    left, right = pair
    left.setblocking(False)
    reactor = Reactor()
    woken: list[str] = []
    reactor.wait(left.fileno(), READ, lambda: woken.append("reader"))
    reactor.dispatch(0)  # registered now: writable at once, which wakes no reader
    assert woken == []
    reactor.wait(left.fileno(), WRITE, lambda: woken.append("writer"))
    right.send(b"x")  # an edge: the reader, and the writer (room to write) too
    reactor.dispatch(0)
    assert sorted(woken) == ["reader", "writer"]
    reactor.close()
