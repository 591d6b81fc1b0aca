"""lunatic_mp: WebAssembly actors (lunatic's processes) on every core, from Python."""

from lunatic_mp.config import EnvConfig
from lunatic_mp.engine import Engine
from lunatic_mp.errors import (
    CapacityError,
    EngineClosed,
    InvalidNameError,
    LunaticError,
    ModuleError,
    PermissionDenied,
    SignatureError,
    SpawnError,
    WorkerLost,
)
from lunatic_mp.mailbox import DeathReason, Message
from lunatic_mp.module import Module
from lunatic_mp.process import Finished, Outcome, Process

__version__ = "0.1.0"

__all__ = [
    "CapacityError",
    "DeathReason",
    "Engine",
    "EngineClosed",
    "EnvConfig",
    "Finished",
    "InvalidNameError",
    "LunaticError",
    "Message",
    "Module",
    "ModuleError",
    "Outcome",
    "PermissionDenied",
    "Process",
    "SignatureError",
    "SpawnError",
    "WorkerLost",
    "__version__",
]
