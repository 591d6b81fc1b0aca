"""lunatic::trap::catch: a guest survives a trap in the function it runs under catch."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import finish, start, sweep

from lunatic_mp import Engine, Finished, Module, Outcome
from lunatic_mp.vm import core

DOUBLE, BOOM, WAIT, WAIT_THEN_BOOM, NESTED, SPIN, SUICIDE = 0, 1, 2, 3, 4, 5, 7


@pytest.fixture
def tasks(load: Callable[[str], Module]) -> Module:
    return load("catch_tasks.wat")


def test_catch_of_a_fine_function_returns_its_result(tasks: Module, run: Callable[..., Finished]) -> None:
    """catch(double, 21) returns what the function returned: 42."""
    assert run(tasks, "catch", (DOUBLE, 21)) == Finished(Outcome.NORMAL, result=(42,))


def test_catch_of_a_trapping_function_returns_zero(tasks: Module, run: Callable[..., Finished]) -> None:
    """catch(boom) returns 0 and the process ends normally instead of failing."""
    assert run(tasks, "catch", (BOOM, 0)) == Finished(Outcome.NORMAL, result=(0,))


def test_catch_of_a_bad_table_index_returns_zero(tasks: Module, run: Callable[..., Finished]) -> None:
    """A call_indirect out of the table traps inside catch too, and is caught."""
    assert run(tasks, "catch", (100, 0)).result == (0,)


def test_without_catch_the_same_trap_fails_the_process(tasks: Module, run: Callable[..., Finished]) -> None:
    """The control case: the trapping task called directly ends the process FAILED."""
    finished = run(tasks, "uncaught")
    assert finished.outcome is Outcome.FAILED
    assert "unreachable" in finished.message, finished.message


def test_process_goes_on_after_a_caught_trap(engine: Engine, tasks: Module) -> None:
    """After a caught trap the guest catches again and sends a message that wakes a waiter."""
    waiter = start(engine, tasks, "catch", WAIT, 1)
    worker = start(engine, tasks, "trap_then_go_on", waiter.pid)
    assert finish(engine, worker).result == (0, 100)
    assert finish(engine, waiter).result == (1,)  # an empty message + arg 1


def test_effects_before_the_trap_remain(tasks: Module, run: Callable[..., Finished]) -> None:
    """Globals and memory written before the trap keep their values: catch is not a rollback."""
    assert run(tasks, "effects_survive", (7,)).result == (0, 7, 7)


def test_catch_around_a_receive_suspends_and_resumes(engine: Engine, tasks: Module) -> None:
    """A function that waits for a message inside catch suspends; a message resumes it."""
    process = start(engine, tasks, "catch", WAIT, 3)
    engine.run(timeout=10)
    assert process.alive
    assert process.pid in engine.processes
    engine.send(process.pid, b"hello")
    assert finish(engine, process) == Finished(Outcome.NORMAL, result=(8,))


def test_trap_after_a_receive_inside_catch_is_caught(engine: Engine, tasks: Module) -> None:
    """A function that suspends, resumes and then traps: catch still returns 0."""
    process = start(engine, tasks, "catch", WAIT_THEN_BOOM, 0)
    engine.run(timeout=10)
    assert process.alive
    engine.send(process.pid, b"x")
    assert finish(engine, process) == Finished(Outcome.NORMAL, result=(0,))


def test_other_processes_run_while_one_waits_inside_catch(engine: Engine, tasks: Module) -> None:
    """A process suspended inside catch does not block another one from completing."""
    waiting = start(engine, tasks, "catch", WAIT, 0)
    other = start(engine, tasks, "catch", DOUBLE, 4)
    assert finish(engine, other).result == (8,)
    assert waiting.alive


def test_nested_catch(tasks: Module, run: Callable[..., Finished]) -> None:
    """A catch inside a caught function works: the inner trap is caught, the outer returns arg + 5."""
    assert run(tasks, "catch", (NESTED, 10)).result == (15,)


def test_kill_inside_catch_is_not_caught(engine: Engine, tasks: Module) -> None:
    """A kill is not a trap: a process waiting inside catch ends KILLED, and others go on."""
    victim = start(engine, tasks, "catch", WAIT, 0)
    bystander = start(engine, tasks, "catch", WAIT, 2)
    engine.run(timeout=10)
    assert engine.kill(victim.pid)
    finished = finish(engine, victim)
    assert finished.outcome is Outcome.KILLED
    engine.send(bystander.pid, b"abc")
    assert finish(engine, bystander).result == (5,)


def test_killing_itself_inside_catch_is_not_caught(tasks: Module, run: Callable[..., Finished]) -> None:
    """A process that kills itself inside catch ends KILLED; catch does not turn it into 0."""
    finished = run(tasks, "catch", (SUICIDE, 0))
    assert finished.outcome is Outcome.KILLED, finished
    assert "killed" in finished.message


def test_catch_does_not_refill_fuel(tasks: Module, run: Callable[..., Finished]) -> None:
    """Catching an out-of-fuel trap (catch returns 0, as in lunatic) gives no new fuel: the
    loop after it runs out at once, and the process ends out of fuel."""
    module = tasks
    assert run(module, "catch_then_loop", (DOUBLE, 10), max_fuel=1).result == (0, 10)
    finished = run(module, "catch_then_loop", (SPIN, 10), max_fuel=1)
    assert finished.outcome is Outcome.FAILED
    assert finished.message == "out of fuel"


def test_catch_needs_the_catch_export(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """Without `_lunatic_catch_trap`, catch traps with a message naming the missing export."""
    finished = run(load("catch_no_export.wat"), "main")
    assert finished.outcome is Outcome.FAILED
    assert "_lunatic_catch_trap" in finished.message, finished.message


def test_catch_export_of_the_wrong_type_counts_as_a_trap(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """As in lunatic 0.13, a `_lunatic_catch_trap` that cannot be called with (i32, i32) fails
    the nested call, and catch returns 0 (it is not a trap of the process)."""
    assert run(load("catch_bad_signature.wat"), "main") == Finished(Outcome.NORMAL, result=(0,))


def test_a_process_waiting_inside_catch_hibernates_and_resumes(engine: Engine, tasks: Module) -> None:
    """Its wait runs on the nested call's fiber, inside the outer call's: both come back."""
    before = core.hibernation_stats()[0]
    process = start(engine, tasks, "catch", WAIT, 3)
    engine.run(timeout=10)
    sweep(engine)
    sweep(engine)
    assert core.hibernation_stats()[0] == before + 1
    engine.send(process.pid, b"hello")
    assert finish(engine, process) == Finished(Outcome.NORMAL, result=(8,))
    assert core.hibernation_stats()[0] == before


def test_a_process_hibernated_inside_catch_can_be_killed(engine: Engine, tasks: Module) -> None:
    before = core.hibernation_stats()[0]
    victim = start(engine, tasks, "catch", WAIT, 0)
    engine.run(timeout=10)
    sweep(engine)
    sweep(engine)
    assert core.hibernation_stats()[0] == before + 1
    assert engine.kill(victim.pid)
    assert finish(engine, victim).outcome is Outcome.KILLED
    assert core.hibernation_stats()[0] == before
