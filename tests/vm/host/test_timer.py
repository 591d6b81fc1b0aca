"""End-to-end tests of timers: ``sleep_ms`` ordering, ``send_after`` and ``cancel_timer``."""

from __future__ import annotations

import time
from collections.abc import Callable

from conftest import finish as finish_any
from conftest import finish_ok as finish
from conftest import start

from lunatic_mp import Engine, Finished, Module, Outcome
from lunatic_mp.vm.host.timer import MAX_TIMERS_PER_PROCESS

TIMEOUT = 9027

Load = Callable[[str], Module]
Run = Callable[..., Finished]


def test_sleepers_wake_in_deadline_order(engine: Engine, load: Load) -> None:
    """Processes sleeping 30, 10 and 20 ms (spawned in that order) report 10, 20, 30."""
    collector = start(engine, load("msg_collector.wat"), "collect", 3)
    timers = load("timer_sleep.wat")
    sleepers = [start(engine, timers, "sleep_then_report", ms, collector.pid) for ms in (30, 10, 20)]
    began = time.monotonic()
    assert finish(engine, collector).result == (10_20_30,)
    assert time.monotonic() - began >= 0.03
    assert all(s.finished is not None and s.finished.ok for s in sleepers)


def test_send_after_delivers_in_delay_order(load: Load, run: Run) -> None:
    """Messages scheduled with delays 30, 10, 20 ms arrive in the order 10, 20, 30."""
    began = time.monotonic()
    assert run(load("timer_sleep.wat"), "send_after_order").result == (10_20_30,)
    assert time.monotonic() - began >= 0.03


def test_send_after_to_other_process(engine: Engine, load: Load) -> None:
    """send_after delivers to another process, no sooner than the delay."""
    collector = start(engine, load("msg_collector.wat"), "collect", 1)
    ids = start(engine, load("msg_collector.wat"), "collect", 1)
    began = time.monotonic()
    sender = start(engine, load("timer_sleep.wat"), "send_after_and_wait", collector.pid, 20, 7, ids.pid)
    assert finish(engine, collector).result == (7,)
    assert time.monotonic() - began >= 0.02
    assert finish(engine, ids).result[0] > 0  # the timer's id
    engine.kill(sender.pid)


def test_timers_die_with_their_process(engine: Engine, load: Load) -> None:
    """A process that ends with 1,000 one-day timers and 1,000 that never fire pending: all are
    cancelled with it, so none holds memory afterwards (before the fix they stayed: 1 M of them
    kept 500-820 MiB after the process was gone). A sender's timer to another process dies
    with the sender too."""
    timers = load("timer_sleep.wat")
    for ms in (86_400_000, -1):
        assert finish(engine, start(engine, timers, "timer_flood", 1000, ms)).result == (1000,)
    collector = start(engine, load("msg_collector.wat"), "collect", 1)
    finish(engine, start(engine, timers, "send_after_to", collector.pid, 0, 7))
    engine.run(timeout=0.1)
    assert collector.finished is None  # the sender ended before its timer fired: no message
    assert engine._timers == {}
    engine.kill(collector.pid)


def test_only_its_process_can_cancel_a_timer(engine: Engine, load: Load) -> None:
    """Another process that knows (or guesses) a timer's id cannot cancel it: cancel_timer says
    0, and the message still arrives (before the fix any process could cancel any timer)."""
    timers = load("timer_sleep.wat")
    collector = start(engine, load("msg_collector.wat"), "collect", 1)
    ids = start(engine, load("msg_collector.wat"), "collect", 1)
    sender = start(engine, timers, "send_after_and_wait", collector.pid, 50, 7, ids.pid)
    timer_id = finish(engine, ids).result[0]
    assert finish(engine, start(engine, timers, "cancel_id", timer_id)).result == (0,)
    assert finish(engine, collector).result == (7,)
    engine.kill(sender.pid)


def test_a_process_has_a_bounded_number_of_timers(engine: Engine, load: Load) -> None:
    """One timer past MAX_TIMERS_PER_PROCESS pending traps the process, with a reason saying so;
    its timers go with it."""
    flood = start(engine, load("timer_sleep.wat"), "timer_flood", MAX_TIMERS_PER_PROCESS + 1, -1)
    finished = finish_any(engine, flood)
    assert finished.outcome is Outcome.FAILED
    assert f"{MAX_TIMERS_PER_PROCESS} pending timers, the most a process may have" in (finished.message or "")
    assert engine._timers == {}


def test_send_after_to_dead_process_is_dropped(engine: Engine, load: Load) -> None:
    """A timer whose target died before it fired is dropped without a host error."""
    target = start(engine, load("msg_collector.wat"), "collect", 1)
    sender = start(engine, load("timer_sleep.wat"), "send_after_to", target.pid, 10, 1)
    finish(engine, sender)
    assert engine.kill(target.pid)
    assert target.finished is not None and target.finished.outcome is Outcome.KILLED
    engine.run(timeout=30)  # the timer fires into nothing
    assert not engine.processes


def test_cancel_timer(load: Load, run: Run) -> None:
    """cancel_timer returns 1 for a pending timer, whose message never arrives, and 0 for a
    cancelled, unknown or already fired one."""
    result = run(load("timer_sleep.wat"), "cancel").result
    assert result == (
        1,  # cancel a pending timer
        TIMEOUT,  # its message never came
        0,  # cancel it again
        0,  # cancel an unknown id
        0, 5,  # a 0 ms timer fired and its message was received
        0,  # cancel the fired timer
    )  # fmt: skip


def test_timer_ids_are_distinct(engine: Engine, load: Load) -> None:
    """Each send_after hands out a new timer id (and each timer fires: its sender still lives)."""
    collector = start(engine, load("msg_collector.wat"), "collect", 3)
    ids = start(engine, load("msg_collector.wat"), "collect", 3)
    timers = load("timer_sleep.wat")
    senders = [start(engine, timers, "send_after_and_wait", collector.pid, 0, v, ids.pid) for v in (1, 2, 3)]
    packed = finish(engine, ids).result[0]
    assert len({packed // 10_000, packed // 100 % 100, packed % 100}) == 3
    assert sorted(str(finish(engine, collector).result[0])) == sorted("10203")
    for sender in senders:
        engine.kill(sender.pid)


def test_sleep_u64_max_does_not_return(engine: Engine, load: Load) -> None:
    """sleep_ms(u64::MAX), passed as -1, sleeps practically forever, as in lunatic."""
    sleeper = start(engine, load("sched_procs.wat"), "nap", -1)
    assert engine.run_until_finished(sleeper, timeout=0.1) is None
    assert sleeper.finished is None


def test_send_after_u64_max_never_fires(engine: Engine, load: Load) -> None:
    """send_after with a delay of u64::MAX, passed as -1, does not deliver the message."""
    collector = start(engine, load("msg_collector.wat"), "collect", 1)
    start(engine, load("timer_sleep.wat"), "send_after_to", collector.pid, -1, 7)
    assert engine.run_until_finished(collector, timeout=0.1) is None
    assert collector.finished is None
