"""The supervisor: starts a runtime's processes, wires their queues, watches them, stops them.

A :class:`Runtime` lives in the host program. It starts the registry process and one worker
process per CPU (``spawn`` start method, never ``fork``: a child forked after Wasm was compiled
hangs), creates the rings between every pair of them, and runs a pump thread that moves frames
for the host program and notices within milliseconds when a worker dies: everyone linked to or
monitoring a process of the lost worker is told, its registry names go, and a fresh worker (with
a new worker id, so stale pids never reach it) takes its place. Workers and the registry process
exit by themselves when the supervisor dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import secrets
import select
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import msgpack
import psutil

from lunatic_mp import arguments
from lunatic_mp.api import lifecycle
from lunatic_mp.cluster import frames, registry_process, worker
from lunatic_mp.cluster.hub import Hub, bell_name, ring_name
from lunatic_mp.cluster.logs import LogReceiver
from lunatic_mp.cluster.transport import SAFETY_TIMEOUT, Ring, SharedMemory, doorbell_flags, remove_doorbell
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import EngineClosed, LunaticError, PluginError, SpawnError, WorkerLost
from lunatic_mp.pids import FIRST_WORKER, REGISTRY, SUPERVISOR, make_pid, worker_of
from lunatic_mp.vm import wasm
from lunatic_mp.vm.engine import (
    DEFAULT_MAX_MEMORY,
    MAX_MESSAGE_SIZE,
    PARAM_TYPE_BYTES,
    default_capacity,
    typed_args,
)
from lunatic_mp.vm.mailbox import DeathReason, Kind, Message
from lunatic_mp.vm.module import Module, ModuleCache
from lunatic_mp.vm.native import pickle_native
from lunatic_mp.vm.plugins import Plugin, check_plugins, discover
from lunatic_mp.vm.process import Finished, Outcome

if TYPE_CHECKING:
    from lunatic_mp.api.executor import WasmExecutor
    from lunatic_mp.api.handles import Environment, Registry

log = logging.getLogger(__name__)

DEFAULT_RING_CAPACITY = 1 << 20
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
MAX_FAILED_STARTS = 5
"""Children that die before they are ready, in a row, after which the supervisor stops replacing them."""
MAX_UNJOINED = 100_000
"""How many ends of processes nobody has joined yet the supervisor remembers."""


RUN_DIR_PREFIX = "lunatic-mp-"
OWNER_FILE = "supervisor"


def sweep_stale_runs() -> None:
    """Remove what supervisors that were killed (SIGKILL, OOM) left behind: their runtime
    directories, rings and doorbells. A run is stale when its supervisor's pid is gone."""
    for run_dir in Path(tempfile.gettempdir()).glob(RUN_DIR_PREFIX + "*"):
        try:
            pid_text, run_id = (run_dir / OWNER_FILE).read_text().split()
            if psutil.pid_exists(int(pid_text)):
                continue
        except (OSError, ValueError):
            continue
        for segment in Path(SharedMemory._DIRECTORY).glob(f"lmp-{run_id}-*"):
            segment.unlink(missing_ok=True)
        for segment in doorbell_flags(run_dir):
            segment.unlink(missing_ok=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("removed the leftovers of runtime %s (supervisor %s is gone)", run_id, pid_text)


class RuntimeError_(LunaticError):
    """A runtime's processes could not be started or reached."""


@dataclass
class _Child:
    """A worker or the registry process, as the supervisor sees it."""

    worker_id: int
    process: Any  # multiprocessing.Process
    ready: threading.Event


class Runtime:
    """Processes on every core: the supervisor of a set of worker processes.

    >>> with Runtime(workers=2) as runtime:
    ...     module = runtime.load_module(examples.path("hello.wat"))
    ...     pid = runtime.spawn(module, "_start", config=EnvConfig.permissive())
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_processes_per_worker: int | None = None,
        max_memory: int = DEFAULT_MAX_MEMORY,
        ring_capacity: int = DEFAULT_RING_CAPACITY,
        log_level: int | None = None,
        plugins: Iterable[Plugin] = (),
        discover_plugins: bool = True,
    ) -> None:
        lifecycle.check_not_bootstrapping()
        self.worker_count = workers or len(os.sched_getaffinity(0))
        if self.worker_count < 1:
            raise ValueError("a runtime needs at least one worker")
        capacity = max_processes_per_worker or default_capacity()  # each worker has its own map budget
        self.max_processes_per_worker = capacity
        every_plugin = [*plugins, *(discover() if discover_plugins else [])]
        self.plugins: tuple[str, ...] = tuple(check_plugins(every_plugin))
        """The names of the plugins every worker has (:mod:`lunatic_mp.vm.plugins`)."""
        self._engine_options: dict[str, Any] = {"max_processes": capacity, "max_memory": max_memory}
        if every_plugin:
            self._engine_options["plugins"] = cloudpickle.dumps(every_plugin)
        self._ring_capacity = ring_capacity
        self._http = b""  # the HTTP front end's table every worker gets (set_http)
        self._log_level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        self._context = multiprocessing.get_context("spawn")
        sweep_stale_runs()
        self.run_id = secrets.token_hex(4)
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
        (self.run_dir / OWNER_FILE).write_text(f"{os.getpid()} {self.run_id}\n")
        self.cache = ModuleCache(self.run_dir / "modules")
        self._compiler = wasm.new_engine(
            async_stack_size=2 * 1024 * 1024,
            max_wasm_stack=1024 * 1024,
            max_instances=1,
            max_memory=max_memory,
        )
        self._lock = threading.RLock()
        self._hub = Hub(SUPERVISOR, self.run_id, self.run_dir)
        self._hub.handlers = self._frame_handlers()
        self._rings: dict[tuple[int, int], Ring] = {}
        self._children: dict[int, _Child] = {}
        self._next_worker = itertools.count(FIRST_WORKER)
        self._placement = itertools.count()
        self._requests: dict[int, tuple[int, Future[Any]]] = {}
        self._next_request = itertools.count(1)
        self._mailbox: list[Message] = []
        self._mail = threading.Condition(self._lock)
        self._workers_changed = threading.Condition(self._lock)  # a child lost, replaced or started
        self.pid = make_pid(0, SUPERVISOR, 1)
        self._monitoring: set[int] = set()  # pids whose death the host program's mailbox gets
        self._spawned: set[int] = set()  # pids spawned here and not joined yet
        self._finished: dict[int, Finished] = {}
        self._finish_waiters: dict[int, list[Future[Finished]]] = {}
        self.workers_lost = 0
        self._losses_pending: set[int] = set()  # lost workers the registry has not forgotten yet
        self._environment_ids = itertools.count(1)  # of environments that bound their processes
        self._failed_starts = 0
        self._closed = False
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._logs = LogReceiver()
        lifecycle.opened(self)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # --- starting -------------------------------------------------------------------------------

    def _start(self) -> None:
        worker_ids = [next(self._next_worker) for _ in range(self.worker_count)]
        everyone = [SUPERVISOR, REGISTRY, *worker_ids]
        for source in everyone:
            for destination in everyone:
                if source != destination:
                    self._make_ring(source, destination)
        for other in everyone[1:]:
            self._hub.connect(other)
        self._start_child(REGISTRY, [p for p in everyone if p != REGISTRY])
        for worker_id in worker_ids:
            self._start_child(worker_id, [p for p in everyone if p != worker_id])
        self._pump_thread = threading.Thread(target=self._pump, name="lunatic-mp-supervisor", daemon=True)
        self._pump_thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        for child in list(self._children.values()):
            while not child.ready.wait(0.05):  # a child that dies while starting fails at once
                if not child.process.is_alive():
                    child.process.join(1)
                    unguarded = lifecycle.start_failure(child.process.exitcode)
                    if unguarded is not None:
                        raise unguarded from None
                    raise RuntimeError_(
                        f"{child.process.name} exited with code {child.process.exitcode} while "
                        "starting (its log, above, says why)"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError_(f"{child.process.name} did not start within {START_TIMEOUT_S:.0f} s")
        with self._lock:  # everyone has a doorbell now: tell everyone to use it
            for child in self._children.values():
                self._broadcast(frames.WorkerStarted(child.worker_id, 0), skip=child.worker_id)
            self._flush()

    def _make_ring(self, source: int, destination: int) -> None:
        self._rings[source, destination] = Ring.create(
            ring_name(self.run_id, source, destination), self._ring_capacity
        )

    def _start_child(self, worker_id: int, peers: list[int]) -> None:
        log_reader, log_writer = self._context.Pipe(duplex=False)
        common: dict[str, Any] = {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "peers": peers,
            "supervisor_pid": os.getpid(),
            "log_pipe": log_writer,
            "log_level": self._log_level,
            "deathsig": threading.current_thread() is threading.main_thread(),
        }
        if worker_id == REGISTRY:
            target: Callable[[Any], None] = registry_process.main
            spec: Any = registry_process.RegistrySpec(**common)
            name = "lunatic-mp-registry"
        else:
            target = worker.main
            spec = worker.WorkerSpec(
                worker_id=worker_id,
                node_id=0,
                engine_options=self._engine_options,
                http=self._http,
                **common,
            )
            name = f"lunatic-mp-worker-{worker_id}"
        process = self._context.Process(target=target, args=(spec,), name=name, daemon=True)
        process.start()
        log_writer.close()
        self._logs.add(log_reader)
        self._children[worker_id] = _Child(worker_id, process, threading.Event())

    # --- the pump -------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Move frames for the host program and watch the children, until closed."""
        hub = self._hub
        assert hub.doorbell is not None
        doorbell = hub.doorbell
        while not self._closed:
            with self._lock:
                arrived = hub.receive()
                self._flush()
            if arrived:
                continue
            sentinels = {child.process.sentinel: child for child in list(self._children.values())}
            doorbell.prepare_sleep()
            ready: list[int] = []
            if hub.idle():
                ready, _, _ = select.select(
                    [doorbell.fileno(), self._wake_read, *sentinels], [], [], SAFETY_TIMEOUT
                )
            doorbell.cancel_sleep()
            doorbell.drain()
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)
            for fd in ready:
                if fd in sentinels and not self._closed:
                    self._on_child_exit(sentinels[fd])

    def _flush(self) -> None:
        self._hub.flush()

    def _broadcast(self, frame: frames.Frame, *, skip: int | None = None) -> None:
        for other in self._hub.endpoints:
            if other != skip:
                self._hub.send(other, frame)

    def _on_child_exit(self, child: _Child) -> None:
        """A worker died unasked: tell everyone, and start a fresh one with a new id."""
        child.process.join(1)  # its sentinel is ready: it has exited, or is about to
        if lifecycle.start_failure(child.process.exitcode) is not None:  # _start raises it
            return
        with self._lock:
            if self._children.get(child.worker_id) is not child:
                return
            del self._children[child.worker_id]
            lost = child.worker_id
            log.warning(
                "worker %d (pid %d) exited with code %s; replacing it",
                lost,
                child.process.pid,
                child.process.exitcode,
            )
            self._hub.disconnect(lost)
            self._announce_loss(lost)
            for key in [k for k in self._rings if lost in k]:
                ring = self._rings.pop(key)
                ring.close()
                ring.unlink()
            remove_doorbell(self.run_dir, bell_name(lost))  # its owner died before it could
            if not child.ready.is_set():
                self._failed_starts += 1
                if self._failed_starts > MAX_FAILED_STARTS:
                    log.error("workers keep dying before they start; not replacing worker %d", lost)
                    return
            else:
                self._failed_starts = 0
            if lost == REGISTRY:
                log.error("the registry process was lost; registry names are gone")
            replacement = REGISTRY if lost == REGISTRY else next(self._next_worker)
            live = [SUPERVISOR, *(w for w in self._children if w != replacement)]
            for other in live:
                self._make_ring(other, replacement)
                self._make_ring(replacement, other)
            self._hub.connect(replacement)
            self._start_child(replacement, live)
            self._flush()
            self._workers_changed.notify_all()
        threading.Thread(target=self._announce, args=(replacement,), daemon=True).start()

    def _announce_loss(self, lost: int) -> None:
        """Tell the registry first, and everyone else once it has dropped the lost worker's
        names (it answers with the same WorkerLost frame): whoever is told of a death there,
        the host program included, finds the dead process's names gone. If the registry itself
        is lost, tell everyone now."""
        if lost != REGISTRY and REGISTRY in self._hub.endpoints:
            self._losses_pending.add(lost)
            self._hub.send(REGISTRY, frames.WorkerLost(lost))
            return
        for gone in (*sorted(self._losses_pending), lost):
            self._lost(gone)
        self._losses_pending.clear()

    def _on_registry_forgot(self, frame: frames.WorkerLost) -> None:
        """The registry dropped a lost worker's names: now the others may hear of the loss."""
        if frame.worker in self._losses_pending:
            self._losses_pending.discard(frame.worker)
            self._lost(frame.worker)

    def _lost(self, lost: int) -> None:
        """Workers, requests, joins and monitors of the host program learn of a loss."""
        self.workers_lost += 1
        self._broadcast(frames.WorkerLost(lost), skip=REGISTRY if lost != REGISTRY else None)
        for request, (target, future) in list(self._requests.items()):
            if target == lost:
                del self._requests[request]
                future.set_exception(WorkerLost(f"worker {lost} was lost before it answered"))
        self._mail_deaths_from(lost)
        self._workers_changed.notify_all()

    def _announce(self, worker_id: int) -> None:
        child = self._children.get(worker_id)
        if child is not None and child.ready.wait(START_TIMEOUT_S):
            with self._lock:
                self._broadcast(frames.WorkerStarted(worker_id, 0), skip=worker_id)
                self._flush()
            self._wake()

    def set_http(self, payload: bytes) -> None:
        """Give every worker, and every worker started from now on (a replacement after a
        crash), the HTTP front end's table (:mod:`lunatic_mp.serve.http`: ``encode_table``). A front
        end, once started, serves until the runtime closes: a table with no routes answers 404."""
        if not payload:
            raise ValueError("an HTTP table is needed (http.encode_table); a front end cannot be removed")
        with self._lock:
            self._check_open()
            self._http = payload
            for worker_id in self._children:
                if worker_id != REGISTRY:
                    self._hub.send(worker_id, frames.HttpRoutes(payload))
            self._flush()

    def _mail_deaths_from(self, lost: int) -> None:
        """The host program's monitors and joins of processes on a lost worker fire."""
        for pid in [p for p in (*self._monitoring, *self._spawned) if worker_of(p) == lost]:
            self._ended(pid, Finished(Outcome.FAILED, message=f"worker {lost} lost"))

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"x")

    # --- frames for the host program ------------------------------------------------------------

    def _frame_handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            frames.Message: lambda f: self._deliver(Message(f.tag, f.data, pid=f.sender)),
            frames.LinkDied: lambda f: self._deliver(Message.link_died(f.dead, f.tag, DeathReason(f.reason))),
            frames.ProcessDied: self._on_process_died,
            frames.ProcessFinished: self._on_process_finished,
            frames.SpawnReply: self._complete,
            frames.ExistsReply: self._complete,
            frames.RegistryReply: self._complete,
            frames.StatsReply: self._complete,
            frames.WorkerStarted: self._on_started,
            frames.WorkerLost: self._on_registry_forgot,
            frames.Kill: lambda f: log.warning("a kill of the host program's mailbox %d was ignored", f.to),
            frames.Link: lambda f: None,
            frames.Unlink: lambda f: None,
            frames.Monitor: lambda f: None,
            frames.StopMonitoring: lambda f: None,
        }

    def _on_started(self, frame: frames.WorkerStarted) -> None:
        child = self._children.get(frame.worker)
        if child is not None:
            self._hub.attach_doorbell(self._hub.endpoints[frame.worker])
            child.ready.set()
            self._workers_changed.notify_all()

    def _on_process_died(self, frame: frames.ProcessDied) -> None:
        self._ended(frame.dead, Finished(Outcome.FAILED, message="no such process"))

    def _on_process_finished(self, frame: frames.ProcessFinished) -> None:
        outcome = (Outcome.NORMAL, Outcome.KILLED, Outcome.FAILED)[frame.outcome]
        results = tuple(msgpack.unpackb(frame.results))
        exit_code = None if frame.exit_code < 0 else frame.exit_code
        backtrace = tuple(frame.backtrace.splitlines())
        self._ended(frame.pid, Finished(outcome, results, frame.message, backtrace, exit_code))

    def _ended(self, pid: int, finished: Finished) -> None:
        with self._mail:
            waiters = self._finish_waiters.pop(pid, None)
            if waiters is None:
                self._finished.setdefault(pid, finished)
                if len(self._finished) > MAX_UNJOINED:  # forget the oldest that nobody joined
                    del self._finished[next(iter(self._finished))]
            else:
                self._spawned.discard(pid)
            if pid in self._monitoring:
                self._monitoring.discard(pid)
                self._mailbox.append(Message.process_died(pid))
            self._mail.notify_all()
        for future in waiters or ():
            future.set_result(finished)

    def _deliver(self, message: Message) -> None:
        with self._mail:
            self._mailbox.append(message)
            self._mail.notify_all()

    def _complete(self, frame: Any) -> None:
        entry = self._requests.pop(frame.request, None)
        if entry is not None:
            entry[1].set_result(frame)

    def _request_future(self, worker_id: int, make: Callable[[int], frames.Frame]) -> Future[Any]:
        """Send a request; the future of its reply frame (WorkerLost if the worker dies first)."""
        future: Future[Any] = Future()
        with self._lock:
            self._check_open()
            request = next(self._next_request)
            self._requests[request] = (worker_id, future)
            self._hub.send(worker_id, make(request))
            self._flush()
        return future

    def _request(self, worker_id: int, make: Callable[[int], frames.Frame], timeout: float | None) -> Any:
        future = self._request_future(worker_id, make)
        try:
            return future.result(timeout)
        finally:
            if not future.done():
                with self._lock:
                    for request, (_, waiting) in list(self._requests.items()):
                        if waiting is future:
                            del self._requests[request]

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed("the runtime is closed")

    # --- the host program's API -----------------------------------------------------------------

    @property
    def worker_ids(self) -> list[int]:
        with self._lock:
            return sorted(w for w in self._children if w >= FIRST_WORKER)

    def worker_pids(self) -> dict[int, int]:
        """OS process id of each worker, by worker id."""
        with self._lock:
            return {w: c.process.pid for w, c in self._children.items() if w >= FIRST_WORKER}

    def registry_os_pid(self) -> int | None:
        """OS process id of the registry process (None while it is being replaced)."""
        with self._lock:
            child = self._children.get(REGISTRY)
            return None if child is None else child.process.pid

    def wait_for_workers(self, timeout: float | None = None, *, losses: int = 0) -> bool:
        """Wait until the supervisor has counted ``losses`` lost workers (:attr:`workers_lost`)
        and the registry and a full set of workers have started, replacements included; False
        on timeout."""

        def full() -> bool:
            workers = [w for w in self._children if w >= FIRST_WORKER]
            return (
                self.workers_lost >= losses
                and len(workers) == self.worker_count
                and REGISTRY in self._children
                and all(child.ready.is_set() for child in self._children.values())
            )

        with self._workers_changed:
            return self._workers_changed.wait_for(full, timeout)

    def _hosted(self, pid: int) -> bool:
        """Whether ``pid`` names a live worker (else no process can answer for it)."""
        with self._lock:
            return worker_of(pid) >= FIRST_WORKER and worker_of(pid) in self._children

    def load_module(self, source: str | bytes | Path, name: str | None = None) -> Module:
        """Compile a module once, for every worker (a path, Wasm bytes or WAT text)."""
        self._check_open()
        module = Module.load(self._compiler, source, name)
        self.cache.store(module)
        return module

    def spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        link: tuple[int, int] | None = None,
        timeout: float | None = 30.0,
    ) -> int:
        """Start ``module.function(*params)`` on a worker (round robin unless given); its pid."""
        return self.spawn_future(module, function, params, config, worker=worker, link=link).result(timeout)

    def spawn_future(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        link: tuple[int, int] | None = None,
    ) -> Future[int]:
        """:meth:`spawn` without waiting: the future of the new pid (SpawnError, WorkerLost).

        Its callbacks run on the supervisor's pump thread: they must not wait on the runtime.
        """
        self._check_open()
        module = arguments.module(module)
        signature = module.exports.get(function)
        if signature is None:
            raise SpawnError(f"{module.name} has no exported function `{function}`")
        args = typed_args(module.name, function, signature[0], params)
        if any(kind not in PARAM_TYPE_BYTES or kind == wasm.V128 for kind, _ in args):
            raise SpawnError("only i32 and i64 parameters can be passed to a process on a worker")
        target = self._place(worker)
        link_pid, link_tag = link or (0, 0)
        kinds = bytes(PARAM_TYPE_BYTES[kind] for kind, _ in args)
        config = self._in_environment(config or EnvConfig())
        encoded = frames.encode_config(config)
        values = tuple(v for _, v in args)
        return self._spawn_request(
            target,
            lambda request: frames.Spawn(
                request, self.pid, module.digest, function, values, kinds, encoded, link_pid, link_tag
            ),
            config,
        )

    def spawn_native(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        link: tuple[int, int] | None = None,
        timeout: float | None = 30.0,
    ) -> int:
        """Start ``function(context, *args, **kwargs)`` as a native process on a worker (round
        robin unless given); its pid. The function, its arguments and what it refers to are sent
        with cloudpickle; see :mod:`lunatic_mp.vm.native` for what the function can do. ``config``
        is what the Wasm processes it spawns inherit."""
        future = self.spawn_native_future(function, args, kwargs, config, worker=worker, link=link)
        return future.result(timeout)

    def spawn_native_future(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        link: tuple[int, int] | None = None,
    ) -> Future[int]:
        """:meth:`spawn_native` without waiting: the future of the new pid."""
        self._check_open()
        if not callable(function):
            raise SpawnError(f"a native process runs a function, got {function!r}")
        args = arguments.arguments(args, function)
        try:
            payload = pickle_native(function, args, kwargs or {})
        except Exception as exc:  # cloudpickle raises whatever pickling the objects does
            raise SpawnError(f"cannot pickle {function!r} and its arguments for a worker: {exc}") from exc
        target = self._place(worker)
        link_pid, link_tag = link or (0, 0)
        config = self._in_environment(config or EnvConfig())
        encoded = frames.encode_config(config)
        return self._spawn_request(
            target,
            lambda request: frames.SpawnNative(request, self.pid, payload, encoded, link_pid, link_tag),
            config,
        )

    def _in_environment(self, config: EnvConfig) -> EnvConfig:
        """``config``, with an environment id of its own if it bounds its processes and has none
        (:meth:`environment` gives all of an environment's spawns the same one)."""
        if config.max_processes and not config.environment_id:
            config = config.copy()
            config.environment_id = next(self._environment_ids)
        return config

    def _place(self, worker: int | None) -> int:
        workers = self.worker_ids
        target = worker if worker is not None else workers[next(self._placement) % len(workers)]
        if target not in workers:
            raise SpawnError(f"no worker {target}")
        return target

    def _spawn_request(
        self, target: int, make: Callable[[int], frames.Frame], config: EnvConfig | None = None
    ) -> Future[int]:
        """Send a spawn frame to a worker; the future of the pid its reply carries. A spawn into
        an environment with ``max_processes`` first counts itself in at the registry process."""
        if config is not None and config.max_processes:
            return self._limited_spawn_request(target, make, config.environment_id, config.max_processes)
        reply = self._request_future(target, make)
        pid: Future[int] = Future()

        def spawned(done: Future[Any]) -> None:
            try:
                frame = done.result()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                pid.set_exception(exc)
                return
            if frame.error:
                pid.set_exception(SpawnError(frame.error))
                return
            with self._lock:
                self._spawned.add(frame.pid)
            pid.set_result(int(frame.pid))

        reply.add_done_callback(spawned)
        return pid

    def _limited_spawn_request(
        self, target: int, make: Callable[[int], frames.Frame], environment: int, limit: int
    ) -> Future[int]:
        pid: Future[int] = Future()

        def acquired(done: Future[Any]) -> None:
            try:
                frame = done.result()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's future
                pid.set_exception(exc)
                return
            if not frame.found:
                pid.set_exception(SpawnError(frame.error))
                return
            self._spawn_request(target, make).add_done_callback(spawned)

        def spawned(done: Future[int]) -> None:
            error = done.exception()
            if error is None:
                pid.set_result(done.result())
                return
            with self._lock:  # counted in, never started
                self._hub.send(REGISTRY, frames.EnvRelease(environment, target))
                self._flush()
            pid.set_exception(error)

        self._request_future(
            REGISTRY, lambda request: frames.EnvAcquire(request, self.pid, environment, limit, target)
        ).add_done_callback(acquired)
        return pid

    def join(self, pid: int, timeout: float | None = None) -> Finished | None:
        """Wait for a process spawned through this runtime to end; how it ended (None on timeout)."""
        future = self.finished_future(pid)
        try:
            return future.result(timeout)
        except TimeoutError:
            with self._mail:  # forget this waiter, or the end would go to it and not to a later join
                waiters = self._finish_waiters.get(pid, [])
                if future in waiters:
                    waiters.remove(future)
                if not waiters:
                    self._finish_waiters.pop(pid, None)
            return future.result(0) if future.done() else None

    def finished_future(self, pid: int) -> Future[Finished]:
        """The future of how a process spawned through this runtime ends.

        Its callbacks run on the supervisor's pump thread: they must not wait on the runtime.
        """
        future: Future[Finished] = Future()
        with self._mail:
            finished = self._finished.pop(pid, None)
            if finished is None:
                self._finish_waiters.setdefault(pid, []).append(future)
                return future
            self._spawned.discard(pid)
        future.set_result(finished)
        return future

    def send(self, pid: int, data: bytes = b"", tag: int = 0) -> None:
        """Send a message to a process (from the host program's own pid, :attr:`pid`)."""
        data = arguments.data_bytes(data)
        if not -(2**63) <= tag < 2**64:
            raise ValueError(f"tag {tag} does not fit in 64 bits")
        if len(data) > MAX_MESSAGE_SIZE:
            raise ValueError(f"message of {len(data)} bytes exceeds the {MAX_MESSAGE_SIZE}-byte limit")
        tag = tag - 2**64 if tag >= 2**63 else tag
        with self._lock:
            self._check_open()
            self._hub.reply(pid, frames.Message(pid, self.pid, tag, bytes(data), ()))
            self._flush()

    def receive(self, tags: Sequence[int] | None = None, timeout: float | None = None) -> Message | None:
        """The oldest message for the host program whose tag is in ``tags``; None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._mail:
            while True:
                for index, message in enumerate(self._mailbox):
                    if tags is None or message.tag in tags:
                        return self._mailbox.pop(index)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._mail.wait(remaining)

    def monitor(self, pid: int) -> None:
        """ProcessDied(pid) arrives in the host program's mailbox when ``pid`` dies."""
        with self._lock:
            self._check_open()
            self._monitoring.add(pid)
            if not self._hosted(pid):
                self._ended(pid, Finished(Outcome.FAILED, message="no such process"))
                return
            self._hub.reply(pid, frames.Monitor(pid, self.pid))
            self._flush()

    def link(self, pid: int, other: int, tag: int = 0) -> None:
        """Link two processes (anywhere) with ``tag``, as if one had called ``link``.

        ``other`` may be :attr:`pid`: LinkDied then arrives in the host program's mailbox. Each
        side is linked by its own worker, and both are in place when this returns (a request
        sent after each link frame has been answered), so a death right after cannot be
        missed. A side that does not exist makes the other receive LinkDied(NoProcess).
        """
        self._signal_both(pid, other, frames.Link(pid, other, tag), frames.Link(other, pid, tag))

    def unlink(self, pid: int, other: int) -> None:
        """Undo :meth:`link`, both sides (in place when this returns)."""
        self._signal_both(pid, other, frames.Unlink(pid, other), frames.Unlink(other, pid))

    def _signal_both(self, pid: int, other: int, to_pid: frames.Frame, to_other: frames.Frame) -> None:
        with self._lock:
            self._check_open()
            self._hub.reply(pid, to_pid)
            if other != self.pid:
                self._hub.reply(other, to_other)
            self._flush()
        for side in (pid, other):
            if side != self.pid:
                self.exists(side)  # a round trip behind the signal: that worker has handled it

    def executor(self, module: Module, **options: Any) -> WasmExecutor:
        """A ``concurrent.futures.Executor`` running ``module``'s exports as jobs on the workers
        (options: see :class:`~lunatic_mp.api.executor.WasmExecutor`)."""
        from lunatic_mp.api.executor import WasmExecutor

        return WasmExecutor(self, module, **options)

    def environment(
        self,
        config: EnvConfig | None = None,
        *,
        isolated_registry: bool = False,
        plugins: Iterable[str] = (),
    ) -> Environment:
        """Processes spawned through the environment get ``config``'s limits and permissions,
        and may import the namespaces of ``plugins`` (names of this runtime's plugins)."""
        from lunatic_mp.api.handles import Environment

        config = self._in_environment((config or EnvConfig()).copy())
        config.allowed_namespaces |= self.check_plugin_names(plugins)
        return Environment(self, config, isolated_registry=isolated_registry)

    def check_plugin_names(self, names: Iterable[str]) -> frozenset[str]:
        """``names``, once each is known to be one of this runtime's plugins."""
        wanted = frozenset([names] if isinstance(names, str) else names)
        unknown = sorted(wanted - set(self.plugins))
        if unknown:
            have = ", ".join(self.plugins) or "none"
            raise PluginError(f"this runtime has no plugin {', '.join(unknown)} (it has: {have})")
        return wanted

    @property
    def registry(self) -> Registry:
        """Names and versions of well-known processes, as guests see them."""
        from lunatic_mp.api.handles import Registry

        return Registry(self)

    def kill(self, pid: int, reason: str = "killed by the host program") -> None:
        with self._lock:
            self._check_open()
            self._hub.reply(pid, frames.Kill(pid, reason))
            self._flush()

    def exists(self, pid: int, timeout: float | None = 10.0) -> bool:
        self._check_open()
        if not self._hosted(pid):
            return False
        reply = self._request(worker_of(pid), lambda r: frames.Exists(r, self.pid, pid), timeout)
        return bool(reply.exists)

    def registry_put(self, name: str, pid: int, timeout: float | None = 10.0) -> None:
        reply = self._request(REGISTRY, lambda r: frames.RegistryPut(r, self.pid, name, 0, pid), timeout)
        if reply.error:
            raise LunaticError(reply.error)

    def registry_get(self, name: str, timeout: float | None = 10.0) -> int | None:
        reply = self._request(REGISTRY, lambda r: frames.RegistryGet(r, self.pid, name, False), timeout)
        if reply.error:
            raise LunaticError(reply.error)
        return int(reply.pid) if reply.found else None

    def registry_remove(self, name: str, timeout: float | None = 10.0) -> None:
        self._request(REGISTRY, lambda r: frames.RegistryRemove(r, self.pid, name), timeout)

    def stats(self, timeout: float | None = 10.0) -> list[dict[str, Any]]:
        """Each worker's figures: live processes, capacity, malformed frames, guest metrics."""
        self._check_open()
        return [
            msgpack.unpackb(self._request(w, lambda r: frames.Stats(r, self.pid), timeout).payload)
            for w in self.worker_ids
        ]

    def processes(
        self, limit: int = 10_000, timeout: float | None = 10.0
    ) -> tuple[int, list[dict[str, Any]]]:
        """How many live processes the workers hold, and at most ``limit`` of each worker's:
        maps of pid, worker, kind, module, digest, function, phase, waiting, mailbox, links, monitors
        (``Worker.process_list``). The workers are asked at once."""
        self._check_open()
        asked = [
            (w, self._request_future(w, lambda r: frames.ListProcesses(r, self.pid, limit)))
            for w in self.worker_ids
        ]
        total, rows = 0, list[dict[str, Any]]()
        for worker_id, future in asked:
            answer = msgpack.unpackb(future.result(timeout).payload)
            total += answer["total"]
            rows.extend({**row, "worker": worker_id} for row in answer["processes"])
        return total, rows

    def registry_names(self, timeout: float | None = 10.0) -> list[tuple[str, str | None, int]]:
        """Every registry entry as ``(name, version or None, pid)``, sorted by name, then version."""
        reply = self._request(REGISTRY, lambda r: frames.Stats(r, self.pid), timeout)
        return [(name, version, pid) for name, version, _, pid in msgpack.unpackb(reply.payload)["names"]]

    # --- stopping -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process of the runtime and remove its shared memory and files."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lifecycle.closed(self)
            self._broadcast(frames.Shutdown())
            self._flush()
        self._wake()
        if getattr(self, "_pump_thread", None) is not None:
            self._pump_thread.join(STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in list(self._children.values()):
            child.process.join(max(deadline - time.monotonic(), 0.1))
            if child.process.is_alive():
                log.warning("%s did not stop; killing it", child.process.name)
                child.process.kill()
                child.process.join(STOP_TIMEOUT_S)
            remove_doorbell(self.run_dir, bell_name(child.worker_id))  # if it could not
        self._children.clear()
        for _, future in self._requests.values():
            future.set_exception(EngineClosed("the runtime was closed"))
        self._requests.clear()
        for waiters in self._finish_waiters.values():
            for waiter in waiters:
                waiter.set_exception(EngineClosed("the runtime was closed before the process ended"))
        self._finish_waiters.clear()
        self._hub.close()
        for ring in self._rings.values():
            ring.close()
            ring.unlink()
        self._rings.clear()
        self._logs.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Kind", "Runtime"]
