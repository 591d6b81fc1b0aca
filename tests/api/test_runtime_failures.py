"""Failures of a multi-core runtime, end to end with real worker processes (``Runtime(workers=2)``).

Links, monitors and kills between processes on different workers; a worker killed with SIGKILL
under message load (and again and again); the supervisor itself killed, interrupted or terminated
(through ``tests/scripts/supervisor.py``, a separate program); a queue full of large messages for
a slow consumer; and a shutdown while processes still run.

Guests: ``tests/guests/fail_links.wat`` (links, monitors, kills, watchers), ``fail_load.wat``
(producer/consumer pairs that check message order) and ``fail_queue.wat`` (large messages).
Processes report to the host program's mailbox (``runtime.pid``) with 8-byte messages whose tag
says what they carry: 1 a child's pid, 2 a receive code, 4 "watching", 5 "consuming", 6 progress.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from lunatic_mp import EnvConfig, Finished, Module, Outcome, SpawnError
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster.hub import bell_name, ring_name
from lunatic_mp.cluster.supervisor import RuntimeError_
from lunatic_mp.cluster.transport import Doorbell
from lunatic_mp.pids import REGISTRY, worker_of
from lunatic_mp.vm.mailbox import Kind, Message
from lunatic_mp.vm.plugins import PythonPlugin

GUESTS = Path(__file__).parents[1] / "guests"
SUPERVISOR_SCRIPT = Path(__file__).parents[1] / "scripts" / "supervisor.py"
PERMISSIVE = EnvConfig.permissive()
DEADLINE = 30.0
RECEIVE_TIMEOUT = 9027


# --- helpers --------------------------------------------------------------------------------------


def value_of(message: Message) -> int:
    """The i64 that a guest's report carries in its first 8 bytes."""
    return int.from_bytes(bytes(message.data[:8]), "little", signed=True)


def report(runtime: Runtime, tag: int) -> int:
    """Wait for a guest's report with ``tag`` in the host program's mailbox; its value."""
    message = runtime.receive([tag], timeout=DEADLINE)
    assert message is not None, f"no report with tag {tag} within {DEADLINE:.0f} s"
    return value_of(message)


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (a time.monotonic() value), never negative."""
    return max(deadline - time.monotonic(), 0.0)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def joined(runtime: Runtime, pid: int) -> Finished:
    """Join ``pid``, however it ends (it must end within the deadline)."""
    finished = runtime.join(pid, timeout=DEADLINE)
    assert finished is not None, f"process {pid} did not end within {DEADLINE:.0f} s"
    return finished


def joined_ok(runtime: Runtime, pid: int) -> tuple[Any, ...]:
    """Join ``pid``, which must end normally; its results."""
    finished = joined(runtime, pid)
    assert finished.outcome is Outcome.NORMAL, f"process {pid}: {finished}"
    return finished.result


def shm_entries(run_id: str, run_dir: str | Path) -> list[Path]:
    """The shared-memory segments of a runtime: its rings and its doorbells' flags."""
    shm = Path("/dev/shm")
    rings = shm.glob(ring_name(run_id, 0, 0).rsplit("-", 2)[0] + "-*")
    flags = shm.glob("*" + Doorbell.flag_name(run_dir, ""))
    return sorted({*rings, *flags})


def shm_entries_of_worker(runtime: Runtime, worker: int) -> list[Path]:
    """The rings to and from ``worker`` and its doorbell's flag, where they still exist."""

    def of_worker(path: Path) -> bool:
        if path.name.startswith(f"{bell_name(worker)}-bell-"):
            return True
        return path.name.startswith("lmp-") and str(worker) in path.name.rsplit("-", 2)[1:]

    return [path for path in shm_entries(runtime.run_id, runtime.run_dir) if of_worker(path)]


def leftovers(run_id: str, run_dir: str | Path) -> list[Path]:
    """What a runtime leaves behind on the file system (nothing, once it closed)."""
    return shm_entries(run_id, run_dir) + [p for p in [Path(run_dir)] if p.exists()]


def remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def gone(process: psutil.Process) -> bool:
    """True once the process has exited (a zombie nobody reaped yet counts as exited)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(processes: list[psutil.Process], what: str, timeout: float = DEADLINE) -> None:
    wait_for(lambda: all(gone(p) for p in processes), what, timeout)


# --- a runtime shared by the tests that do not disturb it ------------------------------------------


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def links(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "fail_links.wat")


def spawn(runtime: Runtime, module: Module, function: str, *params: int, worker: int) -> int:
    return runtime.spawn(module, function, params, PERMISSIVE, worker=worker)


# --- links, monitors and kills across workers -----------------------------------------------------


def test_linked_child_failing_on_another_worker_kills_its_parent(runtime: Runtime, links: Module) -> None:
    """A child on worker B, spawned linked by a parent on worker A, fails: the parent, which dies
    when a link dies (the default), is killed, and says why."""
    a, b = runtime.worker_ids
    parent = spawn(runtime, links, "link_cascade", runtime.pid, worker=a)
    child = report(runtime, 1)
    assert worker_of(child) == b
    finished = joined(runtime, parent)
    assert finished.outcome is Outcome.KILLED, finished
    assert f"linked process {child} died" in finished.message


def test_link_died_message_across_workers_carries_the_link_tag(runtime: Runtime, links: Module) -> None:
    """With die_when_link_dies(0), a linked child failing on another worker arrives as a LinkDied
    message (receive returns 1) with the link's tag and the child's pid."""
    a, b = runtime.worker_ids
    code, tag, dead, child = joined_ok(runtime, spawn(runtime, links, "link_died_msg", worker=a))
    assert worker_of(child) == b
    assert (code, tag, dead) == (int(Kind.LINK_DIED), 7, child)


LINK_WAIT_MS = 2000


@pytest.mark.parametrize("where", ["same worker", "other worker"])
def test_host_spawn_linked_to_a_process(runtime: Runtime, links: Module, where: str) -> None:
    """runtime.spawn(link=(parent, tag)) links both sides before the child runs, wherever the
    parent is: the child failing reaches the parent (die_when_link_dies 0) as LinkDied with the
    tag."""
    a, b = runtime.worker_ids
    parent = spawn(runtime, links, "await_link_died", runtime.pid, LINK_WAIT_MS, worker=a)
    assert report(runtime, 4) == parent
    child_worker = a if where == "same worker" else b
    child = runtime.spawn(links, "trap_after_msg", (), PERMISSIVE, worker=child_worker, link=(parent, 9))
    runtime.send(child, b"fail")
    assert joined(runtime, child).outcome is Outcome.FAILED
    assert joined_ok(runtime, parent) == (int(Kind.LINK_DIED), 9, child)


def test_unlink_from_another_worker_reaches_the_linked_process(runtime: Runtime, links: Module) -> None:
    """A child on worker B unlinks itself from its parent on worker A, which then fails: the child
    (die_when_link_dies 1) survives and gets only the ProcessDied of its monitor."""
    a, b = runtime.worker_ids
    parent = spawn(runtime, links, "unlinked_by_child", runtime.pid, worker=a)
    child = report(runtime, 1)
    assert worker_of(child) == b
    assert "unreachable" in joined(runtime, parent).message
    assert report(runtime, 2) == int(Kind.PROCESS_DIED)


def test_unlinked_child_on_another_worker_fails_without_killing(runtime: Runtime, links: Module) -> None:
    """A parent on worker A unlinks its child on worker B, monitors it and lets it fail: the
    parent survives, and the ProcessDied is its only message."""
    a, b = runtime.worker_ids
    code, then, dead, child = joined_ok(runtime, spawn(runtime, links, "unlink_child", worker=a))
    assert worker_of(child) == b
    assert (code, then, dead) == (int(Kind.PROCESS_DIED), RECEIVE_TIMEOUT, child)


def test_link_to_a_dead_process_on_another_worker_gives_link_died(runtime: Runtime, links: Module) -> None:
    """Linking to a pid of worker B whose process has ended delivers LinkDied (NoProcess) with the
    link's tag to a process with die_when_link_dies(0), and kills one dying with its links (as
    lunatic 0.13 does)."""
    a, b = runtime.worker_ids
    dead = spawn(runtime, links, "ok", worker=b)
    assert joined_ok(runtime, dead) == (42,)
    result = joined_ok(runtime, spawn(runtime, links, "link_to", dead, -1, worker=a))
    assert result == (int(Kind.LINK_DIED), 11, dead)
    killed = joined(runtime, spawn(runtime, links, "link_to_dying", dead, -1, worker=a))
    assert killed.outcome is Outcome.KILLED
    assert "no such process" in killed.message


def test_monitor_across_workers_gives_process_died(runtime: Runtime, links: Module) -> None:
    """A process on worker A monitoring one on worker B gets ProcessDied when it fails; so does a
    monitor of a pid of worker B whose process has already ended."""
    a, b = runtime.worker_ids
    code, dead, child = joined_ok(runtime, spawn(runtime, links, "monitor_remote", worker=a))
    assert worker_of(child) == b
    assert (code, dead) == (int(Kind.PROCESS_DIED), child)
    result = joined_ok(runtime, spawn(runtime, links, "monitor_pid", child, -1, worker=a))
    assert result == (int(Kind.PROCESS_DIED), child)


def test_host_monitor_of_a_process_on_a_worker(runtime: Runtime, links: Module) -> None:
    """runtime.monitor(pid) puts a ProcessDied for pid in the host program's mailbox."""
    _, b = runtime.worker_ids
    child = spawn(runtime, links, "trap_after_msg", worker=b)
    runtime.monitor(child)
    runtime.send(child, b"go")
    message = runtime.receive([0], timeout=DEADLINE)
    assert message is not None
    assert (message.kind, message.pid) == (Kind.PROCESS_DIED, child)
    assert joined(runtime, child).outcome is Outcome.FAILED


def test_kill_across_workers_stops_a_spinning_process(runtime: Runtime, links: Module) -> None:
    """A guest on worker A kills a process spinning on worker B (it never makes a host call):
    the killer gets its monitor's ProcessDied, and the spinner ends KILLED, naming its killer."""
    a, b = runtime.worker_ids
    spinner = spawn(runtime, links, "spin", worker=b)
    killer = spawn(runtime, links, "kill_pid", spinner, worker=a)
    assert joined_ok(runtime, killer) == (int(Kind.PROCESS_DIED), spinner)
    finished = joined(runtime, spinner)
    assert finished.outcome is Outcome.KILLED, finished
    assert f"killed by process {killer}" in finished.message


# --- a worker killed with SIGKILL --------------------------------------------------------------------


@dataclass
class Pair:
    """A producer sending 1..n to a consumer that checks the order, each on a given worker."""

    producer_worker: int
    consumer_worker: int
    producer: int = 0
    consumer: int = 0


@contextlib.contextmanager
def losing_runtime() -> Iterator[Runtime]:
    """``Runtime(workers=2)`` for a test that kills its workers: once it is closed, nothing of it
    may remain in /dev/shm or on disk (the lost workers' rings and doorbells included)."""
    runtime = Runtime(workers=2)
    try:
        with runtime:
            yield runtime
    finally:
        left = leftovers(runtime.run_id, runtime.run_dir)
        remove(left)
    assert left == [], f"left behind: {left}"


def replaced(runtime: Runtime, lost: int, losses: int) -> Callable[[], bool]:
    """The condition: ``lost`` has been replaced and the supervisor counts ``losses`` losses."""
    return lambda: (
        runtime.workers_lost >= losses
        and lost not in runtime.worker_ids
        and len(runtime.worker_ids) == runtime.worker_count
    )


MESSAGES = 20_000
SLEEP_EVERY = 50  # a producer sleeps 1 ms after every 50 messages: it runs for a second or so


def test_kill_9_of_a_worker_under_message_load() -> None:
    """SIGKILL of worker B while producer/consumer pairs run within A, across A and B, and within
    B: pairs on A finish with every message in order; A's links and monitors into B fire (a
    Failure: LinkDied for a process that traps links, death for one that does not); joins of B's
    processes say the worker was lost; B's registry names go; a fresh worker with a new id takes
    B's place and serves spawns; A itself keeps running."""
    with losing_runtime() as runtime:
        a, b = runtime.worker_ids
        load = runtime.load_module(GUESTS / "fail_load.wat")
        links = runtime.load_module(GUESTS / "fail_links.wat")
        pairs = [Pair(a, a), Pair(a, a), Pair(a, b), Pair(b, a), Pair(b, b)]
        for pair in pairs:
            pair.consumer = spawn(
                runtime, load, "consume", MESSAGES, runtime.pid, worker=pair.consumer_worker
            )
            pair.producer = spawn(
                runtime, load, "produce", pair.consumer, MESSAGES, SLEEP_EVERY, worker=pair.producer_worker
            )
        park_a = spawn(runtime, links, "park", worker=a)
        park_b = spawn(runtime, links, "park", worker=b)
        runtime.registry_put("fail-park-a", park_a)
        runtime.registry_put("fail-park-b", park_b)
        watch_link = spawn(runtime, links, "watch_link", park_b, runtime.pid, worker=a)
        link_park = spawn(runtime, links, "link_park", park_b, runtime.pid, worker=a)
        watch_monitor = spawn(runtime, links, "watch_monitor", park_b, runtime.pid, worker=a)
        runtime.monitor(park_b)
        watching = {report(runtime, 4) for _ in range(3)}
        assert watching == {watch_link, link_park, watch_monitor}
        consuming = {report(runtime, 5) for _ in pairs}  # every consumer has its first message
        assert consuming == {pair.consumer for pair in pairs}
        before = runtime.worker_pids()
        lost = psutil.Process(before[b])

        os.kill(before[b], signal.SIGKILL)

        # Pairs wholly on A finish, in order; a consumer on A whose producer was on B got an
        # unbroken prefix; a producer on A whose consumer was on B is not stuck.
        for pair in pairs:
            if pair.producer_worker == pair.consumer_worker == a:
                assert joined_ok(runtime, pair.producer) == (MESSAGES,)
                assert joined_ok(runtime, pair.consumer) == (MESSAGES, 0)
            elif pair.consumer_worker == a:
                count, out_of_order = joined_ok(runtime, pair.consumer)
                assert out_of_order == 0 and 1 <= count <= MESSAGES
            elif pair.producer_worker == a:
                assert joined_ok(runtime, pair.producer) == (MESSAGES,)
        # Every process of B ends FAILED, naming the lost worker.
        on_b = [park_b, *(p for pair in pairs for p in (pair.producer, pair.consumer) if worker_of(p) == b)]
        for pid in on_b:
            finished = joined(runtime, pid)
            assert finished.outcome is Outcome.FAILED, finished
            assert f"worker {b} lost" in finished.message
        # Links and monitors on A into B fire with a Failure.
        assert joined_ok(runtime, watch_link) == (int(Kind.LINK_DIED), 13, park_b)
        finished = joined(runtime, link_park)
        assert finished.outcome is Outcome.KILLED, finished
        assert f"linked process {park_b} died (worker {b} lost)" in finished.message
        assert joined_ok(runtime, watch_monitor) == (int(Kind.PROCESS_DIED), park_b)
        died = runtime.receive([0], timeout=DEADLINE)
        assert died is not None and (died.kind, died.pid) == (Kind.PROCESS_DIED, park_b)
        # B's registry names are gone, A's stay.
        assert runtime.registry_get("fail-park-b") is None
        assert runtime.registry_get("fail-park-a") == park_a
        # One worker lost, replaced by a fresh one with a new id; A was not restarted.
        wait_for(replaced(runtime, b, 1), f"a replacement of worker {b}")
        assert runtime.workers_lost == 1
        (new,) = [w for w in runtime.worker_ids if w != a]
        assert new not in (a, b)
        assert runtime.worker_pids()[a] == before[a]
        assert gone(lost)
        assert shm_entries_of_worker(runtime, b) == []
        assert not (runtime.run_dir / bell_name(b)).exists()
        assert shm_entries_of_worker(runtime, new) != []
        assert joined_ok(runtime, spawn(runtime, links, "ok", worker=new)) == (42,)
        assert joined_ok(runtime, spawn(runtime, links, "ok", worker=a)) == (42,)
        with pytest.raises(SpawnError, match=f"no worker {b}"):
            spawn(runtime, links, "ok", worker=b)
        assert sorted(stats["worker"] for stats in runtime.stats()) == sorted([a, new])
        runtime.kill(park_a)
        assert joined(runtime, park_a).outcome is Outcome.KILLED


def test_other_worker_and_registry_outlive_a_lost_worker() -> None:
    """After worker B is killed, worker A (same OS process) still hosts its processes and takes
    new ones, the registry still holds A's names, and only one loss is counted."""
    with losing_runtime() as runtime:
        a, b = runtime.worker_ids
        links = runtime.load_module(GUESTS / "fail_links.wat")
        park_a = spawn(runtime, links, "park", worker=a)
        runtime.registry_put("fail-survivor", park_a)
        before = runtime.worker_pids()
        os.kill(before[b], signal.SIGKILL)
        wait_for(replaced(runtime, b, 1), f"a replacement of worker {b}")
        assert joined_ok(runtime, spawn(runtime, links, "ok", worker=a)) == (42,)
        assert runtime.exists(park_a)
        assert runtime.registry_get("fail-survivor") == park_a
        assert runtime.worker_pids()[a] == before[a]
        assert runtime.workers_lost == 1


def test_supervisor_replaces_workers_killed_one_after_another() -> None:
    """Three SIGKILLs in a row, each of a different worker (the newest or the oldest): each time
    a fresh worker with a never-used id replaces it, the other is left alone, both serve spawns,
    and guests on the survivor place children on the newcomer."""
    with losing_runtime() as runtime:
        links = runtime.load_module(GUESTS / "fail_links.wat")
        seen = set(runtime.worker_ids)
        for losses in (1, 2, 3):
            victim = runtime.worker_ids[losses % 2]
            (survivor,) = [w for w in runtime.worker_ids if w != victim]
            before = runtime.worker_pids()
            os.kill(before[victim], signal.SIGKILL)
            wait_for(replaced(runtime, victim, losses), f"a replacement of worker {victim}")
            assert runtime.workers_lost == losses
            (new,) = [w for w in runtime.worker_ids if w != survivor]
            assert new not in seen
            seen.add(new)
            assert runtime.worker_pids()[survivor] == before[survivor]
            for worker in runtime.worker_ids:
                assert joined_ok(runtime, spawn(runtime, links, "ok", worker=worker)) == (42,)

            def places_on_both(survivor: int = survivor) -> bool:
                result = joined_ok(runtime, spawn(runtime, links, "placement", worker=survivor))
                return {worker_of(pid) for pid in result[1:]} == set(runtime.worker_ids)

            wait_for(places_on_both, f"worker {survivor} to place children on worker {new}")


STALE_WAIT_MS = 1000
LostWorker = tuple[Runtime, Module, int, int]


@pytest.fixture
def after_loss() -> Iterator[LostWorker]:
    """A runtime whose worker B was killed while hosting a process: (runtime, fail_links, the
    surviving worker, the pid of that process)."""
    with losing_runtime() as runtime:
        a, b = runtime.worker_ids
        links = runtime.load_module(GUESTS / "fail_links.wat")
        stale = spawn(runtime, links, "park", worker=b)
        os.kill(runtime.worker_pids()[b], signal.SIGKILL)
        assert joined(runtime, stale).outcome is Outcome.FAILED
        wait_for(replaced(runtime, b, 1), f"a replacement of worker {b}")
        yield runtime, links, a, stale


class TestPidsOfALostWorker:
    """A pid whose worker was lost is a missing pid like any other, and is answered as one."""

    def test_link_gives_link_died(self, after_loss: LostWorker) -> None:
        """A guest linking to it gets LinkDied (NoProcess) with the link's tag (ABI.md: "link to a
        missing pid delivers LinkDied(NoProcess)")."""
        runtime, links, a, stale = after_loss
        result = joined_ok(runtime, spawn(runtime, links, "link_to", stale, STALE_WAIT_MS, worker=a))
        assert result == (int(Kind.LINK_DIED), 11, stale)

    def test_monitor_gives_process_died(self, after_loss: LostWorker) -> None:
        """A guest monitoring it gets ProcessDied."""
        runtime, links, a, stale = after_loss
        result = joined_ok(runtime, spawn(runtime, links, "monitor_pid", stale, STALE_WAIT_MS, worker=a))
        assert result == (int(Kind.PROCESS_DIED), stale)

    def test_host_monitor_gives_process_died(self, after_loss: LostWorker) -> None:
        """runtime.monitor of it puts a ProcessDied in the host program's mailbox."""
        runtime, _, _, stale = after_loss
        runtime.monitor(stale)
        message = runtime.receive([0], timeout=STALE_WAIT_MS / 1000)
        assert message is not None and (message.kind, message.pid) == (Kind.PROCESS_DIED, stale)

    def test_exists_is_false(self, after_loss: LostWorker) -> None:
        """runtime.exists of it is False at once (not a TimeoutError after its timeout)."""
        runtime, _, _, stale = after_loss
        assert runtime.exists(stale, timeout=STALE_WAIT_MS / 1000) is False


# --- the supervisor killed, interrupted or terminated -------------------------------------------------


@dataclass
class Supervisor:
    """tests/scripts/supervisor.py running, and what it reported."""

    process: subprocess.Popen[bytes]
    children: list[psutil.Process]
    run_id: str
    run_dir: str
    stderr: Path

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace")[-3000:]


def read_line(stream: Any, timeout: float) -> bytes:
    """One line from a pipe, or fail after ``timeout`` seconds."""
    line = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0 and selector.select(remaining), "the supervisor script printed nothing"
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, "the supervisor script exited before it reported"
            line += chunk
    return line


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Callable[..., Supervisor]]:
    """Start tests/scripts/supervisor.py in a session of its own; stop it and remove whatever its
    runtime left behind afterwards, however the test went."""
    started: list[Supervisor] = []

    def start(*args: str) -> Supervisor:
        stderr = tmp_path / f"supervisor-{len(started)}.err"
        with stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, str(SUPERVISOR_SCRIPT), *args],
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
            )
        try:
            info = json.loads(read_line(process.stdout, DEADLINE))
        except BaseException:
            process.kill()
            process.wait()
            raise
        children = [psutil.Process(pid) for pid in info["children"]]
        workers = {int(w): pid for w, pid in info["workers"].items()}
        assert set(workers.values()) <= set(info["children"])
        assert len(workers) == 2 and len(info["children"]) >= 3  # workers, registry, helpers
        started.append(Supervisor(process, children, info["run_id"], info["run_dir"], stderr))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
        running.process.wait()
        assert running.process.stdout is not None
        running.process.stdout.close()
        wait_gone(running.children, "the supervisor script's children")
        remove(leftovers(running.run_id, running.run_dir))


def test_kill_9_of_the_supervisor_leaves_no_orphans(supervisor: Callable[..., Supervisor]) -> None:
    """SIGKILL of the supervisor, with its workers busy: every process it started exits by itself
    (PR_SET_PDEATHSIG, and the supervisor's sentinel) within seconds. What it could not remove
    stays behind: its rings and doorbell flags in /dev/shm (12 rings of 1 MiB and 4 flags for two
    workers) and its run directory; the fixture removes them."""
    running = supervisor()
    running.process.send_signal(signal.SIGKILL)
    assert running.process.wait(DEADLINE) == -signal.SIGKILL
    wait_gone(running.children, "the workers and the registry process of a killed supervisor")


def test_kill_9_of_the_supervisor_also_ends_a_replacement_worker(
    supervisor: Callable[..., Supervisor],
) -> None:
    """A worker that replaced a lost one (started after the loss, at the pump thread's request;
    PR_SET_PDEATHSIG follows the thread that started a child, so every child is started by the
    runtime's launcher thread): it too exits when the supervisor is killed with SIGKILL."""
    running = supervisor("--replace-one")
    running.process.send_signal(signal.SIGKILL)
    assert running.process.wait(DEADLINE) == -signal.SIGKILL
    wait_gone(running.children, "the workers (a replacement among them) of a killed supervisor")


def test_kill_9_of_the_supervisor_ends_replacement_workers_whose_thread_is_blocked(
    supervisor: Callable[..., Supervisor],
) -> None:
    """Every worker's thread is held by a native process (``time.sleep``), so no worker looks at
    the supervisor's sentinel: PR_SET_PDEATHSIG alone must end them, the replacement of a lost
    worker (started after the loss, by the pump thread's request) included. Before every child
    was started from the runtime's launcher thread, the replacement stayed alive at ppid 1."""
    running = supervisor("--replace-one", "--block-workers")
    running.process.send_signal(signal.SIGKILL)
    assert running.process.wait(DEADLINE) == -signal.SIGKILL
    wait_gone(running.children, "the blocked workers (a replacement among them) of a killed supervisor")


def test_ctrl_c_closes_the_runtime_cleanly(supervisor: Callable[..., Supervisor]) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) of a program inside
    ``with Runtime(...)``: workers ignore it, the KeyboardInterrupt closes the runtime, and nothing
    is left: no process, no shared memory, no run directory."""
    running = supervisor()
    os.killpg(running.process.pid, signal.SIGINT)
    code = running.process.wait(DEADLINE)
    assert "KeyboardInterrupt" in running.errors()
    assert code in (-signal.SIGINT, 1), running.errors()
    wait_gone(running.children, "the runtime's processes after Ctrl-C")
    assert leftovers(running.run_id, running.run_dir) == []


def test_sigterm_without_a_handler_stops_the_supervisor_uncleanly(
    supervisor: Callable[..., Supervisor],
) -> None:
    """SIGTERM of a supervisor that installs no handler: Python's default action ends it at once,
    without closing the runtime. Its processes still exit (no orphans); its files stay behind
    (the fixture removes them)."""
    running = supervisor()
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(DEADLINE) == -signal.SIGTERM
    wait_gone(running.children, "the runtime's processes after SIGTERM")


def test_sigterm_as_system_exit_closes_the_runtime_cleanly(supervisor: Callable[..., Supervisor]) -> None:
    """SIGTERM of a supervisor that turns it into SystemExit (signal.signal(SIGTERM, lambda *a:
    sys.exit(0))): ``with Runtime(...)`` closes the runtime; exit code 0, nothing left behind."""
    running = supervisor("--sigterm-exits")
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(DEADLINE) == 0, running.errors()
    wait_gone(running.children, "the runtime's processes after SIGTERM")
    assert leftovers(running.run_id, running.run_dir) == []


def test_sigterm_to_the_process_group_closes_the_runtime_cleanly(
    supervisor: Callable[..., Supervisor],
) -> None:
    """SIGTERM to the supervisor's whole process group, the supervisor turning it into SystemExit:
    exit code 0, no process left, and nothing left behind in /dev/shm or on disk."""
    running = supervisor("--sigterm-exits")
    os.killpg(running.process.pid, signal.SIGTERM)
    assert running.process.wait(DEADLINE) == 0, running.errors()
    wait_gone(running.children, "the runtime's processes after SIGTERM")
    assert leftovers(running.run_id, running.run_dir) == []


# --- backpressure -----------------------------------------------------------------------------------


BIG_MESSAGES = 2000
BIG_SIZE = 16 * 1024
STOPPED_WINDOW_S = 0.5


def test_full_queue_pauses_the_producer_and_loses_nothing() -> None:
    """A producer on worker A sends 2000 messages of 16 KiB (31 MiB) through 64 KiB rings to a
    consumer on worker B that sleeps 1 ms per message. While B is stopped (SIGSTOP), the producer
    is paused once its queue holds the backpressure bound (8 MiB, about 512 messages), and worker
    A goes on serving other processes; once B runs again the producer continues, finishes, and
    every message arrives whole and in order."""
    with Runtime(workers=2, ring_capacity=64 * 1024) as runtime:
        a, b = runtime.worker_ids
        queue = runtime.load_module(GUESTS / "fail_queue.wat")
        links = runtime.load_module(GUESTS / "fail_links.wat")
        consumer = spawn(runtime, queue, "consume_big", BIG_MESSAGES, BIG_SIZE, 0, 1, worker=b)
        worker_b = runtime.worker_pids()[b]
        os.kill(worker_b, signal.SIGSTOP)
        try:
            producer = spawn(
                runtime, queue, "produce_big", consumer, BIG_MESSAGES, BIG_SIZE, runtime.pid, worker=a
            )
            sent = 0
            while sent < 500:  # fits under the bound: the producer gets this far without B
                sent = report(runtime, 6)
            window_end = time.monotonic() + STOPPED_WINDOW_S
            while (message := runtime.receive([6], timeout=remaining(window_end))) is not None:
                sent = value_of(message)
            assert sent < 600, f"the producer sent {sent} messages to a stopped worker: no backpressure"
            assert runtime.join(producer, timeout=0) is None
            assert joined_ok(runtime, spawn(runtime, links, "ok", worker=a)) == (42,)
        finally:
            os.kill(worker_b, signal.SIGCONT)
        count, longest_gap_ns = joined_ok(runtime, producer)
        assert count == BIG_MESSAGES
        assert longest_gap_ns >= 0.8 * STOPPED_WINDOW_S * 1e9  # paused between two sends
        assert joined_ok(runtime, consumer) == (BIG_MESSAGES, 0)
        progress = []
        while (message := runtime.receive([6], timeout=0)) is not None:
            progress.append(value_of(message))
        assert progress[-1:] == [BIG_MESSAGES]


# --- shutdown ---------------------------------------------------------------------------------------


def test_close_with_processes_still_running_is_quick_and_complete() -> None:
    """close() of a runtime whose workers host spinning processes, waiting receivers and senders
    flooding them returns within seconds and leaves no process, shared memory or run directory."""
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    runtime = Runtime(workers=2)
    try:
        load = runtime.load_module(GUESTS / "fail_load.wat")
        for worker in runtime.worker_ids:
            for _ in range(2):
                spawn(runtime, load, "spin", worker=worker)
            for other in runtime.worker_ids:
                receiver = spawn(runtime, load, "receive_forever", worker=worker)
                spawn(runtime, load, "send_forever", receiver, worker=other)
        assert sum(stats["processes"] for stats in runtime.stats()) == 2 * (2 + 2 + 2)
        children = [child for child in me.children(recursive=True) if child.pid not in before]
        assert set(runtime.worker_pids().values()) < {child.pid for child in children}  # + registry
    except BaseException:
        runtime.close()
        raise
    started = time.monotonic()
    runtime.close()
    assert time.monotonic() - started < 15
    assert [child for child in children if not gone(child)] == []
    assert leftovers(runtime.run_id, runtime.run_dir) == []


def test_host_links_two_processes_on_different_workers(runtime: Runtime, links: Module) -> None:
    """runtime.link(a, b, tag) links two running processes across workers: b failing reaches a
    (die_when_link_dies 0) as LinkDied with the tag; runtime.unlink undoes a link."""
    a, b = runtime.worker_ids
    watcher = spawn(runtime, links, "await_link_died", runtime.pid, 10_000, worker=a)
    assert runtime.receive(tags=[4], timeout=DEADLINE) is not None  # the watcher is ready
    victim = spawn(runtime, links, "trap_after_msg", worker=b)
    runtime.link(watcher, victim, 21)
    # barriers: each worker has handled its Link once it answers a request sent after it
    assert runtime.exists(watcher) and runtime.exists(victim)
    runtime.send(victim, b"go")
    finished = runtime.join(watcher, timeout=DEADLINE)
    assert finished is not None and finished.ok, finished
    assert finished.result == (1, 21, victim)


def test_spawn_local_keeps_children_on_the_parents_worker(runtime: Runtime, links: Module) -> None:
    """By default a guest's children spread over the workers; with spawn_local in its config they
    stay on the parent's worker."""
    a, b = runtime.worker_ids
    spread = joined_ok(runtime, spawn(runtime, links, "placement", worker=a))
    assert {worker_of(pid) for pid in spread[1:]} == {a, b}
    local = runtime.spawn(links, "placement", (), EnvConfig.permissive(spawn_local=True), worker=b)
    parent, first, second = joined_ok(runtime, local)
    assert worker_of(parent) == worker_of(first) == worker_of(second) == b


class RegistryHeldBack(Runtime):
    """A runtime whose registry process is stopped (SIGSTOP) as soon as it is started, and goes
    on only once the supervisor has handled the death of another child (or closes): the order
    in which a worker's death while starting could race the registry's attaching to its rings."""

    def _start_child(self, worker_id: int, peers: list[int]) -> None:
        super()._start_child(worker_id, peers)
        if worker_id == REGISTRY:
            os.kill(self._children[REGISTRY].process.pid, signal.SIGSTOP)

    def _on_child_exit(self, child: Any) -> None:
        super()._on_child_exit(child)
        self._go_on()

    def close(self) -> None:
        self._go_on()
        super().close()

    def _go_on(self) -> None:
        registry = self._children.get(REGISTRY)
        if registry is not None and registry.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(registry.process.pid, signal.SIGCONT)


def test_a_worker_dying_while_the_registry_attaches_blames_the_worker() -> None:
    """A worker dies while starting, before the registry process has attached to its rings:
    the supervisor leaves the dead worker's rings alone until the runtime has started (it used
    to remove them at once, so the registry died attaching to them and the error blamed it;
    1 run in 15 under load, every run here), and Runtime() names the worker."""
    here_only = types.ModuleType("lmp_test_here_only_too")
    exec("def register(namespace):\n    pass\n", here_only.__dict__)
    sys.modules[here_only.__name__] = here_only
    try:
        plugin = PythonPlugin("hereonly", here_only.register)
        with pytest.raises(RuntimeError_, match=r"lunatic-mp-worker-\d+ exited with code 1"):
            RegistryHeldBack(workers=1, plugins=[plugin], discover_plugins=False)
    finally:
        del sys.modules[here_only.__name__]


def test_a_worker_that_dies_while_starting_fails_the_runtime_at_once() -> None:
    """A plugin whose code only the host program can import (a module made at run time) kills
    every worker while it starts: Runtime() says which process died and how, without waiting
    out the start timeout, and leaves no child behind (the fixture checks)."""
    here_only = types.ModuleType("lmp_test_here_only")
    exec("def register(namespace):\n    pass\n", here_only.__dict__)
    sys.modules[here_only.__name__] = here_only
    try:
        plugin = PythonPlugin("hereonly", here_only.register)
        with pytest.raises(RuntimeError_, match=r"lunatic-mp-worker-\d+ exited with code 1"):
            Runtime(workers=1, plugins=[plugin], discover_plugins=False)
    finally:
        del sys.modules[here_only.__name__]
