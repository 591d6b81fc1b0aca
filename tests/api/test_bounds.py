"""Bounds of a runtime against hostile guests, across its processes (docs/reliability.md,
"Bounds by default")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig, Module, Outcome
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.errors import LunaticError, SpawnError
from lunatic_mp.pids import worker_of
from lunatic_mp.serve import prometheus
from lunatic_mp.vm.native import Context
from lunatic_mp.vm.registry import MAX_NAME_LENGTH

WAIT = 30.0
GUESTS = Path(__file__).parents[1] / "guests"


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2, max_metric_series=10) as runtime:
        yield runtime


def test_the_registry_process_refuses_a_long_name(runtime: Runtime) -> None:
    """A name past MAX_NAME_LENGTH never reaches the registry process's table: a guest's put
    traps before its name is read, the host program's put gets an error naming the length."""
    module = runtime.load_module(GUESTS / "bounds_names.wat")
    guest = runtime.spawn(module, "register", (32 << 20,), EnvConfig.permissive())
    finished = runtime.join(guest, timeout=WAIT)
    assert finished is not None and finished.outcome is Outcome.FAILED
    assert "bytes is longer than the limit" in str(finished)
    with pytest.raises(LunaticError, match=f"of {MAX_NAME_LENGTH + 1} bytes is longer than the limit"):
        runtime.registry_put("n" * (MAX_NAME_LENGTH + 1), runtime.pid)
    assert runtime.registry_get("n" * MAX_NAME_LENGTH) is None


def test_guest_metric_names_are_bounded_per_worker_and_dropped_ones_counted(runtime: Runtime) -> None:
    """Runtime(max_metric_series=10): a guest counting 50 names leaves 10 in the worker's
    statistics, and /metrics shows the 40 reports it dropped."""
    module = runtime.load_module(GUESTS / "bounds_names.wat")
    first = runtime.worker_ids[0]
    guest = runtime.spawn(module, "count_many", (50,), EnvConfig.permissive(), worker=first)
    finished = runtime.join(guest, timeout=WAIT)
    assert finished is not None and finished.ok, finished
    stats = runtime.stats()[0]
    assert stats["worker"] == first
    assert len(stats["counters"]) == 10 and stats["metrics_dropped"] == 40
    text = prometheus.render(prometheus.Snapshot(runtime.stats(), 1, 0, 1, time.time())).decode()
    assert 'lunatic_guest_metrics_dropped_total{worker="' in text
    assert text.count("lunatic_guest_counter_total{") == 10


MIB = 1 << 20
READY, REFUSED = 4, 7


def hogs(runtime: Runtime, count: int) -> dict[int, int]:
    """The pages each of ``count`` hogs reported, by pid."""
    pages = {}
    for _ in range(count):
        message = runtime.receive([READY], timeout=WAIT)
        assert message is not None, "a hog did not report"
        pages[message.pid] = int.from_bytes(bytes(message.data), "little")
    return pages


def registry_settled(runtime: Runtime, hostile: Module) -> None:
    """Once this returns, the registry process has handled what every worker sent it before
    (a process's end gives its place back through its own worker's ring)."""
    for worker in runtime.worker_ids:
        barrier = runtime.spawn(hostile, "registry_barrier", (), EnvConfig.permissive(), worker=worker)
        assert runtime.join(barrier, timeout=WAIT) is not None


def test_an_environments_memory_budget_holds_across_workers(runtime: Runtime) -> None:
    """A guest spawning children that each take their 16 MiB, spread over both workers, in an
    environment with max_env_memory = 100 MiB: the bomb and 5 children fit (they used to take
    as much as they liked: 3 GiB in 6 s), the next spawn fails saying why; the host program's
    spawns into it are refused past the budget too; and the memory comes back as they end."""
    module = runtime.load_module(GUESTS / "memory_budget.wat")
    hostile = runtime.load_module(GUESTS / "hostile.wat")
    environment = runtime.environment(EnvConfig.permissive(max_memory=16 * MIB, max_env_memory=100 * MIB))
    bomb = environment.spawn(module, "bomb", (runtime.pid,))
    finished = runtime.join(bomb.id, timeout=WAIT)
    assert finished is not None and finished.result == (5,), finished
    pages = hogs(runtime, 5)
    assert set(pages.values()) == {16 * MIB // 65536}  # each took all it may: 80 MiB in all
    assert {worker_of(pid) for pid in pages} == set(runtime.worker_ids)
    refused = runtime.receive([REFUSED], timeout=WAIT)
    assert refused is not None
    assert "of its 104857600 bytes of memory (max_env_memory) reserved" in bytes(refused.data).decode()
    registry_settled(runtime, hostile)
    extra = environment.spawn(module, "hog", (runtime.pid,))  # the bomb's 16 MiB came back ...
    hogs(runtime, 1)
    with pytest.raises(SpawnError, match="max_env_memory"):  # ... and then there is no more
        environment.spawn(module, "hog", (runtime.pid,))
    for pid in [*pages, extra.id]:
        runtime.kill(pid)
        assert not runtime.exists(pid)
    registry_settled(runtime, hostile)  # the registry process has counted the deaths
    again = environment.spawn(module, "bomb", (runtime.pid,))
    finished = runtime.join(again.id, timeout=WAIT)
    assert finished is not None and finished.result == (5,), finished
    for pid in hogs(runtime, 5):
        runtime.kill(pid)
    assert runtime.receive([REFUSED], timeout=WAIT) is not None


def parked(ctx: Context) -> None:
    """A native process that waits until it is sent something."""
    ctx.receive()


def test_native_processes_take_nothing_from_a_memory_budget(runtime: Runtime) -> None:
    """A native process has no linear memory: it spawns into an environment whose budget Wasm
    processes have filled, and a Wasm process still does not fit beside it."""
    module = runtime.load_module(GUESTS / "memory_budget.wat")
    environment = runtime.environment(EnvConfig.permissive(max_memory=16 * MIB, max_env_memory=16 * MIB))
    hog = environment.spawn(module, "hog", (runtime.pid,))
    hogs(runtime, 1)
    native = environment.spawn_native(parked)
    with pytest.raises(SpawnError, match="max_env_memory"):
        environment.spawn(module, "hog", (runtime.pid,))
    for pid in (hog.id, native.id):
        runtime.kill(pid)
