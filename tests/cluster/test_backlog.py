"""Frames that do not fit in a full ring wait in their producer's queue, and nothing tells the
producer when its consumer makes room: the supervisor's pump tries again every
``BACKLOG_RETRY_S`` while frames wait, and a thread whose flush left some behind wakes it. The
safety timeout is set to an hour here, so a backlog that only it would drain hangs the test
instead of passing it late."""

from __future__ import annotations

from pathlib import Path

import pytest

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import hub

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
