"""What a killed supervisor left behind, and removing it safely.

A supervisor killed by SIGKILL (or the OOM killer) cannot remove its run directory (in the temp
directory, ``lunatic-mp-*``), its rings (``/dev/shm/lmp-RUN-A-B``) and its doorbell flags. The
next :class:`~lunatic_mp.api.runtime.Runtime` removes them. Both the temp directory and
``/dev/shm`` are shared with every local user, so nothing read there is trusted: a run directory
counts only if it is a real directory of this user, private (mode 0700, as ``mkdtemp`` makes
it), whose owner file is a regular file of this user that nobody else may write; the run id in
it must be what :func:`new_run_id` makes (8 hex digits); and only regular files of this user,
named exactly as the runtime names its segments, are removed. Nothing read is ever used as a
path or a glob pattern.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

import psutil

from lunatic_mp.cluster.transport import Doorbell, SharedMemory

log = logging.getLogger(__name__)

RUN_DIR_PREFIX = "lunatic-mp-"
OWNER_FILE = "supervisor"
MAX_OWNER_FILE = 64
"""Bytes of an owner file read at most (``PID RUN_ID``)."""
_OWNER = re.compile(r"([1-9][0-9]{0,9}) ([0-9a-f]{8})\n?")


def new_run_id() -> str:
    """A fresh run id: 8 hex digits (segment names start ``lmp-RUN_ID-``)."""
    return secrets.token_hex(4)


def write_owner(run_dir: Path, run_id: str) -> None:
    """Write ``run_dir``'s owner file (this process's pid and ``run_id``), mode 0600 whatever
    the umask, so that the sweep trusts it."""
    fd = os.open(
        run_dir / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        os.write(fd, f"{os.getpid()} {run_id}\n".encode())
    finally:
        os.close(fd)


def _mine(info: os.stat_result, kind: int) -> bool:
    """Of this user, of ``kind`` (``stat.S_IFDIR``, ``stat.S_IFREG``), not writable by others."""
    return stat.S_IFMT(info.st_mode) == kind and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def read_owner(run_dir: Path) -> tuple[int, str] | None:
    """``(supervisor pid, run id)`` of a run directory, or None unless it and its owner file
    are this user's and private, and the file says exactly ``PID RUN_ID``."""
    try:
        if not _mine(os.lstat(run_dir), stat.S_IFDIR) or os.lstat(run_dir).st_mode & 0o077:
            return None
        fd = os.open(run_dir / OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not _mine(os.fstat(fd), stat.S_IFREG):
                return None
            text = os.read(fd, MAX_OWNER_FILE).decode("ascii")
        finally:
            os.close(fd)
    except (OSError, UnicodeDecodeError):
        return None
    match = _OWNER.fullmatch(text)
    return (int(match[1]), match[2]) if match else None


def _segments(run_id: str, run_dir: Path) -> list[str]:
    """The names in ``/dev/shm`` that run ``run_id`` made: its rings and its doorbell flags."""
    ring = re.compile(rf"lmp-{run_id}-[0-9]+-[0-9]+")
    flag = re.compile(r"bell-[0-9]+" + re.escape(Doorbell.flag_name(run_dir, "")))
    try:
        names = os.listdir(SharedMemory._DIRECTORY)
    except OSError:
        return []
    return [name for name in names if ring.fullmatch(name) or flag.fullmatch(name)]


def sweep_stale_runs() -> None:
    """Remove what supervisors that were killed (SIGKILL, OOM) left behind: their runtime
    directories, rings and doorbells. A run is stale when its supervisor's pid is gone; what is
    not this user's, or not exactly what a runtime makes, is left alone."""
    for run_dir in Path(tempfile.gettempdir()).glob(RUN_DIR_PREFIX + "*"):
        owner = read_owner(run_dir)
        if owner is None:
            continue
        pid, run_id = owner
        if psutil.pid_exists(pid):
            continue
        for name in _segments(run_id, run_dir):
            path = os.path.join(SharedMemory._DIRECTORY, name)
            try:
                if _mine(os.lstat(path), stat.S_IFREG):
                    os.unlink(path)
            except OSError:
                continue
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("removed the leftovers of runtime %s (supervisor %s is gone)", run_id, pid)


__all__ = ["OWNER_FILE", "RUN_DIR_PREFIX", "new_run_id", "read_owner", "sweep_stale_runs", "write_owner"]
