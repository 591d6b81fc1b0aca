"""Attacks of hostile guests on the runtime's own processes (issue 20)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from lunatic_mp import EnvConfig, Outcome
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import frames
from lunatic_mp.pids import REGISTRY, make_pid

GUESTS = Path(__file__).parents[1] / "guests"
DEADLINE = 30.0
FLOOD = 20_000


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=1) as runtime:
        yield runtime


def registry_stats(runtime: Runtime) -> dict[str, Any]:
    reply = runtime._request(REGISTRY, lambda r: frames.Stats(r, runtime.pid), DEADLINE)
    stats: dict[str, Any] = msgpack.unpackb(reply.payload)
    return stats


def test_a_flood_of_messages_to_the_registrys_pids_never_reaches_it(runtime: Runtime) -> None:
    """A guest (and the host program) send 20,000 messages each to a pid on the registry
    process's worker id, which hosts no processes: they are dropped at the sender, like messages
    to any missing process, so the registry neither logs nor even sees them (before the fix it
    logged one line per frame and its lookups slowed to seconds), and lookups stay fast."""
    target = make_pid(0, REGISTRY, 5)
    hostile = runtime.load_module(GUESTS / "hostile.wat")
    flood = runtime.spawn(hostile, "flood", [target, FLOOD], EnvConfig())
    for value in range(FLOOD):
        runtime.send(target, value.to_bytes(8, "little"))
    finished = runtime.join(flood, timeout=DEADLINE)
    assert finished is not None and finished.outcome is Outcome.NORMAL, finished
    runtime.registry_names()  # the registry has read what was sent to it before this
    assert registry_stats(runtime)["malformed_frames"] == 0
    started = time.monotonic()
    for _ in range(100):
        runtime.registry_names()
    assert time.monotonic() - started < 5.0
