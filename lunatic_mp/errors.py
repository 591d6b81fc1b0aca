"""Every error lunatic_mp raises, under one root so callers can catch them all.

::

    LunaticError
    ├── ModuleError            a module that does not compile, or lacks what it must export
    ├── SpawnError             a process could not be started
    │   ├── CapacityError      the engine holds as many processes as it safely can
    │   └── SignatureError     the export's parameters do not match the arguments given
    ├── PermissionDenied       the environment's config forbids the operation
    ├── InvalidNameError       a registry name or version requirement that does not parse
    │                          (also a ValueError)
    ├── FrameError             bytes between the runtime's processes that are no valid frame
    │                          (also a ValueError; lunatic_mp.frames)
    ├── WorkerLost             the worker process a request went to died before answering
    └── EngineClosed           the engine (or runtime) was shut down

A guest's own failures (traps, kills, running out of fuel) are not exceptions of the host: they end
that process, and its :class:`~lunatic_mp.process.Finished` says why.
"""

from __future__ import annotations


class LunaticError(Exception):
    """Root of every lunatic_mp error."""


class ModuleError(LunaticError):
    """A Wasm module that cannot be compiled, or that lacks a required export."""


class SpawnError(LunaticError):
    """A process could not be started; nothing was left half-created."""


class CapacityError(SpawnError):
    """The engine is at its process capacity: wait for processes to exit, or add workers."""


class SignatureError(SpawnError):
    """The spawned export's parameter types do not match the parameters given."""


class PermissionDenied(LunaticError):
    """The environment's configuration forbids this operation."""


class InvalidNameError(LunaticError, ValueError):
    """A registry name, version or version requirement that does not parse."""


class WorkerLost(LunaticError):
    """The worker process that was asked died before it answered; a new one has replaced it."""


class EngineClosed(LunaticError):
    """The engine was closed; create a new one."""
