"""msgpack-RPC, the wire format of ``lunatic-mp serve``'s control socket.

This module is the one place that knows how a control-socket message looks in bytes; the server
(:mod:`lunatic_mp.serve.control`) and the clients (:mod:`lunatic_mp.serve.client`) handle typed values.

The format is the msgpack-RPC specification (https://github.com/msgpack-rpc/msgpack-rpc), a
stream of msgpack objects, each one of:

- a request ``[0, msgid, method, params]``: ``msgid`` a 32-bit unsigned int the response
  echoes, ``method`` a str, ``params`` an array;
- a response ``[1, msgid, error, result]``: ``error`` nil on success, else an error object;
  ``result`` nil on failure;
- a notification ``[2, method, params]``: a request that gets no response.

Responses may come in any order: a client can keep many requests in flight on one connection.

Error objects are maps ``{"code": str, "message": str}``; the codes are the attributes of
:class:`Code`. When the server cannot tell which request a bad message was (it is no array,
or has no valid msgid), it sends the notification ``[2, "error", [error object]]`` instead.

Decoding is bounded and safe: :class:`Decoder` refuses any message larger than its
``max_frame_size`` and never runs code for what it reads (no pickle; msgpack extension types
stay opaque :class:`msgpack.ExtType` values, which no method accepts). Bytes that are not
msgpack at all, or a message over the size limit, leave the stream unreadable from there on:
:meth:`Decoder.feed` raises :class:`ProtocolError` and the connection must be closed. A message
that is valid msgpack but not a valid msgpack-RPC message is only that message's problem: it
comes out as an :class:`Invalid` item and the stream goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import msgpack

from lunatic_mp.errors import ProtocolError

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2

MAX_MSGID = 2**32 - 1
"""msgids are 32-bit unsigned ints."""

DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024
"""The largest message a server or client accepts unless configured otherwise, in bytes."""

ERROR_NOTIFICATION = "error"
"""The method of the notification that reports a message whose request could not be told."""


class Code:
    """The ``code`` of an error object: what kind of failure, for programs to branch on."""

    MALFORMED = "MalformedMessage"
    """Valid msgpack, but not a msgpack-RPC message (or not msgpack at all: then the server
    also closes the connection)."""
    TOO_LARGE = "FrameTooLarge"
    """A message over the size limit; the connection is closed."""
    UNAUTHORIZED = "Unauthorized"
    """No token, or a wrong one; the connection is closed."""
    UNKNOWN_METHOD = "UnknownMethod"
    BAD_PARAMS = "BadParams"
    """Params of the wrong number or type, or values out of range."""
    NOT_FOUND = "NotFound"
    """No such module, export, process or name."""
    SPAWN_ERROR = "SpawnError"
    INVALID_NAME = "InvalidName"
    """A registry name, version or requirement that does not parse."""
    TIMEOUT = "Timeout"
    SHUTTING_DOWN = "ShuttingDown"
    """The server is draining: it finishes what it has, and takes nothing new."""
    BUSY = "Busy"
    """Too many connections; the connection is closed."""
    STALLED = "Stalled"
    """A message begun and not finished within the time allowed (a client that sends part of
    one and stops); the connection is closed."""
    FAILED = "Failed"
    """The runtime refused the operation; the message says why."""
    INTERNAL = "Internal"
    """A bug in the server (it is logged there; the message carries no details)."""


class Request(NamedTuple):
    msgid: int
    method: str
    params: list[Any]


class Response(NamedTuple):
    msgid: int
    error: Any
    result: Any


class Notification(NamedTuple):
    method: str
    params: list[Any]


class Invalid(NamedTuple):
    """A msgpack object that is not a msgpack-RPC message: ``msgid`` when one could be read
    (answer it with an error response), else None (answer with an error notification)."""

    msgid: int | None
    reason: str


Message: TypeAlias = Request | Response | Notification
"""Any msgpack-RPC message."""


def error_object(code: str, message: str) -> dict[str, str]:
    """The error object of a response: ``{"code": code, "message": message}``."""
    return {"code": code, "message": message}


def error_parts(error: Any) -> tuple[str, str]:
    """``(code, message)`` of a received error object; any other object is kept as the message
    (other msgpack-RPC servers send strings or arrays), with code ``Failed``."""
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return error["code"], str(error.get("message", ""))
    return Code.FAILED, str(error)


# -- encoding -----------------------------------------------------------------------------------

if msgpack.Packer.__module__ == "msgpack._cmsgpack":
    # The C packer runs no Python code while it packs plain values, so one shared Packer is safe
    # across threads (as in lunatic_mp.cluster.frames) and saves its set-up on every message.
    _pack: Callable[[object], bytes] = msgpack.Packer(use_bin_type=True).pack
else:  # pragma: no cover - the pure-Python fallback

    def _pack(obj: object) -> bytes:
        data: bytes = msgpack.packb(obj, use_bin_type=True)
        return data


def _encode(obj: object) -> bytes:
    try:
        return _pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode a msgpack-RPC message: {exc}") from exc


def encode_request(msgid: int, method: str, params: list[Any] | tuple[Any, ...]) -> bytes:
    """A request as bytes; :class:`ProtocolError` if a param cannot be packed."""
    if not 0 <= msgid <= MAX_MSGID:
        raise ProtocolError(f"msgid {msgid} is not a 32-bit unsigned int")
    return _encode((REQUEST, msgid, method, params))


def encode_response(msgid: int, error: Any, result: Any) -> bytes:
    """A response as bytes; :class:`ProtocolError` if the result cannot be packed."""
    return _encode((RESPONSE, msgid, error, result))


def encode_notification(method: str, params: list[Any] | tuple[Any, ...]) -> bytes:
    """A notification as bytes."""
    return _encode((NOTIFICATION, method, params))


# -- decoding -----------------------------------------------------------------------------------


def _valid_msgid(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_MSGID


def parse(obj: object) -> Message | Invalid:
    """The message a decoded msgpack object is, or :class:`Invalid` saying why it is none."""
    if type(obj) is not list or not obj:
        return Invalid(None, "a msgpack-RPC message is a non-empty array")
    kind = obj[0]
    if kind == REQUEST and type(kind) is int:
        msgid = obj[1] if len(obj) > 1 and _valid_msgid(obj[1]) else None
        if len(obj) != 4:
            return Invalid(msgid, f"a request is [0, msgid, method, params], got {len(obj)} elements")
        if msgid is None:
            return Invalid(None, "a request's msgid must be a 32-bit unsigned int")
        if type(obj[2]) is not str:
            return Invalid(msgid, "a request's method must be a string")
        if type(obj[3]) is not list:
            return Invalid(msgid, "a request's params must be an array")
        return Request(msgid, obj[2], obj[3])
    if kind == RESPONSE and type(kind) is int:
        if len(obj) != 4 or not _valid_msgid(obj[1]):
            return Invalid(None, "a response is [1, msgid, error, result]")
        return Response(obj[1], obj[2], obj[3])
    if kind == NOTIFICATION and type(kind) is int:
        if len(obj) != 3 or type(obj[1]) is not str or type(obj[2]) is not list:
            return Invalid(None, "a notification is [2, method, params]")
        return Notification(obj[1], obj[2])
    return Invalid(None, "a message's type must be 0 (request), 1 (response) or 2 (notification)")


_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException, RecursionError)


class Decoder:
    """Splits a byte stream into messages, refusing any larger than ``max_frame_size`` bytes."""

    __slots__ = ("_fed", "_unpacker", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if max_frame_size < 16:
            raise ValueError(f"max_frame_size must be at least 16 bytes, got {max_frame_size}")
        self.max_frame_size = max_frame_size
        self._unpacker = msgpack.Unpacker(
            raw=False, use_list=True, strict_map_key=False, max_buffer_size=max_frame_size
        )
        self._fed = 0

    @property
    def buffered(self) -> int:
        """Bytes received that are not a whole message yet."""
        return self._fed - int(self._unpacker.tell())

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | Invalid]:
        """The messages that ``data`` completes, in order.

        Raises :class:`ProtocolError` when the stream cannot be read on: bytes that are not
        msgpack, or one message larger than the limit. Messages completed before the bad bytes
        are lost with it: close the connection.
        """
        out: list[Message | Invalid] = []
        view = memoryview(data)
        unpacker = self._unpacker
        while view:
            room = self.max_frame_size - self.buffered
            if room <= 0:
                raise ProtocolError(
                    f"a message is larger than the {self.max_frame_size}-byte limit", Code.TOO_LARGE
                )
            chunk, view = view[:room], view[room:]
            unpacker.feed(chunk)
            self._fed += len(chunk)
            try:
                for obj in unpacker:
                    out.append(parse(obj))
            except _UNPACK_ERRORS as exc:
                if "exceeds max_" in str(exc):  # a header announcing more than the limit
                    raise ProtocolError(
                        f"a message is larger than the {self.max_frame_size}-byte limit ({exc})",
                        Code.TOO_LARGE,
                    ) from exc
                raise ProtocolError(f"not msgpack: {type(exc).__name__}: {exc}") from exc
        return out


__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "ERROR_NOTIFICATION",
    "MAX_MSGID",
    "NOTIFICATION",
    "REQUEST",
    "RESPONSE",
    "Code",
    "Decoder",
    "Invalid",
    "Message",
    "Notification",
    "ProtocolError",
    "Request",
    "Response",
    "encode_notification",
    "encode_request",
    "encode_response",
    "error_object",
    "error_parts",
    "parse",
]
