"""Hibernation: the memory pages of a process idle in receive go back to the kernel, and come back
intact before it runs again (lunatic_mp/vm/hibernate.c, Scheduler.hibernate).

Sweeps are driven here by hand (conftest's ``sweep``), so nothing waits on a clock.
"""

from __future__ import annotations

import platform
import struct
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import finish_ok, sweep

from lunatic_mp import Engine, EnvConfig, Outcome
from lunatic_mp.vm import core
from lunatic_mp.vm.process import Process
from lunatic_mp.vm.scheduler import check_hibernate_after

GUESTS = Path(__file__).parents[1] / "guests"
TEXT = struct.unpack("<q", b"hibernat")[0]  # the first 8 bytes of hibernate.wat's data segment
PAGES = 16  # 4 KiB pages a `hold` process writes to


def held(pages: int) -> int:
    """What `hold(pages)` returns when its memory came back intact."""
    return sum(i * 7919 for i in range(1, pages)) + TEXT


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(hibernate_after=1.0)
    yield engine
    engine.close()
    assert not engine.host_errors, engine.host_errors


def hibernated() -> int:
    return core.hibernation_stats()[0]


def spawn_waiting(engine: Engine, function: str, *args: int, count: int = 1) -> list[Process]:
    module = engine.load_module(GUESTS / "hibernate.wat")
    processes = [engine.spawn(module, function, args, EnvConfig()) for _ in range(count)]
    engine.run()  # each ends up waiting in receive
    return processes  # type: ignore[return-value]


def test_an_idle_process_gives_its_pages_back_and_wakes_with_its_memory(engine: Engine) -> None:
    before, pages_before = hibernated(), core.hibernation_stats()[2]
    (process,) = spawn_waiting(engine, "hold", PAGES)
    sweep(engine)  # marks it
    assert hibernated() == before
    sweep(engine)  # still in the same wait: hibernates it
    assert hibernated() == before + 1
    assert core.hibernation_stats()[2] - pages_before >= PAGES  # its pages (and the data's) went back
    engine.send(process.pid, b"wake")
    assert finish_ok(engine, process).result == (held(PAGES),)
    assert hibernated() == before


def test_hibernation_gives_memory_back_to_the_kernel(engine: Engine) -> None:
    count = 200
    processes = spawn_waiting(engine, "hold", PAGES, count=count)
    rss = psutil.Process().memory_info().rss
    sweep(engine)
    sweep(engine)
    freed = rss - psutil.Process().memory_info().rss
    assert freed > count * PAGES * 4096 * 0.8, f"only {freed} bytes freed"
    for process in processes:
        engine.send(process.pid, b"wake")
    for process in processes:
        assert finish_ok(engine, process).result == (held(PAGES),)


def test_a_process_woken_between_two_sweeps_is_not_hibernated(engine: Engine) -> None:
    before = hibernated()
    first, second = spawn_waiting(engine, "hold", PAGES, count=2)
    sweep(engine)
    engine.send(first.pid, b"wake")
    assert finish_ok(engine, first).result == (held(PAGES),)
    sweep(engine)
    assert hibernated() == before + 1  # the second only
    engine.send(second.pid, b"wake")
    assert finish_ok(engine, second).result == (held(PAGES),)


def test_a_sweep_goes_on_from_where_its_slice_ended(engine: Engine) -> None:
    count = 2100  # a slice visits 1,024 processes at least before it looks at the clock
    before = hibernated()
    processes = spawn_waiting(engine, "hold", 2, count=count)
    for expected_marked, expected_hibernated in ((count, 0), (0, count)):
        position, slices, marked, done = 0, 0, 0, 0
        while position >= 0:
            position, newly, seen = core.hibernate_idle(engine.processes, position, 0)
            slices, marked, done = slices + 1, marked + seen, done + newly
        assert (marked, done) == (expected_marked, expected_hibernated)
        assert slices >= 3
    assert hibernated() == before + count
    engine.send(processes[-1].pid, b"wake")
    assert finish_ok(engine, processes[-1]).result == (held(2),)


def test_hibernate_idle_refuses_what_is_not_a_sweep() -> None:
    with pytest.raises(TypeError, match="hibernate_idle takes a dict"):
        core.hibernate_idle([], 0, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be >= 0"):
        core.hibernate_idle({}, -1, 0)
    with pytest.raises(ValueError, match="must be >= 0"):
        core.hibernate_idle({}, 0, -5)
    assert core.hibernate_idle({1: object(), 2: None}, 0, 0) == (-1, 0, 0)


def test_a_receive_timeout_wakes_a_hibernated_process(engine: Engine) -> None:
    before = hibernated()
    module = engine.load_module(GUESTS / "hibernate.wat")
    process = engine.spawn(module, "hold_within", (PAGES, 50), EnvConfig())
    engine.scheduler.run_round()  # it waits, with a timer
    sweep(engine)
    sweep(engine)
    assert hibernated() == before + 1
    assert finish_ok(engine, process).result == (held(PAGES),)
    assert hibernated() == before


def test_killing_a_hibernated_process_frees_what_it_kept(engine: Engine) -> None:
    before = hibernated()
    processes = spawn_waiting(engine, "hold", PAGES, count=3)
    sweep(engine)
    sweep(engine)
    assert hibernated() == before + 3
    for process in processes:
        engine.kill(process.pid)
    engine.run()
    assert all(p.finished is not None and p.finished.outcome is Outcome.KILLED for p in processes)
    assert hibernated() == before


def test_closing_an_engine_frees_what_its_hibernated_processes_kept() -> None:
    before = hibernated()
    engine = Engine()
    spawn_waiting(engine, "hold", PAGES, count=3)
    sweep(engine)
    sweep(engine)
    assert hibernated() == before + 3
    engine.close()
    assert hibernated() == before


def test_memory_full_of_data_stays_where_it_is(engine: Engine) -> None:
    heap_before = core.hibernation_stats()[1]
    (process,) = spawn_waiting(engine, "hold_dense", 8)
    sweep(engine)
    sweep(engine)
    assert core.hibernation_stats()[1] - heap_before < 8192  # its 8 full pages were not copied
    engine.send(process.pid, b"wake")
    assert finish_ok(engine, process).result == (171,)


def test_a_memory_with_many_resident_pages_is_left_as_it_is(engine: Engine) -> None:
    """Walking it would take longer than a sweep's slice: at most 128 resident pages are walked."""
    heap_before = core.hibernation_stats()[1]
    (process,) = spawn_waiting(engine, "hold", 200)
    sweep(engine)
    sweep(engine)
    assert core.hibernation_stats()[1] - heap_before < 4096  # its frames only: its 200 pages stay
    engine.send(process.pid, b"wake")
    assert finish_ok(engine, process).result == (held(200),)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="fiber frames hibernate on x86-64 only")
@pytest.mark.parametrize("depth", [0, 40, 400])
def test_the_frames_of_a_suspended_fiber_come_back_intact(engine: Engine, depth: int) -> None:
    before, pages_before = hibernated(), core.hibernation_stats()[2]
    processes = spawn_waiting(engine, "hold_deep", depth, count=20)
    sweep(engine)
    sweep(engine)
    if depth <= 40:  # a deep stack may fill its pages: then nothing is gained, nothing done
        assert hibernated() == before + 20
        assert core.hibernation_stats()[2] - pages_before >= 2 * 20  # a memory page and a stack page each
    for process in processes:
        engine.send(process.pid, b"wake")
    expected = sum(level * 31 + 1 for level in range(depth + 1))
    for process in processes:
        assert finish_ok(engine, process).result == (expected,)
    assert hibernated() == before


def test_a_process_hibernates_again_in_its_next_wait(engine: Engine) -> None:
    before = hibernated()
    (process,) = spawn_waiting(engine, "hold_twice", PAGES)
    for _ in range(2):
        sweep(engine)
        sweep(engine)
        assert hibernated() == before + 1
        engine.scheduler.hibernate(0.0)  # not due: nothing changes
        assert hibernated() == before + 1
        engine.send(process.pid, b"wake")
        engine.run()  # it wakes: the first time it waits again, the second it returns
        assert hibernated() == before
    assert process.finished is not None and process.finished.result == (held(PAGES),)


def test_no_hibernation_when_it_is_off() -> None:
    engine = Engine(hibernate_after=None)
    try:
        before = hibernated()
        (process,) = spawn_waiting(engine, "hold", PAGES)
        for _ in range(3):
            engine.scheduler.hibernate(float("inf"))
        assert hibernated() == before
        engine.send(process.pid, b"wake")
        assert finish_ok(engine, process).result == (held(PAGES),)
    finally:
        engine.close()


@pytest.mark.parametrize("value", [0, -1, 0.0001, 10_000, "1", True, float("nan")])
def test_hibernate_after_out_of_range_is_refused_by_name(value: object) -> None:
    with pytest.raises(ValueError, match="hibernate_after"):
        check_hibernate_after(value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hibernate_after"):
        Engine(hibernate_after=value)  # type: ignore[arg-type]


def test_a_sleeping_loop_is_due_a_sweep_only_while_one_has_work(engine: Engine) -> None:
    """Scheduler.sweep_due_in: an idle engine with nothing to hibernate never wakes for a sweep;
    a wait that begins makes one due within ``hibernate_after``, until its process is hibernated."""
    scheduler = engine.scheduler
    sweep(engine)  # nothing waits: the waits begun so far are seen
    assert scheduler.sweep_due_in(0.0) is None
    (process,) = spawn_waiting(engine, "hold", PAGES)
    scheduler._next_sweep = 10.0
    assert scheduler.sweep_due_in(9.5) == 0.5
    assert scheduler.sweep_due_in(11.0) == 0.0
    sweep(engine)  # marks it: the next sweep hibernates it
    assert scheduler.sweep_due_in(0.0) == 0.0
    before = hibernated()
    sweep(engine)
    assert hibernated() == before + 1
    assert scheduler.sweep_due_in(0.0) is None  # nothing more to do until another wait begins
    engine.send(process.pid, b"wake")
    assert finish_ok(engine, process).result == (held(PAGES),)
