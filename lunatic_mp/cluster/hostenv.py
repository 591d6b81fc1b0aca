"""What the machine offers the multi-worker runtime, checked before it starts rather than
discovered under load: the platform, room in ``/dev/shm`` for the rings, and the CPUs a cgroup
quota really grants (``lunatic-mp doctor`` reports the same facts).

Why each: the rings' memory ordering is x86-64's (:mod:`lunatic_mp.cluster.transport`), so
another CPU could lose messages silently; a ring in a ``/dev/shm`` that fills up kills its writer
with SIGBUS at the first page that cannot be had, long after start (Docker gives containers 64 MiB
by default); and a container limited to two CPUs by ``cpu.max`` still shows every CPU of the host
to ``os.sched_getaffinity``, so one worker per visible CPU would oversubscribe it.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lunatic_mp.errors import PlatformError

__all__ = [
    "SHM_DIRECTORY",
    "ShmSpace",
    "check_platform",
    "check_shm_space",
    "cpu_quota",
    "default_worker_count",
    "platform_problem",
    "shm_full_message",
    "shm_space",
    "usable_cpus",
]

SHM_DIRECTORY = "/dev/shm"  # noqa: S108 - where POSIX shared memory lives on Linux
_X86_64 = frozenset({"x86_64", "amd64"})


def platform_problem(system: str | None = None, machine: str | None = None) -> str | None:
    """Why this machine cannot run the multi-worker runtime, or None when it can."""
    system = system or sys.platform
    machine = (machine or platform.machine()).lower()
    if system == "linux" and machine in _X86_64:
        return None
    return (
        f"the multi-worker runtime needs Linux on x86-64 (its shared-memory rings rely on x86-64's "
        f"memory ordering and on /dev/shm), and this is {system} on {machine or 'an unknown CPU'}; "
        "the single-process Engine (lunatic-mp run without --workers) does not need them"
    )


def check_platform() -> None:
    """Raise :class:`PlatformError` unless the multi-worker runtime can run here."""
    problem = platform_problem()
    if problem is not None:
        raise PlatformError(problem)


@dataclass(frozen=True)
class ShmSpace:
    """The size of the ``/dev/shm`` file system and what is free in it, in bytes."""

    total: int
    free: int


def shm_space(directory: str = SHM_DIRECTORY) -> ShmSpace | None:
    """``/dev/shm``'s size and free space, or None where there is none."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return ShmSpace(stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize)


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def shm_full_message(needed: int, what: str, directory: str = SHM_DIRECTORY) -> str:
    """The error for ``needed`` bytes of ``what`` that do not fit in ``/dev/shm``."""
    space = shm_space(directory)
    has = "does not exist" if space is None else f"has {_mib(space.free)} free of {_mib(space.total)}"
    return (
        f"{directory} {has}, and {what} need {_mib(needed)}: give it more room (Docker: "
        "--shm-size=1g), or start fewer workers or smaller rings (Runtime(workers=..., "
        "ring_capacity=...))"
    )


def check_shm_space(rings: int, ring_bytes: int, directory: str = SHM_DIRECTORY) -> None:
    """Raise :class:`PlatformError` unless ``rings`` rings of ``ring_bytes`` fit in ``/dev/shm``
    now (each ring is also reserved when created, so a later shortage cannot bring SIGBUS)."""
    space = shm_space(directory)
    needed = rings * ring_bytes
    if space is None or needed > space.free:
        raise PlatformError(shm_full_message(needed, f"{rings} rings of {_mib(ring_bytes)}", directory))


def cpu_quota(root: Path = Path("/")) -> float | None:
    """The CPUs this process's cgroup may use (``cpu.max`` of cgroup v2, or v1's CFS quota over
    its period), the smallest along the cgroup's path up to the root; None when unlimited."""
    quotas: list[float] = []
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: cpu.max in the cgroup and each parent
            base = root / "sys/fs/cgroup"
            quotas += _along(base, path, lambda d: _v2_quota(d / "cpu.max"))
        elif "cpu" in controllers.split(","):  # v1: cfs_quota_us / cfs_period_us
            base = root / "sys/fs/cgroup" / controllers
            if not base.is_dir():
                base = root / "sys/fs/cgroup/cpu"
            quotas += _along(base, path, _v1_quota)
    return min(quotas) if quotas else None


def _along(base: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """``read(directory)`` for the cgroup's directory and each parent up to ``base``."""
    found: list[float] = []
    directory = base / path.strip("/")
    while True:
        quota = read(directory)
        if quota is not None:
            found.append(quota)
        if directory == base or base not in directory.parents:
            return found
        directory = directory.parent


def _v2_quota(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; every CPU where there is none, as on
    macOS, so that ``lunatic-mp doctor`` can still say what is wrong there)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_worker_count(root: Path = Path("/")) -> int:
    """One worker per CPU this process may run on: the CPUs of its affinity mask, fewer where a
    cgroup quota grants fewer (rounded up: a quota of 1.5 CPUs gets 2 workers)."""
    cpus = usable_cpus()
    quota = cpu_quota(root)
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus
