"""Helpers shared by the host namespaces: the calling process, its memory, ABI constants."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from lunatic_mp.vm.wasm import GuestTrap, Memory, caller_memory

if TYPE_CHECKING:
    from lunatic_mp.vm.engine import Engine
    from lunatic_mp.vm.process import Process

T = TypeVar("T")

OK = 0
ERROR = 1
TIMEOUT = 9027
NO_TIMEOUT = -1  # u64::MAX as an i64


def memory_of(process: Process, engine: Engine) -> Memory:
    """The calling process's memory; inside its start function, found through the caller."""
    if process.memory is None:
        memory = caller_memory(engine.linker.caller)
        if memory is None:
            raise GuestTrap("the module does not export its memory as `memory`")
        process.memory = Memory(process.context, memory)
    return process.memory


def current(engine: Engine) -> Process:
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
