"""Long slices: a guest that ran to its slice's end runs on, without a tick every time slice,
while every process waiting beside it did the same; whatever arrives for the engine ends the long
slice at once (runner.c, ticker.c). The engines here take the longest long slice (10 s), so a
long slice that nothing ended would show as a wait of 10 s: each bound below is far under it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import finish, finish_ok, start

from lunatic_mp import Engine, Module, Outcome
from lunatic_mp.vm import core
from lunatic_mp.vm.preemption import DEFAULT_LONG_SLICE_NS, MAX_TIME_SLICE_NS
from lunatic_mp.vm.reactor import READ

GUEST = Path(__file__).parents[1] / "guests" / "preempt.wat"
LONGEST = MAX_TIME_SLICE_NS
BOUND_S = 8.0  # far under a long slice of 10 s, far over what the work takes


@pytest.fixture
def long_engine() -> Iterator[Engine]:
    engine = Engine(long_slice_ns=LONGEST)
    yield engine
    engine.close()


@pytest.fixture
def guest(long_engine: Engine) -> Module:
    return long_engine.load_module(GUEST)


def test_cpu_bound_processes_alone_run_long_slices(guest: Module, long_engine: Engine) -> None:
    """Two counters share the engine: after their first slices, each runs the rest of its count
    in long slices (the ticker sleeps through them), and both finish."""
    ticker = long_engine.preemption.ticker
    counters = [start(long_engine, guest, "count", 200_000_000) for _ in range(2)]
    for counter in counters:
        assert finish_ok(long_engine, counter).result == (200_000_000,)
    assert ticker.long_slices >= 1
    assert ticker.long_slices_cut == 0


def test_no_long_slice_while_a_woken_process_waits(guest: Module, long_engine: Engine) -> None:
    """A ping-pong pair beside spinners: a process a message woke is always queued when a spinner
    is taken, so no spinner gets a long slice and the round trips go on at the time slice's pace
    (the pair finishes long before one long slice could have ended)."""
    spinners = [start(long_engine, guest, "spin") for _ in range(2)]
    pinger = start(long_engine, long_engine.load_module(GUEST.with_name("msg_ping_pong.wat")), "main", 30)
    finished = long_engine.run_until_finished(pinger, timeout=BOUND_S)
    assert finished is not None and finished.result == (30 * 29,)
    assert all(spinner.alive for spinner in spinners)


def test_a_timer_bounds_a_long_slice(guest: Module, long_engine: Engine) -> None:
    """A killer sleeping 5 ms beside a spinner: the spinner's long slice ends at the killer's
    timer, not 10 s later."""
    spinner = start(long_engine, guest, "spin")
    killer = start(long_engine, guest, "killer", spinner.pid, 5)
    finished = long_engine.run_until_finished(spinner, timeout=BOUND_S)
    assert finished is not None and finished.outcome is Outcome.KILLED
    finish_ok(long_engine, killer)


def test_a_host_call_ends_a_long_slice(guest: Module, long_engine: Engine) -> None:
    """A process counts into a long slice, then sets a timer (lunatic::timer::send_after, a
    host call) and spins: the call ends its long slice, so the timer fires on time and its
    message reaches the waiter although no timer bounded the slice when it began."""
    ticker = long_engine.preemption.ticker
    waiter = start(long_engine, guest, "wait_any")
    late = start(long_engine, guest, "late_timer", waiter.pid, 100_000_000, 1)
    finished = long_engine.run_until_finished(waiter, timeout=BOUND_S)
    assert finished is not None and finished.ok, finished
    assert ticker.long_slices >= 1
    assert late.alive
    long_engine.kill(late.pid)


def test_a_ready_descriptor_ends_a_long_slice(guest: Module, long_engine: Engine) -> None:
    """A descriptor the reactor watches turns readable while a spinner runs a long slice: the
    ticker watches the reactor's epoll, cuts the slice, and the callback runs."""
    ticker = long_engine.preemption.ticker
    readable, writable = os.pipe()
    called = threading.Event()
    long_engine.reactor.watch(readable, READ, lambda events: called.set())
    spinner = start(long_engine, guest, "spin")

    def write_during_a_long_slice() -> None:  # the long slice lets go of the GIL at its start
        while ticker.long_slices == 0 and not called.is_set():
            pass
        os.write(writable, b"x")

    writer = threading.Thread(target=write_during_a_long_slice)
    writer.start()
    try:
        assert long_engine.scheduler.run(until=called.is_set, timeout=BOUND_S)
    finally:
        called.set()
        writer.join()
        long_engine.reactor.unwatch(readable)
        os.close(readable)
        os.close(writable)
    assert ticker.long_slices_cut >= 1
    long_engine.kill(spinner.pid)
    finish(long_engine, spinner)


def test_long_slices_are_off_with_zero() -> None:
    engine = Engine(long_slice_ns=0)
    try:
        guest = engine.load_module(GUEST)
        finish_ok(engine, start(engine, guest, "count", 50_000_000))
        assert engine.scheduler.long_slice_ns == 0
        assert engine.preemption.ticker.long_slices == 0
    finally:
        engine.close()


def test_the_default_long_slice_is_off_for_a_time_slice_as_long() -> None:
    default = Engine()
    coarse = Engine(time_slice_ns=DEFAULT_LONG_SLICE_NS)
    try:
        assert default.scheduler.long_slice_ns == DEFAULT_LONG_SLICE_NS
        assert coarse.scheduler.long_slice_ns == 0
    finally:
        default.close()
        coarse.close()


@pytest.mark.parametrize("bad", [-1, 999_999, LONGEST + 1, True, 2.5e7, "20000000"])
def test_a_long_slice_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="long_slice_ns must be None"):
        Engine(long_slice_ns=bad)  # type: ignore[arg-type]


def test_the_run_queue_counts_the_processes_their_slice_ended(guest: Module, long_engine: Engine) -> None:
    """Spinners are queued again as preempted after each slice; a fresh spawn is not."""
    queue = long_engine.scheduler.run_queue
    spinners = [start(long_engine, guest, "spin") for _ in range(2)]
    assert (len(queue), queue.preempted) == (2, 0)
    long_engine.scheduler.run_round()
    assert (len(queue), queue.preempted) == (2, 2)
    start(long_engine, guest, "count", 10)
    assert (len(queue), queue.preempted) == (3, 2)
    for spinner in spinners:
        long_engine.kill(spinner.pid)
    long_engine.run(timeout=BOUND_S)
    assert (len(queue), queue.preempted) == (0, 0)


def test_a_ticker_watches_only_descriptors(long_engine: Engine) -> None:
    ticker = long_engine.preemption.ticker
    with pytest.raises(ValueError, match="fd must be a descriptor, got -1"):
        ticker.watch(-1)
    with pytest.raises(TypeError):
        ticker.watch("3")
    extra = [os.dup(0) for _ in range(4)]
    try:
        with pytest.raises(ValueError, match="at most 4 descriptors"):
            for fd in extra:  # the reactor's is one already
                ticker.watch(fd)
    finally:
        long_engine.preemption.close()  # before the descriptors it watches go
        for fd in extra:
            os.close(fd)
    with pytest.raises(RuntimeError, match="closed"):
        ticker.watch(0)


def test_runner_run_takes_at_most_three_arguments(long_engine: Engine) -> None:
    with pytest.raises(TypeError, match="1 to 3 arguments"):
        long_engine.scheduler.runner.run(1, 0, 0, 0)
    with pytest.raises(TypeError):
        core.Runner(core.RunQueue(), long_engine, print, print, None, ticker=object())


def test_closing_an_engine_closes_what_its_ticker_polls() -> None:
    """The ticker's kick descriptor goes with close, not later with the collector: a program
    counting its descriptors sees none left behind by a closed engine."""
    before = set(os.listdir("/proc/self/fd"))
    engine = Engine(long_slice_ns=LONGEST)
    assert len(set(os.listdir("/proc/self/fd")) - before) >= 2  # the reactor's epoll, the kick
    engine.close()
    assert set(os.listdir("/proc/self/fd")) == before
