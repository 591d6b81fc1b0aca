"""What the host namespaces share: the engine as they see it (:class:`HostEngine`), the calling
process, its memory, ABI constants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from lunatic_mp.vm import core
from lunatic_mp.vm.wasm import GuestTrap, Memory, caller_memory, store_context

if TYPE_CHECKING:
    from lunatic_mp.vm import wasm
    from lunatic_mp.vm.mailbox import Message
    from lunatic_mp.vm.metrics import Metrics
    from lunatic_mp.vm.module import Module
    from lunatic_mp.vm.placement import SpawnRequest
    from lunatic_mp.vm.process import BaseProcess, Process
    from lunatic_mp.vm.reactor import Reactor
    from lunatic_mp.vm.registry import Registry
    from lunatic_mp.vm.router import Router
    from lunatic_mp.vm.scheduler import Scheduler

T = TypeVar("T")

OK = 0
ERROR = 1
TIMEOUT = 9027
NO_TIMEOUT = -1  # u64::MAX as an i64


class HostEngine(Protocol):
    """The engine as host functions see it: what they may read and ask of it, and nothing else.

    Host namespaces (and plugins) are written against this, not against
    :class:`~lunatic_mp.vm.engine.Engine`, so the core stays apart from the functions guests call
    and a namespace's needs are visible in one place.
    """

    linker: wasm.Linker
    router: Router | None
    registry: Registry
    scheduler: Scheduler
    reactor: Reactor
    metrics: Metrics
    processes: dict[int, BaseProcess]
    message_hooks: tuple[Any, ...]
    link_batches: dict[int, bytearray]
    worker_batches: dict[int, bytearray]
    current: BaseProcess | None
    node_id: int
    max_message_size: int

    def load_module(self, source: str | bytes | Path, name: str | None = None) -> Module: ...
    def is_local(self, pid: int) -> bool: ...
    def deliver(self, pid: int, message: Message) -> bool: ...
    def send_after(
        self, pid: int, message: Message, delay_ms: int | None, owner: BaseProcess | None = None
    ) -> int: ...
    def cancel_timer(self, timer_id: int, owner: BaseProcess | None = None) -> bool: ...
    def wait(self, process: BaseProcess, timeout_ms: int, on_timeout: int) -> None: ...
    def resume(
        self, process: BaseProcess, value: int, on_resume: Callable[[], None] | None = None
    ) -> None: ...
    def link(self, process: BaseProcess, other_pid: int, tag: int) -> None: ...
    def unlink(self, process: BaseProcess, other_pid: int) -> None: ...
    def monitor(self, process: BaseProcess, other_pid: int) -> None: ...
    def stop_monitoring(self, process: BaseProcess, other_pid: int) -> None: ...
    def kill(self, pid: int, reason: str = "killed") -> bool: ...
    def spawn_placed(
        self,
        parent: BaseProcess,
        link_tag: int,
        what: SpawnRequest,
        on_done: Callable[[int | str], None],
    ) -> None: ...
    def spawn_here_at_once(
        self, parent: BaseProcess, link_tag: int, what: SpawnRequest
    ) -> int | str | None: ...
    def get_or_spawn_remote(
        self,
        process: BaseProcess,
        name: str,
        spawn: Callable[[Callable[[int | str], None]], None],
        on_found: Callable[[int, int], None],
        on_spawned: Callable[[int, int, Callable[[], None]], None],
        on_error: Callable[[str], None],
    ) -> None: ...
    def ask(
        self,
        process: BaseProcess,
        worker: int,
        request: Callable[[Callable[[Any], None]], None],
        on_reply: Callable[[Any], tuple[int, Callable[[], None] | None]],
    ) -> object: ...


def memory_of(process: Process, engine: HostEngine, caller: int = 0) -> Memory:
    """The calling process's memory; inside its start function, found through the caller (the
    Python host call's own, unless a C host function hands over its ``caller``)."""
    if process.memory is None:
        memory = caller_memory(caller or core.caller())
        if memory is None:
            raise GuestTrap("the module does not export its memory as `memory`")
        process.memory = Memory(store_context(process.store), memory)  # type: ignore[arg-type]
    return process.memory


def current(engine: HostEngine) -> Process:
    process: Process | None = engine.current  # type: ignore[assignment]  # host functions run in Wasm
    if process is None:  # pragma: no cover - wasmtime only calls us from inside a process
        raise GuestTrap("host function called outside a process")
    return process


def lookup(table: dict[int, T], rid: int, what: str) -> T:
    try:
        return table[rid]
    except KeyError:
        raise GuestTrap(f"unknown {what} id {rid}") from None


def drop(table: dict[int, T], rid: int, what: str) -> None:
    """Free a resource; an unknown id traps the guest."""
    if table.pop(rid, None) is None:
        raise GuestTrap(f"unknown {what} id {rid}")


def report_error(process: Process, memory: Memory, ptr: int, message: str) -> int:
    """Store an error message as a resource, write its id to ``ptr``; return the ERROR code."""
    error_id = process.resources.add(process.resources.errors, message)
    memory.write_u64(ptr, error_id)
    return ERROR
