"""Long slices and long chains on a worker: CPU-bound processes alone on it run on without a tick
every time slice, a chain of local messages runs on past its budget without a turn of the worker's
loop, and a frame that arrives for the worker meanwhile ends either at once: the worker announces
its doorbell for the round (``Worker._listen_while_running_on``), so the sender rings it, and the
ticker watches it. The runtime here takes the longest long slice (10 s): a frame left waiting for
one would show as a wait of 10 s, and every bound below is far under it."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lunatic_mp import EnvConfig
from lunatic_mp.api.executor import WasmExecutor
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.serve.http_messages import Table, encode_table
from lunatic_mp.vm.preemption import MAX_TIME_SLICE_NS

GUEST = Path(__file__).parents[1] / "guests" / "preempt.wat"
PING_PONG = GUEST.with_name("msg_ping_pong.wat")
ENDLESS = 10**12  # round trips of a ping-pong that no test waits for
TIMEOUT = 30.0
BOUND_S = 8.0  # far under a long slice of 10 s


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2, long_slice_ns=MAX_TIME_SLICE_NS) as runtime:
        assert runtime.wait_for_workers(TIMEOUT)
        yield runtime


def stats_of(runtime: Runtime, worker: int) -> dict[str, Any]:
    (stats,) = [s for s in runtime.stats(timeout=BOUND_S) if s["worker"] == worker]
    return stats


def spin_until_long_slices(runtime: Runtime, worker: int) -> list[int]:
    """Two spinners on ``worker``, once its ticker has slept through a long slice of theirs. Each
    stats request is a frame for the worker too: answered at once, long slice or not."""
    guest = runtime.load_module(GUEST)
    spinners = [runtime.spawn(guest, "spin", (), EnvConfig.permissive(), worker=worker) for _ in range(2)]
    deadline = time.monotonic() + TIMEOUT
    while stats_of(runtime, worker)["long_slices"] == 0:
        assert time.monotonic() < deadline, "no long slice began"
    return spinners


def test_a_frame_from_the_host_program_ends_a_long_slice(runtime: Runtime) -> None:
    worker = runtime.worker_ids[0]
    before = stats_of(runtime, worker)
    assert before["long_slice_ns"] == MAX_TIME_SLICE_NS
    spinners = spin_until_long_slices(runtime, worker)
    try:
        counter = runtime.spawn(
            runtime.load_module(GUEST), "count", (1000,), EnvConfig.permissive(), worker=worker
        )
        finished = runtime.join(counter, timeout=BOUND_S)
        assert finished is not None and finished.result == (1000,), finished
        after = stats_of(runtime, worker)
        assert after["long_slices_cut"] > before["long_slices_cut"]
    finally:
        for pid in spinners:
            runtime.kill(pid)


def test_a_message_from_another_worker_ends_a_long_slice(runtime: Runtime) -> None:
    """A guest on the other worker sends to a waiter beside the spinners (a frame between
    workers): the waiter gets it and finishes at once."""
    here, there = runtime.worker_ids[:2]
    guest = runtime.load_module(GUEST)
    waiter = runtime.spawn(guest, "wait_any", (), EnvConfig.permissive(), worker=here)
    spinners = spin_until_long_slices(runtime, here)
    sender = runtime.spawn(guest, "late_timer", (waiter, 0, 0), EnvConfig.permissive(), worker=there)
    try:
        finished = runtime.join(waiter, timeout=BOUND_S)
        assert finished is not None and finished.ok, finished
    finally:
        for pid in [*spinners, sender]:
            runtime.kill(pid)


def test_a_worker_serving_http_runs_no_long_slices() -> None:
    """An HTTP front end's sockets belong to the worker's event loop, which the ticker cannot
    watch: such a worker keeps to the time slice, although CPU-bound processes alone are on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Runtime(workers=1, long_slice_ns=MAX_TIME_SLICE_NS) as runtime:
        runtime.set_http(encode_table(Table("127.0.0.1", port, 1024)))
        worker = runtime.worker_ids[0]
        guest = runtime.load_module(GUEST)
        spinners = [runtime.spawn(guest, "spin", (), EnvConfig.permissive(), worker=worker) for _ in range(2)]
        counter = runtime.spawn(guest, "count", (100_000_000,), EnvConfig.permissive(), worker=worker)
        finished = runtime.join(counter, timeout=TIMEOUT)
        assert finished is not None and finished.ok, finished
        stats = stats_of(runtime, worker)
        assert stats["http"], "the front end is not up"
        assert stats["long_slices"] == 0
        for pid in spinners:
            runtime.kill(pid)


def test_a_job_that_ends_is_reported_before_the_long_slices_of_the_others() -> None:
    """A counting job ahead of two spinning jobs: all three run their first slices, then the
    counter ends in its long slice. Its news leaves before the next long slice begins
    (``Runner.between``), not when the round ends after a long slice of each spinner."""
    with Runtime(workers=1, long_slice_ns=MAX_TIME_SLICE_NS) as runtime:
        executor = WasmExecutor(runtime, runtime.load_module(GUEST))
        try:
            counted = executor.submit("count", 200_000_000)
            spinners = [executor.submit("spin") for _ in range(2)]
            assert counted.result(timeout=BOUND_S) == 200_000_000
            assert stats_of(runtime, runtime.worker_ids[0])["long_slices"] >= 1
            assert not any(spinner.done() for spinner in spinners)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)  # the spinners die with the runtime


def test_a_frame_from_the_host_program_ends_a_long_chain(runtime: Runtime) -> None:
    """An endless ping-pong on a worker runs in long chains; each stats request, a frame, ends
    the one under way and is answered at once (a chain left to run would hold it 10 s)."""
    worker = runtime.worker_ids[0]
    pinger = runtime.spawn(
        runtime.load_module(PING_PONG), "main", (ENDLESS,), EnvConfig.permissive(), worker=worker
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while stats_of(runtime, worker)["long_chains_cut"] == 0:
            assert time.monotonic() < deadline, "no long chain was cut"
        began = time.monotonic()
        stats = stats_of(runtime, worker)
        assert time.monotonic() - began < BOUND_S
        assert stats["long_chains"] >= stats["long_chains_cut"] >= 1
    finally:
        runtime.kill(pinger)


def test_a_job_that_ends_in_a_long_chain_is_reported_at_the_next_tick() -> None:
    """A ping-pong job shares its worker with an endless ping-pong: its round trips join the
    long chain, and its result leaves at the chain's next tick (``Runner.between``), not when the
    chain ends 10 s later."""
    with Runtime(workers=1, long_slice_ns=MAX_TIME_SLICE_NS) as runtime:
        module = runtime.load_module(PING_PONG)
        runtime.spawn(module, "main", (ENDLESS,), EnvConfig.permissive(), worker=runtime.worker_ids[0])
        executor = WasmExecutor(runtime, module, config=EnvConfig.permissive())
        try:
            assert executor.submit("main", 1000).result(timeout=BOUND_S) == 1000 * 999
            assert stats_of(runtime, runtime.worker_ids[0])["long_chains"] >= 1
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
