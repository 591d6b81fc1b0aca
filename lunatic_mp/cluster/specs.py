"""What the supervisor hands a new worker or registry process: small picklable specs, in a module
of their own so that the supervisor need not import the worker (asyncio, the router) to make one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ChildSpec:
    """What every child process of the supervisor needs to start."""

    run_id: str
    run_dir: str
    peers: list[int]
    supervisor_pid: int
    """The parent whose death it dies with (the template process, when forked from it)."""
    log_pipe: Any
    log_level: int
    deathsig: bool
    node_id: int
    """The node of a cluster the runtime is (0: none)."""


@dataclass
class RegistrySpec(ChildSpec):
    """What the registry process needs to start."""


@dataclass
class WorkerSpec(ChildSpec):
    """What a worker process needs to start."""

    worker_id: int
    engine_options: dict[str, Any]
    http: bytes = b""
    """The HTTP front end's table (:mod:`lunatic_mp.serve.http`); empty: no HTTP."""
