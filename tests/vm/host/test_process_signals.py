"""Signals between processes, end to end: links, monitors, kills, and how processes end.

Guests: tests/guests/sig_links.wat (scenarios that return what they observed, or report pids to a
parked "probe" process whose mailbox the test reads) and tests/guests/sig_exit.wat (ways to end).
"""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import finish

from lunatic_mp import DeathReason, Engine, EnvConfig, Module, Outcome, Process
from lunatic_mp.vm.mailbox import Kind

GUESTS = Path(__file__).parents[2] / "guests"
LINK_DIED = 1
PROCESS_DIED = 2
TIMEOUT = 9027


@pytest.fixture
def links(load: Callable[[str], Module]) -> Module:
    return load("sig_links.wat")


@pytest.fixture
def ends(load: Callable[[str], Module]) -> Module:
    return load("sig_exit.wat")


def start(engine: Engine, module: Module, function: str, *params: object, **link: object) -> Process:
    """Spawn with every permission (``link=(process, tag)`` links it on the host side)."""
    return engine.spawn(module, function, params, EnvConfig.permissive(), **link)  # type: ignore[arg-type]


def settle(engine: Engine) -> None:
    """Run until nothing more can happen (every live process is parked)."""
    engine.run(timeout=30)


def reports(probe: Process) -> list[int]:
    """The i64 values that guests reported to ``probe``, in arrival order."""
    return [struct.unpack("<q", bytes(m.data))[0] for m in probe.mailbox if m.kind is Kind.DATA]


def missing_pid(engine: Engine) -> int:
    """A pid of this engine that no process has had."""
    return engine.pid_base | 0xFFFF_FF


# --- links ----------------------------------------------------------------------------------------


def test_linked_child_failure_kills_parent(engine: Engine, links: Module) -> None:
    """A child spawned linked that traps kills its parent (die_when_link_dies defaults to 1)."""
    probe = start(engine, links, "park")
    parent = start(engine, links, "link_cascade", probe.pid)
    finished = finish(engine, parent)
    (child,) = reports(probe)
    assert finished.outcome is Outcome.KILLED
    assert not finished.ok
    assert f"linked process {child}" in finished.message
    assert "unreachable" in finished.message
    assert child not in engine.processes
    assert list(engine.processes) == [probe.pid]


def test_chain_of_three_linked_processes_all_die(engine: Engine, links: Module) -> None:
    """A failure at the end of a chain A-B-C of links kills B, and through B, A."""
    probe = start(engine, links, "park")
    top = start(engine, links, "chain", probe.pid, 2)
    finished = finish(engine, top)
    chain = reports(probe)
    assert len(chain) == 3
    assert len(set(chain)) == 3
    assert chain[0] == top.pid
    middle, leaf = chain[1], chain[2]
    assert finished.outcome is Outcome.KILLED
    message = finished.message
    assert f"linked process {middle}" in message
    assert f"linked process {leaf}" in message
    assert message.index(str(middle)) < message.index(str(leaf)) < message.index("unreachable")
    assert list(engine.processes) == [probe.pid]


def test_long_chain_of_links_dies_without_recursion(load: Callable[[str], Module]) -> None:
    """A cascade through 1000 links completes: deaths are a work list, not a recursion (which
    would pass Python's recursion limit)."""
    gc.collect()  # engines of earlier tests hold memory mappings until collected (see test_engine)
    engine = Engine(max_processes=1100)
    try:
        links = engine.load_module(GUESTS / "sig_links.wat")
        probe = start(engine, links, "park")
        top = start(engine, links, "chain", probe.pid, 1000)
        finished = finish(engine, top)
        assert finished.outcome is Outcome.KILLED
        assert len(reports(probe)) == 1001
        assert list(engine.processes) == [probe.pid]
    finally:
        engine.close()


def test_die_when_link_dies_off_receives_link_died(engine: Engine, links: Module) -> None:
    """With die_when_link_dies(0) a failing link arrives as LinkDied with the tag and pid."""
    process = start(engine, links, "link_died_msg")
    finished = finish(engine, process)
    assert finished.ok, finished
    code, tag, dead, child = finished.result
    assert code == LINK_DIED
    assert tag == 7
    assert dead == child
    assert child != process.pid


def test_link_died_carries_failure_reason(engine: Engine, links: Module) -> None:
    """The LinkDied message of a trapped link has reason FAILURE, the link's tag and its pid."""
    watcher = start(engine, links, "watch_park")
    settle(engine)  # the watcher has turned die_when_link_dies off
    failing = start(engine, links, "trap", link=(watcher, 13))
    assert finish(engine, failing).outcome is Outcome.FAILED
    settle(engine)
    assert watcher.alive
    (message,) = list(watcher.mailbox)
    assert message.kind is Kind.LINK_DIED
    assert (message.tag, message.pid, message.reason) == (13, failing.pid, DeathReason.FAILURE)


def test_spawned_side_of_a_link_sees_the_tag(engine: Engine, links: Module) -> None:
    """Links are two-way: when the process it was linked to fails, the spawned one (with
    die_when_link_dies off) gets LinkDied carrying the tag given at spawn."""
    doomed = start(engine, links, "trap_after_msg")
    watcher = start(engine, links, "watch", link=(doomed, 21))
    settle(engine)
    assert engine.send(doomed.pid, b"die")
    assert finish(engine, doomed).outcome is Outcome.FAILED
    assert finish(engine, watcher).result == (LINK_DIED, 21, doomed.pid)


@pytest.mark.parametrize("die_when_link_dies", [1, 0])
def test_normal_exit_of_linked_child_sends_nothing(
    engine: Engine, links: Module, die_when_link_dies: int
) -> None:
    """A linked child that returns normally neither kills its parent nor sends it LinkDied, with
    die_when_link_dies on or off (lunatic 0.13: `DeathReason::Normal => {}`); only the parent's
    monitor reports the death."""
    process = start(engine, links, "link_normal_exit", die_when_link_dies)
    finished = finish(engine, process)
    assert finished.ok, finished
    code, dead, then, child = finished.result
    assert (code, dead, then) == (PROCESS_DIED, child, TIMEOUT)


@pytest.mark.parametrize("parent_function", ["park", "watch_park"])
def test_normal_exit_leaves_the_link_silent(engine: Engine, links: Module, parent_function: str) -> None:
    """A host-side link to a child that ends normally: the parent (dying with links, or turning
    link deaths into messages) stays alive with an empty mailbox and without the link."""
    parent = start(engine, links, parent_function)
    settle(engine)
    child = start(engine, links, "ok", link=(parent, 4))
    assert finish(engine, child).ok
    settle(engine)
    assert parent.alive
    assert list(parent.mailbox) == []
    assert child.pid not in parent.links


def test_unlink_before_child_dies(engine: Engine, links: Module) -> None:
    """After unlink, a failing child neither kills the parent nor sends it LinkDied."""
    process = start(engine, links, "unlink_first")
    finished = finish(engine, process)
    assert finished.ok, finished
    first, second, dead, child = finished.result
    assert first == PROCESS_DIED  # only the monitor's notice arrived
    assert dead == child
    assert second == TIMEOUT  # and nothing else is in the mailbox


def test_link_to_missing_pid_delivers_link_died(engine: Engine, links: Module) -> None:
    """link() to a pid that does not exist delivers LinkDied at once to a process that turned
    die_when_link_dies off."""
    missing = missing_pid(engine)
    finished = finish(engine, start(engine, links, "link_missing", missing))
    assert finished.ok, finished
    assert finished.result == (LINK_DIED, 11, missing)


def test_link_to_missing_pid_kills_a_process_dying_with_links(engine: Engine, links: Module) -> None:
    """With die_when_link_dies at 1 (the default), NoProcess kills the linking process, as a
    failure does (lunatic 0.13: `DeathReason::Failure | DeathReason::NoProcess`)."""
    missing = missing_pid(engine)
    finished = finish(engine, start(engine, links, "link_missing_dies", missing))
    assert finished.outcome is Outcome.KILLED
    assert f"linked process {missing} died (no such process)" in finished.message


def test_link_to_missing_pid_reason_is_no_process(engine: Engine, links: Module) -> None:
    """The LinkDied of a missing pid has reason NO_PROCESS, and the caller (die_when_link_dies 0)
    stays alive."""
    missing = missing_pid(engine)
    process = start(engine, links, "link_missing_park", missing)
    settle(engine)
    assert process.alive
    (message,) = list(process.mailbox)
    assert message.kind is Kind.LINK_DIED
    assert (message.tag, message.pid, message.reason) == (11, missing, DeathReason.NO_PROCESS)


def test_guest_kill_of_linked_child_kills_the_killer(engine: Engine, links: Module) -> None:
    """A kill is a failure: killing a linked child kills the parent through the link."""
    probe = start(engine, links, "park")
    parent = start(engine, links, "kill_linked_child", probe.pid)
    finished = finish(engine, parent)
    (child,) = reports(probe)
    assert finished.outcome is Outcome.KILLED
    assert f"linked process {child}" in finished.message
    assert f"killed by process {parent.pid}" in finished.message
    assert child not in engine.processes


def test_host_kill_cascades_through_links(engine: Engine, links: Module) -> None:
    """engine.kill() of a process kills the processes linked to it that die with their links."""
    parent = start(engine, links, "park")
    child = start(engine, links, "park", link=(parent, 2))
    settle(engine)
    assert engine.kill(child.pid)
    assert child.finished is not None and child.finished.outcome is Outcome.KILLED
    assert parent.finished is not None and parent.finished.outcome is Outcome.KILLED
    assert f"linked process {child.pid}" in parent.finished.message
    assert not engine.processes


# --- monitors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "how"), [(0, "trap"), (1, "normal exit")])
def test_monitor_receives_process_died(engine: Engine, links: Module, which: int, how: str) -> None:
    """A monitor gets ProcessDied (receive returns 2) with the dead pid, whatever the death, and
    survives a failure of the process it monitors."""
    finished = finish(engine, start(engine, links, "monitor_child", which))
    assert finished.ok, (how, finished)
    code, dead, child = finished.result
    assert code == PROCESS_DIED
    assert dead == child


def test_monitor_missing_pid_delivers_process_died(engine: Engine, links: Module) -> None:
    """Monitoring a pid that does not exist delivers ProcessDied at once."""
    missing = missing_pid(engine)
    finished = finish(engine, start(engine, links, "monitor_missing", missing))
    assert finished.result == (PROCESS_DIED, missing)


def test_stop_monitoring(engine: Engine, links: Module) -> None:
    """After stop_monitoring no ProcessDied arrives for that process; a later monitor still works."""
    finished = finish(engine, start(engine, links, "stop_monitoring_child"))
    assert finished.ok, finished
    code, dead, second, leftover, first_exists = finished.result
    assert first_exists == 0  # the unmonitored child died before the second one
    assert (code, dead) == (PROCESS_DIED, second)
    assert leftover == TIMEOUT


def test_monitor_is_one_way(engine: Engine, links: Module) -> None:
    """The death of a monitoring process tells the monitored one nothing and leaves no trace."""
    watched = start(engine, links, "park")
    settle(engine)
    monitor = start(engine, links, "monitor_and_return", watched.pid)
    assert finish(engine, monitor).ok
    settle(engine)
    assert watched.alive
    assert not list(watched.mailbox)
    assert monitor.pid not in watched.monitored_by


# --- kills, exists and pids -----------------------------------------------------------------------


def test_guest_kill_and_exists(engine: Engine, links: Module) -> None:
    """kill() from a guest ends the target at once: exists() goes from 1 to 0, ProcessDied follows."""
    parent = start(engine, links, "kill_child")
    finished = finish(engine, parent)
    assert finished.ok, finished
    before, after, code, dead, own, child = finished.result
    assert (before, after) == (1, 0)
    assert (code, dead) == (PROCESS_DIED, child)
    assert own == parent.pid
    assert child != own


def test_process_ids_differ(engine: Engine, links: Module) -> None:
    """process_id() is the caller's own pid, and every spawned process gets a new one."""
    parent = start(engine, links, "pids")
    finished = finish(engine, parent)
    own, first, second = finished.result
    assert own == parent.pid
    assert len({own, first, second}) == 3
    other = start(engine, links, "park")
    assert other.pid not in {own, first, second}


def test_kill_self(engine: Engine, links: Module) -> None:
    """A process that kills itself ends KILLED and runs no further code."""
    process = start(engine, links, "kill_self")
    finished = finish(engine, process)
    assert finished.outcome is Outcome.KILLED
    assert finished.result == ()
    assert finished.message == f"killed by process {process.pid}"


# --- how processes end ----------------------------------------------------------------------------


def test_finished_normal_with_result(engine: Engine, ends: Module) -> None:
    """A returning export ends NORMAL with its results, in order."""
    finished = finish(engine, start(engine, ends, "answer"))
    assert finished.outcome is Outcome.NORMAL
    assert finished.ok
    assert finished.result == (42, 7)
    assert (finished.message, finished.exit_code) == ("", None)


def test_finished_normal_without_result(engine: Engine, ends: Module) -> None:
    """An export with no results ends NORMAL with an empty result."""
    finished = finish(engine, start(engine, ends, "nothing"))
    assert finished.ok
    assert finished.result == ()


@pytest.mark.parametrize("reason", [None, "shutting down"])
def test_finished_killed(engine: Engine, ends: Module, reason: str | None) -> None:
    """engine.kill() ends a waiting process KILLED with the given reason ("killed" by default)."""
    process = start(engine, ends, "park")
    settle(engine)
    assert process.alive
    assert engine.kill(process.pid) if reason is None else engine.kill(process.pid, reason)
    finished = process.finished
    assert finished is not None
    assert finished.outcome is Outcome.KILLED
    assert not finished.ok
    assert finished.message == (reason or "killed")
    assert process.pid not in engine.processes


@pytest.mark.parametrize(
    ("function", "expected"), [("trap", "unreachable"), ("divide_by_zero", "integer divide by zero")]
)
def test_finished_failed_with_trap_message(
    engine: Engine, ends: Module, function: str, expected: str
) -> None:
    """A trap ends the process FAILED, its message naming the trap, with a guest backtrace."""
    finished = finish(engine, start(engine, ends, function))
    assert finished.outcome is Outcome.FAILED
    assert not finished.ok
    assert expected in finished.message
    assert finished.exit_code is None
    assert finished.backtrace


def test_trap_backtrace_names_the_function(engine: Engine, ends: Module) -> None:
    """The backtrace of a trap names the module and function it happened in."""
    finished = finish(engine, start(engine, ends, "trap"))
    assert finished.backtrace[0] == "sig_exit!trap"


def test_proc_exit_nonzero_fails(engine: Engine, ends: Module) -> None:
    """proc_exit(3) ends the process FAILED, with exit_code 3."""
    finished = finish(engine, start(engine, ends, "exit", 3))
    assert finished.outcome is Outcome.FAILED
    assert not finished.ok
    assert finished.exit_code == 3
    assert "3" in finished.message


def test_proc_exit_zero_is_normal(engine: Engine, ends: Module) -> None:
    """proc_exit(0) is a normal end, with exit_code 0."""
    finished = finish(engine, start(engine, ends, "exit", 0))
    assert finished.outcome is Outcome.NORMAL
    assert finished.ok
    assert finished.exit_code == 0


def test_proc_exit_is_a_failure_for_links(engine: Engine, ends: Module, links: Module) -> None:
    """A nonzero exit counts as a failure for links (kills the partner); exit 0 does not."""
    failing_parent = start(engine, links, "park")
    start(engine, ends, "exit", 3, link=(failing_parent, 1))
    normal_parent = start(engine, links, "park")
    start(engine, ends, "exit", 0, link=(normal_parent, 1))
    settle(engine)
    assert failing_parent.finished is not None
    assert failing_parent.finished.outcome is Outcome.KILLED
    assert normal_parent.alive
    assert list(normal_parent.mailbox) == []  # a normal death sends nothing over the link
