"""Checks of what callers pass to the public API, so that a wrong type gets one clear error naming
the argument and the fix, whichever call it went to (``str`` where bytes go, a path where a
:class:`~lunatic_mp.vm.module.Module` goes, one argument where a tuple of them goes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lunatic_mp.errors import ArgumentTypeError
from lunatic_mp.vm.module import Module


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def data_bytes(data: object, what: str = "message data") -> bytes:
    """``data`` as bytes: bytes, bytearray and memoryview are; text is refused with the fix."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        shown = _shown(data)
        raise ArgumentTypeError(f"{what} must be bytes, not str {shown}: encode it ({shown}.encode())")
    raise ArgumentTypeError(f"{what} must be bytes, not {type(data).__name__} {_shown(data)}")


def module(value: object) -> Module:
    """A :class:`Module` to spawn; a path or source text is refused with the call that loads it."""
    if isinstance(value, Module):
        return value
    if isinstance(value, str | bytes) or hasattr(value, "__fspath__"):
        raise ArgumentTypeError(
            f"spawn takes a Module, not {type(value).__name__} {_shown(value)}: load it first, "
            f"module = runtime.load_module({_shown(value)})"
        )
    kind = type(value).__name__
    raise ArgumentTypeError(f"spawn takes a Module (from load_module), not {kind} {_shown(value)}")


def arguments(args: object, function: object) -> Sequence[Any]:
    """A native process's positional arguments: a tuple or list of them, not one bare value."""
    if isinstance(args, tuple | list):
        return args
    name = getattr(function, "__name__", "function")
    raise ArgumentTypeError(
        f"spawn_native takes the arguments of {name} as a tuple, not {type(args).__name__} "
        f"{_shown(args)}: spawn_native({name}, ({_shown(args)},))"
    )
