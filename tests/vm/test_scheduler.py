"""The scheduler: fairness between spinning and messaging processes, kills of running
processes, and when ``run`` / ``run_until_finished`` return."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest
from conftest import finish_ok as finish
from conftest import start

from lunatic_mp import Engine, Module, Outcome
from lunatic_mp.vm import scheduler
from lunatic_mp.vm.process import Phase

Load = Callable[[str], Module]


# --- fairness and kills ---------------------------------------------------------------------------


def test_ping_pong_completes_beside_spinners(engine: Engine, load: Load) -> None:
    """Two processes spinning forever do not starve a ping-pong pair; engine.kill then ends
    the spinners with outcome KILLED."""
    procs = load("sched_procs.wat")
    spinners = [start(engine, procs, "spin") for _ in range(2)]
    pinger = start(engine, load("msg_ping_pong.wat"), "main", 200)
    assert finish(engine, pinger).result == (200 * 199,)
    assert all(s.finished is None and s.phase is Phase.RUNNING for s in spinners)
    for spinner in spinners:
        assert engine.kill(spinner.pid) is True
        assert spinner.finished is not None
        assert spinner.finished.outcome is Outcome.KILLED
        assert spinner.pid not in engine.processes
    assert engine.kill(spinners[0].pid) is False  # already gone


def _rounds_to_finish(engine: Engine, process: object) -> int:
    rounds = 0
    while getattr(process, "finished", None) is None:
        engine.scheduler.run_round()
        rounds += 1
    return rounds


def test_a_round_runs_on_through_the_processes_it_woke(
    engine: Engine, load: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message chain between local processes runs on within one round while the chain budget
    lasts (no return to the caller's loop per hop), and hop by hop, a round each, without it."""
    module = load("msg_ping_pong.wat")
    monkeypatch.setattr(scheduler, "CHAIN_BUDGET_NS", 0)
    assert _rounds_to_finish(engine, start(engine, module, "main", 50)) > 100
    monkeypatch.setattr(scheduler, "CHAIN_BUDGET_NS", 60 * 10**9)
    assert _rounds_to_finish(engine, start(engine, module, "main", 50)) == 1


def test_spinners_started_after_ping_pong(engine: Engine, load: Load) -> None:
    """Fairness does not depend on spawn order: spinners spawned after the pair still let it run."""
    pinger = start(engine, load("ping_pong.wat"), "main", 100)
    procs = load("sched_procs.wat")
    spinners = [start(engine, procs, "spin") for _ in range(2)]
    assert finish(engine, pinger).result == (100,)
    for spinner in spinners:
        engine.kill(spinner.pid)
        assert spinner.finished is not None and spinner.finished.outcome is Outcome.KILLED


def test_wasm_process_kills_spinner(engine: Engine, load: Load) -> None:
    """lunatic::process::kill from another Wasm process ends a spinning process."""
    procs = load("sched_procs.wat")
    spinner = start(engine, procs, "spin")
    # both instantiate in the first round; in the next, the spinner runs one fuel slice of its
    # loop, then the killer kills it
    killer = start(engine, procs, "kill_and_check", spinner.pid)
    assert finish(engine, killer).result == (0,)  # exists(pid) is 0 after the kill
    assert spinner.finished is not None
    assert spinner.finished.outcome is Outcome.KILLED
    assert str(killer.pid) in spinner.finished.message
    assert not engine.processes


def test_killing_a_blocked_process(engine: Engine, load: Load) -> None:
    """engine.kill ends a process blocked in receive; its pending timer no longer matters."""
    blocked = start(engine, load("msg_timeout.wat"), "receive_within", 60_000)
    engine.run(timeout=0.01)
    assert blocked.finished is None
    assert engine.kill(blocked.pid)
    assert blocked.finished is not None and blocked.finished.outcome is Outcome.KILLED
    began = time.monotonic()
    engine.run(timeout=30)  # returns at once: the cancelled timeout keeps nothing alive
    assert time.monotonic() - began < 10


# --- run order ------------------------------------------------------------------------------------


def test_ready_processes_run_in_spawn_order(engine: Engine, load: Load) -> None:
    """Processes ready at the same time run in the order they were spawned."""
    module = load("msg_collector.wat")
    collector = start(engine, module, "collect", 3)
    for value in (1, 2, 3):
        start(engine, module, "report", collector.pid, value)
    assert finish(engine, collector).result == (1_02_03,)


# --- engine.run -----------------------------------------------------------------------------------


def test_run_returns_when_all_done_or_blocked(engine: Engine, load: Load) -> None:
    """run() returns once every process has finished or waits forever: the pingers are done,
    their pongers are blocked in receive."""
    module = load("msg_ping_pong.wat")
    pingers = [start(engine, module, "main", n) for n in (10, 20, 30)]
    began = time.monotonic()
    engine.run(timeout=30)
    assert time.monotonic() - began < 10
    assert [p.finished.result for p in pingers if p.finished] == [(90,), (380,), (870,)]
    assert len(engine.processes) == 3
    assert all(p.function == "pong" and p.finished is None for p in engine.processes.values())


def test_run_returns_with_blocked_process_then_resumes(engine: Engine, load: Load) -> None:
    """A process blocked forever does not keep run() from returning; a later message wakes it."""
    blocked = start(engine, load("sched_procs.wat"), "block_forever")
    began = time.monotonic()
    engine.run(timeout=30)
    assert time.monotonic() - began < 10
    assert blocked.finished is None
    assert engine.send(blocked.pid, b"", tag=-7)
    engine.run(timeout=30)
    assert blocked.finished is not None and blocked.finished.result == (0,)


def test_run_waits_for_sleepers(engine: Engine, load: Load) -> None:
    """A sleeping process is not blocked forever: run() waits until it wakes and finishes."""
    sleeper = start(engine, load("sched_procs.wat"), "nap", 20)
    began = time.monotonic()
    engine.run(timeout=30)
    assert time.monotonic() - began >= 0.02
    assert sleeper.finished is not None and sleeper.finished.result == (1,)


def test_run_timeout_with_spinner(engine: Engine, load: Load) -> None:
    """run(timeout) returns even though a spinner never stops."""
    spinner = start(engine, load("sched_procs.wat"), "spin")
    began = time.monotonic()
    engine.run(timeout=0.1)
    assert 0.1 <= time.monotonic() - began < 10
    assert spinner.finished is None


# --- engine.run_until_finished --------------------------------------------------------------------


def test_run_until_finished_deadlock_returns_none(engine: Engine, load: Load) -> None:
    """With nothing else that could happen, a process blocked forever gives None at once."""
    blocked = start(engine, load("sched_procs.wat"), "block_forever")
    began = time.monotonic()
    assert engine.run_until_finished(blocked, timeout=30) is None
    assert time.monotonic() - began < 10
    assert blocked.pid in engine.processes


def test_run_until_finished_timeout_returns_none(engine: Engine, load: Load) -> None:
    """While a ticker keeps timers pending, waiting for a process blocked forever ends with
    None when the timeout passes."""
    procs = load("sched_procs.wat")
    start(engine, procs, "tick_forever")
    blocked = start(engine, procs, "block_forever")
    began = time.monotonic()
    assert engine.run_until_finished(blocked, timeout=0.1) is None
    assert 0.1 <= time.monotonic() - began < 10
    assert blocked.finished is None


def test_run_until_finished_timeout_beside_spinner(engine: Engine, load: Load) -> None:
    """With a spinner always ready, waiting for a blocked process still ends at the timeout."""
    procs = load("sched_procs.wat")
    start(engine, procs, "spin")
    blocked = start(engine, procs, "block_forever")
    began = time.monotonic()
    assert engine.run_until_finished(blocked, timeout=0.1) is None
    assert 0.1 <= time.monotonic() - began < 10


def test_run_until_finished_stops_at_the_process(engine: Engine, load: Load) -> None:
    """run_until_finished returns the process's Finished without waiting for other sleepers."""
    procs = load("sched_procs.wat")
    start(engine, procs, "nap", 60_000)
    quick = start(engine, procs, "nap", 1)
    began = time.monotonic()
    assert finish(engine, quick).result == (1,)
    assert time.monotonic() - began < 10


class _Stop(Exception):
    """Raised by the fake ``time.sleep`` to leave the scheduler loop."""


# time.sleep takes at most 2**63 - 1 nanoseconds on Linux; more raises OverflowError.
MAX_SLEEP_S = (2**63 - 1) / 1e9


@pytest.mark.parametrize(
    ("function", "params"),
    [
        ("receive_within", (2**63 - 1,)),  # receive with a timeout of 2**63 - 1 ms
        ("send_later", (0, 2**62)),  # sleep_ms(2**62) before sending
    ],
)
def test_huge_guest_timeout_does_not_break_run(
    engine: Engine, load: Load, monkeypatch: pytest.MonkeyPatch, function: str, params: tuple[int, ...]
) -> None:
    """A receive timeout or sleep of ~2**63 ms keeps run() waiting, but never asks time.sleep
    for a pause it cannot take (which raised OverflowError out of engine.run())."""
    start(engine, load("msg_timeout.wat"), function, *params)
    pauses: list[float] = []

    def fake_sleep(seconds: float) -> None:
        pauses.append(seconds)
        raise _Stop

    monkeypatch.setattr("lunatic_mp.vm.scheduler.time.sleep", fake_sleep)
    with contextlib.suppress(_Stop):
        engine.run()  # returning without sleeping (the wait counted as forever) is fine too
    assert all(pause < MAX_SLEEP_S for pause in pauses), pauses
