"""Hostile guests and ordering guarantees of a multi-core runtime (docs/reliability.md).

Each hostile guest is contained to its own process, which ends with a clear reason, while the
other processes of the runtime go on: infinite loops, memory bombs, deep recursion, mailbox
floods (``EnvConfig.max_mailbox``: senders wait for room) and spawn bombs
(``EnvConfig.max_processes``). And a registry lookup made right after a death notice never
finds the dead process.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig, Finished, Module, Outcome
from lunatic_mp.engine import DEFAULT_MAX_MEMORY
from lunatic_mp.mailbox import Kind
from lunatic_mp.pids import worker_of
from lunatic_mp.runtime import Runtime

GUESTS = Path(__file__).parent / "guests"
PERMISSIVE = EnvConfig.permissive()
DEADLINE = 30.0
READY = 4


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as runtime:
        yield runtime


def joined(runtime: Runtime, pid: int) -> Finished:
    finished = runtime.join(pid, timeout=DEADLINE)
    assert finished is not None, f"process {pid} did not end within {DEADLINE:.0f} s"
    return finished


def joined_ok(runtime: Runtime, pid: int) -> tuple[object, ...]:
    finished = joined(runtime, pid)
    assert finished.outcome is Outcome.NORMAL, f"process {pid}: {finished}"
    return finished.result


def ready(runtime: Runtime, count: int) -> set[int]:
    """The pids of ``count`` processes that reported (tag 4) to the host program."""
    pids = set()
    for _ in range(count):
        message = runtime.receive([READY], timeout=DEADLINE)
        assert message is not None, "a process did not report"
        pids.add(int.from_bytes(bytes(message.data[:8]), "little"))
    return pids


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The OS process ``pid`` stopped (SIGSTOP) for the duration."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


# --- a registry lookup right after a death notice --------------------------------------------------

RACERS = 50


def test_lookup_after_process_died_never_finds_the_dead_process(runtime: Runtime) -> None:
    """Targets on worker B register names; watchers on worker A monitor them and look their
    names up the moment ProcessDied arrives. The registry process is stopped while the targets
    die, so the watchers' lookups, if they could be sent, would reach it before the targets'
    name removals (it reads A's ring before B's): the death notices must wait for the removals.
    Every lookup finds nothing."""
    module = runtime.load_module(GUESTS / "reg_race.wat")
    a, b = runtime.worker_ids  # the registry reads the lower worker's ring first
    targets = [runtime.spawn(module, "target", (i, runtime.pid), PERMISSIVE, worker=b) for i in range(RACERS)]
    watchers = [
        runtime.spawn(module, "watch", (i, target, runtime.pid), PERMISSIVE, worker=a)
        for i, target in enumerate(targets)
    ]
    assert ready(runtime, 2 * RACERS) == {*targets, *watchers}
    registry = runtime.registry_os_pid()
    assert registry is not None
    with stopped(registry):
        for target in targets:
            runtime.send(target, b"go")
        # Barriers, each a round trip behind the last: B has run the targets to their end (an
        # answer comes before the round that runs them), and flushed what followed ...
        runtime.exists(targets[0])
        assert not any(runtime.exists(target) for target in targets)
        # ... and A has handled whatever B sent it, run its watchers and flushed what followed.
        runtime.exists(watchers[0])
        runtime.exists(watchers[0])
    for target in targets:
        assert joined_ok(runtime, target) == ()
    for watcher in watchers:
        code, found, pid = joined_ok(runtime, watcher)
        assert (code, found, pid) == (int(Kind.PROCESS_DIED), 1, 0), "found a dead process's name"


def test_lookup_after_a_worker_loss_never_finds_its_processes() -> None:
    """The same when the targets die with their worker (SIGKILL): the workers hear of the loss
    only once the registry has dropped the lost worker's names."""
    with Runtime(workers=2) as runtime:
        module = runtime.load_module(GUESTS / "reg_race.wat")
        a, b = runtime.worker_ids
        targets = [
            runtime.spawn(module, "target", (i, runtime.pid), PERMISSIVE, worker=b) for i in range(RACERS)
        ]
        watchers = [
            runtime.spawn(module, "watch", (i, target, runtime.pid), PERMISSIVE, worker=a)
            for i, target in enumerate(targets)
        ]
        assert ready(runtime, 2 * RACERS) == {*targets, *watchers}
        os.kill(runtime.worker_pids()[b], signal.SIGKILL)
        for watcher in watchers:
            code, found, pid = joined_ok(runtime, watcher)
            assert (code, found, pid) == (int(Kind.PROCESS_DIED), 1, 0), "found a lost process's name"
        assert runtime.wait_for_workers(DEADLINE, losses=1)


# --- hostile guests ----------------------------------------------------------------------------------

PAGE = 65536


@pytest.fixture(scope="module")
def hostile(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "hostile.wat")


def echo(runtime: Runtime, server: int, value: int, tag: int) -> int:
    """Round trip through an echo server; the value that came back."""
    runtime.send(server, value.to_bytes(8, "little"), tag)
    reply = runtime.receive([tag], timeout=DEADLINE)
    assert reply is not None, f"echo server {server} did not answer"
    return int.from_bytes(bytes(reply.data[:8]), "little")


def test_infinite_loops_leave_the_others_responsive_and_die_when_killed(
    runtime: Runtime, hostile: Module
) -> None:
    """Two processes spinning without a host call on every worker: echo servers on both workers
    still answer, spawns still run, and each spinner dies when killed."""
    spinners = [
        runtime.spawn(hostile, "spin", (), PERMISSIVE, worker=worker)
        for worker in runtime.worker_ids
        for _ in range(2)
    ]
    servers = [runtime.spawn(hostile, "echo", (), PERMISSIVE, worker=worker) for worker in runtime.worker_ids]
    for round_trip in range(20):
        for server in servers:
            assert echo(runtime, server, round_trip, 1000 + round_trip) == round_trip
    assert all(runtime.exists(spinner) for spinner in spinners)
    for pid in [*spinners, *servers]:
        runtime.kill(pid)
        assert joined(runtime, pid).outcome is Outcome.KILLED


def test_a_memory_bomb_stops_at_max_memory(runtime: Runtime, hostile: Module) -> None:
    """A guest growing its memory without end gets -1 from memory.grow at max_memory and goes
    on (here it returns its size); without a config limit, the runtime's max_memory (the pool's
    slot size) caps it the same way."""
    limited = runtime.spawn(hostile, "memory_bomb", (), EnvConfig.permissive(max_memory=64 * PAGE))
    assert joined_ok(runtime, limited) == (64,)
    unlimited = runtime.spawn(hostile, "memory_bomb", (), PERMISSIVE)
    (pages,) = joined_ok(runtime, unlimited)
    assert isinstance(pages, int) and 64 < pages <= DEFAULT_MAX_MEMORY // PAGE


def test_deep_recursion_is_a_stack_overflow_trap_of_its_process(runtime: Runtime, hostile: Module) -> None:
    """Unbounded recursion traps its own process with a stack overflow; the worker goes on."""
    pid = runtime.spawn(hostile, "recurse", (0,), PERMISSIVE)
    finished = joined(runtime, pid)
    assert finished.outcome is Outcome.FAILED, finished
    assert "stack" in finished.message.lower(), finished.message
    server = runtime.spawn(hostile, "echo", (), PERMISSIVE, worker=worker_of(pid))
    assert echo(runtime, server, 7, 2000) == 7
    runtime.kill(server)
