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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lunatic_mp import Engine, EnvConfig, Finished, Module, Outcome, SpawnError
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import frames
from lunatic_mp.pids import REGISTRY, worker_of
from lunatic_mp.vm.engine import DEFAULT_MAX_MEMORY
from lunatic_mp.vm.mailbox import Kind

GUESTS = Path(__file__).parents[1] / "guests"
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


def test_a_name_put_for_a_process_on_another_worker_is_not_seen_after_its_death(
    runtime: Runtime, hostile: Module
) -> None:
    """The host program registers a name for a process on worker B, and the process is killed
    before B hears of the name. The name becomes visible only once B has promised to report the
    death, so a watcher on A that sees ProcessDied and looks the name up finds nothing. B and
    the registry process are stopped to force the order that would show a stale name: B handles
    the kill before the registry's RegistryWatch, and the registry reads A's lookup before B's
    ProcessGone."""
    module = runtime.load_module(GUESTS / "reg_race.wat")
    a, b = runtime.worker_ids
    target = runtime.spawn(hostile, "park", (), PERMISSIVE, worker=b)
    watcher = runtime.spawn(module, "watch", (42, target, runtime.pid), PERMISSIVE, worker=a)
    assert ready(runtime, 1) == {watcher}
    registry = runtime.registry_os_pid()
    assert registry is not None
    with stopped(runtime.worker_pids()[b]):
        runtime.kill(target)
        put = runtime._request_future(  # the host's put, without waiting for its answer
            REGISTRY, lambda request: frames.RegistryPut(request, runtime.pid, "race-0042", 0, target)
        )
        assert runtime.registry_get("race-0042") is None  # not visible before B has answered
        os.kill(registry, signal.SIGSTOP)
    try:
        runtime.exists(target)  # barriers: B has killed the target and flushed what followed ...
        assert runtime.exists(target) is False
        runtime.exists(watcher)  # ... and A has run the watcher, which has sent its lookup
        runtime.exists(watcher)
    finally:
        os.kill(registry, signal.SIGCONT)
    assert joined_ok(runtime, watcher) == (int(Kind.PROCESS_DIED), 1, 0)
    assert not put.result(DEADLINE).error  # the put succeeds; its process is dead: no name
    assert runtime.registry_get("race-0042") is None


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


# --- mailbox floods: a bounded mailbox holds its senders back ------------------------------------

FLOOD = 40_000
BOUND = 100
IN_FLIGHT = 16_000
PACE = 20


def mailbox_of(runtime: Runtime, pid: int) -> int:
    """How many messages wait in ``pid``'s mailbox (asks its worker)."""
    _, rows = runtime.processes()
    (row,) = [row for row in rows if row["pid"] == pid]
    return int(row["mailbox"])


def settled_mailbox(runtime: Runtime, pid: int, at_least: int) -> int:
    """Wait until ``pid``'s mailbox holds ``at_least`` messages and stops growing (each look is
    a round trip to its worker); its size then."""
    deadline = time.monotonic() + DEADLINE
    last = -1
    while True:
        size = mailbox_of(runtime, pid)
        if size >= at_least and size == last:
            return size
        assert time.monotonic() < deadline, f"the mailbox of {pid} did not settle ({size} messages)"
        last = size


def start_flood(runtime: Runtime, hostile: Module, drain: int, worker: int) -> int:
    """A process sending FLOOD messages to ``drain`` from ``worker``: as fast as it can on the
    drain's own worker; from another, paced (1 ms after every PACE), so that the drain's worker
    tells it the mailbox is full long before it is done, however busy the machine is."""
    if worker == worker_of(drain):
        return runtime.spawn(hostile, "flood", (drain, FLOOD), PERMISSIVE, worker=worker)
    return runtime.spawn(hostile, "paced_flood", (drain, FLOOD, PACE), PERMISSIVE, worker=worker)


@pytest.mark.parametrize("where", ["same worker", "across workers"])
def test_a_flooded_mailbox_pauses_its_sender_and_loses_nothing(
    runtime: Runtime, hostile: Module, where: str
) -> None:
    """A receiver with max_mailbox = 100 that reads nothing yet: a sender flooding it with
    40,000 messages is paused once the mailbox is full (on its own worker at once; from another
    worker once the pause arrives), the receiver's worker serves others meanwhile, and when the
    receiver drains, the sender goes on: every message arrives once, in order."""
    a, b = runtime.worker_ids
    sender_worker = a if where == "same worker" else b
    bounded = EnvConfig.permissive(max_mailbox=BOUND)
    drain = runtime.spawn(hostile, "drain", (FLOOD,), bounded, worker=a)
    flood = start_flood(runtime, hostile, drain, sender_worker)
    size = settled_mailbox(runtime, drain, BOUND)
    # On its own worker the sender is paused at the message that fills the mailbox; from
    # another worker, at most what it sends before the pause reaches it: a scheduler slice or
    # two (100,000 instructions each, some 4,000 of these small sends), then the frame's trip.
    slack = 1 if where == "same worker" else IN_FLIGHT
    assert size <= BOUND + slack, f"{size} messages queued past a bound of {BOUND}"
    assert runtime.join(flood, timeout=0) is None, "the flood ran to its end: no backpressure"
    server = runtime.spawn(hostile, "echo", (), PERMISSIVE, worker=a)
    assert echo(runtime, server, 5, 3000) == 5  # unrelated processes go on
    runtime.kill(server)
    runtime.send(drain, tag=1)  # drain now
    assert joined_ok(runtime, flood) == (FLOOD,)
    assert joined_ok(runtime, drain) == (FLOOD, 0)


def test_a_paused_sender_goes_on_when_the_full_mailbox_dies(runtime: Runtime, hostile: Module) -> None:
    """A sender paused by a full mailbox on another worker is let go when that receiver dies;
    its remaining messages go nowhere, as to any dead process."""
    a, b = runtime.worker_ids
    drain = runtime.spawn(hostile, "drain", (FLOOD,), EnvConfig.permissive(max_mailbox=BOUND), worker=a)
    flood = start_flood(runtime, hostile, drain, b)
    settled_mailbox(runtime, drain, BOUND)
    assert runtime.join(flood, timeout=0) is None
    runtime.kill(drain)
    assert joined_ok(runtime, flood) == (FLOOD,)


# --- spawn bombs: a bound on an environment's processes --------------------------------------------

LIMIT = 20
REFUSED = 7


def test_a_spawn_bomb_stops_at_its_environments_limit_across_workers(
    runtime: Runtime, hostile: Module
) -> None:
    """A guest spawning in a loop in an environment of max_processes = 20 gets 19 children (it
    counts too), spread over both workers, then an error saying why; the limit is its
    environment's only, and dead processes give their places back."""
    environment = runtime.environment(EnvConfig.permissive(max_processes=LIMIT))
    bomb = environment.spawn(hostile, "spawn_bomb", (runtime.pid,))
    assert joined_ok(runtime, bomb.id) == (LIMIT - 1,)
    children = ready(runtime, LIMIT - 1)
    assert {worker_of(child) for child in children} == set(runtime.worker_ids)
    refused = runtime.receive([REFUSED], timeout=DEADLINE)
    assert refused is not None
    assert f"at its limit of {LIMIT} live processes" in bytes(refused.data).decode()
    other = runtime.spawn(hostile, "spawn_bomb", (runtime.pid,), EnvConfig.permissive(max_processes=3))
    assert joined_ok(runtime, other) == (2,)  # another environment, its own count
    others = ready(runtime, 2)
    assert runtime.receive([REFUSED], timeout=DEADLINE) is not None
    extra = environment.spawn(hostile, "park")  # the bomb has ended: its place is free ...
    with pytest.raises(SpawnError, match="at its limit"):  # ... and then none is, for anyone
        environment.spawn(hostile, "park")
    for child in [*children, *others, extra.id]:
        runtime.kill(child)
        assert not runtime.exists(child)
    for worker in runtime.worker_ids:  # the registry process has counted the deaths
        joined_ok(runtime, runtime.spawn(hostile, "registry_barrier", (), PERMISSIVE, worker=worker))
    again = environment.spawn(hostile, "spawn_bomb", (runtime.pid,))  # the places came back
    assert joined_ok(runtime, again.id) == (LIMIT - 1,)
    assert runtime.receive([REFUSED], timeout=DEADLINE) is not None
    for child in ready(runtime, LIMIT - 1):
        runtime.kill(child)


# --- the same limits on a lone engine ----------------------------------------------------------------


@pytest.fixture
def lone() -> Iterator[tuple[Engine, Module]]:
    engine = Engine()
    yield engine, engine.load_module(GUESTS / "hostile.wat")
    engine.close()
    assert not engine.host_errors, engine.host_errors


def test_a_full_mailbox_parks_its_sender_at_the_bound_on_one_engine(lone: tuple[Engine, Module]) -> None:
    """On one engine the sender is paused by the very message that fills the mailbox: the engine
    runs out of things to do with exactly max_mailbox messages queued, and finishes both once
    the receiver may drain."""
    engine, module = lone
    drain = engine.spawn(module, "drain", [1000], EnvConfig.permissive(max_mailbox=10))
    flood = engine.spawn(module, "flood", [drain.pid, 1000], PERMISSIVE)
    engine.run(timeout=DEADLINE)
    assert len(drain.mailbox) == 10
    assert flood.finished is None and flood.parked and flood.blocked_on == {drain.pid}
    engine.send(drain.pid, tag=1)
    assert engine.run_until_finished(flood, timeout=DEADLINE) == Finished(Outcome.NORMAL, (1000,))
    assert engine.run_until_finished(drain, timeout=DEADLINE) == Finished(Outcome.NORMAL, (1000, 0))


def test_a_spawn_bomb_stops_at_max_processes_on_one_engine(lone: tuple[Engine, Module]) -> None:
    """A lone engine counts an environment's processes itself: 5 allowed, the bomb gets 4."""
    engine, module = lone
    bomb = engine.spawn(module, "spawn_bomb", [0], EnvConfig.permissive(max_processes=5))
    assert engine.run_until_finished(bomb, timeout=DEADLINE) == Finished(Outcome.NORMAL, (4,))
    assert len(engine.processes) == 4  # its children park; the bomb's own place is free again
    again = engine.spawn(module, "spawn_bomb", [0], EnvConfig.permissive(max_processes=5))
    assert engine.run_until_finished(again, timeout=DEADLINE) == Finished(Outcome.NORMAL, (0,))


def native_flood(ctx: Any, to: int, count: int) -> int:
    """A native process sending 1..count (tag 0) to ``to``."""
    for value in range(1, count + 1):
        ctx.send(to, value.to_bytes(8, "little"))
    return count


def test_a_native_sender_is_paused_by_a_full_mailbox_too(runtime: Runtime, hostile: Module) -> None:
    """A native (Python) process flooding a bounded mailbox on its own worker is paused by the
    message that fills it, like a Wasm one, and every message arrives in order once the
    receiver drains. (From another worker the pause reaches a native process only when it
    yields: native processes are not preempted.)"""
    a, _ = runtime.worker_ids
    count = 5_000
    drain = runtime.spawn(hostile, "drain", (count,), EnvConfig.permissive(max_mailbox=BOUND), worker=a)
    flood = runtime.spawn_native(native_flood, (drain, count), worker=a)
    assert settled_mailbox(runtime, drain, BOUND) == BOUND
    assert runtime.join(flood, timeout=0) is None
    runtime.send(drain, tag=1)
    assert joined_ok(runtime, flood) == (count,)
    assert joined_ok(runtime, drain) == (count, 0)
