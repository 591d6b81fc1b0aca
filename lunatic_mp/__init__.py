"""lunatic_mp: WebAssembly actors (lunatic's processes) on every core, from Python."""

from lunatic_mp.aio import AsyncRuntime
from lunatic_mp.client import AsyncClient, Client, connect, connect_async
from lunatic_mp.config import EnvConfig
from lunatic_mp.engine import Engine
from lunatic_mp.errors import (
    CapacityError,
    ContextError,
    EngineClosed,
    InvalidNameError,
    LunaticError,
    ModuleError,
    PermissionDenied,
    PluginError,
    RemoteError,
    SignatureError,
    SpawnError,
    WorkerLost,
)
from lunatic_mp.executor import JobFailed, JobTimeout, WasmExecutor, WorkerLostError
from lunatic_mp.handles import Environment, PythonProcess, RuntimeProcess, WasmProcess
from lunatic_mp.handles import Process as ProcessHandle
from lunatic_mp.mailbox import DeathReason, Message
from lunatic_mp.module import Module
from lunatic_mp.native import AsyncContext, Context, ProcessKilled
from lunatic_mp.plugins import PythonPlugin, WasmPlugin
from lunatic_mp.process import Finished, Outcome, Process
from lunatic_mp.runtime import Runtime

__version__ = "0.1.0"

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
    "WasmExecutor",
    "WasmPlugin",
    "WasmProcess",
    "WorkerLost",
    "WorkerLostError",
    "__version__",
    "connect",
    "connect_async",
]
