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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import wasmtime

from lunatic_mp.config import FUEL_UNIT, EnvConfig
from lunatic_mp.errors import (
    CapacityError,
    EngineClosed,
    ModuleError,
    PermissionDenied,
    SpawnError,
)
from lunatic_mp.pids import FIRST_WORKER, REGISTRY, make_pid
from lunatic_mp.vm import arguments, capacity, host, wasm
from lunatic_mp.vm.arena import Arenas
from lunatic_mp.vm.environments import Environments
from lunatic_mp.vm.finished import EXITED, RETURNED, Finished, Outcome
from lunatic_mp.vm.mailbox import Kind, Message
from lunatic_mp.vm.metrics import MAX_SERIES, Metrics
from lunatic_mp.vm.module import Module
from lunatic_mp.vm.native import NativeProcess
from lunatic_mp.vm.params import typed_args
from lunatic_mp.vm.placement import Placement
from lunatic_mp.vm.plugins import Plugin, check_unique
from lunatic_mp.vm.plugins import install as install_plugins
from lunatic_mp.vm.preemption import DEFAULT_TIME_SLICE_NS, Preemption, check_long_slice, check_time_slice
from lunatic_mp.vm.process import BaseProcess, Frame, Process
from lunatic_mp.vm.reactor import Reactor
from lunatic_mp.vm.registry import Registry
from lunatic_mp.vm.router import Router
from lunatic_mp.vm.scheduler import DEFAULT_HIBERNATE_AFTER_S, Scheduler, Timer, check_hibernate_after
from lunatic_mp.vm.signals import Signals

log = logging.getLogger(__name__)

_Attached = TypeVar("_Attached", bound=BaseProcess)


UNLIMITED_FUEL = 2**63 - 1
DEFAULT_MAX_MEMORY = 256 * 1024 * 1024
"""Address space reserved for each process's linear memory: the most a guest can grow to."""

DEFAULT_STACK_SIZE = 2 * 1024 * 1024
"""A process's fiber stack (wasmtime's async stack): Wasm frames up to ``max_wasm_stack``, then
the host's."""

MAX_MESSAGE_SIZE = 64 * 1024 * 1024


def default_capacity(
    max_memory: int = DEFAULT_MAX_MEMORY, stack_size: int = DEFAULT_STACK_SIZE, workers: int | None = None
) -> int:
    """How many live processes a worker holds: from address space and RAM (:mod:`.capacity`)."""
    return capacity.plan(max_memory, stack_size, workers).processes


class Engine(Placement, Signals):
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
        long_slice_ns: int | None = None,
        async_stack_size: int = DEFAULT_STACK_SIZE,
        max_wasm_stack: int = 1024 * 1024,
        max_memory: int = DEFAULT_MAX_MEMORY,
        max_message_size: int = MAX_MESSAGE_SIZE,
        plugins: Iterable[Plugin] = (),
        max_metric_series: int = MAX_SERIES,
        workers: int | None = None,
        hibernate_after: float | None = DEFAULT_HIBERNATE_AFTER_S,
    ) -> None:
        """``max_processes`` (default: what address space and RAM allow, :mod:`.capacity`, for
        one of ``workers`` workers sharing this host: default one per CPU) bounds live processes.
        ``hibernate_after``: seconds a process waits in ``receive`` before its memory's pages go
        back to the kernel until it runs again (None: never; :meth:`.Scheduler.hibernate`).
        ``long_slice_ns``: how long a CPU-bound guest runs on while only such guests wait (None:
        :data:`~lunatic_mp.vm.preemption.DEFAULT_LONG_SLICE_NS`; 0: never)."""
        if not 0 < max_message_size < 2**32:  # a message's read cursor is 32 bits (message_type.c)
            size = max_message_size
            raise ValueError(f"max_message_size must be between 1 and 2**32 - 1 bytes, got {size}")
        hibernate_after = check_hibernate_after(hibernate_after)
        time_slice_ns = check_time_slice(time_slice_ns)
        long_slice_ns = check_long_slice(long_slice_ns, time_slice_ns)
        self.node_id = node_id
        self.nodes: dict[int, dict[str, str]] = {}
        """The live nodes of the cluster and their tags, this one included (none outside a cluster)."""
        self.pid_base = make_pid(node_id, worker_id, 0)
        if max_processes is None:
            self.capacity_limit = capacity.plan(max_memory, async_stack_size, workers)
        else:
            given = "max_processes as given (lunatic-mp doctor: what this host allows)"
            self.capacity_limit = capacity.Capacity(max_processes, "max_processes", given)
        self.capacity = self.capacity_limit.processes
        """The most live processes; ``capacity_limit`` says what bounds it."""
        self.max_message_size = max_message_size
        self.max_memory = max_memory
        self.arenas = Arenas(max(self.capacity, 1), max_memory, async_stack_size)
        """Where the processes' memories and fiber stacks come from (shared with the fuel engine)."""
        make_engine = functools.partial(
            wasm.new_engine,
            async_stack_size=async_stack_size,
            max_wasm_stack=max_wasm_stack,
            max_instances=self.capacity,
            max_memory=max_memory,
            arenas=self.arenas,
        )
        self.wasm_engine = make_engine()
        self._engine_address = self.wasm_engine.ptr()  # what a process's store is made with
        self.linker = wasm.Linker(self.wasm_engine, self._on_suspend, self._poll_resume, self._on_host_error)
        self.preemption = Preemption(self, self.wasm_engine, self.linker, make_engine, time_slice_ns)
        self.linker.define_wasi()
        self.scheduler = Scheduler(self, hibernate_after, long_slice_ns)
        self.reactor = Reactor()
        """Descriptors that suspended processes wait on (:mod:`lunatic_mp.vm.reactor`)."""
        self.preemption.ticker.watch(self.reactor.fileno())  # a ready socket ends a long slice
        self.registry = Registry()
        self.metrics = Metrics(max_metric_series)
        """Guests' ``lunatic::metrics``: at most ``max_metric_series`` names (:mod:`.metrics`)."""
        self.processes: dict[int, BaseProcess] = {}
        self.host_errors: list[BaseException] = []
        self._next_local = 1
        self._next_timer = 1
        self._timers: dict[int, Timer] = {}
        self._modules: weakref.WeakSet[Module] = weakref.WeakSet()
        self._closed = False
        self.worker_id = worker_id
        self.router: Router | None = None
        self._held: dict[int, tuple[BaseProcess, Finished]] = {}  # dead, names not yet gone
        self._environments = Environments()  # of limited environments, when no registry process counts
        self.link_batches: dict[int, bytearray] = {}
        """In a worker of a cluster: link records for other nodes, by node, that a guest's send
        appends to in C (lunatic_mp/vm/inbox.c); the worker fills and withdraws them."""
        self.worker_batches: dict[int, bytearray] = {}
        """In a worker: the same for the other workers of this node, by place."""
        self.message_hooks: tuple[Any, ...] = ()
        """What lunatic::message's C functions call back (set by :mod:`.host.message`)."""
        host.register_all(self)
        self.plugins = install_plugins(self, plugins)
        """The namespaces that plugins add (:mod:`lunatic_mp.vm.plugins`)."""

    def assign(self, node_id: int, worker_id: int) -> None:
        """Name the node and worker of an engine made before they were known (a worker made
        ready ahead, in a spare child of the template), before it hosts any process."""
        if self.processes or self._next_local != 1:
            raise RuntimeError("an engine that has hosted processes keeps its worker id")
        self.node_id = node_id
        self.worker_id = worker_id
        self.pid_base = make_pid(node_id, worker_id, 0)

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
        if not isinstance(module, Module):
            module = arguments.module(module)  # refused with the call that loads one
        if len(self.processes) >= self.capacity:
            raise self._capacity_error()
        config = config if config is not None else EnvConfig()
        if not 0 <= config.max_memory < 2**64 or not 0 <= config.max_fuel < 2**64:
            raise ValueError("max_memory and max_fuel must be between 0 and 2**64 - 1")
        signature = module.exports.get(function)
        if signature is None:
            raise SpawnError(f"{module.name} has no exported function `{function}`")
        args = typed_args(module.name, function, signature[0], params) if params or signature[0] else ()
        if not module.namespaces <= config.allowed_namespaces:
            names = ", ".join(sorted(module.namespaces - config.allowed_namespaces))
            raise PermissionDenied(f"{module.name} imports host namespaces this environment denies: {names}")
        if module.instance_pre is None or module.engine is not self.wasm_engine:
            self.link_module(module)

        pid = self.pid_base | self._next_local
        self._next_local += 1
        process = Process(pid, module, config, function)
        try:
            engine_address, pre, fuel = self._engine_address, module.instance_pre, -1
            if config.max_fuel > 0:  # only a budget pays for metering (lunatic_mp.vm.preemption)
                metered, pre = self.preemption.metered(module)
                engine_address = metered.ptr()
                fuel = min(config.max_fuel * FUEL_UNIT, UNLIMITED_FUEL)
            store = wasm.Store(engine_address, process, fuel, config.max_memory)
            if module.uses_wasi:
                store.set_wasi(*_wasi_config(config, module.name).settings)
                process.wasi_epoch = time.monotonic()
        except (wasmtime.WasmtimeError, RuntimeError, OSError) as exc:
            raise SpawnError(f"cannot create a store for {module.name}: {exc}") from None
        process.store = store
        nresults = len(signature[1])
        process.call = wasm.instantiate(pre, store, function.encode(), args, nresults)  # type: ignore[arg-type]
        self.processes[pid] = process
        self._count_in(process)
        if link is not None:
            self._link_child(process, *link)
        self.scheduler.make_ready(process)
        return process

    def _capacity_error(self) -> CapacityError:
        count = f"{self.capacity:,} live process{'es' if self.capacity != 1 else ''}"
        return CapacityError(
            f"engine is at capacity ({count}), bounded by {self.capacity_limit.reason}; "
            "wait for processes to exit, or add workers"
        )

    def _count_in(self, process: BaseProcess) -> None:
        """A lone engine counts the processes of each limited environment (in a runtime the
        registry process does)."""
        config = process.config
        if self.router is None and config.limits_environment:
            self._environments.add(config.environment_id, self.worker_id, self._reservation(process))

    def _reservation(self, process: BaseProcess) -> int:
        """What ``process`` takes from its environment's ``max_env_memory``: a Wasm process the
        most its memory may grow to; a native one nothing (it has no linear memory)."""
        return 0 if process.native else process.config.memory_reservation(self.max_memory)

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
        args = arguments.arguments(args, function)
        if len(self.processes) >= self.capacity:
            raise self._capacity_error()
        pid = self.pid_base | self._next_local
        self._next_local += 1
        process = NativeProcess(self, pid, function, args, kwargs or {}, config or EnvConfig())
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

    def reap(self, glet: Any) -> None:
        """Unwind a killed native process's suspended stack at the next scheduler round."""
        self.scheduler.reap(glet)

    @property
    def current(self) -> BaseProcess | None:
        """The process running now: the Wasm process being polled (the scheduler's resume loop
        sets it, in C), or a native process taking its slice; None between them."""
        return self.scheduler.runner.current  # type: ignore[no-any-return]

    @current.setter
    def current(self, process: BaseProcess | None) -> None:
        self.scheduler.runner.current = process

    def on_call_done(self, process: Process) -> None:
        """The process's call returned, failed, or was killed (the scheduler calls this): it dies.

        An instantiation that finished went straight on into the process's export (in C:
        lunatic_mp/vm/runner.c), so this sees it only when it failed or the process was killed.
        """
        call = process.call
        assert call is not None
        failure = wasm.take_failure(call) if call.failed else None
        call.finish()
        process.call = None
        if process.kill_requested is not None:
            finished = Finished(Outcome.KILLED, message=process.kill_requested)
        elif failure is None:
            results = call.results()
            finished = Finished(Outcome.NORMAL, result=results) if results else RETURNED
        elif failure.exit_code == 0:
            finished = EXITED
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

        The wasmtime engine holds its arenas' address space until it is freed; it sits in
        reference cycles (host functions refer to it), so they are broken here rather than left
        to the cyclic garbage collector.
        """
        if self._closed:
            return
        self._closed = True
        self.arenas.retire()  # the processes below give nothing back one by one: it all goes
        for process in list(self.processes.values()):
            self.kill(process.pid, "engine closed")
        for module in self._modules:
            module.instance_pre = None
        self._modules.clear()
        self._timers.clear()
        self.scheduler.close()
        self.preemption.close()  # first: its thread may watch the reactor's descriptor
        self.reactor.close()
        self.linker.close()
        self.linker = None  # type: ignore[assignment]
        self.wasm_engine = None  # type: ignore[assignment]

    # --- messages -------------------------------------------------------------------------------

    def is_local(self, pid: int) -> bool:
        return self.router is None or pid >> 32 == self.pid_base >> 32

    def _is_gone(self, pid: int) -> bool:
        """A pid on no live worker: no process can answer for it (lost worker, made-up pid)."""
        return (
            self.router is not None
            and not self.router.is_live(self.router.route(pid))
            and not self.is_local(pid)
        )

    def deliver(self, pid: int, message: Message) -> bool:
        """Put a message in a mailbox, or hand it straight to a receiver waiting for it.

        A pid on another worker gets the message as a frame (True: it may still be dropped
        there, as a message to a dead process is).
        """
        process = self.processes.get(pid)
        if process is None:
            if self.router is None or self.is_local(pid) or self.router.route(pid) == REGISTRY:
                return False  # the registry process hosts no processes: dropped here, not there
            self.router.send_message(pid, message)
            return True
        mailbox = process.mailbox
        if mailbox.wants(message):  # a receive waits for it
            mailbox.stop_waiting()
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
        elif self.router is not None and self.router.route(sender_pid) >= FIRST_WORKER:
            self.router.mailbox_full(sender_pid, process.pid, True)
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
                self.router.mailbox_full(sender_pid, process.pid, False)

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
        data = arguments.data_bytes(data)
        if not -(2**63) <= tag < 2**64:
            raise ValueError(f"tag {tag} does not fit in 64 bits")
        tag = tag - 2**64 if tag >= 2**63 else tag
        if len(data) > self.max_message_size:
            raise ValueError(f"message of {len(data)} bytes exceeds the {self.max_message_size}-byte limit")
        return self.deliver(pid, Message(tag, bytes(data)))

    def send_after(
        self, pid: int, message: Message, delay_ms: int | None, owner: BaseProcess | None = None
    ) -> int:
        """Deliver ``message`` after ``delay_ms``; None: never (the timer can still be cancelled).
        A timer with an ``owner`` process is its alone: only it can cancel it, and its death does."""
        timer_id = self._next_timer
        self._next_timer += 1

        def fire() -> None:
            del self._timers[timer_id]
            if owner is not None:
                del owner.timers[timer_id]
            self.deliver(pid, message)

        delay_s = None if delay_ms is None else delay_ms / 1000
        self._timers[timer_id] = timer = self.scheduler.call_later(delay_s, fire)
        if owner is not None:
            owner.timers[timer_id] = timer
        return timer_id

    def cancel_timer(self, timer_id: int, owner: BaseProcess | None = None) -> bool:
        """Cancel a timer (of ``owner``'s only, when given); whether there was one to cancel."""
        if owner is not None and owner.timers.pop(timer_id, None) is None:
            return False
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
                process.mailbox.stop_waiting()
                self.resume(process, on_timeout)

            process.timer = self.scheduler.call_later(timeout_ms / 1000, expire)

    def resume(self, process: BaseProcess, value: int, on_resume: Callable[[], None] | None = None) -> None:
        """Let a suspended process go on; its pending host call returns ``value``.

        ``on_resume`` runs inside the process's fiber just before it goes on: the place to
        write out-parameters into its memory. A message sent from C to a process waiting in a C
        receive is handed over as :meth:`deliver` and this do, in C (``lmp_wake_receiver`` in
        lunatic_mp/vm/message.c): keep the three in step.
        """
        if process.timer is not None:
            process.timer.cancel()
            process.timer = None
        if process.native:
            process.resume_with(value, on_resume)  # type: ignore[attr-defined]
        elif process.receiving:  # type: ignore[attr-defined]
            process.receiving = False  # type: ignore[attr-defined]
            process.store.wake(value)  # type: ignore[attr-defined]
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

    def _on_suspend(self, results: int, kind: int, nested: wasm.Call | None, trap_out: int) -> int:
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


def check_plugins(plugins: Iterable[Plugin]) -> list[str]:
    """Load ``plugins`` into a scratch engine, so that a broken one fails here, in the caller,
    and not in every worker; their names."""
    plugins = check_unique(plugins)
    if not plugins:
        return []
    scratch = Engine(max_processes=1, plugins=plugins)
    scratch.close()
    return scratch.plugins


def _wasi_config(config: EnvConfig, program: str) -> wasm.Wasi:
    if not (config.preopened_dirs or config.args or config.env):  # most environments: one lookup
        return _wasi_setting((program,) if config.program_name else (), (), ())
    for host_path in config.preopened_dirs.values():
        if not os.path.isdir(host_path):
            raise OSError(f"preopened directory {host_path} does not exist")
    argv = (program, *config.args) if config.program_name else tuple(config.args)
    return _wasi_setting(argv, tuple(config.env.items()), tuple(config.preopened_dirs.items()))


@functools.lru_cache(maxsize=256)
def _wasi_setting(
    argv: tuple[str, ...], env: tuple[tuple[str, str], ...], preopens: tuple[tuple[str, str], ...]
) -> wasm.Wasi:
    """One encoding per distinct setting: environments spawn many processes alike."""
    return wasm.Wasi(argv, env, tuple((host, guest) for guest, host in preopens))
