"""Process ids name where a process lives, so routing a frame needs no lookup.

A pid is ``(node << 48) | (worker << 32) | local``. Worker ids are never reused: a worker that
replaces a lost one gets a new id, so a stale pid can never reach a new process. The supervisor
and the registry process have worker ids of their own.
"""

from __future__ import annotations

SUPERVISOR = 0
"""The supervisor's worker id: pids in this range are mailboxes of the host program."""
REGISTRY = 1
"""The registry process's worker id."""
FIRST_WORKER = 2


def make_pid(node: int, worker: int, local: int) -> int:
    return (node << 48) | (worker << 32) | local


def worker_of(pid: int) -> int:
    return (pid >> 32) & 0xFFFF


def node_of(pid: int) -> int:
    return pid >> 48
