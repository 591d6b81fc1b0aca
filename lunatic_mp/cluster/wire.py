"""What the frame codec (:mod:`lunatic_mp.cluster.frames`) and the config codec
(:mod:`lunatic_mp.cluster.envcodec`) share: the error, the size limit and the words of their
messages. A module of its own so that the two codecs need not import each other."""

from __future__ import annotations

import struct
import typing

from lunatic_mp.errors import LunaticError

__all__ = [
    "I64_MAX",
    "I64_MIN",
    "MAX_FRAME_SIZE",
    "FrameError",
    "field_code",
    "field_problem",
    "int_text",
    "type_name",
]

MAX_FRAME_SIZE = 64 * 1024 * 1024 + 64 * 1024
"""Largest encoded frame, in bytes: 64 MiB of message data plus 64 KiB for the rest."""

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


RECORD_FRAME = 1  # the same in lunatic_mp/vm/inbox.c, which splits them
RECORD_MODULE = 2
RECORD_HEADER = struct.Struct("<IB")
"""A cluster link's record (lunatic_mp.cluster.gateway): its length (counting the type byte and
the body), its type."""
RECORD_PLACE = struct.Struct("<Q")


def frame_record(place: int, payload: bytes) -> bytes:
    """A frame for ``place`` as a cluster link carries it: a worker batches these for a node,
    and its gateway writes them as they are."""
    return (
        RECORD_HEADER.pack(len(payload) + 1 + RECORD_PLACE.size, RECORD_FRAME)
        + RECORD_PLACE.pack(place)
        + payload
    )


class FrameError(LunaticError, ValueError):
    """Bytes that are not a valid frame (or config), or a frame that cannot be encoded."""


_CONTAINER_NAMES: dict[type, str] = {tuple: "array", dict: "map", type(None): "nil"}


def type_name(value: object) -> str:
    """The name of a value's type, in msgpack's words for containers."""
    return _CONTAINER_NAMES.get(type(value)) or type(value).__name__


def int_text(value: int) -> str:
    """``value`` for an error message (Python refuses to print ints of thousands of digits)."""
    return str(value) if value.bit_length() <= 256 else f"<{value.bit_length()}-bit int>"


# -- field types (of frames, for their explaining checker) ------------------------------------
# Each field's declared type becomes one of these codes, which the slow, explaining checker uses.

_INT = "int"
_BYTES = "bytes"
_STR = "str"
_BOOL = "bool"
_NONE = "None"
_INTS = "tuple of ints"
_BYTES_SEQ = "tuple of bytes"
_STRS = "tuple of str"
_SEQUENCES = {_INTS: _INT, _BYTES_SEQ: _BYTES, _STRS: _STR}
"""Each tuple code, and the code of its items."""


def field_code(tp: object) -> str:
    """The field-type code of a resolved annotation."""
    simple: dict[object, str] = {int: _INT, bytes: _BYTES, str: _STR, bool: _BOOL, type(None): _NONE}
    if tp in simple:
        return simple[tp]
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        items = {int: _INTS, bytes: _BYTES_SEQ, str: _STRS}
        if len(args) == 2 and args[1] is Ellipsis and args[0] in items:
            return items[args[0]]
    raise TypeError(f"frames cannot carry fields of type {tp!r}")


def field_problem(where: str, code: str, value: object) -> str | None:
    """What is wrong with one field's value, or None."""
    if code == _INT:
        if type(value) is not int:
            return f"{where} must be int, got {type_name(value)}"
        if not I64_MIN <= value <= I64_MAX:
            return f"{where} = {int_text(value)} does not fit i64"
    elif code in _SEQUENCES:
        if type(value) is not tuple:
            return f"{where} must be a {code}, got {type_name(value)}"
        for i, item in enumerate(value):
            problem = field_problem(f"{where}[{i}]", _SEQUENCES[code], item)
            if problem is not None:
                return problem
    elif code == _NONE:
        if value is not None:
            return f"{where} must be None, got {type_name(value)}"
    elif type(value) is not {_BYTES: bytes, _STR: str, _BOOL: bool}[code]:
        return f"{where} must be {code}, got {type_name(value)}"
    return None
