"""Arenas: linear memories and fiber stacks served from large reservations (lunatic_mp/vm/arena.c),
and the capacity that follows from address space and RAM (lunatic_mp/vm/capacity.py)."""

from __future__ import annotations

import functools
import gc
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import finish

from lunatic_mp import CapacityError, Engine, EnvConfig, Outcome
from lunatic_mp.vm import capacity
from lunatic_mp.vm import engine as engine_module
from lunatic_mp.vm.arena import MEMORIES_KEPT, STACKS_KEPT, Arenas
from lunatic_mp.vm.extension import _core

GUEST = Path(__file__).parents[1] / "guests" / "arena.wat"
PAGE = 65536
IDLE = EnvConfig()


def mappings() -> int:
    with open("/proc/self/maps", "rb") as maps:
        return sum(1 for _ in maps)


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(max_processes=3_000)
    yield engine
    engine.close()
    assert not engine.host_errors, engine.host_errors


def test_many_live_processes_cost_no_mapping_each(engine: Engine) -> None:
    """2,500 idle processes live at once: the process's mappings barely grow (chunks, not slots)."""
    module = engine.load_module(GUEST)
    engine.spawn(module, "idle", (), IDLE)
    engine.run()
    before = mappings()
    for _ in range(2_500):
        engine.spawn(module, "idle", (), IDLE)
    engine.run()
    assert len(engine.processes) == 2_501
    assert mappings() - before < 20
    memories, stacks = engine.arenas.memory_stats(), engine.arenas.stack_stats()
    assert memories.live == 2_501 and stacks.live == 2_501
    assert stacks.guard in ("MADV_GUARD_INSTALL", "mprotect")
    if capacity.guard_madvise_available():
        assert stacks.guard == "MADV_GUARD_INSTALL"
    for pid in list(engine.processes):
        engine.send(pid)
    engine.run()
    memories, stacks = engine.arenas.memory_stats(), engine.arenas.stack_stats()
    assert (memories.live, stacks.live) == (0, 0)
    assert stacks.kept == STACKS_KEPT  # the last freed keep their pages for the next spawns
    assert memories.kept == MEMORIES_KEPT  # ... zeroed by hand, a page or two each


def test_a_spawn_past_capacity_names_the_limit() -> None:
    engine = Engine(max_processes=20)
    module = engine.load_module(GUEST)
    for _ in range(20):
        engine.spawn(module, "idle", (), IDLE)
    with pytest.raises(
        CapacityError, match=r"capacity \(20 live processes\), bounded by max_processes as given"
    ):
        engine.spawn(module, "idle", (), IDLE)
    engine.close()


def test_a_spawn_past_the_default_capacity_says_what_bounds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """With RAM for 5 idle processes per worker, the sixth spawn fails naming RAM and the remedy."""
    workers = len(os.sched_getaffinity(0))
    ram = int(5 * capacity.BYTES_PER_PROCESS * workers / capacity.RAM_SHARE)
    monkeypatch.setattr(capacity, "memory_bytes", lambda: (ram, "RAM"))
    engine = Engine()
    assert (engine.capacity, engine.capacity_limit.limit) == (5, "RAM")
    module = engine.load_module(GUEST)
    for _ in range(5):
        engine.spawn(module, "idle", (), IDLE)
    with pytest.raises(
        CapacityError, match=r"capacity \(5 live processes\), bounded by RAM: .* fewer workers fit more"
    ):
        engine.spawn(module, "idle", (), IDLE)
    engine.close()


def test_the_default_capacity_comes_from_address_space_and_ram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "memory_bytes", lambda: (1 << 40, "RAM"))
    plan = capacity.plan(256 << 20, 2 << 20, workers=2)
    assert plan.limit == "address space" and "a smaller max_memory fits more" in plan.reason
    assert plan.processes == int(capacity.address_space_bytes() // ((256 << 20) + 1.125 * ((2 << 20) + 4096)))
    monkeypatch.setattr(capacity, "memory_bytes", lambda: (4 << 30, "the cgroup's memory.max"))
    plan = capacity.plan(256 << 20, 2 << 20, workers=2)
    assert plan.limit == "RAM" and "memory.max" in plan.reason
    assert plan.processes == (4 << 30) // 2 // capacity.BYTES_PER_PROCESS // 2
    engine = Engine()
    assert engine.capacity == capacity.plan(engine.max_memory, 2 << 20).processes
    assert engine.capacity_limit.reason
    engine.close()


def test_an_old_kernel_counts_the_guard_mappings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before Linux 6.13 each stack's guard page splits a mapping: vm.max_map_count bounds again."""
    monkeypatch.setattr(capacity, "_kernel_version", lambda: (6, 1))
    monkeypatch.setattr(capacity, "memory_bytes", lambda: (1 << 40, "RAM"))
    monkeypatch.setattr(capacity, "_max_map_count", lambda: 65_530)
    plan = capacity.plan(256 << 20, 2 << 20, workers=1)
    assert (plan.processes, plan.limit) == (65_530 * 9 // 10 // 2, "vm.max_map_count")
    assert "sysctl -w vm.max_map_count" in plan.reason


def test_the_mprotect_fallback_costs_the_mappings_capacity_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stack guards by mprotect (kernels before 6.13) split the stack arena's mapping: measured
    here, at most the mappings per live process that the capacity then counts."""
    monkeypatch.setattr(engine_module, "Arenas", functools.partial(Arenas, use_mprotect=True))
    engine = Engine(max_processes=400)
    module = engine.load_module(GUEST)
    engine.spawn(module, "idle", (), IDLE)
    engine.run()
    before = mappings()
    for _ in range(300):
        engine.spawn(module, "idle", (), IDLE)
    engine.run()
    added = mappings() - before
    assert engine.arenas.stack_stats().guard == "mprotect"
    assert 300 <= added <= 300 * capacity.MAPS_PER_PROCESS_WITHOUT_GUARD_MADVISE + 5, added
    engine.close()


def test_memory_goes_back_to_the_kernel_after_a_mass_exit(engine: Engine) -> None:
    """200 processes each touch 1 MiB and wait; when they exit, their pages are given back."""
    module = engine.load_module(GUEST)
    engine.spawn(module, "idle", (), IDLE)
    engine.run()
    before = rss()
    processes = [engine.spawn(module, "touch", (15,), IDLE) for _ in range(200)]
    engine.run()
    assert all(process.alive for process in processes)
    grown = rss() - before
    assert grown > 200 * PAGE * 16 * 0.9, grown
    for process in processes:
        engine.send(process.pid)
    engine.run()
    assert all(process.finished is not None and process.finished.ok for process in processes)
    assert rss() - before < grown * 0.2, (rss() - before, grown)


def test_a_reused_slot_reads_as_zeros(engine: Engine) -> None:
    module = engine.load_module(GUEST)
    assert finish(engine, engine.spawn(module, "store", (1000, 77), IDLE)).ok
    used = engine.arenas.memory_stats().used
    finished = finish(engine, engine.spawn(module, "load", (1000,), IDLE))
    assert finished.result == (0,)
    assert engine.arenas.memory_stats().used == used  # the same slot, last freed first


@pytest.mark.parametrize("pages", [1, 3, 8, 9, 16])
def test_a_reused_slot_reads_as_zeros_on_every_page_written(engine: Engine, pages: int) -> None:
    """A freed memory holding up to 8 pages is zeroed by hand (and keeps them), one holding more
    goes back by madvise: either way the next process to take the slot reads zeros everywhere."""
    module = engine.load_module(GUEST)
    assert finish(engine, engine.spawn(module, "scatter", (pages, 77), IDLE)).ok
    used = engine.arenas.memory_stats().used
    assert finish(engine, engine.spawn(module, "gather", (16,), IDLE)).result == (0,)
    assert engine.arenas.memory_stats().used == used  # the same slot, last freed first


def test_memory_grow_past_the_slot_returns_minus_one() -> None:
    """The engine's max_memory is the slot: a grow past it fails cleanly, the guest goes on."""
    engine = Engine(max_processes=4, max_memory=4 * PAGE)
    module = engine.load_module(GUEST)
    assert finish(engine, engine.spawn(module, "grow", (3,), IDLE)).result == (1,)
    assert finish(engine, engine.spawn(module, "grow", (4,), IDLE)).result == (-1,)
    assert finish(engine, engine.spawn(module, "grow", (1 << 15,), IDLE)).result == (-1,)
    big = engine.load_module('(module (memory (export "memory") 5) (func (export "f")))')
    finished = finish(engine, engine.spawn(big, "f", (), IDLE))
    assert not finished.ok and "memory slot" in finished.message
    assert finish(engine, engine.spawn(module, "grow", (1,), IDLE)).result == (1,)
    engine.close()


@pytest.mark.parametrize(
    ("function", "params"),
    [("load", (PAGE,)), ("load", (PAGE - 2,)), ("store", (PAGE + 4096, 1)), ("load", (-4,))],
)
def test_an_access_past_the_memory_traps_the_guest_only(
    engine: Engine, function: str, params: tuple[int, ...]
) -> None:
    """The slot past a memory's size is mapped read-write, yet out of the guest's reach."""
    module = engine.load_module(GUEST)
    bystander = engine.spawn(module, "idle", (), IDLE)
    finished = finish(engine, engine.spawn(module, function, params, IDLE))
    assert finished.outcome is Outcome.FAILED and "out of bounds memory access" in finished.message
    assert bystander.alive
    engine.send(bystander.pid)
    assert finish(engine, bystander).ok


def test_a_stack_overflow_traps_the_guest_only(engine: Engine) -> None:
    module = engine.load_module(GUEST)
    bystander = engine.spawn(module, "idle", (), IDLE)
    finished = finish(engine, engine.spawn(module, "recurse", (0,), IDLE))
    assert finished.outcome is Outcome.FAILED and "stack" in finished.message
    engine.send(bystander.pid)
    assert finish(engine, bystander).ok
    assert finish(engine, engine.spawn(module, "load", (0,), IDLE)).result == (0,)


def test_bad_arena_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="multiples of the page size"):
        _core.arena_new(0, 1000, 0, 4, 4, False)
    with pytest.raises(ValueError, match="kind must be"):
        _core.arena_new(7, 4096, 0, 4, 4, False)
    with pytest.raises(TypeError, match="expected an arena"):
        _core.arena_stats(object())
    with pytest.raises(ValueError, match="at least one process"):
        Arenas(0, 1 << 20, 1 << 20)


def test_an_idle_process_holds_little_python_memory(engine: Engine) -> None:
    """Sets of monitors and blocked senders, and the resource tables, are made on first use:
    an idle process's Python objects stay under 2 KiB (they were 2.7 KiB before issue 17)."""
    module = engine.load_module(GUEST)
    engine.spawn(module, "idle", (), IDLE)
    engine.run()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        processes = [engine.spawn(module, "idle", (), IDLE) for _ in range(500)]
        engine.run()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(process.alive and not process.watched() for process in processes)
    assert grown / 500 < 2048, grown / 500
