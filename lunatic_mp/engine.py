"""One worker's engine: many Wasm processes on one thread, with lunatic's semantics.

The engine owns the process table and decides what happens to processes: spawning, messages,
links, monitors, kills and deaths. The :mod:`~lunatic_mp.scheduler` decides when each one
runs; the modules of :mod:`lunatic_mp.host` are the guests' view of all this.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import wasmtime

from lunatic_mp import host, wasm
from lunatic_mp.config import FUEL_UNIT, EnvConfig
from lunatic_mp.errors import (
    CapacityError,
    EngineClosed,
    ModuleError,
    PermissionDenied,
    SignatureError,
    SpawnError,
)
from lunatic_mp.mailbox import DeathReason, Message
from lunatic_mp.metrics import Metrics
from lunatic_mp.module import Module
from lunatic_mp.process import Finished, Frame, Outcome, Phase, Process
from lunatic_mp.registry import Registry
from lunatic_mp.scheduler import Scheduler, Timer

log = logging.getLogger(__name__)

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
        fuel_yield_interval: int = 100_000,
        async_stack_size: int = 2 * 1024 * 1024,
        max_wasm_stack: int = 1024 * 1024,
        max_memory: int = DEFAULT_MAX_MEMORY,
        max_message_size: int = MAX_MESSAGE_SIZE,
    ) -> None:
        self.node_id = node_id
        self.pid_base = (node_id << 48) | (worker_id << 32)
        self.capacity = default_capacity() if max_processes is None else max_processes
        self.fuel_yield_interval = fuel_yield_interval
        self.max_message_size = max_message_size
        self.max_memory = max_memory
        self.wasm_engine = wasm.new_engine(
            async_stack_size=async_stack_size,
            max_wasm_stack=max_wasm_stack,
            max_instances=self.capacity,
            max_memory=max_memory,
        )
        self.linker = wasm.Linker(self.wasm_engine, self._on_suspend, self._poll_resume, self._on_host_error)
        self.linker.define_wasi()
        self.scheduler = Scheduler(self)
        self.registry = Registry()
        self.metrics = Metrics()
        self.processes: dict[int, Process] = {}
        self.current: Process | None = None
        self.host_errors: list[BaseException] = []
        self._next_local = 1
        self._next_timer = 1
        self._timers: dict[int, Timer] = {}
        self._modules: weakref.WeakSet[Module] = weakref.WeakSet()
        self._closed = False
        host.register_all(self)

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
        link: tuple[Process, int] | None = None,
    ) -> Process:
        """Start ``module.function(*params)`` as a new process; it runs when the engine runs.

        ``params`` are plain numbers, typed by the export's signature, or (kind, value) pairs as
        decoded from the ABI's 17-byte records. ``link`` = (process, tag) links the new process
        to ``process`` before any of its code runs.
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
        args = _typed_args(module.name, function, signature[0], params)
        denied = module.namespaces - config.allowed_namespaces
        if denied:
            names = ", ".join(sorted(denied))
            raise PermissionDenied(f"{module.name} imports host namespaces this environment denies: {names}")
        if module.instance_pre is None or module.engine is not self.wasm_engine:
            self.link_module(module)

        pid = self.pid_base | self._next_local
        self._next_local += 1
        process = Process(pid, module, config, function, args)
        try:
            store = wasm.Store(
                self.wasm_engine,
                fuel=min(config.max_fuel * FUEL_UNIT, UNLIMITED_FUEL)
                if config.max_fuel > 0
                else UNLIMITED_FUEL,
                yield_interval=self.fuel_yield_interval,
                max_memory=config.max_memory,
            )
            if module.uses_wasi:
                store.set_wasi(_wasi_config(config, module.name))
        except (wasmtime.WasmtimeError, OSError) as exc:
            raise SpawnError(f"cannot create a store for {module.name}: {exc}") from None
        process.store = store
        process.context = store.context
        process.instance = wasm.new_instance()
        process.call = wasm.instantiate_async(module.instance_pre, process.context, process.instance)  # type: ignore[arg-type]
        self.processes[pid] = process
        if link is not None:
            self.link(link[0], pid, link[1])
        self.scheduler.make_ready(process)
        return process

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
        self._exit(process, finished)
        return False

    def _start_export(self, process: Process) -> None:
        process.phase = Phase.RUNNING
        memory = wasm.export_memory(process.context, process.instance)
        func = wasm.export_func(process.context, process.instance, process.function.encode())
        assert memory is not None and func is not None, "checked when the module was loaded"
        process.memory = wasm.Memory(process.context, memory)
        nresults = len(process.module.exports[process.function][1])
        process.call = wasm.call_async(process.context, func, process.args, nresults)

    # --- running --------------------------------------------------------------------------------

    def run(self, timeout: float | None = None) -> None:
        """Run until every process has finished or waits on something that cannot come."""
        self.scheduler.run(timeout=timeout)

    def run_until_finished(self, process: Process, timeout: float | None = None) -> Finished | None:
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
        self.linker.close()
        self.linker = None  # type: ignore[assignment]
        self.wasm_engine = None  # type: ignore[assignment]

    # --- messages -------------------------------------------------------------------------------

    def deliver(self, pid: int, message: Message) -> bool:
        """Put a message in a mailbox, or hand it straight to a receiver waiting for it."""
        process = self.processes.get(pid)
        if process is None:
            return False
        if process.receive_start >= 0 and (
            process.receive_tags is None or message.tag in process.receive_tags
        ):
            process.receive_start = -1
            process.scratch = message
            self.resume(process, int(message.kind))
        else:
            process.mailbox.put(message)
        return True

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

    def wait(self, process: Process, timeout_ms: int, on_timeout: int) -> None:
        """Arm a timeout for a process about to suspend; it resumes with ``on_timeout``.

        A negative timeout (u64 values past i64, ``u64::MAX`` included) waits forever.
        """
        if timeout_ms >= 0:

            def expire() -> None:
                process.timer = None
                process.receive_start = -1
                self.resume(process, on_timeout)

            process.timer = self.scheduler.call_later(timeout_ms / 1000, expire)

    def resume(self, process: Process, value: int) -> None:
        """Let a suspended process go on; its pending host call returns ``value``."""
        if process.timer is not None:
            process.timer.cancel()
            process.timer = None
        process.frames[-1].value = value
        process.waiting = False
        self.scheduler.make_ready(process)

    def _on_suspend(self, results: Any, kind: int, nested: wasm.Call | None, trap_out: Any) -> int:
        process = self.current
        assert process is not None, "host calls run inside a process"
        process.frames.append(Frame(results, kind, nested, trap_out))
        process.waiting = nested is None
        return len(process.frames)

    def _poll_resume(self, key: int) -> bool:
        process = self.current
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
        wasm.write_result(frame.results, frame.kind, frame.value)
        del process.frames[key - 1 :]
        return True

    def _on_host_error(self, error: BaseException) -> None:
        log.error("host function failed: %r", error, exc_info=error)
        self.host_errors.append(error)

    # --- links, monitors and deaths -------------------------------------------------------------

    def link(self, process: Process, other_pid: int, tag: int) -> None:
        other = self.processes.get(other_pid)
        if other is None:
            self.deliver(process.pid, Message.link_died(other_pid, tag, DeathReason.NO_PROCESS))
            return
        process.links[other_pid] = tag
        other.links[process.pid] = tag

    def unlink(self, process: Process, other_pid: int) -> None:
        process.links.pop(other_pid, None)
        other = self.processes.get(other_pid)
        if other is not None:
            other.links.pop(process.pid, None)

    def monitor(self, process: Process, other_pid: int) -> None:
        other = self.processes.get(other_pid)
        if other is None:
            self.deliver(process.pid, Message.process_died(other_pid))
            return
        process.monitoring.add(other_pid)
        other.monitored_by.add(process.pid)

    def stop_monitoring(self, process: Process, other_pid: int) -> None:
        process.monitoring.discard(other_pid)
        other = self.processes.get(other_pid)
        if other is not None:
            other.monitored_by.discard(process.pid)

    def kill(self, pid: int, reason: str = "killed") -> bool:
        """Kill a process. One killing itself dies when its current host call returns."""
        process = self.processes.get(pid)
        if process is None:
            return False
        if process is self.current:
            process.kill_requested = reason
        else:
            self._exit(process, Finished(Outcome.KILLED, message=reason))
        return True

    def _exit(self, process: Process, finished: Finished) -> None:
        """Tear a process down and tell everyone linked to or monitoring it.

        Deaths cascade through links (a failure kills linked processes that die with their
        links); a work list, not recursion, so a long chain cannot overflow the stack.
        """
        pending: deque[tuple[Process, Finished]] = deque([(process, finished)])
        while pending:
            dead, outcome = pending.popleft()
            if dead.finished is not None:
                continue
            for other, cause in self._release(dead, outcome):
                if other is self.current:
                    other.kill_requested = cause
                else:
                    pending.append((other, Finished(Outcome.KILLED, message=cause)))

    def _release(self, process: Process, finished: Finished) -> Iterable[tuple[Process, str]]:
        """Free one process and notify its links and monitors; yields the processes it kills."""
        process.finished = finished
        process.phase = Phase.DONE
        if process.timer is not None:
            process.timer.cancel()
            process.timer = None
        for frame in process.frames:
            if frame.nested is not None:
                wasm.finish(frame.nested)
        process.frames.clear()
        if process.call is not None:
            wasm.finish(process.call)
            process.call = None
        process.memory = None
        if process.store is not None:
            process.store.close()
        process.store = None
        process.context = None
        process.resources = None  # type: ignore[assignment]
        del self.processes[process.pid]
        self.registry.remove_process(process.pid)

        pid = process.pid
        failed = not finished.ok
        reason = DeathReason.FAILURE if failed else DeathReason.NORMAL
        doomed: list[tuple[Process, str]] = []
        for other_pid in process.links:
            other = self.processes.get(other_pid)
            if other is None:
                continue
            tag = other.links.pop(pid, 0)
            if failed and other.die_when_link_dies:
                cause = str(finished)
                cause = cause if len(cause) <= MAX_CAUSE else cause[: MAX_CAUSE - 1] + "…"
                doomed.append((other, f"linked process {pid} died ({cause})"))
            else:
                self.deliver(other_pid, Message.link_died(pid, tag, reason))
        for watcher_pid in process.monitored_by:
            watcher = self.processes.get(watcher_pid)
            if watcher is not None:
                watcher.monitoring.discard(pid)
                self.deliver(watcher_pid, Message.process_died(pid))
        for watched_pid in process.monitoring:
            watched = self.processes.get(watched_pid)
            if watched is not None:
                watched.monitored_by.discard(pid)
        for callback in process.on_exit:
            callback(finished)
        return doomed


def _typed_args(module: str, function: str, types: str, params: Sequence[Any]) -> list[tuple[int, Any]]:
    """Match spawn parameters against an export's parameter types."""
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


def _wasi_config(config: EnvConfig, program: str) -> wasmtime.WasiConfig:
    wasi = wasmtime.WasiConfig()
    wasi.argv = [program, *config.args]
    wasi.env = list(config.env.items())
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for guest_path, host_path in config.preopened_dirs.items():
        if not os.path.isdir(host_path):
            raise OSError(f"preopened directory {host_path} does not exist")
        wasi.preopen_dir(host_path, guest_path)
    return wasi
