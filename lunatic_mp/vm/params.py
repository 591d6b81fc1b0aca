"""Spawn parameters: a Python value or a ``(kind, value)`` pair, checked against an export's types.

Shared by Wasm spawns (the engine), native spawns and the Python API, so that every path gives the
same :class:`SignatureError` for the same mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lunatic_mp.errors import SignatureError
from lunatic_mp.vm import wasm

PARAM_TYPE_BYTES = {wasm.I32: 0x7F, wasm.I64: 0x7E, wasm.V128: 0x7B}
"""The ABI's spawn parameter type bytes, by wasm value kind."""


def typed_args(module: str, function: str, types: str, params: Sequence[Any]) -> Sequence[tuple[int, Any]]:
    """Match spawn parameters against an export's parameter types. None gives the empty tuple, which
    the cyclic collector does not track (a list per spawn would be one more of its objects)."""
    if not params and not types:
        return ()
    if len(params) != len(types):
        raise SignatureError(
            f"{module}:{function} takes {len(types)} parameter(s) ({_type_names(types)}), got {len(params)}"
        )
    args: list[tuple[int, Any]] = []
    for index, (char, param) in enumerate(zip(types, params, strict=True)):
        kind = _KINDS.get(char)
        if kind is None:
            raise SignatureError(f"{module}:{function} has a parameter of a type that cannot be passed")
        if isinstance(param, tuple):
            if param[0] != kind:
                raise SignatureError(
                    f"{module}:{function} parameter {index} is {_NAMES[char]}, got {_KIND_NAMES[param[0]]}"
                )
            args.append(param)
        elif char in "iI" and isinstance(param, int) and not isinstance(param, bool):
            args.append((kind, _wrap(param, 32 if char == "i" else 64)))
        elif char in "fF" and isinstance(param, int | float) and not isinstance(param, bool):
            args.append((kind, float(param)))
        elif char == "v" and isinstance(param, bytes | bytearray) and len(param) == 16:
            args.append((kind, bytes(param)))
        else:
            raise SignatureError(f"{module}:{function} parameter {index} is {_NAMES[char]}, got {param!r}")
    return args


_KINDS = {"i": wasm.I32, "I": wasm.I64, "f": wasm.F32, "F": wasm.F64, "v": wasm.V128}
_NAMES = {"i": "i32", "I": "i64", "f": "f32", "F": "f64", "v": "v128", "r": "a reference"}
_KIND_NAMES = {wasm.I32: "i32", wasm.I64: "i64", wasm.F32: "f32", wasm.F64: "f64", wasm.V128: "v128"}


def _type_names(types: str) -> str:
    return ", ".join(_NAMES[c] for c in types) or "none"


def _wrap(value: int, bits: int) -> int:
    """Accept signed or unsigned integers of the parameter's width; reject anything wider."""
    if not -(1 << (bits - 1)) <= value < (1 << bits):
        raise SignatureError(f"{value} does not fit in i{bits}")
    return value - (1 << bits) if value >= (1 << (bits - 1)) else value
