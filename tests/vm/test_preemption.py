"""Preemption by epochs: a guest that never calls the host still gives way every time slice
(the C core's ticker thread advances the engine's epoch every slice)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import finish, finish_ok, start, ticker_threads, ticker_threads_settle

from lunatic_mp import Engine, EnvConfig, Module, Outcome

SPINNERS = 2
ROUND_TRIPS = 50


@pytest.fixture
def preempt(load: Callable[[str], Module]) -> Module:
    return load("preempt.wat")


def test_a_ping_pong_pair_answers_within_two_rounds_of_slices_beside_spinners(
    engine: Engine, preempt: Module, load: Callable[[str], Module]
) -> None:
    """With spinners on the engine, a ping-pong message is answered after one slice of each
    spinner: a round trip takes two scheduler rounds (bounded here at four), each round one slice
    of each spinner. Rounds are counted, not time: on a loaded machine ticks are wall time."""
    scheduler = engine.scheduler
    rounds = 0
    run_round = scheduler.run_round

    def counted(long_slice_ns: int = 0) -> float | None:
        nonlocal rounds
        rounds += 1
        return run_round(long_slice_ns)

    scheduler.run_round = counted  # type: ignore[method-assign]
    spinners = [start(engine, preempt, "spin") for _ in range(SPINNERS)]
    pinger = start(engine, load("msg_ping_pong.wat"), "main", ROUND_TRIPS)
    finished = finish_ok(engine, pinger)
    assert finished.result == (ROUND_TRIPS * (ROUND_TRIPS - 1),)
    assert rounds <= ROUND_TRIPS * 4 + 10, f"{rounds} rounds for {ROUND_TRIPS} round trips"
    assert all(spinner.alive for spinner in spinners)


def test_spinners_share_the_engine(engine: Engine, preempt: Module) -> None:
    """A counting process finishes while others spin forever."""
    for _ in range(SPINNERS):
        start(engine, preempt, "spin")
    counter = start(engine, preempt, "count", 10_000_000)
    assert finish_ok(engine, counter).result == (10_000_000,)
    assert engine.preemption.ticker.ticks > 0  # it ticks while guests run


def test_a_ticker_asleep_between_bursts_wakes_for_each_burst() -> None:
    """A ticker sleeps once a whole period passes with no guest running, and the first poll of
    the next burst wakes it (once: the polls after it do not wake it again). Burst after burst,
    spinners are still preempted: a counter beside them finishes each time."""
    engine = Engine(time_slice_ns=100_000)
    try:
        preempt = engine.load_module(Path(__file__).parents[1] / "guests" / "preempt.wat")
        for burst in range(5):
            before = engine.preemption.ticker.ticks
            spinners = [start(engine, preempt, "spin") for _ in range(SPINNERS)]
            counter = start(engine, preempt, "count", 1_000_000 + burst)
            assert finish_ok(engine, counter).result == (1_000_000 + burst,)
            assert engine.preemption.ticker.ticks > before
            for spinner in spinners:
                engine.kill(spinner.pid, "burst over")
            engine.run(timeout=30)
            assert not engine.processes
    finally:
        engine.close()


def test_a_guest_running_on_lets_other_python_threads_run_within_its_slice(
    engine: Engine, preempt: Module
) -> None:
    """A poll keeps the GIL only until the slice's first tick: a thread of the host program then
    runs while the guest is still inside its slice (engine.current is set only during a poll)."""
    seen = threading.Event()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not seen.is_set():
            if engine.current is not None:
                seen.set()

    spinner = start(engine, preempt, "spin")
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        engine.scheduler.run(until=seen.is_set, timeout=60)
    finally:
        stop.set()
        watcher.join()
    assert seen.is_set()
    engine.kill(spinner.pid)


def test_host_calls_after_the_poll_let_go_of_the_gil_take_it_back() -> None:
    """A guest that counts past its slice's first tick (its poll then lets go of the GIL) and then
    calls the C host functions of lunatic::message, while a thread of the host program runs
    Python beside it: each call takes the GIL back (lmp_gil_take), and both finish unharmed."""
    engine = Engine(time_slice_ns=100_000)
    stop = threading.Event()
    made: list[dict[int, str]] = []

    def churn() -> None:  # Python objects made and dropped while the guest runs
        while not stop.is_set():
            made.append({i: str(i) for i in range(50)})
            del made[:-10]

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        guest = engine.load_module(Path(__file__).parents[1] / "guests" / "preempt.wat")
        chatter = engine.spawn(guest, "chatter", (200, 300_000), EnvConfig())
        finished = engine.run_until_finished(chatter, timeout=120)
    finally:
        stop.set()
        churner.join()
        engine.close()
    assert finished is not None and finished.result == (200 * 199 // 2,), finished
    assert made


def test_a_kill_reaches_a_process_in_a_long_slice(engine: Engine, preempt: Module) -> None:
    """The killer wakes from its sleep only because the spinner yields; the kill ends it."""
    spinner = start(engine, preempt, "spin")
    killer = start(engine, preempt, "killer", spinner.pid, 5)
    finished = finish(engine, spinner)
    assert finished.outcome is Outcome.KILLED
    assert finished.message == f"killed by process {killer.pid}"
    finish_ok(engine, killer)


def test_a_link_death_reaches_a_process_in_a_long_slice(engine: Engine, preempt: Module) -> None:
    """A process linked to one that traps dies with it, although it never calls the host."""
    doomed = start(engine, preempt, "doomed", 5)
    spinner = engine.spawn(preempt, "spin", (), EnvConfig.permissive(), link=(doomed, 7))
    assert finish(engine, doomed).outcome is Outcome.FAILED
    finished = finish(engine, spinner)
    assert finished.outcome is Outcome.KILLED
    assert str(doomed.pid) in finished.message


def test_a_fuel_budget_ends_a_spinner_and_leaves_the_others_alone(engine: Engine, preempt: Module) -> None:
    """max_fuel runs in the fuel-metering engine: out of fuel there, while unmetered spinners
    and counters beside it go on."""
    spinner = start(engine, preempt, "spin")
    metered = start(engine, preempt, "spin", max_fuel=3)
    counter = start(engine, preempt, "count", 100_000, max_fuel=100)
    assert finish(engine, metered).message == "out of fuel"
    assert finish_ok(engine, counter).result == (100_000,)
    assert spinner.alive


def test_the_time_slice_is_configurable_and_the_ticker_stops_at_close() -> None:
    import gc

    gc.collect()  # engines other tests left to the collector: none may stop its ticker mid-count
    before = ticker_threads()
    engine = Engine(time_slice_ns=250_000)
    try:
        assert engine.preemption.ticker.period_ns == 250_000
        assert engine.preemption.ticker.running
        assert ticker_threads() == before + 1
        module = engine.load_module('(module (memory (export "memory") 1) (func (export "f")))')
        finish_ok(engine, engine.spawn(module, "f", (), EnvConfig(max_fuel=1)))  # the fuel engine too
        assert ticker_threads() == before + 1  # one ticker for both wasmtime engines
    finally:
        engine.close()
    assert not engine.preemption.ticker.running
    assert ticker_threads_settle(before) == before


def test_an_engine_never_closed_stops_its_ticker_when_collected() -> None:
    import gc

    gc.collect()  # engines other tests left to the collector
    before = ticker_threads()
    engine = Engine()
    ticker = engine.preemption.ticker
    del engine
    gc.collect()
    assert not ticker.running
    assert ticker_threads_settle(before) == before


@pytest.fixture
def two_engines() -> Iterator[tuple[Engine, Engine]]:
    first, second = Engine(), Engine()
    yield first, second
    first.close()
    second.close()


def test_each_engine_has_its_own_ticker(two_engines: tuple[Engine, Engine]) -> None:
    first, second = two_engines
    assert first.preemption.ticker is not second.preemption.ticker


def test_a_process_killed_during_its_own_host_call_dies_at_its_slice_end(engine: Engine) -> None:
    """A kill that lands while the process's own host call runs (here a host function that kills
    its caller and returns) cannot unwind it there: it dies when its slice ends, although it then
    spins forever without another host call."""

    def kill_me() -> None:
        assert engine.current is not None
        engine.kill(engine.current.pid, "killed while running")

    engine.linker.define("test", "kill_me", "", "", kill_me)
    module = engine.load_module(
        '(module (import "test" "kill_me" (func $kill_me)) (memory (export "memory") 1)'
        ' (func (export "main") (call $kill_me) (loop $forever (br $forever))))'
    )
    process = start(engine, module, "main")
    finished = finish(engine, process)
    assert finished.outcome is Outcome.KILLED
    assert finished.message == "killed while running"


@pytest.mark.parametrize("bad", [0, 9_999, 10_000_000_001, True, 1.5, "1000000"])
def test_a_time_slice_the_ticker_cannot_keep_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="time_slice_ns must be an int between"):
        Engine(time_slice_ns=bad)  # type: ignore[arg-type]


def test_the_ticker_keeps_the_time_slice_given() -> None:
    engine = Engine(time_slice_ns=5_000_000)
    try:
        assert engine.preemption.ticker.period_ns == 5_000_000
    finally:
        engine.close()
