"""What the frame codec (:mod:`lunatic_mp.cluster.frames`) and the config codec
(:mod:`lunatic_mp.cluster.envcodec`) share: the error, the size limit and the words of their
messages. A module of its own so that the two codecs need not import each other."""

from __future__ import annotations

from lunatic_mp.errors import LunaticError

__all__ = ["I64_MAX", "I64_MIN", "MAX_FRAME_SIZE", "FrameError", "int_text", "type_name"]

MAX_FRAME_SIZE = 64 * 1024 * 1024 + 64 * 1024
"""Largest encoded frame, in bytes: 64 MiB of message data plus 64 KiB for the rest."""

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


class FrameError(LunaticError, ValueError):
    """Bytes that are not a valid frame (or config), or a frame that cannot be encoded."""


_CONTAINER_NAMES: dict[type, str] = {tuple: "array", dict: "map", type(None): "nil"}


def type_name(value: object) -> str:
    """The name of a value's type, in msgpack's words for containers."""
    return _CONTAINER_NAMES.get(type(value)) or type(value).__name__


def int_text(value: int) -> str:
    """``value`` for an error message (Python refuses to print ints of thousands of digits)."""
    return str(value) if value.bit_length() <= 256 else f"<{value.bit_length()}-bit int>"
