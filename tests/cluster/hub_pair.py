"""A supervisor-side hub and a worker-side hub joined by real rings in this process, for the tests
of what a hub does with what arrives (test_frames_fuzz.py) and with what does not fit (test_backlog.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp.cluster.frames import Message
from lunatic_mp.cluster.hub import Hub, ring_name
from lunatic_mp.cluster.transport import Ring
from lunatic_mp.pids import FIRST_WORKER, SUPERVISOR

RECEIVER = FIRST_WORKER


class Pair:
    """A supervisor-side hub and a worker-side hub joined by a pair of real rings, in this
    process: the test writes records into the supervisor's outbox and runs the worker's loop."""

    def __init__(self, run_dir: Path) -> None:
        self.run_id = f"fuzz{uuid.uuid4().hex[:8]}"
        self.rings = [
            Ring.create(ring_name(self.run_id, source, destination), 1 << 16)
            for source, destination in ((SUPERVISOR, RECEIVER), (RECEIVER, SUPERVISOR))
        ]
        self.sender = Hub(SUPERVISOR, self.run_id, run_dir, create_doorbell=False)
        self.receiver = Hub(RECEIVER, self.run_id, run_dir)
        self.sender.connect(RECEIVER)
        self.receiver.connect(SUPERVISOR)
        self.delivered: list[Message] = []
        self.receiver.handlers[Message] = self.delivered.append

    def exchange(self, records: list[bytes]) -> None:
        """Queue ``records`` towards the worker and let it read until all have arrived."""
        outbox = self.sender.endpoints[RECEIVER].outbox
        for record in records:
            outbox.put(record)
        while True:
            flushed = outbox.flush()
            self.receiver.receive()
            if flushed and self.receiver.idle():
                break

    def close(self) -> None:
        self.sender.close()
        self.receiver.close()
        for ring in self.rings:
            ring.close()
            ring.unlink()


@pytest.fixture(name="pair")
def pair_fixture(tmp_path: Path) -> Iterator[Pair]:
    """A Pair, closed after the test (import this name where a test takes ``pair``)."""
    pair = Pair(tmp_path)
    yield pair
    pair.close()
