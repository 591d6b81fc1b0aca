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


PLACE_BITS = 16
"""A *place* is ``pid >> 32``: a node and a worker, ``(node << 16) | worker``."""
WORKER_MASK = (1 << PLACE_BITS) - 1
ANY_WORKER = WORKER_MASK
"""The worker of a place on another node that means "whichever worker that node chooses" (a spawn)."""


def place_of(pid: int) -> int:
    return pid >> 32


def destination(pid: int, node: int) -> int:
    """Where frames for ``pid`` go from a process on ``node``: the id of a worker of the same node,
    or, for a process on another node, its place (always above :data:`WORKER_MASK`, since nodes of
    a cluster are numbered from 1), which only the node's gateway (the supervisor) can reach."""
    place = pid >> 32
    return place & WORKER_MASK if place >> PLACE_BITS == node else place


def is_foreign(destination: int) -> bool:
    """Whether a :func:`destination` lies on another node."""
    return destination > WORKER_MASK


def node_of_place(place: int) -> int:
    return place >> PLACE_BITS
