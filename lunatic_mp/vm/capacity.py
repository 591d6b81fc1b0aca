"""How many live processes a worker may hold, and why that many.

Linear memories and fiber stacks come from arenas (:mod:`.arena`, arena.c) that cost a live
process no memory mapping of its own, so ``vm.max_map_count`` no longer bounds a worker. What does:

- address space: each process reserves a memory slot (the engine's ``max_memory``: the most its
  guest may grow to) and a fiber stack slot; a worker takes at most ``ADDRESS_SHARE`` of the
  user address space (``RLIMIT_AS`` lowers it);
- RAM: an idle process costs about ``BYTES_PER_PROCESS`` (resident memory and page tables,
  measured by ``lunatic-mp bench idle``); the workers of a host together take at most
  ``RAM_SHARE`` of its memory (a cgroup's ``memory.max`` lowers it);
- memory mappings, only on a kernel without ``MADV_GUARD_INSTALL`` (before Linux 6.13), where a
  stack's guard page splits the arena's mapping (``MAPS_PER_PROCESS_WITHOUT_GUARD_MADVISE``).

This module imports nothing heavy: ``lunatic-mp doctor`` shows the same figure the runtime uses.
"""

from __future__ import annotations

import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Final

USER_ADDRESS_SPACE: Final = 1 << 47
"""x86-64 and aarch64 Linux user space with 4-level page tables (128 TiB)."""
ADDRESS_SHARE: Final = 0.5
"""Of the address space, what a worker's arenas may take (the rest: the interpreter, libraries,
mmaps of its own)."""
BYTES_PER_PROCESS: Final = 40 * 1024
"""What an idle process costs in RAM, resident memory and page tables (docs/performance.md)."""
RAM_SHARE: Final = 0.5
"""Of the host's memory, what all workers' processes may take together."""
STACK_GUARD: Final = 4096
"""The guard page under each fiber stack."""
STACK_SLOTS_PER_PROCESS: Final = 1.125
"""Stack slots per memory slot: a process nesting a call (``trap::catch``) holds a second stack."""
MAPS_PER_PROCESS_WITHOUT_GUARD_MADVISE: Final = 2
"""Mappings a live process costs where stack guards are made with mprotect (Linux before 6.13)."""
MADV_GUARD_KERNEL: Final = (6, 13)


@dataclass(frozen=True, slots=True)
class Capacity:
    """The most live processes a worker holds (``processes``), what bounds it (``limit``: address
    space, RAM, vm.max_map_count) and a sentence saying so and how to raise it (``reason``)."""

    processes: int
    limit: str
    reason: str


def _size(size: float) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}".replace(".0 ", " ")
    return f"{size / 1024:.0f} KiB"


def _kernel_version() -> tuple[int, int]:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def guard_madvise_available() -> bool:
    """Whether the kernel installs guard pages without splitting a mapping (MADV_GUARD_INSTALL)."""
    return _kernel_version() >= MADV_GUARD_KERNEL


def memory_bytes() -> tuple[int, str]:
    """The host's memory as the workers see it: a cgroup's limit when lower than the RAM."""
    total, source = 0, "RAM"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        total = 8 << 30
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text != "max" and 0 < int(text) < total:
            total, source = int(text), "the cgroup's memory.max"
    except (OSError, ValueError):
        pass
    return total, source


def address_space_bytes() -> int:
    """The address space a worker's arenas may take."""
    space = int(USER_ADDRESS_SPACE * ADDRESS_SHARE)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        space = min(space, soft // 2)
    return space


def _max_map_count() -> int | None:
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return None


def plan(max_memory: int, stack_size: int, workers: int | None = None) -> Capacity:
    """The capacity of one of ``workers`` workers (default: one per usable CPU) whose processes
    may each grow their memory to ``max_memory`` bytes and run on ``stack_size``-byte stacks."""
    if max_memory < 0 or stack_size <= 0:
        raise ValueError(f"max_memory ({max_memory}) and stack_size ({stack_size}) must be positive")
    workers = max(1, workers if workers is not None else len(os.sched_getaffinity(0)))
    slot = max_memory + STACK_SLOTS_PER_PROCESS * (stack_size + STACK_GUARD)
    space = address_space_bytes()
    ram, ram_source = memory_bytes()
    by_space = int(space // slot)
    by_ram = int(ram * RAM_SHARE // BYTES_PER_PROCESS // workers)
    options = [
        Capacity(
            by_space,
            "address space",
            f"address space: {_size(space)} per worker / {_size(slot)} per process "
            f"(max_memory {_size(max_memory)} + its fiber stack); a smaller max_memory fits more",
        ),
        Capacity(
            by_ram,
            "RAM",
            f"RAM: {RAM_SHARE:.0%} of {_size(ram)} ({ram_source}) / {_size(BYTES_PER_PROCESS)} "
            f"per idle process / {workers} workers; more memory or fewer workers fit more "
            "(or set max_processes_per_worker)",
        ),
    ]
    maps = _max_map_count()
    if maps is not None and not guard_madvise_available():
        options.append(
            Capacity(
                maps * 9 // 10 // MAPS_PER_PROCESS_WITHOUT_GUARD_MADVISE,
                "vm.max_map_count",
                f"vm.max_map_count ({maps}): this kernel (before Linux 6.13) splits a mapping for each "
                "stack guard page; raise it (sysctl -w vm.max_map_count=1048576) or run Linux 6.13+",
            )
        )
    return min(options, key=lambda option: option.processes)
