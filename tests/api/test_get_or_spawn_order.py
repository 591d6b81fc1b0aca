"""get_or_spawn over workers: what the spawner sends right after the call is its child's first
message, even when processes on other workers are polling the registry for the name
(docs/abi.md, "Ordering"). Guest: tests/guests/reg_order.wat."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.vm.registry import exact

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 30.0
ROUNDS = 20


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as runtime:
        yield runtime


def test_spawner_message_first_across_workers(runtime: Runtime) -> None:
    """Each round: intruders on both workers poll get("svc") and send tag 2 to what they find; a
    spawner does get_or_spawn("svc") and sends tag 1. The child (on either worker) reports its
    first message's tag to the host program: always 1. (Before the name was published only after
    the spawner had gone on, about one round in ten reported 2.)"""
    module = runtime.load_module(GUESTS / "reg_order.wat")
    config = EnvConfig.permissive()
    a, b = runtime.worker_ids
    firsts = []
    for _ in range(ROUNDS):
        intruders = [runtime.spawn(module, "intruder", (), config, worker=w) for w in (a, b, b)]
        spawner = runtime.spawn(module, "spawner", (runtime.pid,), config, worker=a)
        report = runtime.receive(timeout=TIMEOUT)
        assert report is not None, "the child did not report"
        firsts.append(report.tag)
        for pid in intruders:
            assert runtime.join(pid, timeout=TIMEOUT).ok
        assert runtime.join(spawner, timeout=TIMEOUT).ok
        child = runtime.registry_get(exact("svc"))
        assert child is not None
        runtime.kill(child)
        deadline = time.monotonic() + TIMEOUT  # the kill is asynchronous: its name goes with it
        while runtime.registry_get(exact("svc")) is not None:
            assert time.monotonic() < deadline, "the killed child kept its name"
    assert firsts == [1] * ROUNDS
