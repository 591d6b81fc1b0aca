"""The supervisor: starts a runtime's processes, wires their queues, watches them, stops them.

The supervisor lives in the host program, beneath its :class:`~lunatic_mp.api.runtime.Runtime`.
It starts the registry process and one worker
process per CPU (forked from its template process, :mod:`lunatic_mp.cluster.template`, never from
itself: a child forked after Wasm was compiled hangs; spawned where there is no template),
creates the rings between every pair of them, and runs a pump thread that moves frames
for the host program and notices within milliseconds when a worker dies: everyone linked to or
monitoring a process of the lost worker is told, its registry names go, and a fresh worker (with
a new worker id, so stale pids never reach it) takes its place. Workers and the registry process
exit by themselves when the supervisor dies (``PR_SET_PDEATHSIG``, through the template).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import select
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import cloudpickle
import msgpack

from lunatic_mp.cluster import frames, lifecycle
from lunatic_mp.cluster.hostenv import check_platform, check_shm_space, default_worker_count
from lunatic_mp.cluster.hub import Hub, bell_name, ring_name
from lunatic_mp.cluster.launcher import Launcher
from lunatic_mp.cluster.logs import LogReceiver
from lunatic_mp.cluster.member import ClusterMember
from lunatic_mp.cluster.outbound import Outbound
from lunatic_mp.cluster.requests import PendingRequests
from lunatic_mp.cluster.specs import RegistrySpec, WorkerSpec
from lunatic_mp.cluster.stale_runs import RUN_DIR_PREFIX, new_run_id, sweep_stale_runs, write_owner
from lunatic_mp.cluster.template import REGISTRY_KIND, WORKER_KIND, Template, TemplateGone
from lunatic_mp.cluster.template import available as template_available
from lunatic_mp.cluster.transport import SAFETY_TIMEOUT, Ring, remove_doorbell
from lunatic_mp.errors import EngineClosed, LunaticError, UnguardedMainError
from lunatic_mp.pids import FIRST_WORKER, REGISTRY, SUPERVISOR, is_foreign, make_pid, place_of
from lunatic_mp.vm import wasm
from lunatic_mp.vm.engine import (
    DEFAULT_MAX_MEMORY,
    check_plugins,
    default_capacity,
)
from lunatic_mp.vm.finished import Finished, Outcome, from_wire
from lunatic_mp.vm.mailbox import DeathReason, Message
from lunatic_mp.vm.metrics import MAX_SERIES
from lunatic_mp.vm.module import ModuleCache
from lunatic_mp.vm.plugins import Plugin, discover
from lunatic_mp.vm.preemption import DEFAULT_TIME_SLICE_NS, check_long_slice, check_time_slice
from lunatic_mp.vm.scheduler import DEFAULT_HIBERNATE_AFTER_S, check_hibernate_after

if TYPE_CHECKING:
    from lunatic_mp.cluster.gateway import Gateway

log = logging.getLogger(__name__)

DEFAULT_RING_CAPACITY = 1 << 20
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
MAX_FAILED_STARTS = 5
"""Children that die before they are ready, in a row, after which the supervisor stops replacing them."""
MAX_UNJOINED = 100_000
"""How many ends of processes nobody has joined yet the supervisor remembers."""


class RuntimeError_(LunaticError):
    """A runtime's processes could not be started or reached."""


@dataclass
class _Child:
    """A worker or the registry process, as the supervisor sees it."""

    worker_id: int
    process: Any  # multiprocessing.Process
    ready: threading.Event


class Supervisor(Outbound, ClusterMember):
    """The OS processes of a runtime and the pump between them and the host program.

    :class:`~lunatic_mp.api.runtime.Runtime` is the API over it: this class owns the children,
    their rings, the host program's mailbox and requests, losses and replacements.
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
        max_metric_series: int = MAX_SERIES,
        time_slice_ns: int = DEFAULT_TIME_SLICE_NS,
        long_slice_ns: int | None = None,
        hibernate_after: float | None = DEFAULT_HIBERNATE_AFTER_S,
        wait: bool = True,
        import_main: bool = True,
        template: Template | None = None,
        gateway: Gateway | None = None,
    ) -> None:
        """``wait=False``: return while the processes start (:meth:`wait_started`).
        ``import_main=False``: the workers do not import the host program's main module (the
        ``lunatic-mp`` command's, which they need nothing from); a native process's function
        defined there still reaches them, by value. ``template``: a template process started
        ahead (:class:`~lunatic_mp.cluster.template.Template`), which the runtime then owns.
        ``gateway``: this runtime is a node of a cluster (:mod:`lunatic_mp.cluster.gateway`),
        which it then owns. ``time_slice_ns``: how long a guest runs before it yields to the
        others of its worker (1 ms; longer slices cost CPU-bound work less, docs/performance.md).
        ``long_slice_ns``: how long a CPU-bound guest runs on while only such guests wait on its
        worker (None: 100 ms; 0: never; :data:`~lunatic_mp.vm.preemption.DEFAULT_LONG_SLICE_NS`).
        ``hibernate_after``: seconds a process waits in ``receive`` before its memory's pages go
        back to the kernel until it runs again (None: never; docs/performance.md)."""
        lifecycle.check_not_bootstrapping()
        check_platform()  # before anything is created: a clear error, not lost messages
        self.worker_count = workers or default_worker_count()
        if self.worker_count < 1:
            raise ValueError("a runtime needs at least one worker")
        # each worker has its own address space; they share the host's RAM
        capacity = max_processes_per_worker or default_capacity(max_memory, workers=self.worker_count)
        self.max_processes_per_worker = capacity
        every_plugin = [*plugins, *(discover() if discover_plugins else [])]
        self.plugins: tuple[str, ...] = tuple(check_plugins(every_plugin))
        """The names of the plugins every worker has (:mod:`lunatic_mp.vm.plugins`)."""
        self._engine_options: dict[str, Any] = {
            "max_processes": max_processes_per_worker,  # None: the same default_capacity, with its reason
            "workers": self.worker_count,
            "max_memory": max_memory,
            "max_metric_series": max_metric_series,  # each worker's guests' metric names
            "time_slice_ns": check_time_slice(time_slice_ns),  # how long a guest runs before it yields
            "long_slice_ns": check_long_slice(long_slice_ns, time_slice_ns),  # ... CPU-bound guests alone
            "hibernate_after": check_hibernate_after(hibernate_after),  # idle seconds before pages go back
        }
        if every_plugin:
            self._engine_options["plugins"] = cloudpickle.dumps(every_plugin)
        self._ring_capacity = ring_capacity
        self._http = b""  # the HTTP front end's table every worker gets (set_http)
        self._log_level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        self._context = multiprocessing.get_context("spawn")
        self._import_main = import_main
        sweep_stale_runs()
        self.run_id = new_run_id()
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
        write_owner(self.run_dir, self.run_id)
        self.cache = ModuleCache(self.run_dir / "modules")
        self._compiler = wasm.new_engine(
            async_stack_size=2 * 1024 * 1024,
            max_wasm_stack=1024 * 1024,
            max_instances=1,
            max_memory=max_memory,
        )
        self._lock = threading.RLock()
        Outbound.__init__(self)
        self.node_id = 0 if gateway is None else gateway.node_id
        self._hub = Hub(SUPERVISOR, self.run_id, self.run_dir, node_id=self.node_id)
        self._hub.handlers = self._frame_handlers()
        self._join_cluster(gateway)
        self._rings: dict[tuple[int, int], Ring] = {}
        self._children: dict[int, _Child] = {}
        self._next_worker = itertools.count(FIRST_WORKER)
        self._placement = itertools.count()
        self._requests = PendingRequests()
        self._mailbox: list[Message] = []
        self._mail = threading.Condition(self._lock)
        self._workers_changed = threading.Condition(self._lock)  # a child lost, replaced or started
        self.pid = make_pid(self.node_id, SUPERVISOR, 1)
        self._monitoring: set[int] = set()  # pids whose death the host program's mailbox gets
        self._spawned: set[int] = set()  # pids spawned here and not joined yet
        self._finished: dict[int, Finished] = {}
        # Callables, each given the Finished (or EngineClosed at close): Runtime.on_finished.
        self._finish_waiters: dict[int, list[Callable[[Finished | BaseException], object]]] = {}
        self.workers_lost = 0
        self._losses_pending: set[int] = set()  # lost workers the registry has not forgotten yet
        self._environment_ids = itertools.count(1)  # of environments that bound their processes
        self._failed_starts = 0
        self._starting = True  # until every child is ready: the pump does not handle their deaths
        self._pump_thread: threading.Thread | None = None
        self._closed = False
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._logs = LogReceiver()
        self._launcher = Launcher()  # starts every child, so each gets PR_SET_PDEATHSIG
        self._template: Template | None = template
        if template is not None:
            self._logs.add(template.log_reader)
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._start_thread: threading.Thread | None = None
        lifecycle.opened(self)
        if wait:
            try:
                self._start()
            except UnguardedMainError as exc:  # one short error: where it is raised does not matter
                self._started.set()
                self.close()
                raise exc.with_traceback(None) from None
            except BaseException:
                self._started.set()
                self.close()
                raise
            self._started.set()
        else:  # the caller goes on (compiles a module, say) while the processes start
            self._start_thread = threading.Thread(
                target=self._start_behind, name="lunatic-mp-start", daemon=True
            )
            self._start_thread.start()

    def _start_behind(self) -> None:
        try:
            self._start()
        except BaseException as exc:  # noqa: BLE001 - wait_started raises it
            self._start_error = exc
        finally:
            self._started.set()

    def wait_started(self, timeout: float | None = None) -> None:
        """Wait until every process of a runtime made with ``wait=False`` has started; the error
        that stopped it (the runtime is closed then). Calls that need the workers wait by themselves."""
        if not self._started.wait(timeout):
            raise TimeoutError(f"the runtime did not start within {timeout} s")
        if self._start_error is not None:
            error, self._start_error = self._start_error, None
            self.close()
            raise error

    # --- starting -------------------------------------------------------------------------------

    def _start(self) -> None:
        worker_ids = [next(self._next_worker) for _ in range(self.worker_count)]
        everyone = [SUPERVISOR, REGISTRY, *worker_ids]
        check_shm_space(len(everyone) * (len(everyone) - 1), self._ring_capacity)
        if self._template is None and template_available():  # first: it boots while the rings are made
            self._template = Template(self._log_level, import_main=self._import_main)
            self._logs.add(self._template.log_reader)
        for source in everyone:
            for destination in everyone:
                if source != destination:
                    self._make_ring(source, destination)
        for other in everyone[1:]:
            self._hub.connect(other)
        launched = [self._launch_child(w, [p for p in everyone if p != w]) for w in (REGISTRY, *worker_ids)]
        for launch in launched:  # every request is sent before waiting for the first answer
            self._adopt_child(*launch)
        self._pump_thread = threading.Thread(target=self._pump, name="lunatic-mp-supervisor", daemon=True)
        self._pump_thread.start()
        self._wait_started()
        if self._template is not None:
            self._template.warm()
        with self._lock:  # everyone has a doorbell now: tell everyone to use it
            for child in self._children.values():
                self._broadcast(frames.WorkerStarted(child.worker_id, 0), skip=child.worker_id)
                self._greet(child.worker_id)
            self._flush()
            self._starting = False
        self._wake()  # the pump watches the children from now on

    def _wait_started(self) -> None:
        """Wait until every child is ready; a child that dies meanwhile fails the start at once,
        naming it. Until then the pump leaves dead children alone (no ring removed, no
        replacement): another child may still be attaching to a dead one's rings."""
        deadline = time.monotonic() + START_TIMEOUT_S
        children = list(self._children.values())
        while True:
            for child in children:
                if not child.process.is_alive():
                    child.process.join(1)
                    unguarded = lifecycle.start_failure(child.process.exitcode)
                    if unguarded is not None:
                        raise unguarded from None
                    raise RuntimeError_(
                        f"{child.process.name} exited with code {child.process.exitcode} while "
                        "starting (its log, above, says why)"
                    )
            waiting = [child for child in children if not child.ready.is_set()]
            if not waiting:
                return
            if not waiting[0].ready.wait(0.05) and time.monotonic() > deadline:
                raise RuntimeError_(f"{waiting[0].process.name} did not start within {START_TIMEOUT_S:.0f} s")

    def _make_ring(self, source: int, destination: int) -> None:
        self._rings[source, destination] = Ring.create(
            ring_name(self.run_id, source, destination), self._ring_capacity
        )

    def _start_child(self, worker_id: int, peers: list[int]) -> None:
        self._adopt_child(*self._launch_child(worker_id, peers))

    def _launch_child(self, worker_id: int, peers: list[int]) -> tuple[int, list[int], str, Any, Any]:
        """Ask the template for a child (spawn it where there is no template); the child's id,
        peers, name, log pipe and process (or the template's request id)."""
        log_reader, log_writer = self._context.Pipe(duplex=False)
        common: dict[str, Any] = {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "peers": peers,
            "supervisor_pid": os.getpid(),
            "log_pipe": log_writer,
            "log_level": self._log_level,
            "deathsig": True,  # started by the launcher's thread, which lives as long as the runtime
            "node_id": self.node_id,
        }
        if worker_id == REGISTRY:
            spec: Any = RegistrySpec(**common)
            name = "lunatic-mp-registry"
        else:
            spec = WorkerSpec(
                worker_id=worker_id,
                engine_options=self._engine_options,
                http=self._http,
                **common,
            )
            name = f"lunatic-mp-worker-{worker_id}"
        if self._template is not None:
            kind = REGISTRY_KIND if worker_id == REGISTRY else WORKER_KIND
            spec.log_pipe = None  # its descriptor travels beside the spec
            with contextlib.suppress(TemplateGone):  # then it is spawned, below
                try:
                    request = self._template.request(kind, name, spec, log_writer.fileno())
                    return worker_id, peers, name, log_reader, request
                finally:
                    log_writer.close()
            log_reader.close()
            self._template_gone(name)
            return self._launch_child(worker_id, peers)
        # no template: a fresh interpreter imports the child's entry point (slower: not needed here)
        from lunatic_mp.cluster import registry_process, worker

        target = registry_process.main if worker_id == REGISTRY else worker.main
        process = self._context.Process(target=target, args=(spec,), name=name, daemon=True)
        self._launcher.run(process.start)
        log_writer.close()
        return worker_id, peers, name, log_reader, process

    def _adopt_child(
        self, worker_id: int, peers: list[int], name: str, log_reader: Any, process: Any
    ) -> None:
        """Watch a launched child: its process and its logs."""
        if isinstance(process, int):  # a request to the template
            assert self._template is not None
            try:
                process = self._template.result(process, name, START_TIMEOUT_S)
            except TemplateGone:
                log_reader.close()
                self._template_gone(name)
                self._adopt_child(*self._launch_child(worker_id, peers))
                return
        self._logs.add(log_reader)
        self._children[worker_id] = _Child(worker_id, process, threading.Event())

    def _template_gone(self, name: str) -> None:
        """Children are spawned from now on (slower, as before the template)."""
        log.warning("the template process has gone; starting %s and the next children with spawn", name)
        template, self._template = self._template, None
        if template is not None:
            template.close(STOP_TIMEOUT_S)

    # --- the pump -------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Move frames for the host program and watch the children, until closed."""
        hub = self._hub
        assert hub.doorbell is not None
        doorbell = hub.doorbell
        gateway = self.gateway
        if gateway is not None:
            gateway.pump_thread = threading.get_ident()
        while not self._closed:
            # A full link to another node: its frames wait in the rings, unread (see Gateway).
            room = gateway is None or gateway.wait_for_room(SAFETY_TIMEOUT)
            if room:
                with self._lock, self.batched_sends():  # what the frames' handlers send goes at once
                    arrived = hub.receive()
                if arrived:
                    continue
            children = () if self._starting else list(self._children.values())  # see _wait_started
            sentinels = {child.process.sentinel: child for child in children}
            doorbell.prepare_sleep()
            ready: list[int] = []
            if not room or hub.idle():
                ready, _, _ = select.select(
                    [doorbell.fileno(), self._wake_read, *sentinels],
                    [],
                    [],
                    hub.sleep_timeout() if room else 0,
                )
            doorbell.cancel_sleep()
            doorbell.drain()
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)
            for fd in ready:
                if fd in sentinels and not self._closed:
                    self._on_child_exit(sentinels[fd])

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
        self._requests.worker_lost(lost)
        self._mail_deaths_from(lost)
        self._tell_nodes_worker_lost(lost)
        self._workers_changed.notify_all()

    def _announce(self, worker_id: int) -> None:
        child = self._children.get(worker_id)
        if child is not None and child.ready.wait(START_TIMEOUT_S):
            with self._lock:
                self._broadcast(frames.WorkerStarted(worker_id, 0), skip=worker_id)
                self._greet(worker_id)
                self._flush()
            self._wake()

    def set_http(self, payload: bytes) -> None:
        """Give every worker, and every worker started from now on (a replacement after a
        crash), the HTTP front end's table (:mod:`lunatic_mp.serve.http`: ``encode_table``). A front
        end, once started, serves until the runtime closes: a table with no routes answers 404."""
        if not payload:
            raise ValueError("an HTTP table is needed (http.encode_table); a front end cannot be removed")
        self._check_open()
        with self._lock:
            self._check_open()
            self._http = payload
            for worker_id in self._children:
                if worker_id != REGISTRY:
                    self._hub.send(worker_id, frames.HttpRoutes(payload))
            self._flush()

    def _mail_deaths_from(self, lost: int) -> None:
        """The host program's monitors and joins of processes on a lost worker fire."""
        place = place_of(make_pid(self.node_id, lost, 0))
        for pid in [p for p in (*self._monitoring, *self._spawned) if p >> 32 == place]:
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
            frames.JobsDone: lambda f: self._requests.complete(f.request, f, last=not f.remaining),
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
        results = msgpack.unpackb(frame.results)
        finished = from_wire(frame.outcome, results, frame.message, frame.backtrace, frame.exit_code)
        self._ended(frame.pid, finished)

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
        for waiter in waiters or ():
            waiter(finished)

    def _deliver(self, message: Message) -> None:
        with self._mail:
            self._mailbox.append(message)
            self._mail.notify_all()

    def _complete(self, frame: Any) -> None:
        self._requests.complete(frame.request, frame)

    def _check_open(self, *, started: bool = True) -> None:
        """Raise if closed; with ``started``, wait for a runtime made with ``wait=False`` to start
        (or raise, in a caller holding the runtime's lock, which the start needs)."""
        if self._closed:
            raise EngineClosed("the runtime is closed")
        if started and not self._started.is_set() and threading.current_thread() is not self._start_thread:
            if self._lock._is_owned():  # type: ignore[attr-defined]
                raise RuntimeError_("the runtime is still starting: call wait_started() first")
            self.wait_started(START_TIMEOUT_S)

    # --- the children ---------------------------------------------------------------------------

    @property
    def worker_ids(self) -> list[int]:
        self._await_start()
        with self._lock:
            return sorted(w for w in self._children if w >= FIRST_WORKER)

    def worker_pids(self) -> dict[int, int]:
        """OS process id of each worker, by worker id."""
        self._await_start()
        with self._lock:
            return {w: c.process.pid for w, c in self._children.items() if w >= FIRST_WORKER}

    def registry_os_pid(self) -> int | None:
        """OS process id of the registry process (None while it is being replaced)."""
        self._await_start()
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

    def _await_start(self) -> None:
        if not self._closed:
            self._check_open()

    def _hosted(self, pid: int) -> bool:
        """Whether ``pid`` names a live worker (else no process can answer for it)."""
        with self._lock:
            where = self._hub.route(pid)
            return (
                self._hub.is_live(where)
                if is_foreign(where)
                else where >= FIRST_WORKER and where in self._children
            )

    # --- stopping -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process of the runtime and remove its shared memory and files."""
        if self._start_thread is not None and self._start_thread is not threading.current_thread():
            self._started.wait(START_TIMEOUT_S)  # a start in progress finishes (or fails) first
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lifecycle.closed(self)
            self._broadcast(frames.Shutdown())
            self._flush()
        self._wake()
        if self._pump_thread is not None:
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
        if self._template is not None:
            self._template.close(STOP_TIMEOUT_S)
        self._launcher.close()  # only now: its thread's end would kill the children it started
        self._requests.close()
        for waiters in self._finish_waiters.values():
            for waiter in waiters:
                waiter(EngineClosed("the runtime was closed before the process ended"))
        self._finish_waiters.clear()
        if self.gateway is not None:
            self.gateway.close()
        self._hub.close()
        for ring in self._rings.values():
            ring.close()
            ring.unlink()
        self._rings.clear()
        self._logs.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Supervisor"]
