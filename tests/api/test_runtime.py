"""End-to-end tests of the supervisor (:class:`lunatic_mp.api.runtime.Runtime`) with real workers.

Every test runs Wasm processes on two worker processes and checks what crosses between them:
spawning and joining, messages and their order, the registry process, ``exists``, logs, frames
that are not frames, and messages far larger than the rings. Most tests share one runtime
(module-scoped) and leave no process of theirs alive; the lifecycle tests start their own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from itertools import accumulate, pairwise
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest

from lunatic_mp import EnvConfig, Finished, Module, Outcome
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import frames
from lunatic_mp.cluster.hub import bell_name
from lunatic_mp.cluster.transport import Doorbell
from lunatic_mp.errors import EngineClosed, LunaticError, SpawnError
from lunatic_mp.pids import FIRST_WORKER, REGISTRY, SUPERVISOR, make_pid, worker_of
from lunatic_mp.vm.mailbox import Kind

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 30.0
STOP = 9  # the tag that ends a parked process (rt_basic.wat and rt_registry.wat `park`)


# --- helpers -------------------------------------------------------------------------------------


def i64(value: int) -> bytes:
    """``value`` as a message body: 8 little-endian bytes."""
    return struct.pack("<q", value)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def joined(runtime: Runtime, pid: int) -> Finished:
    """Wait for ``pid`` (spawned through ``runtime``) to end; how it ended."""
    finished = runtime.join(pid, TIMEOUT)
    assert finished is not None, f"process {pid:#x} did not finish within {TIMEOUT} s"
    return finished


def joined_ok(runtime: Runtime, pid: int) -> tuple[Any, ...]:
    """Wait for ``pid`` to end normally; its results."""
    finished = joined(runtime, pid)
    assert finished.ok, finished
    return finished.result


def stop(runtime: Runtime, pid: int, value: int = 0) -> None:
    """Let a parked process return ``value``, and wait until it has."""
    runtime.send(pid, i64(value), tag=STOP)
    assert joined_ok(runtime, pid) == (value,)


def live_counts(runtime: Runtime) -> list[int]:
    """Live processes on each worker, in worker id order."""
    return [entry["processes"] for entry in runtime.stats()]


def checksum(data: bytes) -> tuple[int, int, int]:
    """What rt_big.wat computes of a message: (size, sum of bytes, sum of the running sums)."""
    running = list(accumulate(data)) or [0]
    return len(data), running[-1], sum(running)


def big_pattern(size: int) -> bytes:
    """The bytes rt_big.wat's ``fill_and_send`` sends."""
    return bytes((i * 31 + (i >> 8) + 7) & 0xFF for i in range(size))


def remove_shared_memory_of(rt: Runtime) -> list[str]:
    """Unlink whatever /dev/shm still holds of a closed runtime (its rings, its doorbells' flags),
    so that a failing test leaves no litter; what there was."""
    suffix = Doorbell.flag_name(rt.run_dir, "")
    left = sorted(name for name in os.listdir("/dev/shm") if rt.run_id in name or name.endswith(suffix))
    for name in left:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join("/dev/shm", name))
    return left


def children_of_this_process() -> set[psutil.Process]:
    """Our child processes and theirs (workers are the template process's children), except
    multiprocessing's resource tracker (shared by every runtime)."""
    children = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # one that just exited
            if not any("resource_tracker" in part for part in child.cmdline()):
                children.add(child)
    return children


def replaced(rt: Runtime) -> bool:
    """A worker was lost and the runtime has its two workers again (read under the runtime's
    lock: the supervisor's thread changes its worker table)."""
    with rt._lock:
        return rt.workers_lost >= 1 and len(rt.worker_ids) == 2


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    """One two-worker runtime shared by the tests that leave it as they found it."""
    with Runtime(workers=2) as rt:
        yield rt


@pytest.fixture(scope="module")
def basic(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "rt_basic.wat")


@pytest.fixture(scope="module")
def ring_module(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "rt_ring.wat")


@pytest.fixture(scope="module")
def registry_module(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "rt_registry.wat")


@pytest.fixture
def workers(runtime: Runtime) -> tuple[int, int]:
    """The shared runtime's two worker ids (A, B)."""
    ids = runtime.worker_ids
    assert len(ids) == 2
    return ids[0], ids[1]


@pytest.fixture(scope="module")
def closed_runtime() -> tuple[Runtime, Module, int]:
    """A runtime closed after loading a module and spawning a process that still ran."""
    rt = Runtime(workers=2)
    try:
        module = rt.load_module(GUESTS / "rt_basic.wat")
        parked = rt.spawn(module, "park")
    finally:
        rt.close()
    return rt, module, parked


# --- lifecycle -----------------------------------------------------------------------------------


def test_close_stops_every_process_and_removes_shared_memory_and_files() -> None:
    """close() ends the registry and worker processes (even with guests still running),
    unlinks every ring and doorbell of the run, removes the run directory, and can be called
    again."""
    before = children_of_this_process()
    rt = Runtime(workers=2)
    try:
        started = children_of_this_process() - before
        worker_pids = set(rt.worker_pids().values())
        assert len(worker_pids) == 2
        assert {p.pid for p in started} >= worker_pids
        assert {p.pid for p in started} >= {*worker_pids, rt.registry_os_pid()}
        assert len(started) <= 5  # and the template, and its spare (forked after the last worker)
        module = rt.load_module(GUESTS / "rt_basic.wat")
        for worker in rt.worker_ids:
            rt.spawn(module, "park", worker=worker)  # still parked when the runtime closes
        run_id, run_dir = rt.run_id, rt.run_dir
        assert run_dir.is_dir()
        assert any(run_id in name for name in os.listdir("/dev/shm"))
        bells = {Doorbell.flag_name(run_dir, bell_name(w)) for w in (SUPERVISOR, REGISTRY, *rt.worker_ids)}
        assert bells <= set(os.listdir("/dev/shm"))
    finally:
        rt.close()
    rt.close()  # idempotent
    still_running = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not still_running
    left = sorted(name for name in os.listdir("/dev/shm") if run_id in name or name in bells)
    assert not left, f"shared memory left behind: {left}"
    assert not run_dir.exists()


CLOSED_CALLS: dict[str, Callable[[Runtime, Module, int], object]] = {
    "load_module": lambda rt, module, pid: rt.load_module(GUESTS / "rt_basic.wat"),
    "send": lambda rt, module, pid: rt.send(pid, b"x"),
    "monitor": lambda rt, module, pid: rt.monitor(pid),
    "kill": lambda rt, module, pid: rt.kill(pid),
    "exists": lambda rt, module, pid: rt.exists(pid),
    "registry_put": lambda rt, module, pid: rt.registry_put("svc@1.0.0", pid),
    "registry_get": lambda rt, module, pid: rt.registry_get("svc"),
    "registry_remove": lambda rt, module, pid: rt.registry_remove("svc"),
}


@pytest.mark.parametrize("call", CLOSED_CALLS.values(), ids=CLOSED_CALLS.keys())
def test_api_after_close_raises_engine_closed(
    closed_runtime: tuple[Runtime, Module, int], call: Callable[[Runtime, Module, int], object]
) -> None:
    """Every call that needs the runtime's processes raises EngineClosed once it is closed."""
    rt, module, pid = closed_runtime
    with pytest.raises(EngineClosed):
        call(rt, module, pid)


@pytest.mark.parametrize("worker", [None, FIRST_WORKER], ids=["round_robin", "pinned"])
def test_spawn_after_close_raises_engine_closed(
    closed_runtime: tuple[Runtime, Module, int], worker: int | None
) -> None:
    """spawn() raises EngineClosed once the runtime is closed, wherever it would place the process."""
    rt, module, _ = closed_runtime
    with pytest.raises(EngineClosed):
        rt.spawn(module, "self", worker=worker)


def test_stats_after_close_raises_engine_closed(closed_runtime: tuple[Runtime, Module, int]) -> None:
    """stats() raises EngineClosed once the runtime is closed (rather than answering [])."""
    rt, _, _ = closed_runtime
    with pytest.raises(EngineClosed):
        rt.stats()


def test_context_manager_closes_on_exception() -> None:
    """Leaving a ``with Runtime()`` block by an exception closes the runtime: its processes
    are gone and the exception propagates."""
    before = children_of_this_process()
    with pytest.raises(ZeroDivisionError), Runtime(workers=2) as rt:
        started = children_of_this_process() - before
        assert {p.pid for p in started} >= {*rt.worker_pids().values(), rt.registry_os_pid()}
        module = rt.load_module(GUESTS / "rt_basic.wat")
        assert joined_ok(rt, rt.spawn(module, "add", [1, 2])) == (3,)
        _ = 1 / 0
    assert not [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not rt.run_dir.exists()
    with pytest.raises(EngineClosed):
        rt.send(rt.pid, b"x")


def test_a_lost_worker_disturbs_no_other_process() -> None:
    """A worker killed with SIGKILL is replaced; the registry process and the other worker go on
    (same OS processes, one loss counted) and serve as before."""
    rt = Runtime(workers=2)
    try:
        lost, survivor = rt.worker_ids
        others = {psutil.Process(rt.worker_pids()[survivor]), psutil.Process(rt.registry_os_pid())}
        module = rt.load_module(GUESTS / "rt_basic.wat")
        os.kill(rt.worker_pids()[lost], signal.SIGKILL)
        wait_for(lambda: replaced(rt), what="the lost worker's replacement")
        rt.registry_put("after-loss@1.0.0", rt.pid)
        assert rt.registry_get("after-loss") == rt.pid
        for worker in rt.worker_ids:
            assert joined_ok(rt, rt.spawn(module, "add", [1, 2], worker=worker)) == (3,)
        assert survivor in rt.worker_ids
        assert rt.workers_lost == 1
        assert all(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in others)
    finally:
        rt.close()
        remove_shared_memory_of(rt)  # a lost worker's doorbell (see the next test)


def test_close_after_a_lost_worker_leaves_no_shared_memory() -> None:
    """Shared memory of a worker killed with SIGKILL is removed too, by the time close() returns."""
    rt = Runtime(workers=2)
    try:
        lost = rt.worker_ids[0]
        os.kill(rt.worker_pids()[lost], signal.SIGKILL)
        wait_for(lambda: replaced(rt), what="the lost worker's replacement")
    finally:
        rt.close()
    left = remove_shared_memory_of(rt)
    assert not left, f"shared memory left behind: {left}"


# --- spawn and join ------------------------------------------------------------------------------


def test_spawn_pinned_runs_on_the_worker_given(runtime: Runtime, basic: Module) -> None:
    """spawn(worker=w) starts the process on worker w: its pid names w, and the process sees
    that pid as its own."""
    for worker in runtime.worker_ids:
        for _ in range(2):
            pid = runtime.spawn(basic, "self", worker=worker)
            assert worker_of(pid) == worker
            assert joined_ok(runtime, pid) == (pid,)


def test_spawn_without_worker_goes_round_robin(runtime: Runtime, basic: Module) -> None:
    """Spawns with no worker given alternate over the workers; each result comes back in
    Finished.result."""
    pids = [runtime.spawn(basic, "add", [i, 1000]) for i in range(6)]
    places = [worker_of(pid) for pid in pids]
    assert set(places) == set(runtime.worker_ids)
    assert all(a != b for a, b in pairwise(places))
    assert [joined_ok(runtime, pid) for pid in pids] == [(i + 1000,) for i in range(6)]


def test_trapping_export_fails_with_the_trap_message(runtime: Runtime, basic: Module) -> None:
    """A process that traps on a worker ends FAILED, with the trap in Finished.message."""
    for worker in runtime.worker_ids:
        finished = joined(runtime, runtime.spawn(basic, "fail", worker=worker))
        assert finished.outcome is Outcome.FAILED
        assert "unreachable" in finished.message


def test_spawn_errors_raise_spawn_error(runtime: Runtime, basic: Module, workers: tuple[int, int]) -> None:
    """Spawning a missing export raises SpawnError, and so does a spawn the worker refuses
    (an environment that denies a namespace the module imports); the runtime goes on."""
    with pytest.raises(SpawnError, match="no exported function `missing`"):
        runtime.spawn(basic, "missing")
    with pytest.raises(SpawnError, match="no worker"):
        runtime.spawn(basic, "self", worker=max(workers) + 100)
    denied = EnvConfig(allowed_namespaces=frozenset({"process"}))
    with pytest.raises(SpawnError, match="message"):
        runtime.spawn(basic, "self", config=denied, worker=workers[1])
    assert joined_ok(runtime, runtime.spawn(basic, "add", [2, 3], worker=workers[1])) == (5,)


def test_spawn_then_and_on_finished_call_back_without_futures(runtime: Runtime, basic: Module) -> None:
    """A burst of spawns sent together (batched_sends): spawn_then gives each pid, or the worker's
    refusal, to a callback, and on_finished each ending; bad arguments raise at the call."""
    count = 20
    lock = threading.Lock()
    pids: list[int] = []
    ended: dict[int, Finished | BaseException] = {}
    refused: list[BaseException] = []
    done = threading.Event()

    def on_end(pid: int, outcome: Finished | BaseException) -> None:
        with lock:
            ended[pid] = outcome
            if len(ended) == count and refused:
                done.set()

    def on_spawn(outcome: int | BaseException) -> None:
        if isinstance(outcome, BaseException):
            with lock:
                refused.append(outcome)
            return
        with lock:
            pids.append(outcome)
        runtime.on_finished(outcome, lambda finished: on_end(outcome, finished))

    denied = EnvConfig(allowed_namespaces=frozenset({"process"}))
    with runtime.batched_sends():
        for i in range(count):
            runtime.spawn_then(on_spawn, basic, "add", [i, 1000])
        runtime.spawn_then(on_spawn, basic, "self", config=denied)
    assert done.wait(60), (len(ended), refused)
    results = sorted(outcome.result for outcome in ended.values() if isinstance(outcome, Finished))
    assert results == [(i + 1000,) for i in range(count)]
    assert len(refused) == 1 and isinstance(refused[0], SpawnError)
    assert {worker_of(pid) for pid in pids} == set(runtime.worker_ids)
    with pytest.raises(SpawnError, match="no exported function `missing`"):
        runtime.spawn_then(on_spawn, basic, "missing")
    finished: list[Finished | BaseException] = []
    runtime.on_finished(pids[0], finished.append)  # reported already: nothing more to come
    assert joined_ok(runtime, runtime.spawn(basic, "add", [2, 3])) == (5,)
    assert finished == []


def test_on_finished_hears_engine_closed_when_the_runtime_closes_first() -> None:
    """A process still running when the runtime closes: its on_finished callback gets EngineClosed."""
    outcomes: list[Finished | BaseException] = []
    with Runtime(workers=1) as rt:
        parked = rt.spawn(rt.load_module(GUESTS / "rt_basic.wat"), "park")
        rt.on_finished(parked, outcomes.append)
    assert len(outcomes) == 1 and isinstance(outcomes[0], EngineClosed)


# --- messages between workers --------------------------------------------------------------------


def test_ping_pong_across_workers(runtime: Runtime, basic: Module, workers: tuple[int, int]) -> None:
    """A pinger on worker A and a ponger on worker B complete many round trips, each reply
    checked by the pinger (value and sender)."""
    rounds = 1000
    a, b = workers
    ponger = runtime.spawn(basic, "pong", [rounds], worker=b)
    pinger = runtime.spawn(basic, "ping", [ponger, rounds], worker=a)
    assert (worker_of(pinger), worker_of(ponger)) == (a, b)
    assert joined_ok(runtime, pinger) == (rounds,)
    assert joined_ok(runtime, ponger) == (rounds,)


def test_token_ring_spanning_all_workers(runtime: Runtime, ring_module: Module) -> None:
    """20 processes placed round robin (so that every hop goes to the other worker) pass a token
    around for several laps; the last hop
    reports the full count to the host, and every node saw the token once a lap."""
    nodes, laps, done_tag = 20, 5, 4
    pids = [runtime.spawn(ring_module, "node", [runtime.pid]) for _ in range(nodes)]
    assert {worker_of(pid) for pid in pids} == set(runtime.worker_ids)
    assert all(worker_of(x) != worker_of(y) for x, y in pairwise(pids))  # every hop crosses
    for pid, successor in zip(pids, pids[1:] + pids[:1], strict=True):
        runtime.send(pid, i64(successor), tag=1)
    runtime.send(pids[0], i64(nodes * laps) + i64(0), tag=2)
    report = runtime.receive(tags=[done_tag], timeout=TIMEOUT)
    assert report is not None, "the token never came back"
    assert report.pid == pids[-1]
    assert struct.unpack("<q", report.data) == (nodes * laps,)
    assert [joined_ok(runtime, pid) for pid in pids] == [(laps,)] * nodes


@pytest.mark.parametrize("direction", ["A->B", "B->A"])
def test_message_order_between_workers_is_preserved(
    runtime: Runtime, basic: Module, workers: tuple[int, int], direction: str
) -> None:
    """1..N sent by a process on one worker arrive in that order at a process on the other."""
    count = 2000
    sender_worker, receiver_worker = workers if direction == "A->B" else workers[::-1]
    receiver = runtime.spawn(basic, "check_seq", [count], worker=receiver_worker)
    sender = runtime.spawn(basic, "send_seq", [receiver, count], worker=sender_worker)
    assert joined_ok(runtime, sender) == ()
    assert joined_ok(runtime, receiver) == (count, sender)


# --- the host program's mailbox ------------------------------------------------------------------


def test_host_send_and_receive_with_tags(runtime: Runtime, basic: Module, workers: tuple[int, int]) -> None:
    """runtime.send reaches a guest as a message from runtime.pid (get_process_id names it);
    the guest's replies land in the host's mailbox, where receive picks them by tag and gives
    up after its timeout when nothing matches."""
    for worker in workers:
        echo = runtime.spawn(basic, "echo", [2], worker=worker)
        runtime.send(echo, b"hello", tag=110)
        runtime.send(echo, b"world!", tag=120)
        second = runtime.receive(tags=[121, 999], timeout=TIMEOUT)  # leaves the reply to 110 there
        assert second is not None
        assert (second.kind, second.tag, second.pid) == (Kind.DATA, 121, echo)
        assert bytes(second.data) == b"world!" + i64(echo)
        first = runtime.receive(tags=[111], timeout=TIMEOUT)
        assert first is not None
        assert (first.tag, bytes(first.data), first.pid) == (111, b"hello" + i64(echo), echo)
        assert joined_ok(runtime, echo) == (2,)
    started = time.monotonic()
    assert runtime.receive(tags=[111, 121], timeout=0.2) is None
    assert 0.2 <= time.monotonic() - started < 5


def test_host_monitor_and_kill(runtime: Runtime, basic: Module, workers: tuple[int, int]) -> None:
    """runtime.monitor puts a ProcessDied in the host's mailbox when a process on a worker is
    killed through runtime.kill; join reports it killed."""
    parked = runtime.spawn(basic, "park", worker=workers[1])
    runtime.monitor(parked)
    runtime.kill(parked)
    died = runtime.receive(tags=[0], timeout=TIMEOUT)
    assert died is not None
    assert (died.kind, died.pid) == (Kind.PROCESS_DIED, parked)
    assert joined(runtime, parked).outcome is Outcome.KILLED


# --- the registry process ------------------------------------------------------------------------


def test_registry_across_workers(runtime: Runtime, registry_module: Module, workers: tuple[int, int]) -> None:
    """A name registered with a version by a guest on worker A is found by requirement by a
    guest on worker B and by the host, and goes away when its process dies."""
    a, b = workers
    server = runtime.spawn(registry_module, "serve", [runtime.pid], worker=a)
    ready = runtime.receive(tags=[1], timeout=TIMEOUT)
    assert ready is not None and ready.pid == server
    assert joined_ok(runtime, runtime.spawn(registry_module, "lookup", worker=b)) == (0, server)
    assert runtime.registry_get("svc@^1.0") == server
    assert runtime.registry_get("svc@1.2.0") == server
    assert runtime.registry_get("svc@^2") is None
    stop(runtime, server)
    wait_for(lambda: runtime.registry_get("svc") is None, what="the dead server's name to go")
    assert joined_ok(runtime, runtime.spawn(registry_module, "lookup", worker=b)) == (1, -1)


def test_registry_from_the_host(runtime: Runtime, basic: Module, workers: tuple[int, int]) -> None:
    """registry_put/get/remove from the host program: versions, requirements, removal, names
    that do not parse, and removal when the registered process dies."""
    parked = runtime.spawn(basic, "park", worker=workers[1])
    try:
        runtime.registry_put("tool@2.1.0", parked)
        runtime.registry_put("tool@1.0.0", runtime.pid)
        assert runtime.registry_get("tool@^2.0") == parked
        assert runtime.registry_get("tool@^1") == runtime.pid
        assert runtime.registry_get("tool") == parked  # the newest
        assert runtime.registry_get("tool@^3") is None
        runtime.registry_remove("tool@2.1.0")
        assert runtime.registry_get("tool") == runtime.pid
        runtime.registry_remove("tool")
        assert runtime.registry_get("tool") is None
        with pytest.raises(LunaticError):
            runtime.registry_put("tool@not a version", parked)
        runtime.registry_put("tool@3.0.0", parked)
        assert runtime.registry_get("tool") == parked
    finally:
        stop(runtime, parked)
    wait_for(lambda: runtime.registry_get("tool") is None, what="the dead process's name to go")


def test_get_or_spawn_raced_from_both_workers_spawns_once(runtime: Runtime, registry_module: Module) -> None:
    """Guests on both workers calling get_or_spawn("solo") at once: exactly one spawns and
    registers the process, every other one gets the same pid back as already registered."""
    racers_count = 8
    baseline = sum(live_counts(runtime))
    racers = [
        runtime.spawn(registry_module, "race", config=EnvConfig.permissive()) for _ in range(racers_count)
    ]
    assert {worker_of(pid) for pid in racers} == set(runtime.worker_ids)
    for racer in racers:
        runtime.send(racer, i64(0), tag=7)  # go
    results = [joined_ok(runtime, racer) for racer in racers]
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [2] * (racers_count - 1)
    solos = {pid for _, pid in results}
    assert len(solos) == 1
    (solo,) = solos
    assert runtime.exists(solo)
    assert runtime.registry_get("solo") == solo
    assert sum(live_counts(runtime)) == baseline + 1  # the racers are gone, one solo is left
    runtime.monitor(solo)
    runtime.send(solo, i64(0), tag=STOP)
    died = runtime.receive(tags=[0], timeout=TIMEOUT)
    assert died is not None and (died.kind, died.pid) == (Kind.PROCESS_DIED, solo)
    wait_for(lambda: runtime.registry_get("solo") is None, what="solo's name to go")


# --- exists --------------------------------------------------------------------------------------


def test_exists_across_workers(runtime: Runtime, basic: Module, workers: tuple[int, int]) -> None:
    """A guest on worker A asks whether a process on worker B exists: yes while it runs, no
    once it has ended, no for a pid that never was; the host's exists() agrees."""
    a, b = workers
    target = runtime.spawn(basic, "park", worker=b)

    def guest_says(pid: int) -> int:
        (answer,) = joined_ok(runtime, runtime.spawn(basic, "exists_of", [pid], worker=a))
        return int(answer)

    assert guest_says(target) == 1
    assert runtime.exists(target)
    stop(runtime, target)
    assert guest_says(target) == 0
    assert not runtime.exists(target)
    never = make_pid(0, b, 0xFFFF_FFF0)
    assert guest_says(never) == 0
    assert not runtime.exists(never)


NOWHERE = make_pid(0, 99, 1)
"""A pid that no worker hosts (worker 99 was never started)."""


def test_host_exists_of_a_pid_no_worker_hosts_is_false(runtime: Runtime) -> None:
    """exists() of a pid whose worker does not exist answers False at once."""
    assert runtime.exists(NOWHERE, timeout=2) is False


def test_guest_exists_of_pids_no_worker_hosts_answers(
    runtime: Runtime, basic: Module, workers: tuple[int, int]
) -> None:
    """A guest asking exists() about the host's mailbox pid or a pid of a worker that does not
    exist gets an answer (0 for the latter) instead of waiting forever."""
    askers = {
        pid: runtime.spawn(basic, "exists_of", [pid], worker=workers[0]) for pid in (NOWHERE, runtime.pid)
    }
    deadline = time.monotonic() + 3
    answers = {
        pid: runtime.join(asker, max(deadline - time.monotonic(), 0.01)) for pid, asker in askers.items()
    }
    for pid, asker in askers.items():
        if answers[pid] is None:  # still waiting for its answer: end it
            runtime.kill(asker)
            runtime.join(asker, TIMEOUT)
    assert all(finished is not None and finished.ok for finished in answers.values()), answers
    assert answers[NOWHERE] == Finished(Outcome.NORMAL, (0,))


def test_host_monitor_of_a_pid_no_worker_hosts_gives_process_died(runtime: Runtime) -> None:
    """monitor() of a pid whose worker does not exist puts ProcessDied in the host's mailbox."""
    runtime.monitor(NOWHERE)
    died = runtime.receive(tags=[0], timeout=2)
    assert died is not None and (died.kind, died.pid) == (Kind.PROCESS_DIED, NOWHERE)


def test_host_send_with_an_unsigned_tag(runtime: Runtime, basic: Module, workers: tuple[int, int]) -> None:
    """A u64 tag past i64 reaches the guest as the same 64 bits (as Engine.send treats it)."""
    echo = runtime.spawn(basic, "echo", [2], worker=workers[0])
    try:
        runtime.send(echo, b"big tag", tag=2**63 + 5)
        runtime.send(echo, b"small tag", tag=5)  # same ring: answered after the first one
        assert runtime.receive(tags=[6], timeout=TIMEOUT) is not None
        reply = runtime.receive(tags=[-(2**63) + 6], timeout=0)
        assert reply is not None and bytes(reply.data) == b"big tag" + i64(echo)
    finally:
        runtime.kill(echo)
        runtime.join(echo, TIMEOUT)


# --- stats, logs and malformed frames ------------------------------------------------------------


def test_stats_one_entry_per_worker_with_process_counts(
    runtime: Runtime, basic: Module, workers: tuple[int, int]
) -> None:
    """stats() has one entry per worker, in worker id order, counting its live processes."""
    a, b = workers
    baseline = live_counts(runtime)
    stats = runtime.stats()
    assert [entry["worker"] for entry in stats] == [a, b]
    for entry in stats:
        assert entry["capacity"] > 0
        assert entry["capacity_limit"]  # what bounds it, as lunatic-mp doctor says
        assert entry["malformed_frames"] >= 0
    parked = [runtime.spawn(basic, "park", worker=w) for w in (a, a, a, b)]
    assert live_counts(runtime) == [baseline[0] + 3, baseline[1] + 1]
    assert all(entry["arena_reserved_bytes"] > 0 for entry in runtime.stats())  # slots reserved lazily
    for pid in parked:
        stop(runtime, pid)
    assert live_counts(runtime) == baseline


GARBAGE = [
    b"",  # nothing at all
    b"\xc1",  # a byte msgpack never uses
    b"\x93\x01\x02",  # an array cut short
    msgpack.packb({"kind": 1}),  # not an array
    msgpack.packb([999, 1, 2]),  # an unknown kind
    msgpack.packb([1, "to", 0, 0, b"", []]),  # a Message with a field of the wrong type
    msgpack.packb([1, 2**64 - 1, 0, 0, b"", []]),  # a pid beyond i64
    frames.encode(frames.RegistryRemove(5, 0, "name")),  # a valid frame a worker never expects
    frames.encode(frames.Forward(3, b"\x05\x00\x00\x00\x01", ())),  # a peer's batch, malformed
]


def test_malformed_frames_are_counted_logged_and_survived(
    runtime: Runtime, basic: Module, workers: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    """Records that are not frames, written into the supervisor's ring towards a worker, are
    dropped and counted in that worker's stats; the warnings the worker logs reach the
    supervisor's log handlers; the worker keeps serving spawns and joins."""
    worker = workers[1]
    worker_os_pid = runtime.worker_pids()[worker]
    caplog.set_level(logging.WARNING)
    other_before, before = (entry["malformed_frames"] for entry in runtime.stats())
    with runtime._lock:
        outbox = runtime._hub.endpoints[worker].outbox
        for record in GARBAGE:
            outbox.put(record)
        runtime._hub.flush()
    pid = runtime.spawn(basic, "add", [40, 2], worker=worker)  # queued behind the garbage
    assert joined_ok(runtime, pid) == (42,)
    assert [entry["malformed_frames"] for entry in runtime.stats()] == [other_before, before + len(GARBAGE)]

    def worker_warnings() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.process == worker_os_pid and r.levelno == logging.WARNING and "frame" in r.getMessage()
        ]

    wait_for(lambda: len(worker_warnings()) >= len(GARBAGE), what="the worker's warnings")
    assert all(r.name == "lunatic_mp.cluster.hub" for r in worker_warnings())
    assert any("unexpected RegistryRemove frame" in r.getMessage() for r in worker_warnings())
    assert any(
        "malformed Forward frame (a batch of messages) for place 3" in r.getMessage()
        for r in worker_warnings()
    )


# --- messages larger than the rings --------------------------------------------------------------


def test_messages_larger_than_the_rings_travel_intact() -> None:
    """With 64 KiB rings, 1 MiB messages go guest to guest across workers (both ways), host to
    guest and guest to host, byte for byte (an order-sensitive checksum, computed by the
    receiving guest, and a direct comparison on the host)."""
    size = 1 << 20
    with Runtime(workers=2, ring_capacity=64 * 1024) as rt:
        module = rt.load_module(GUESTS / "rt_big.wat")
        a, b = rt.worker_ids
        expected = checksum(big_pattern(size))
        for source, destination in ((a, b), (b, a)):
            receiver = rt.spawn(module, "receive_sum", worker=destination)
            sender = rt.spawn(module, "fill_and_send", [receiver, size], worker=source)
            assert joined_ok(rt, sender) == expected
            assert joined_ok(rt, receiver) == expected

        payload = random.Random(3).randbytes(size)
        for worker in (a, b):
            echo = rt.spawn(module, "echo_big", worker=worker)
            rt.send(echo, payload, tag=3)
            back = rt.receive(tags=[4], timeout=TIMEOUT)
            assert back is not None and back.pid == echo
            assert bytes(back.data) == payload
            assert joined_ok(rt, echo) == checksum(payload)


def test_an_empty_http_table_is_refused(runtime: Runtime) -> None:
    """A front end cannot be removed: set_http says so instead of leaving workers on old routes."""
    with pytest.raises(ValueError, match="HTTP table is needed"):
        runtime.set_http(b"")
