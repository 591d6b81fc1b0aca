"""One worker's engine: many Wasm processes on one thread, with lunatic's semantics.

The engine owns the process table and decides what happens to processes: spawning, messages,
links, monitors, kills and deaths. The :mod:`~lunatic_mp.vm.scheduler` decides when each one
runs; the modules of :mod:`lunatic_mp.vm.host` are the guests' view of all this.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgpack
import wasmtime

from lunatic_mp.cluster import frames
from lunatic_mp.config import FUEL_UNIT, EnvConfig
from lunatic_mp.errors import (
    CapacityError,
    EngineClosed,
    LunaticError,
    ModuleError,
    PermissionDenied,
    SignatureError,
    SpawnError,
)
from lunatic_mp.pids import FIRST_WORKER, REGISTRY, SUPERVISOR, make_pid, worker_of
from lunatic_mp.vm import host, wasm
from lunatic_mp.vm.mailbox import DeathReason, Kind, Message
from lunatic_mp.vm.metrics import Metrics
from lunatic_mp.vm.module import Module
from lunatic_mp.vm.native import NativeProcess, pickle_native
from lunatic_mp.vm.plugins import Plugin
from lunatic_mp.vm.plugins import install as install_plugins
from lunatic_mp.vm.preemption import DEFAULT_TIME_SLICE_NS, Preemption
from lunatic_mp.vm.process import BaseProcess, Finished, Frame, Outcome, Phase, Process
from lunatic_mp.vm.reactor import Reactor
from lunatic_mp.vm.registry import Registry
from lunatic_mp.vm.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

_Attached = TypeVar("_Attached", bound=BaseProcess)


class Router(Protocol):
    """How an engine inside a worker process reaches the rest of the runtime.

    An engine on its own (tests, embedding) has no router: every pid is local.
    """

    def send(self, worker: int, frame: frames.Frame) -> None:
        """Send a frame to a worker (or the supervisor, or the registry) by its id."""

    def place(self) -> int:
        """The worker id where a process spawned by a guest goes (possibly this one)."""

    def is_live(self, worker: int) -> bool:
        """Whether frames sent to ``worker`` can arrive (a worker that is lost or never was: no)."""

    def publish_module(self, module: Module) -> bytes:
        """Make ``module`` loadable by other workers; its content digest."""

    def send_streams(self, worker: int, fds: list[int]) -> tuple[int, ...]:
        """Hand TCP streams' descriptors (closed by the call) to ``worker``; their tokens."""


UNLIMITED_FUEL = 2**63 - 1
MAPS_PER_PROCESS = 4
"""Memory mappings a process slot costs with the pooling allocator, measured: 2 reserved when the
engine starts (its fiber stack and guard page) and 2 more while the process is live."""

DEFAULT_MAX_MEMORY = 256 * 1024 * 1024
"""Address space reserved for each process's linear memory: the most a guest can grow to."""

MAX_MESSAGE_SIZE = 64 * 1024 * 1024
MAX_CAUSE = 400
"""Longest death reason quoted in a linked process's: a chain of deaths stays readable."""


def default_capacity() -> int:
    """How many live processes fit under the kernel's per-process memory-mapping limit.

    Past ``vm.max_map_count`` wasmtime fails to allocate, or crashes (DESIGN.md); a tenth of the
    limit stays free for the interpreter, libraries, sockets and other engines.
    """
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            used = sum(1 for _ in maps)
    except (OSError, ValueError):
        return 10_000
    return max(0, (limit * 9 // 10 - used) // MAPS_PER_PROCESS)


class Engine:
    """Runs Wasm processes as fibers on the calling thread.

    >>> engine = Engine()
    >>> module = engine.load_module("hello.wat")
    >>> process = engine.spawn(module, "_start", config=EnvConfig.permissive())
    >>> engine.run()
    """

    def __init__(
        self,
        *,
        node_id: int = 0,
        worker_id: int = 0,
        max_processes: int | None = None,
        time_slice_ns: int = DEFAULT_TIME_SLICE_NS,
        async_stack_size: int = 2 * 1024 * 1024,
        max_wasm_stack: int = 1024 * 1024,
        max_memory: int = DEFAULT_MAX_MEMORY,
        max_message_size: int = MAX_MESSAGE_SIZE,
        plugins: Iterable[Plugin] = (),
    ) -> None:
        self.node_id = node_id
        self.pid_base = make_pid(node_id, worker_id, 0)
        self.capacity = default_capacity() if max_processes is None else max_processes
        self.max_message_size = max_message_size
        self.max_memory = max_memory
        make_engine = functools.partial(
            wasm.new_engine,
            async_stack_size=async_stack_size,
            max_wasm_stack=max_wasm_stack,
            max_instances=self.capacity,
            max_memory=max_memory,
        )
        self.wasm_engine = make_engine()
        self.linker = wasm.Linker(self.wasm_engine, self._on_suspend, self._poll_resume, self._on_host_error)
        self.preemption = Preemption(self, self.wasm_engine, self.linker, make_engine, time_slice_ns)
        self.linker.define_wasi()
        self.scheduler = Scheduler(self)
        self.reactor = Reactor()
        """Descriptors that suspended processes wait on (:mod:`lunatic_mp.vm.reactor`)."""
        self.registry = Registry()
        self.metrics = Metrics()
        self.processes: dict[int, BaseProcess] = {}
        self.current: BaseProcess | None = None
        self.host_errors: list[BaseException] = []
        self._next_local = 1
        self._next_timer = 1
        self._timers: dict[int, Timer] = {}
        self._modules: weakref.WeakSet[Module] = weakref.WeakSet()
        self._closed = False
        self.worker_id = worker_id
        self.router: Router | None = None
        self._requests: dict[int, tuple[int, Callable[..., None]]] = {}  # id -> (worker, on_reply)
        self._held: dict[int, tuple[BaseProcess, Finished]] = {}  # dead, names not yet gone
        self._environments: dict[int, int] = {}  # live processes of limited environments (no router)
        self._next_request = 1
        host.register_all(self)
        self.plugins = install_plugins(self, plugins)
        """The namespaces that plugins add (:mod:`lunatic_mp.vm.plugins`)."""

    # --- modules and spawning -------------------------------------------------------------------

    def load_module(self, source: str | bytes | Path, name: str | None = None) -> Module:
        """Compile a module (a path, Wasm bytes or WAT text) and link it against the host."""
        if self._closed:
            raise EngineClosed("the engine is closed")
        module = Module.load(self.wasm_engine, source, name)
        self.link_module(module)
        return module

    def link_module(self, module: Module) -> None:
        if module.engine is not self.wasm_engine:
            raise ModuleError(f"{module.name} was compiled by another engine; load it into this one")
        try:
            module.instance_pre = self.linker.instantiate_pre(module.compiled)
            self._modules.add(module)
        except wasmtime.WasmtimeError as exc:
            reason = str(exc).strip().splitlines()[0]
            raise ModuleError(f"{module.name} cannot be linked: {reason}") from None

    def spawn(
        self,
        module: Module,
        function: str = "_start",
        params: Sequence[Any] = (),
        config: EnvConfig | None = None,
        *,
        link: tuple[BaseProcess | int, int] | None = None,
    ) -> Process:
        """Start ``module.function(*params)`` as a new process; it runs when the engine runs.

        ``params`` are plain numbers, typed by the export's signature, or (kind, value) pairs as
        decoded from the ABI's 17-byte records. ``link`` = (process or pid, tag) links the new
        process to that one before any of its code runs; for a pid on another worker only this
        side is linked here (that worker links its side when it learns the new pid).
        """
        if self._closed:
            raise EngineClosed("the engine is closed")
        if len(self.processes) >= self.capacity:
            raise CapacityError(
                f"engine is at capacity ({self.capacity} live processes); "
                "wait for processes to exit, or raise max_processes and vm.max_map_count"
            )
        config = config if config is not None else EnvConfig()
        if not 0 <= config.max_memory < 2**64 or not 0 <= config.max_fuel < 2**64:
            raise ValueError("max_memory and max_fuel must be between 0 and 2**64 - 1")
        signature = module.exports.get(function)
        if signature is None:
            raise SpawnError(f"{module.name} has no exported function `{function}`")
        args = typed_args(module.name, function, signature[0], params)
        denied = module.namespaces - config.allowed_namespaces
        if denied:
            names = ", ".join(sorted(denied))
            raise PermissionDenied(f"{module.name} imports host namespaces this environment denies: {names}")
        if module.instance_pre is None or module.engine is not self.wasm_engine:
            self.link_module(module)

        pid = self.pid_base | self._next_local
        self._next_local += 1
        process = Process(pid, module, config, function, args)
        process.environment_id = config.environment_id
        try:
            wasm_engine, pre, fuel = self.wasm_engine, module.instance_pre, None
            if config.max_fuel > 0:  # only a budget pays for metering (lunatic_mp.vm.preemption)
                wasm_engine, pre = self.preemption.metered(module)
                fuel = min(config.max_fuel * FUEL_UNIT, UNLIMITED_FUEL)
            store = wasm.Store(wasm_engine, fuel=fuel, max_memory=config.max_memory, owner=process)
            if module.uses_wasi:
                store.set_wasi(_wasi_config(config, module.name))
                process.wasi_epoch = time.monotonic()
        except (wasmtime.WasmtimeError, OSError) as exc:
            raise SpawnError(f"cannot create a store for {module.name}: {exc}") from None
        process.store = store
        process.context = store.context
        process.instance = wasm.new_instance()
        process.call = wasm.instantiate_async(pre, process.context, process.instance)  # type: ignore[arg-type]
        self.processes[pid] = process
        self._count_in(process)
        if link is not None:
            self._link_child(process, *link)
        self.scheduler.make_ready(process)
        return process

    def _count_in(self, process: BaseProcess) -> None:
        """A lone engine counts the processes of each limited environment (in a runtime the
        registry process does)."""
        if process.config.max_processes and self.router is None:
            environment = process.config.environment_id
            self._environments[environment] = self._environments.get(environment, 0) + 1

    def spawn_placed(
        self,
        parent: BaseProcess,
        link_tag: int,
        what: tuple[Module, str, list[tuple[int, Any]], EnvConfig],
        on_done: Callable[[int | str], None],
    ) -> None:
        """Spawn for ``parent`` where the runtime places it: ``on_done(pid or error message)``, at
        once (this worker) or when the other worker answers. ``link_tag`` 0: not linked."""
        spread = self.router is not None and not parent.config.spawn_local
        worker = self.router.place() if spread else self.worker_id  # type: ignore[union-attr]
        if any(kind == wasm.V128 for kind, _ in what[2]):
            worker = self.worker_id  # v128 parameters do not travel in frames

        def place(done: Callable[[int | str], None]) -> None:
            if worker != self.worker_id:
                self.spawn_remote(parent, worker, what, link_tag, done)
                return
            module, function, params, config = what
            try:
                child = self.spawn(
                    module, function, params, config, link=(parent, link_tag) if link_tag else None
                )
            except LunaticError as exc:
                done(str(exc))
                return
            done(child.pid)

        self._within_limit(parent, what[3], worker, place, on_done)

    def _within_limit(
        self,
        parent: BaseProcess,
        config: EnvConfig,
        worker: int,
        place: Callable[[Callable[[int | str], None]], None],
        on_done: Callable[[int | str], None],
    ) -> None:
        """``place(on_done)`` a child of ``parent`` on ``worker`` if its environment has room
        (``config.max_processes``), else ``on_done(why not)``. In a runtime the registry
        process counts every worker's processes of the environment: one round trip."""
        limit = config.max_processes
        if not limit:
            place(on_done)
            return
        environment = config.environment_id
        if self.router is None:  # one engine: the count is right here (Engine.spawn keeps it)
            if self._environments.get(environment, 0) >= limit:
                on_done(_limit_error(environment, limit))
            else:
                place(on_done)
            return
        router = self.router

        def release() -> None:
            router.send(REGISTRY, frames.EnvRelease(environment, worker))

        def placed(child: int | str) -> None:
            if isinstance(child, str):
                release()  # counted, never started
            if parent.finished is None:
                on_done(child)

        def acquired(reply: Any) -> None:
            if reply is None or not reply.found:
                if parent.finished is None:
                    on_done(reply.error if reply is not None else "the registry process was lost")
            elif parent.finished is not None:
                release()
            else:
                place(placed)

        if not router.is_live(REGISTRY):  # being replaced: nobody can count
            on_done("the registry process is being replaced: cannot count the environment's processes")
            return
        request = self.new_request(REGISTRY, acquired)
        router.send(REGISTRY, frames.EnvAcquire(request, parent.pid, environment, limit, worker))

    def spawn_native(
        self,
        function: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        config: EnvConfig | None = None,
        *,
        link: tuple[BaseProcess | int, int] | None = None,
    ) -> NativeProcess:
        """Start ``function(context, *args, **kwargs)`` as a native process (:mod:`lunatic_mp.vm.native`)."""
        if self._closed:
            raise EngineClosed("the engine is closed")
        if not callable(function):
            raise SpawnError(f"a native process runs a function, got {function!r}")
        if len(self.processes) >= self.capacity:
            raise CapacityError(f"engine is at capacity ({self.capacity} live processes)")
        pid = self.pid_base | self._next_local
        self._next_local += 1
        process = NativeProcess(self, pid, function, args, kwargs or {}, config or EnvConfig())
        process.environment_id = process.config.environment_id
        self.processes[pid] = process
        self._count_in(process)
        if link is not None:
            self._link_child(process, *link)
        self.scheduler.make_ready(process)
        return process

    def attach(self, make: Callable[[int], _Attached]) -> _Attached:
        """Add ``make(pid)``, a process that Python code drives instead of the scheduler (the
        HTTP front end's port, :mod:`lunatic_mp.serve.http`): it receives messages and death notices
        like any process (through its mailbox's ``put``), and never runs."""
        if self._closed:
            raise EngineClosed("the engine is closed")
        pid = self.pid_base | self._next_local
        self._next_local += 1
        process = make(pid)
        self.processes[pid] = process
        return process

    def _link_child(self, child: BaseProcess, parent: BaseProcess | int, tag: int) -> None:
        parent_pid = parent if isinstance(parent, int) else parent.pid
        child.links[parent_pid] = tag
        if parent_pid in self.processes:
            self.processes[parent_pid].links[child.pid] = tag

    def spawn_native_placed(
        self,
        parent: BaseProcess,
        link_tag: int,
        function: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        on_done: Callable[[int | str], None],
    ) -> None:
        """:meth:`spawn_placed` for a native process: pickled (cloudpickle) to another worker."""
        spread = self.router is not None and not parent.config.spawn_local
        worker = self.router.place() if spread else self.worker_id  # type: ignore[union-attr]

        def place(done: Callable[[int | str], None]) -> None:
            if worker == self.worker_id:
                try:
                    link = (parent, link_tag) if link_tag else None
                    child = self.spawn_native(function, args, kwargs, parent.config.copy(), link=link)
                except LunaticError as exc:
                    done(str(exc))
                    return
                done(child.pid)
                return
            try:
                payload = pickle_native(function, args, kwargs)
            except Exception as exc:  # noqa: BLE001 - cloudpickle raises many kinds
                done(f"cannot pickle {function!r} for another worker: {exc}")
                return
            assert self.router is not None
            request = self._spawn_request(parent, worker, link_tag, done)
            config = frames.encode_config(parent.config)
            link_pid = parent.pid if link_tag else 0
            self.router.send(
                worker, frames.SpawnNative(request, parent.pid, payload, config, link_pid, link_tag)
            )

        self._within_limit(parent, parent.config, worker, place, on_done)

    def _spawn_request(
        self, parent: BaseProcess, worker: int, link_tag: int, on_done: Callable[[int | str], None]
    ) -> int:
        """A request id for a spawn on ``worker``: its reply links ``parent`` to the child (when
        ``link_tag``) and calls ``on_done(pid or error message)``."""

        def reply(frame: Any) -> None:
            if frame is None:
                on_done(f"worker {worker} was lost before it spawned the process")
            elif frame.error:
                on_done(frame.error)
            else:
                if link_tag and parent.finished is None:
                    parent.links[frame.pid] = link_tag
                on_done(frame.pid)

        return self.new_request(worker, reply)

    def reap(self, glet: Any) -> None:
        """Unwind a killed native process's suspended stack at the next scheduler round."""
        self.scheduler.reap(glet)

    def on_call_done(self, process: Process) -> bool:
        """The process's instantiation or export call returned (the scheduler calls this).

        True when the process goes on with a new call (its export, once instantiated).
        """
        call = process.call
        assert call is not None
        failure = wasm.take_failure(call)
        wasm.finish(call)
        process.call = None
        if process.phase is Phase.INSTANTIATING and failure is None and process.kill_requested is None:
            self._start_export(process)
            return True
        if process.kill_requested is not None:
            finished = Finished(Outcome.KILLED, message=process.kill_requested)
        elif failure is None:
            count = len(process.module.exports[process.function][1])
            finished = Finished(
                Outcome.NORMAL, result=tuple(wasm.result_value(call, i) for i in range(count))
            )
        elif failure.exit_code == 0:
            finished = Finished(Outcome.NORMAL, exit_code=0)
        elif failure.out_of_fuel:
            finished = Finished(Outcome.FAILED, message="out of fuel", backtrace=failure.backtrace)
        else:
            finished = Finished(
                Outcome.FAILED,
                message=failure.message,
                backtrace=failure.backtrace,
                exit_code=failure.exit_code,
            )
        self.exit(process, finished)
        return False

    def _start_export(self, process: Process) -> None:
        process.phase = Phase.RUNNING
        func = wasm.export_func(process.context, process.instance, process.function.encode())
        assert func is not None, "checked when the module was loaded"
        # process.memory is looked up by the first host call that needs it (memory_of)
        nresults = len(process.module.exports[process.function][1])
        process.call = wasm.call_async(process.context, func, process.args, nresults)

    # --- running --------------------------------------------------------------------------------

    def run(self, timeout: float | None = None) -> None:
        """Run until every process has finished or waits on something that cannot come."""
        self.scheduler.run(timeout=timeout)

    def run_until_finished(self, process: BaseProcess, timeout: float | None = None) -> Finished | None:
        """Run until ``process`` ends; its Finished, or None on timeout or deadlock."""
        self.scheduler.run(until=lambda: process.finished is not None, timeout=timeout)
        return process.finished

    def close(self) -> None:
        """Kill every process, refuse new ones, and give back the engine's memory at once.

        The pooling allocator holds about two memory mappings per process slot until the
        wasmtime engine is freed; the engine sits in reference cycles (host functions refer to
        it), so they are broken here rather than left to the cyclic garbage collector.
        """
        if self._closed:
            return
        self._closed = True
        for process in list(self.processes.values()):
            self.kill(process.pid, "engine closed")
        for module in self._modules:
            module.instance_pre = None
        self._modules.clear()
        self._timers.clear()
        self.scheduler.close()
        self.reactor.close()
        self.preemption.close()
        self.linker.close()
        self.linker = None  # type: ignore[assignment]
        self.wasm_engine = None  # type: ignore[assignment]

    # --- messages -------------------------------------------------------------------------------

    def is_local(self, pid: int) -> bool:
        return self.router is None or worker_of(pid) == self.worker_id

    def _is_gone(self, pid: int) -> bool:
        """A pid on no live worker: no process can answer for it (lost worker, made-up pid)."""
        return self.router is not None and not self.router.is_live(worker_of(pid)) and not self.is_local(pid)

    def deliver(self, pid: int, message: Message) -> bool:
        """Put a message in a mailbox, or hand it straight to a receiver waiting for it.

        A pid on another worker gets the message as a frame (True: it may still be dropped
        there, as a message to a dead process is).
        """
        process = self.processes.get(pid)
        if process is None:
            if self.router is None or worker_of(pid) == self.worker_id:
                return False
            self.router.send(worker_of(pid), _message_frame(pid, message, self.router))
            return True
        if process.receive_start >= 0 and (
            process.receive_tags is None or message.tag in process.receive_tags
        ):
            process.receive_start = -1
            process.scratch = message
            self.resume(process, int(message.kind))
        else:
            process.mailbox.put(message)
            bound = process.config.max_mailbox
            if bound and message.kind is Kind.DATA and len(process.mailbox) >= bound:
                self._mailbox_full(process, message.pid)
        return True

    def _mailbox_full(self, process: BaseProcess, sender_pid: int) -> None:
        """``process``'s mailbox holds ``max_mailbox`` messages: pause the sender (here, or on
        its worker) until the receiver has taken half of them. The host program is not paused."""
        if sender_pid in process.blocked_senders or sender_pid == process.pid:
            return
        if self.is_local(sender_pid):
            if sender_pid not in self.processes:
                return
            self.mailbox_full(sender_pid, process.pid, True)
        elif self.router is not None and worker_of(sender_pid) >= FIRST_WORKER:
            self.router.send(worker_of(sender_pid), frames.MailboxFull(sender_pid, process.pid, True))
        else:
            return  # the host program's sends are not held back
        process.blocked_senders.add(sender_pid)
        if process.mailbox.on_take is None:
            process.mailbox.on_take = functools.partial(self._mailbox_taken, process)

    def _mailbox_taken(self, process: BaseProcess) -> None:
        if len(process.mailbox) <= process.config.max_mailbox // 2:
            self._make_room(process)

    def _make_room(self, process: BaseProcess) -> None:
        """Let the senders waiting for room in ``process``'s mailbox go on."""
        process.mailbox.on_take = None
        senders, process.blocked_senders = process.blocked_senders, set()
        for sender_pid in senders:
            if self.is_local(sender_pid):
                self.mailbox_full(sender_pid, process.pid, False)
            elif self.router is not None:
                self.router.send(worker_of(sender_pid), frames.MailboxFull(sender_pid, process.pid, False))

    def mailbox_full(self, pid: int, target: int, full: bool) -> None:
        """A mailbox (here or on another worker) that local ``pid`` sends to is full: pause it;
        or has room again: let it go on unless another full one still holds it."""
        process = self.processes.get(pid)
        if process is None:
            return
        if full:
            process.blocked_on.add(target)
            self.park(process)
        else:
            process.blocked_on.discard(target)
            self.unpark(pid)

    def send(self, pid: int, data: bytes = b"", tag: int = 0) -> bool:
        """Send a message from the host; False if no such process."""
        if not -(2**63) <= tag < 2**64:
            raise ValueError(f"tag {tag} does not fit in 64 bits")
        tag = tag - 2**64 if tag >= 2**63 else tag
        if len(data) > self.max_message_size:
            raise ValueError(f"message of {len(data)} bytes exceeds the {self.max_message_size}-byte limit")
        return self.deliver(pid, Message(tag, bytes(data)))

    def send_after(self, pid: int, message: Message, delay_ms: int | None) -> int:
        """Deliver ``message`` after ``delay_ms``; None: never (the timer can still be cancelled)."""
        timer_id = self._next_timer
        self._next_timer += 1

        def fire() -> None:
            del self._timers[timer_id]
            self.deliver(pid, message)

        delay_s = None if delay_ms is None else delay_ms / 1000
        self._timers[timer_id] = self.scheduler.call_later(delay_s, fire)
        return timer_id

    def cancel_timer(self, timer_id: int) -> bool:
        timer = self._timers.pop(timer_id, None)
        if timer is None:
            return False
        timer.cancel()
        return True

    # --- suspending and resuming ----------------------------------------------------------------

    def wait(self, process: BaseProcess, timeout_ms: int, on_timeout: int) -> None:
        """Arm a timeout for a process about to suspend; it resumes with ``on_timeout``.

        A negative timeout (u64 values past i64, ``u64::MAX`` included) waits forever.
        """
        if timeout_ms >= 0:

            def expire() -> None:
                process.timer = None
                process.receive_start = -1
                self.resume(process, on_timeout)

            process.timer = self.scheduler.call_later(timeout_ms / 1000, expire)

    def resume(self, process: BaseProcess, value: int, on_resume: Callable[[], None] | None = None) -> None:
        """Let a suspended process go on; its pending host call returns ``value``.

        ``on_resume`` runs inside the process's fiber just before it goes on: the place to
        write out-parameters into its memory.
        """
        if process.timer is not None:
            process.timer.cancel()
            process.timer = None
        if process.native:
            process.resume_with(value, on_resume)  # type: ignore[attr-defined]
        else:
            frame = process.frames[-1]  # type: ignore[attr-defined]
            frame.value = value
            frame.on_resume = on_resume
        process.waiting = False
        if not process.parked:
            self.scheduler.make_ready(process)

    def park(self, process: BaseProcess) -> None:
        """Pause a running process at its next instruction until :meth:`unpark` (backpressure)."""
        if not process.parked:
            process.parked = True
            if not process.native:  # a native process pauses itself when its send returns
                process.store.yield_soon()  # type: ignore[attr-defined]

    def unpark(self, pid: int) -> None:
        """Let a paused process go on, unless a full mailbox still holds it back."""
        process = self.processes.get(pid)
        if process is not None and process.parked and not process.blocked_on:
            process.parked = False
            if not process.waiting:
                self.scheduler.make_ready(process)

    def _on_suspend(self, results: Any, kind: int, nested: wasm.Call | None, trap_out: Any) -> int:
        process: Process = self.current  # type: ignore[assignment]  # host calls run in a Wasm process
        assert process is not None, "host calls run inside a process"
        process.frames.append(Frame(results, kind, nested, trap_out))
        process.waiting = nested is None
        return len(process.frames)

    def _poll_resume(self, key: int) -> bool:
        process: Process = self.current  # type: ignore[assignment]  # only Wasm processes suspend here
        assert process is not None, "suspended calls resume inside their process"
        frame = process.frames[key - 1]
        if frame.nested is not None:
            if not wasm.poll(frame.nested):
                return False
            failure = wasm.take_failure(frame.nested)
            value = 0 if failure is not None else wasm.result_value(frame.nested)
            value = value if isinstance(value, int) else 0
            wasm.finish(frame.nested)
            if process.kill_requested is not None:
                wasm.set_trap(frame.trap_out, process.kill_requested)
            frame.value = int(value or 0)
        if frame.value is None:
            return False
        if frame.on_resume is not None:
            try:
                frame.on_resume()
            except wasm.GuestTrap as trap:
                wasm.set_trap(frame.trap_out, str(trap))
        wasm.write_result(frame.results, frame.kind, frame.value)
        del process.frames[key - 1 :]
        return True

    def _on_host_error(self, error: BaseException) -> None:
        log.error("host function failed: %r", error, exc_info=error)
        self.host_errors.append(error)

    # --- links, monitors and deaths -------------------------------------------------------------

    def link(self, process: BaseProcess, other_pid: int, tag: int) -> None:
        if self._is_gone(other_pid):
            self.deliver(process.pid, Message.link_died(other_pid, tag, DeathReason.NO_PROCESS))
            return
        if not self.is_local(other_pid):
            process.links[other_pid] = tag
            self._remote(other_pid, frames.Link(other_pid, process.pid, tag))
            return
        other = self.processes.get(other_pid)
        if other is None:
            self.deliver(process.pid, Message.link_died(other_pid, tag, DeathReason.NO_PROCESS))
            return
        process.links[other_pid] = tag
        other.links[process.pid] = tag

    def unlink(self, process: BaseProcess, other_pid: int) -> None:
        process.links.pop(other_pid, None)
        if not self.is_local(other_pid):
            self._remote(other_pid, frames.Unlink(other_pid, process.pid))
            return
        other = self.processes.get(other_pid)
        if other is not None:
            other.links.pop(process.pid, None)

    def monitor(self, process: BaseProcess, other_pid: int) -> None:
        if self._is_gone(other_pid):
            self.deliver(process.pid, Message.process_died(other_pid))
            return
        if not self.is_local(other_pid):
            process.monitoring.add(other_pid)
            self._remote(other_pid, frames.Monitor(other_pid, process.pid))
            return
        other = self.processes.get(other_pid)
        if other is None:
            self.deliver(process.pid, Message.process_died(other_pid))
            return
        process.monitoring.add(other_pid)
        other.monitored_by.add(process.pid)

    def stop_monitoring(self, process: BaseProcess, other_pid: int) -> None:
        process.monitoring.discard(other_pid)
        if not self.is_local(other_pid):
            self._remote(other_pid, frames.StopMonitoring(other_pid, process.pid))
            return
        other = self.processes.get(other_pid)
        if other is not None:
            other.monitored_by.discard(process.pid)

    def kill(self, pid: int, reason: str = "killed") -> bool:
        """Kill a process. One killing itself dies when its current host call returns."""
        process = self.processes.get(pid)
        if process is None:
            if self.is_local(pid) or self._is_gone(pid):
                return False
            self._remote(pid, frames.Kill(pid, reason))
            return True
        if process is self.current:
            process.kill_requested = reason
        else:
            self.exit(process, Finished(Outcome.KILLED, message=reason))
        return True

    # --- signals from other workers -------------------------------------------------------------

    def accept_link(self, pid: int, other_pid: int, tag: int) -> None:
        """``other_pid`` (on another worker) linked itself to local ``pid``."""
        process = self.processes.get(pid)
        if process is None:
            reason = DeathReason.NO_PROCESS
            self._remote(other_pid, frames.LinkDied(other_pid, pid, tag, reason, "no such process"))
            return
        process.links[other_pid] = tag

    def accept_unlink(self, pid: int, other_pid: int) -> None:
        process = self.processes.get(pid)
        if process is not None:
            process.links.pop(other_pid, None)

    def accept_monitor(self, pid: int, watcher_pid: int) -> None:
        process = self.processes.get(pid)
        if process is None:
            self._remote(watcher_pid, frames.ProcessDied(watcher_pid, pid))
            return
        process.monitored_by.add(watcher_pid)

    def accept_stop_monitoring(self, pid: int, watcher_pid: int) -> None:
        process = self.processes.get(pid)
        if process is not None:
            process.monitored_by.discard(watcher_pid)

    def link_died(self, pid: int, dead_pid: int, reason: DeathReason, cause: str) -> None:
        """A process linked to local ``pid`` died elsewhere (or its worker was lost)."""
        process = self.processes.get(pid)
        if process is None or dead_pid not in process.links:
            return  # unlinked meanwhile, or dead too
        doomed = self._on_link_death(process, dead_pid, reason, cause)
        if doomed is not None:
            self.kill(pid, doomed)

    def process_died(self, pid: int, dead_pid: int) -> None:
        """A process that local ``pid`` monitors died elsewhere."""
        process = self.processes.get(pid)
        if process is not None:
            process.monitoring.discard(dead_pid)
            self.deliver(pid, Message.process_died(dead_pid))

    def worker_lost(self, worker: int) -> None:
        """Every link and monitor into a lost worker fires; requests to it fail."""
        for process in list(self.processes.values()):
            for other_pid in [p for p in process.links if worker_of(p) == worker]:
                self.link_died(process.pid, other_pid, DeathReason.FAILURE, f"worker {worker} lost")
            for other_pid in [p for p in process.monitoring if worker_of(p) == worker]:
                self.process_died(process.pid, other_pid)
            process.monitored_by = {p for p in process.monitored_by if worker_of(p) != worker}
            process.blocked_senders = {p for p in process.blocked_senders if worker_of(p) != worker}
            if any(worker_of(p) == worker for p in process.blocked_on):
                process.blocked_on = {p for p in process.blocked_on if worker_of(p) != worker}
                self.unpark(process.pid)
        for request, (target, on_reply) in list(self._requests.items()):
            if target == worker:
                del self._requests[request]
                on_reply(None)
        if worker == REGISTRY:  # no names to wait for any more
            for pid in list(self._held):
                self.names_released(pid)

    # --- requests to other processes of the runtime ---------------------------------------------

    def new_request(self, worker: int, on_reply: Callable[..., None]) -> int:
        """A request id whose reply calls ``on_reply(frame)``; ``on_reply(None)`` if ``worker`` is lost."""
        request = self._next_request
        self._next_request += 1
        self._requests[request] = (worker, on_reply)
        return request

    def _remote(self, pid: int, frame: frames.Frame) -> None:
        """Send a frame to the worker hosting ``pid``."""
        assert self.router is not None
        self.router.send(worker_of(pid), frame)

    def ask(
        self,
        process: BaseProcess,
        worker: int,
        make_frame: Callable[[int], frames.Frame],
        on_reply: Callable[[Any], tuple[int, Callable[[], None] | None]],
    ) -> object:
        """Send a request for ``process`` and suspend it until the reply comes.

        ``on_reply(reply)`` (``reply`` None when the worker asked is lost) gives the value the
        suspended host call returns and what to do in the process just before it goes on.
        """
        assert self.router is not None

        def done(reply: Any) -> None:
            if process.finished is None:
                value, after = on_reply(reply)
                self.resume(process, value, after)

        if not self.router.is_live(worker):  # nobody to answer: as if it were lost (once suspended)
            self.scheduler.call_later(0, lambda: done(None))
        else:
            self.router.send(worker, make_frame(self.new_request(worker, done)))
        return wasm.PENDING

    def spawn_remote(
        self,
        parent: BaseProcess,
        worker: int,
        what: tuple[Module, str, list[tuple[int, Any]], EnvConfig],
        link_tag: int,
        on_done: Callable[[int | str], None],
    ) -> None:
        """Ask another worker to spawn; ``on_done(pid or error message)`` when it answers.

        A linked child is linked on its side before it runs; this side links when the reply
        comes (frames between two workers arrive in order, so a LinkDied cannot overtake it).
        """
        assert self.router is not None
        f = frames
        module, function, params, config = what
        digest = self.router.publish_module(module)

        request = self._spawn_request(parent, worker, link_tag, on_done)
        kinds = bytes(PARAM_TYPE_BYTES[kind] for kind, _ in params)
        spawn = f.Spawn(
            request, parent.pid, digest, function, tuple(int(v) for _, v in params), kinds,
            f.encode_config(config), parent.pid if link_tag else 0, link_tag,
        )  # fmt: skip
        self.router.send(worker, spawn)

    def get_or_spawn_remote(
        self,
        process: BaseProcess,
        name: str,
        spawn: Callable[[Callable[[int | str], None]], None],
        on_found: Callable[[int, int], None],
        on_spawned: Callable[[int, int], None],
        on_error: Callable[[str], None],
    ) -> None:
        """``get_or_spawn`` against the registry process, atomically: the lookup reserves the
        name, so nobody else spawns it meanwhile; the reservation ends with a put or a remove."""
        assert self.router is not None
        f = frames
        reply_to = process.pid

        def looked_up(reply: Any) -> None:
            if reply is None:
                on_error("the registry process was lost")
            elif reply.error:
                on_error(reply.error)
            elif reply.found:
                on_found(reply.node, reply.pid)
            else:
                spawn(spawned)

        def spawned(child: int | str) -> None:
            assert self.router is not None
            if isinstance(child, str):
                self.router.send(
                    REGISTRY, f.RegistryRemove(self.new_request(REGISTRY, _ignore), reply_to, name)
                )
                on_error(child)
                return
            request = self.new_request(REGISTRY, lambda _reply: on_spawned(self.node_id, child))
            self.router.send(REGISTRY, f.RegistryPut(request, reply_to, name, self.node_id, child))

        self.router.send(REGISTRY, f.RegistryGet(self.new_request(REGISTRY, looked_up), reply_to, name, True))

    def complete(self, request: int, reply: frames.Frame) -> None:
        entry = self._requests.pop(request, None)
        if entry is not None:
            entry[1](reply)
        else:
            log.warning("reply to unknown request %d dropped", request)

    def exit(self, process: BaseProcess, finished: Finished) -> None:
        """Tear a process down and tell everyone linked to or monitoring it.

        Deaths cascade through links (a failure kills linked processes that die with their
        links); a work list, not recursion, so a long chain cannot overflow the stack.
        """
        pending: deque[tuple[BaseProcess, Finished]] = deque([(process, finished)])
        while pending:
            dead, outcome = pending.popleft()
            if dead.finished is not None:
                continue
            for other, cause in self._release(dead, outcome):
                if other is self.current:
                    other.kill_requested = cause
                else:
                    pending.append((other, Finished(Outcome.KILLED, message=cause)))

    def _release(self, process: BaseProcess, finished: Finished) -> Iterable[tuple[BaseProcess, str]]:
        """Free one process and notify its links and monitors; yields the processes it kills.

        A process with registry names in a runtime is announced dead only once the registry
        process has removed them (:meth:`names_released`): whoever sees its death notice, and
        whatever they tell others, finds its names gone.
        """
        process.finished = finished
        process.phase = Phase.DONE
        if process.timer is not None:
            process.timer.cancel()
            process.timer = None
        process.free()
        del self.processes[process.pid]
        self.registry.remove_process(process.pid)
        for callback in process.on_exit:
            callback(finished)
        if process.blocked_senders:
            self._make_room(process)
        router = self.router
        if process.config.max_processes:
            environment = process.config.environment_id
            if router is not None:
                router.send(REGISTRY, frames.EnvRelease(environment, self.worker_id))
            elif environment in self._environments:
                self._environments[environment] -= 1
        if router is not None and process.registered:
            router.send(REGISTRY, frames.ProcessGone(process.pid))
            if router.is_live(REGISTRY):
                self._held[process.pid] = (process, finished)
                return ()
        return self._notify(process, finished)

    def names_released(self, pid: int) -> None:
        """The registry process removed the names of ``pid``, which died: announce its death."""
        held = self._held.pop(pid, None)
        if held is not None:
            for other, cause in self._notify(*held):
                self.exit(other, Finished(Outcome.KILLED, message=cause))

    def _notify(self, process: BaseProcess, finished: Finished) -> list[tuple[BaseProcess, str]]:
        """Tell those linked to or monitoring a dead process; the processes that die with it."""
        pid = process.pid
        failed = not finished.ok
        reason = DeathReason.FAILURE if failed else DeathReason.NORMAL
        cause = str(finished)
        cause = cause if len(cause) <= MAX_CAUSE else cause[: MAX_CAUSE - 1] + "…"
        router = self.router
        doomed: list[tuple[BaseProcess, str]] = []
        for other_pid, tag in process.links.items():
            other = self.processes.get(other_pid)
            if other is not None:
                if pid not in other.links:
                    continue  # unlinked while the death was held back
                doom = self._on_link_death(other, pid, reason, cause)
                if doom is not None:
                    doomed.append((other, doom))
            elif router is not None and not self.is_local(other_pid):
                self._remote(other_pid, frames.LinkDied(other_pid, pid, tag, int(reason), cause))
        for watcher_pid in process.monitored_by:
            if self.is_local(watcher_pid):
                watcher = self.processes.get(watcher_pid)
                if watcher is not None and pid in watcher.monitoring:  # still watching
                    self.process_died(watcher_pid, pid)
            elif worker_of(watcher_pid) == SUPERVISOR:  # the host program wants the details
                self._remote(watcher_pid, _finished_frame(watcher_pid, pid, finished))
            else:
                self._remote(watcher_pid, frames.ProcessDied(watcher_pid, pid))
        for watched_pid in process.monitoring:
            watched = self.processes.get(watched_pid)
            if watched is not None:
                watched.monitored_by.discard(pid)
            elif router is not None and not self.is_local(watched_pid):
                self._remote(watched_pid, frames.StopMonitoring(watched_pid, pid))
        return doomed

    def _on_link_death(
        self, process: BaseProcess, dead_pid: int, reason: DeathReason, cause: str
    ) -> str | None:
        """``dead_pid``, linked to ``process``, died: the reason ``process`` must die too, or None
        once the death has arrived as a LinkDied message."""
        tag = process.links.pop(dead_pid, 0)
        if reason is DeathReason.FAILURE and process.die_when_link_dies:
            return f"linked process {dead_pid} died ({cause})"
        self.deliver(process.pid, Message.link_died(dead_pid, tag, reason))
        return None


PARAM_TYPE_BYTES = {wasm.I32: 0x7F, wasm.I64: 0x7E, wasm.V128: 0x7B}
"""The ABI's spawn parameter type bytes, by wasm value kind."""


def _ignore(_reply: Any) -> None:
    return None


def _limit_error(environment: int, limit: int) -> str:
    return (
        f"environment {environment} is at its limit of {limit} live processes (max_processes); "
        "wait for some to end"
    )


_OUTCOME_CODES = {Outcome.NORMAL: 0, Outcome.KILLED: 1, Outcome.FAILED: 2}


def _finished_frame(to: int, pid: int, finished: Finished) -> frames.Frame:
    results = msgpack.packb(list(finished.result))  # numbers, v128 bytes, a native return value
    exit_code = -1 if finished.exit_code is None else finished.exit_code
    frame: frames.Frame = frames.ProcessFinished(
        to,
        pid,
        _OUTCOME_CODES[finished.outcome],
        results,
        finished.message,
        exit_code,
        "\n".join(finished.backtrace),
    )
    return frame


def _message_frame(pid: int, message: Message, router: Router) -> frames.Frame:
    modules = (
        tuple(router.publish_module(module) for module in message.modules if module is not None)
        if message.modules
        else ()
    )
    data = message.data if isinstance(message.data, bytes) else bytes(message.data)
    if message.streams:
        streams = _stream_fields(pid, message, router)
        if streams:
            return frames.MessageStreams(pid, message.pid, message.tag, data, modules, streams)
    return frames.Message(pid, message.pid, message.tag, data, modules)


def _stream_fields(pid: int, message: Message, router: Router) -> tuple[int, ...]:
    """Send the descriptors of the message's TCP streams to ``pid``'s worker: the frame's
    ``streams`` field. The message lets go of its streams (the last holder closes each); the
    host program cannot take a stream, so a message to it goes without."""
    streams = [stream for stream in message.streams or () if stream is not None]
    message.streams = None
    fields: list[int] = []
    if worker_of(pid) not in (SUPERVISOR, REGISTRY):
        fds = [os.dup(stream.fd) for stream in streams]
        tokens = router.send_streams(worker_of(pid), fds)
        for token, stream in zip(tokens, streams, strict=True):
            timeouts = (stream.read_timeout, stream.write_timeout, stream.peek_timeout)
            fields.extend((token, *(-1 if t is None else t for t in timeouts)))
    for stream in streams:
        stream.release()
    return tuple(fields)


def typed_args(module: str, function: str, types: str, params: Sequence[Any]) -> list[tuple[int, Any]]:
    """Match spawn parameters against an export's parameter types."""
    if not params and not types:
        return []
    if len(params) != len(types):
        raise SignatureError(
            f"{module}:{function} takes {len(types)} parameter(s) ({_type_names(types)}), got {len(params)}"
        )
    args: list[tuple[int, Any]] = []
    for index, (char, param) in enumerate(zip(types, params, strict=True)):
        kind = _KINDS.get(char)
        if kind is None:
            raise SignatureError(f"{module}:{function} has a parameter of a type that cannot be passed")
        if isinstance(param, tuple):
            if param[0] != kind:
                raise SignatureError(
                    f"{module}:{function} parameter {index} is {_NAMES[char]}, got {_KIND_NAMES[param[0]]}"
                )
            args.append(param)
        elif char in "iI" and isinstance(param, int) and not isinstance(param, bool):
            args.append((kind, _wrap(param, 32 if char == "i" else 64)))
        elif char in "fF" and isinstance(param, int | float) and not isinstance(param, bool):
            args.append((kind, float(param)))
        elif char == "v" and isinstance(param, bytes | bytearray) and len(param) == 16:
            args.append((kind, bytes(param)))
        else:
            raise SignatureError(f"{module}:{function} parameter {index} is {_NAMES[char]}, got {param!r}")
    return args


_KINDS = {"i": wasm.I32, "I": wasm.I64, "f": wasm.F32, "F": wasm.F64, "v": wasm.V128}
_NAMES = {"i": "i32", "I": "i64", "f": "f32", "F": "f64", "v": "v128", "r": "a reference"}
_KIND_NAMES = {wasm.I32: "i32", wasm.I64: "i64", wasm.F32: "f32", wasm.F64: "f64", wasm.V128: "v128"}


def _type_names(types: str) -> str:
    return ", ".join(_NAMES[c] for c in types) or "none"


def _wrap(value: int, bits: int) -> int:
    """Accept signed or unsigned integers of the parameter's width; reject anything wider."""
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise SignatureError(f"{value} does not fit in i{bits}")
    return value - (1 << bits) if value >= (1 << (bits - 1)) else value


def _wasi_config(config: EnvConfig, program: str) -> wasm.Wasi:
    for host_path in config.preopened_dirs.values():
        if not os.path.isdir(host_path):
            raise OSError(f"preopened directory {host_path} does not exist")
    return _wasi_setting(
        (program, *config.args), tuple(config.env.items()), tuple(config.preopened_dirs.items())
    )


@functools.lru_cache(maxsize=256)
def _wasi_setting(
    argv: tuple[str, ...], env: tuple[tuple[str, str], ...], preopens: tuple[tuple[str, str], ...]
) -> wasm.Wasi:
    """One encoding per distinct setting: environments spawn many processes alike."""
    return wasm.Wasi(argv, env, tuple((host, guest) for guest, host in preopens))
