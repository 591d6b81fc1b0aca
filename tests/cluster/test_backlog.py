"""Frames that do not fit in a full ring wait in their producer's queue, and nothing tells the
producer when its consumer makes room: the supervisor's pump tries again every
``BACKLOG_RETRY_S`` while frames wait, and a thread whose flush left some behind wakes it. The
safety timeout is set to an hour here, so a backlog that only it would drain hangs the test
instead of passing it late."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_pair import RECEIVER, Pair, pair_fixture  # noqa: F401 (the pair fixture)

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import frames, hub
from lunatic_mp.cluster.frames import Message
from lunatic_mp.cluster.transport import BACKLOG_RETRY_S, MAX_BACKLOG_RETRY_S, SAFETY_TIMEOUT
from lunatic_mp.pids import make_pid

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 60.0
MESSAGES = 256
SIZE = 4096  # 1 MiB in all, through a ring of 64 KiB


def test_a_burst_past_a_full_ring_drains_without_the_safety_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "SAFETY_TIMEOUT", 3600.0)
    with Runtime(workers=1, ring_capacity=64 * 1024) as runtime:
        module = runtime.load_module(GUESTS / "msg_collector.wat")
        pid = runtime.spawn(module, "collect", (MESSAGES,))
        for _ in range(MESSAGES):
            runtime.send(pid, bytes(SIZE))  # each carries the value 0
        finished = runtime.join(pid, TIMEOUT)
        assert finished is not None and finished.ok and finished.result == (0,), finished


def test_a_backlog_is_retried_soon_while_its_consumer_takes_and_less_often_while_it_does_not(
    pair: Pair,
) -> None:
    """Hub.sleep_timeout: frames that do not fit in a full ring are tried again after a
    millisecond; while the consumer takes nothing (a stopped worker), the wait doubles up to the
    old safety timeout's 50 ms; once it takes again, it is a millisecond again."""
    sender, endpoint = pair.sender, pair.sender.endpoints[RECEIVER]
    assert sender.sleep_timeout() == SAFETY_TIMEOUT
    frame = frames.encode(Message(make_pid(0, RECEIVER, 1), 7, 8, bytes(4096), ()))
    for _ in range(40):  # 160 KiB for a ring of 64 KiB
        endpoint.outbox.put(frame)
    endpoint.queued = len(frame)
    assert not sender.flush() and endpoint.queued > 0
    assert sender.sleep_timeout() == BACKLOG_RETRY_S
    waits = [sender.sleep_timeout() for _ in range(10)]  # the worker takes nothing meanwhile
    assert waits[0] == 2 * BACKLOG_RETRY_S and waits == sorted(waits) and waits[-1] == MAX_BACKLOG_RETRY_S
    pair.receiver.receive()
    assert sender.sleep_timeout() == BACKLOG_RETRY_S
    while not sender.flush():
        pair.receiver.receive()
    pair.receiver.receive()
    assert len(pair.delivered) == 40
    assert sender.sleep_timeout() == SAFETY_TIMEOUT
