"""lunatic_mp: WebAssembly actors (lunatic's processes) on every core, from Python.

The public names load on first use (PEP 562), so ``import lunatic_mp`` stays cheap: a program that
only connects to a server, or builds an :class:`EnvConfig`, never imports the worker, the registry
process or wasmtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lunatic_mp.api.aio import AsyncRuntime
    from lunatic_mp.api.executor import JobFailed, JobTimeout, WasmExecutor, WorkerLostError
    from lunatic_mp.api.handles import Environment, PythonProcess, RuntimeProcess, WasmProcess
    from lunatic_mp.api.handles import Process as ProcessHandle
    from lunatic_mp.api.runtime import Runtime
    from lunatic_mp.config import EnvConfig
    from lunatic_mp.errors import (
        CapacityError,
        ContextError,
        EngineClosed,
        InvalidNameError,
        LunaticError,
        ModuleError,
        PermissionDenied,
        PlatformError,
        PluginError,
        RemoteError,
        SignatureError,
        SpawnError,
        UnguardedMainError,
        WorkerLost,
    )
    from lunatic_mp.serve.client import AsyncClient, Client, connect, connect_async
    from lunatic_mp.vm.engine import Engine
    from lunatic_mp.vm.finished import Finished, Outcome
    from lunatic_mp.vm.mailbox import DeathReason, Message
    from lunatic_mp.vm.module import Module
    from lunatic_mp.vm.native import AsyncContext, Context, ProcessKilled
    from lunatic_mp.vm.plugins import PythonPlugin, WasmPlugin
    from lunatic_mp.vm.process import Process

__version__ = "0.1.0"
"""The version: written only here (pyproject.toml reads it; CHANGELOG.md says what changed)."""

_HOMES: dict[str, tuple[str, str]] = {
    "AsyncClient": ("lunatic_mp.serve.client", "AsyncClient"),
    "AsyncContext": ("lunatic_mp.vm.native", "AsyncContext"),
    "AsyncRuntime": ("lunatic_mp.api.aio", "AsyncRuntime"),
    "CapacityError": ("lunatic_mp.errors", "CapacityError"),
    "Client": ("lunatic_mp.serve.client", "Client"),
    "Context": ("lunatic_mp.vm.native", "Context"),
    "ContextError": ("lunatic_mp.errors", "ContextError"),
    "DeathReason": ("lunatic_mp.vm.mailbox", "DeathReason"),
    "Engine": ("lunatic_mp.vm.engine", "Engine"),
    "EngineClosed": ("lunatic_mp.errors", "EngineClosed"),
    "EnvConfig": ("lunatic_mp.config", "EnvConfig"),
    "Environment": ("lunatic_mp.api.handles", "Environment"),
    "Finished": ("lunatic_mp.vm.finished", "Finished"),
    "InvalidNameError": ("lunatic_mp.errors", "InvalidNameError"),
    "JobFailed": ("lunatic_mp.api.executor", "JobFailed"),
    "JobTimeout": ("lunatic_mp.api.executor", "JobTimeout"),
    "LunaticError": ("lunatic_mp.errors", "LunaticError"),
    "Message": ("lunatic_mp.vm.mailbox", "Message"),
    "Module": ("lunatic_mp.vm.module", "Module"),
    "ModuleError": ("lunatic_mp.errors", "ModuleError"),
    "Outcome": ("lunatic_mp.vm.finished", "Outcome"),
    "PermissionDenied": ("lunatic_mp.errors", "PermissionDenied"),
    "PlatformError": ("lunatic_mp.errors", "PlatformError"),
    "PluginError": ("lunatic_mp.errors", "PluginError"),
    "Process": ("lunatic_mp.vm.process", "Process"),
    "ProcessHandle": ("lunatic_mp.api.handles", "Process"),
    "ProcessKilled": ("lunatic_mp.vm.native", "ProcessKilled"),
    "PythonPlugin": ("lunatic_mp.vm.plugins", "PythonPlugin"),
    "PythonProcess": ("lunatic_mp.api.handles", "PythonProcess"),
    "RemoteError": ("lunatic_mp.errors", "RemoteError"),
    "Runtime": ("lunatic_mp.api.runtime", "Runtime"),
    "RuntimeProcess": ("lunatic_mp.api.handles", "RuntimeProcess"),
    "SignatureError": ("lunatic_mp.errors", "SignatureError"),
    "SpawnError": ("lunatic_mp.errors", "SpawnError"),
    "UnguardedMainError": ("lunatic_mp.errors", "UnguardedMainError"),
    "WasmExecutor": ("lunatic_mp.api.executor", "WasmExecutor"),
    "WasmPlugin": ("lunatic_mp.vm.plugins", "WasmPlugin"),
    "WasmProcess": ("lunatic_mp.api.handles", "WasmProcess"),
    "WorkerLost": ("lunatic_mp.errors", "WorkerLost"),
    "WorkerLostError": ("lunatic_mp.api.executor", "WorkerLostError"),
    "connect": ("lunatic_mp.serve.client", "connect"),
    "connect_async": ("lunatic_mp.serve.client", "connect_async"),
}
"""Each public name: the module that defines it, and its name there."""


def get_include() -> str:
    """The directory that holds ``lunatic.h``, the C guest header: ``cc -I`` it to build guests
    against an installed lunatic_mp (``lunatic-mp`` needs no source tree)."""
    from pathlib import Path

    return str(Path(__file__).parent / "include")


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used."""
    if name == "examples":  # the example modules (lunatic_mp.examples.path), a subpackage
        return importlib.import_module("lunatic_mp.examples")
    try:
        module, attribute = _HOMES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AsyncClient",
    "AsyncContext",
    "AsyncRuntime",
    "CapacityError",
    "Client",
    "Context",
    "ContextError",
    "DeathReason",
    "Engine",
    "EngineClosed",
    "EnvConfig",
    "Environment",
    "Finished",
    "InvalidNameError",
    "JobFailed",
    "JobTimeout",
    "LunaticError",
    "Message",
    "Module",
    "ModuleError",
    "Outcome",
    "PermissionDenied",
    "PlatformError",
    "PluginError",
    "Process",
    "ProcessHandle",
    "ProcessKilled",
    "PythonPlugin",
    "PythonProcess",
    "RemoteError",
    "Runtime",
    "RuntimeProcess",
    "SignatureError",
    "SpawnError",
    "UnguardedMainError",
    "WasmExecutor",
    "WasmPlugin",
    "WasmProcess",
    "WorkerLost",
    "WorkerLostError",
    "__version__",
    "connect",
    "connect_async",
    "get_include",
]
