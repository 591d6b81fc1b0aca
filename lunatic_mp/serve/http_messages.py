"""HTTP requests and replies as lunatic messages, and the route table every worker gets.

The guest convention (docs/serve.md, "HTTP routes"): a request arrives as one data message,
whose sender is the port and whose tag the reply must carry (``lm_reply`` in lunatic.h)::

    u32 method length, method       "GET"
    u32 path length, path           "/hello/world" (as sent: percent-encoded, no query)
    u32 query length, query         "a=1&b=2" (as sent, without "?")
    u32 header count, then per header:
        u32 name length, name       lower-case
        u32 value length, value
    u32 body length, body

and the reply is one data message::

    u32 status                      100..599
    u32 header count, then per header: u32 name length, name, u32 value length, value
    body                            the rest of the message

Integers are little-endian, as Wasm loads them: a guest reads a field with one load and no
parser (msgpack would need a decoder in every C or WAT guest). Content-Length and the
hop-by-hop headers of a reply are the server's to set; a guest's are dropped.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgpack

from lunatic_mp.errors import HttpMessageError
from lunatic_mp.serve.http_limits import HttpLimits

if TYPE_CHECKING:
    pass


_U32 = struct.Struct("<I")
_U32_PAIR = struct.Struct("<II")
MAX_HEADERS = 1000
"""Headers a guest's reply may set, at most."""


@dataclass
class HttpRequest:
    """A request as a guest sees it (:func:`decode_request`)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


def encode_request(
    method: bytes, path: bytes, query: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """A request in the guest convention's layout (module docstring); header names lower-cased."""
    pack = _U32.pack
    parts = [pack(len(method)), method, pack(len(path)), path, pack(len(query)), query]
    parts.append(pack(len(headers)))
    for name, value in headers:
        parts += (pack(len(name)), name.lower(), pack(len(value)), value)
    parts += (pack(len(body)), body)
    return b"".join(parts)


def decode_request(data: bytes) -> HttpRequest:
    """The inverse of :func:`encode_request` (for Python handlers and tests)."""
    reader = _Reader(data, "request")
    method, path, query = (reader.text() for _ in range(3))
    headers = [(reader.text(), reader.text()) for _ in range(reader.count(2**20))]
    body = reader.field()
    reader.end()
    return HttpRequest(method, path, query, headers, body)


def encode_reply(
    status: int, headers: Iterable[tuple[str | bytes, str | bytes]] = (), body: bytes = b""
) -> bytes:
    """A reply in the guest convention's layout (what a guest sends back)."""
    pairs = [(_bytes(name), _bytes(value)) for name, value in headers]
    parts = [_U32_PAIR.pack(status, len(pairs))]
    for name, value in pairs:
        parts += (_U32.pack(len(name)), name, _U32.pack(len(value)), value)
    parts.append(body)
    return b"".join(parts)


def decode_reply(data: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """A guest's reply: status, headers, body. :class:`HttpMessageError` says what is wrong.

    (On every request's path: plain code rather than :class:`_Reader`.)"""
    size = len(data)
    if size < 8:
        raise HttpMessageError(f"the reply ends at byte {size}, in a length field")
    status, count = _U32_PAIR.unpack_from(data)
    if not 100 <= status <= 599:
        raise HttpMessageError(f"the reply's status {status} is not between 100 and 599")
    if count > MAX_HEADERS:
        raise HttpMessageError(f"the reply has {count} headers; at most {MAX_HEADERS} are accepted")
    offset = 8
    headers = []
    unpack = _U32.unpack_from
    for _ in range(count):
        texts = []
        for _ in range(2):
            if offset + 4 > size:
                raise HttpMessageError(f"the reply ends at byte {offset}, in a length field")
            (length,) = unpack(data, offset)
            offset += 4
            end = offset + length
            if end > size:
                raise HttpMessageError(f"a field of the reply at byte {offset} runs past its end")
            try:
                texts.append(data[offset:end].decode())
            except UnicodeDecodeError:
                raise HttpMessageError("a header of the reply is not UTF-8") from None
            offset = end
        name, value = texts
        if not name or _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise HttpMessageError(f"the reply's header {name!r} is not a valid header")
        headers.append((name, value))
    return status, headers, data[offset:]


_BAD_NAME = re.compile(r"[\r\n: ]")
_BAD_VALUE = re.compile(r"[\r\n]")


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


class _Reader:
    """Length-prefixed fields off a message, each read checked against what is left."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = memoryview(data)
        self.offset = 0
        self.what = what

    def u32(self) -> int:
        if self.offset + 4 > len(self.data):
            raise HttpMessageError(f"the {self.what} ends at byte {self.offset}, in a length field")
        (value,) = _U32.unpack_from(self.data, self.offset)
        self.offset += 4
        return int(value)

    def count(self, most: int) -> int:
        count = self.u32()
        if count > most:
            raise HttpMessageError(f"the {self.what} has {count} headers; at most {most} are accepted")
        return count

    def field(self) -> bytes:
        length = self.u32()
        end = self.offset + length
        if end > len(self.data):
            raise HttpMessageError(f"a field of the {self.what} at byte {self.offset} runs past its end")
        value = bytes(self.data[self.offset : end])
        self.offset = end
        return value

    def text(self) -> str:
        try:
            return self.field().decode()
        except UnicodeDecodeError:
            raise HttpMessageError(f"a text field of the {self.what} is not UTF-8") from None

    def end(self) -> None:
        if self.offset != len(self.data):
            raise HttpMessageError(f"{len(self.data) - self.offset} bytes after the {self.what}'s body")


# -- the table the supervisor sends -------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One route as the workers get it. ``module`` (a digest) for a fresh process per request,
    or ``process`` (a registry name, ``name@requirement``)."""

    methods: tuple[str, ...]
    path: str
    timeout: float
    module: bytes = b""
    function: str = "_start"
    config: bytes = b""
    process: str = ""

    @property
    def label(self) -> str:
        """The ``route`` label of its metrics."""
        return self.path


@dataclass
class Table:
    """What every worker's front end serves."""

    host: str
    port: int
    max_body: int
    routes: list[Route] = field(default_factory=list)
    draining: bool = False
    """Stop accepting connections; requests on open ones get 503; in-flight ones finish."""
    limits: HttpLimits = field(default_factory=HttpLimits)
    """How long a client is waited for (:mod:`lunatic_mp.serve.http_server`)."""


def encode_table(table: Table) -> bytes:
    routes = [
        [list(r.methods), r.path, r.timeout, r.module, r.function, r.config, r.process] for r in table.routes
    ]
    fields = [table.host, table.port, table.max_body, routes, table.draining, table.limits.encode()]
    packed: bytes = msgpack.packb(fields)
    return packed


def decode_table(payload: bytes) -> Table:
    host, port, max_body, routes, draining, limits = msgpack.unpackb(payload)
    return Table(
        host,
        port,
        max_body,
        [
            Route(tuple(m), path, t, module, function, config, process)
            for m, path, t, module, function, config, process in routes
        ],
        draining,
        HttpLimits.decode(limits),
    )
