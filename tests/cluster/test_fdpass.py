"""Descriptor passing between workers (:mod:`lunatic_mp.cluster.fdpass`), two ends in one process."""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp.cluster.fdpass import TOKEN_SHIFT, FdPass
from lunatic_mp.vm.reactor import Reactor


@pytest.fixture
def ends(tmp_path: Path) -> Iterator[tuple[FdPass, FdPass]]:
    reactors = Reactor(), Reactor()
    one, two = FdPass(tmp_path, 2, reactors[0]), FdPass(tmp_path, 3, reactors[1])
    yield one, two
    one.close()
    two.close()
    for reactor in reactors:
        reactor.close()


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def warm_up(sender: FdPass, receiver: FdPass) -> None:
    """One descriptor passed and closed: the sender's socket to the receiver (kept) exists."""
    fd, peer = pair_fd()
    peer.close()
    (token,) = sender.send(receiver.worker_id, [fd])
    receiver.claim((token,), lambda fds: os.close(fds[0]) if fds else None)


def pair_fd() -> tuple[int, socket.socket]:
    """A descriptor to pass (one end of a socket pair) and the other end, to check it by."""
    left, right = socket.socketpair()
    return left.detach(), right


def test_descriptors_arrive_under_their_tokens(ends: tuple[FdPass, FdPass]) -> None:
    one, two = ends
    fd, peer = pair_fd()
    with peer:
        (token,) = one.send(3, [fd])
        assert token >> TOKEN_SHIFT == 2
        got: list[list[int] | None] = []
        two.claim((token,), got.append)
        assert got and got[0] is not None
        with socket.socket(fileno=got[0][0]) as passed:
            passed.sendall(b"over")
            assert peer.recv(4) == b"over"


def test_a_full_queue_keeps_order_and_loses_nothing(ends: tuple[FdPass, FdPass]) -> None:
    """More datagrams than the receiver's queue holds wait in a backlog and go when it drains;
    a frame that arrives before its descriptors is parked until they come."""
    one, two = ends
    warm_up(one, two)
    before = open_fds()
    pairs = [pair_fd() for _ in range(40)]
    tokens = [one.send(3, [fd])[0] for fd, _ in pairs]
    assert one._backlog  # the receiver's queue (max_dgram_qlen, 10 by default) filled
    got: dict[int, int] = {}

    def keep(token: int, fds: list[int] | None) -> None:
        assert fds is not None
        got[token] = fds[0]

    for token in tokens:
        two.claim((token,), functools.partial(keep, token))
    for _ in range(100):
        if len(got) == len(tokens):
            break
        one.reactor.dispatch(0.05)  # the sender's socket turns writable: the backlog goes
        two.reactor.dispatch(0.05)  # the receiver reads what came, and delivers the parked
    assert sorted(got) == tokens
    for (_, peer), token in zip(pairs, tokens, strict=True):
        with socket.socket(fileno=got[token]) as passed, peer:
            passed.sendall(b"k")
            assert peer.recv(1) == b"k"
    assert open_fds() == before


def test_a_lost_worker_s_descriptors_are_closed(ends: tuple[FdPass, FdPass]) -> None:
    """Descriptors received from a lost worker, and messages parked waiting for some, go."""
    one, two = ends
    warm_up(one, two)
    before = open_fds()
    fd, peer = pair_fd()
    peer.close()
    one.send(3, [fd])  # sent, never claimed: the frame naming it was lost with worker 2
    dropped: list[list[int] | None] = []
    two.claim(((2 << TOKEN_SHIFT) | 777,), dropped.append)  # parked for a descriptor that never comes
    two.forget_worker(2)
    assert dropped == [None]
    assert not two.received
    assert not two.parked
    assert open_fds() == before


def test_sending_to_a_worker_that_is_gone_closes_the_descriptors(ends: tuple[FdPass, FdPass]) -> None:
    one, _ = ends
    before = open_fds()
    fd, peer = pair_fd()
    peer.close()
    one.send(9, [fd])  # no worker 9: no socket to send to
    assert open_fds() == before
