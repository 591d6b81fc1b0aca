"""Arenas that serve an engine's linear memories and fiber stacks (arena.c).

A live process costs no memory mapping of its own: memories and stacks are slots of large
MAP_NORESERVE reservations, reused last-freed first. A memory that holds a few pages when its
process exits is zeroed by hand and keeps them while it is one of the last ``MEMORIES_KEPT``
freed; any other goes back to the kernel (MADV_DONTNEED). A stack keeps its few pages while it is
one of the last ``STACKS_KEPT`` freed. A spawn and exit then costs no madvise (each is about 5 µs
with the TLB flushes, and the next spawn faults the pages in again). :mod:`.capacity` says how
many slots a worker may have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from lunatic_mp.vm import core
from lunatic_mp.vm.capacity import STACK_GUARD, STACK_SLOTS_PER_PROCESS, address_space_bytes
from lunatic_mp.vm.extension import _core

_MEMORY: Final = 0
_STACK: Final = 1
CHUNK_BYTES: Final = 64 << 30
"""Address space reserved at a time (a chunk holds many slots: one mapping for all of them)."""
GUARD_MODES: Final = ("none yet", "MADV_GUARD_INSTALL", "mprotect")
PAGE: Final = 4096
STACKS_KEPT: Final = 1024
"""Freed fiber stacks that keep their pages for the next spawns (arena.c's LMP_STACKS_KEPT)."""
MEMORIES_KEPT: Final = 256
"""Freed memories that keep their few zeroed pages for the next spawns (LMP_MEMORIES_KEPT)."""


@dataclass(frozen=True, slots=True)
class ArenaStats:
    """An arena's figures: slots live now, at most, ever used, its limit; address space reserved;
    how its guard pages are made; freed slots that may still hold pages (kept for reuse)."""

    live: int
    peak: int
    used: int
    slots: int
    reserved_bytes: int
    guard: str
    kept: int


def _round_up(size: int) -> int:
    return (size + PAGE - 1) // PAGE * PAGE


def _chunk_slots(slot_size: int, slots: int) -> int:
    """Slots per reservation: CHUNK_BYTES of them, less under an RLIMIT_AS."""
    chunk = min(CHUNK_BYTES, address_space_bytes() // 64)
    return max(1, min(slots, chunk // slot_size))


class Arenas:
    """The memory arena (``max_memory``-byte slots) and stack arena (``stack_size`` bytes under a
    guard page) of one engine, or of an engine and its fuel-metering twin, for ``processes``."""

    def __init__(
        self, processes: int, max_memory: int, stack_size: int, *, use_mprotect: bool = False
    ) -> None:
        """``use_mprotect``: stack guards by mprotect even where MADV_GUARD_INSTALL works (what a
        kernel before 6.13 does: a mapping split per stack; for tests and measurements)."""
        if processes < 1:
            raise ValueError(f"an arena needs room for at least one process, not {processes}")
        if max_memory < PAGE or stack_size < PAGE:
            raise ValueError(f"max_memory ({max_memory}) and stack_size ({stack_size}) must be >= a page")
        self.processes = processes
        self.memory_slot = _round_up(max_memory)
        self.stack_slot = _round_up(stack_size) + STACK_GUARD
        stacks = int(processes * STACK_SLOTS_PER_PROCESS) + 16
        self._memories: Any = _core.arena_new(
            _MEMORY, self.memory_slot, 0, processes, _chunk_slots(self.memory_slot, processes), False
        )
        self._stacks: Any = _core.arena_new(
            _STACK, self.stack_slot, STACK_GUARD, stacks, _chunk_slots(self.stack_slot, stacks), use_mprotect
        )

    def install(self, config: Any) -> None:
        """Make the wasmtime config (a ``wasmtime.Config``) serve memories and stacks from here."""
        pointer = core.address(config.ptr())
        _core.arena_install(self._memories, pointer)
        _core.arena_install(self._stacks, pointer)

    def retire(self) -> None:
        """The engine closes: no more slots; exiting processes give nothing back one by one (the
        arenas are unmapped whole once the last slot is freed)."""
        _core.arena_retire(self._memories)
        _core.arena_retire(self._stacks)

    def memory_stats(self) -> ArenaStats:
        return _stats(self._memories)

    def stack_stats(self) -> ArenaStats:
        return _stats(self._stacks)


def _stats(arena: Any) -> ArenaStats:
    live, peak, used, slots, reserved, guard, kept = _core.arena_stats(arena)
    return ArenaStats(live, peak, used, slots, reserved, GUARD_MODES[guard], kept)
