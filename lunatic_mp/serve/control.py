"""The control socket of ``lunatic-mp serve``: msgpack-RPC (:mod:`lunatic_mp.serve.rpc`) on asyncio.

:class:`ControlServer` listens on a unix socket or TCP, reads messages, authenticates clients,
calls the method a request names and writes the answer. What the methods do is the serving
program's business: it hands the server a table of handlers (:mod:`lunatic_mp.serve.server` has them).

A handler takes :class:`Params` and returns the result, or an awaitable of it (a coroutine or
future): a handler that can answer at once costs no task. It fails by raising
:class:`CallError` with a :class:`~lunatic_mp.serve.rpc.Code`; any other exception is a bug, logged
here and answered with ``Internal`` and no details.

What the server guarantees, whatever a client sends:

- nothing received is ever unpickled or executed; messages over ``max_frame_size`` bytes are
  refused (``FrameTooLarge``) and their connection closed, as is one that sends bytes that are
  not msgpack (``MalformedMessage``, as a notification since no request can be named);
- a message that is msgpack but not msgpack-RPC, an unknown method or bad params gets an error
  answer, and the connection goes on;
- with a token (always on TCP), the first request must be ``auth [token]``; the token is
  compared in constant time, and a wrong one (logged), a missing one or ``auth_timeout``
  seconds without it close the connection after an ``Unauthorized`` error; until then a
  message may be at most :data:`MAX_AUTH_FRAME` bytes (``FrameTooLarge`` otherwise), so a
  stranger holds at most that much of the server's memory per connection;
- a client that begins a message and does not finish it within ``message_timeout`` seconds
  (a slow or stalled client holding a connection) is closed after a ``Stalled`` error; the
  clock restarts with each message completed, so a client streaming requests is never cut;
- past ``max_connections``, a new connection gets ``Busy`` and is closed at once;
- every connection the server closes is counted by why (:attr:`ControlServer.closed`), as is
  every error answer by code (:attr:`ControlServer.errors`), for ``/metrics``;
- a client that sends faster than it reads is not buffered without bound: past
  :data:`MAX_PENDING` unanswered requests, or while its answers wait to be written, the server
  stops reading from it;
- when draining (the server is stopping), requests already read are finished, new ones get
  ``ShuttingDown``, and no new connections are taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lunatic_mp.errors import InvalidNameError, LunaticError, ProtocolError, ServeConfigError, SpawnError
from lunatic_mp.serve import rpc
from lunatic_mp.serve.config import Address, ControlConfig, TcpAddress, UnixAddress
from lunatic_mp.serve.rpc import Code

log = logging.getLogger(__name__)

MAX_PENDING = 4096
"""Unanswered requests on one connection past which the server stops reading from it."""

AUTH_METHOD = "auth"
MAX_AUTH_FRAME = 4096
"""The largest message a connection may send before it has authenticated (``auth [token]``
fits easily): until then a client is a stranger, and may not make the server buffer more."""


class CallError(Exception):
    """A method's failure, answered as the error object ``{"code": code, "message": message}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_MISSING: Any = object()


class Params:
    """A request's params, read by position with a type check each (bad ones raise
    :class:`CallError` ``BadParams`` naming the method and the param). A nil param counts as
    absent: it takes the default."""

    __slots__ = ("method", "values")

    def __init__(self, method: str, values: list[Any]) -> None:
        self.method = method
        self.values = values

    def at_most(self, count: int) -> None:
        if len(self.values) > count:
            raise CallError(
                Code.BAD_PARAMS, f"{self.method} takes at most {count} params, got {len(self.values)}"
            )

    def _get(self, index: int, name: str, default: Any) -> Any:
        if index < len(self.values) and self.values[index] is not None:
            return self.values[index]
        if default is _MISSING:
            raise CallError(Code.BAD_PARAMS, f"{self.method} needs param {index + 1}, {name}")
        return default

    def bad(self, index: int, name: str, wanted: str) -> CallError:
        got = self.values[index]
        return CallError(
            Code.BAD_PARAMS,
            f"{self.method} param {index + 1}, {name}, must be {wanted}, got {_describe(got)}",
        )

    def integer(
        self, index: int, name: str, default: Any = _MISSING, *, low: int = -(2**63), high: int = 2**64 - 1
    ) -> Any:
        value = self._get(index, name, default)
        if value is default:
            return value
        if type(value) is not int:
            raise self.bad(index, name, "an integer")
        if not low <= value <= high:
            raise CallError(
                Code.BAD_PARAMS, f"{self.method} param {index + 1}, {name}, is out of range: {value}"
            )
        return value

    def number(self, index: int, name: str, default: Any = _MISSING) -> Any:
        value = self._get(index, name, default)
        if value is default:
            return value
        if type(value) not in (int, float) or value != value or value < 0:  # noqa: PLR0124 - NaN
            raise self.bad(index, name, "a non-negative number of seconds")
        return float(value)

    def text(self, index: int, name: str, default: Any = _MISSING) -> Any:
        value = self._get(index, name, default)
        if value is not default and type(value) is not str:
            raise self.bad(index, name, "a string")
        return value

    def binary(self, index: int, name: str, default: Any = _MISSING) -> Any:
        """bin, or str (sent as its UTF-8 bytes)."""
        value = self._get(index, name, default)
        if type(value) is str:
            return value.encode()
        if value is not default and type(value) is not bytes:
            raise self.bad(index, name, "bytes (bin) or a string")
        return value

    def mapping(self, index: int, name: str, default: Any = _MISSING) -> Any:
        value = self._get(index, name, default)
        if value is not default and (type(value) is not dict or not all(type(k) is str for k in value)):
            raise self.bad(index, name, "a map with string keys")
        return value

    def integers(self, index: int, name: str, default: Any = _MISSING) -> Any:
        value = self._get(index, name, default)
        if value is not default and (type(value) is not list or not all(type(v) is int for v in value)):
            raise self.bad(index, name, "an array of integers")
        return value

    def target(self, index: int, name: str = "process") -> Any:
        """A pid (int) or a registry name (str, ``name`` or ``name@requirement``)."""
        value = self._get(index, name, _MISSING)
        if type(value) is int:
            if value <= 0 or value >= 2**63:
                raise CallError(Code.BAD_PARAMS, f"{self.method} param {index + 1}: {value} is no pid")
            return value
        if type(value) is str and value:
            return value
        raise self.bad(index, name, "a pid or a registry name")


def _describe(value: object) -> str:
    names = {type(None): "nil", bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names |= {bytes: "bin", list: "an array", dict: "a map"}
    return names.get(type(value), type(value).__name__)


Handler = Callable[[Params], Any]
"""A method: params in, the result (or an awaitable of it) out."""


@dataclass(frozen=True)
class Method:
    handler: Handler
    while_draining: bool = False
    """Whether it still runs while the server drains (``stop``, ``ping``)."""


class ControlServer:
    """Serves ``methods`` on ``config.address`` (see the module docstring)."""

    def __init__(self, methods: dict[str, Method], config: ControlConfig) -> None:
        if AUTH_METHOD in methods:
            raise ValueError(f"{AUTH_METHOD!r} is the server's own method")
        self.methods = methods
        self.config = config
        self.token = config.token.encode() if config.token is not None else None
        self.connections: set[_Connection] = set()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        """Connections the server closed, by why: ``busy``, ``no_token``, ``wrong_token``,
        ``auth_timeout``, ``stalled``, ``not_msgpack``, ``too_large``."""
        self.in_flight = 0
        self.draining = False
        self.address: Address | None = None
        self._server: asyncio.AbstractServer | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._socket_path: tuple[Path, int] | None = None  # the unix socket this server made

    async def start(self) -> Address:
        """Listen; the address bound (a TCP port 0 becomes the real port)."""
        loop = asyncio.get_running_loop()
        address = self.config.address
        if isinstance(address, UnixAddress):
            sock = _unix_listener(address.path)
            self._socket_path = (address.path, os.stat(address.path).st_ino)
            self._server = await loop.create_unix_server(lambda: _Connection(self), sock=sock)
            self.address = address
        else:
            try:
                self._server = await loop.create_server(
                    lambda: _Connection(self), address.host, address.port, reuse_address=True
                )
            except OSError as exc:
                raise ServeConfigError(
                    f"cannot listen on {address}: {exc.strerror or exc} (pass another --control address)"
                ) from None
            port = self._server.sockets[0].getsockname()[1]
            self.address = TcpAddress(address.host, port)
        return self.address

    def started(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drain(self, timeout: float) -> int:
        """Stop taking connections and new requests; wait up to ``timeout`` seconds for the
        requests already read. How many were still unanswered at the end (abandoned)."""
        self.draining = True
        self._stop_listening()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        return self.in_flight

    async def close(self) -> None:
        """Close every connection (after writing what is queued for it)."""
        self.draining = True
        self._stop_listening()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()

    def _stop_listening(self) -> None:
        if self._server is not None and self._server.is_serving():
            self._server.close()
        if self._socket_path is not None:
            path, inode = self._socket_path
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:  # ours, not a newer server's
                    path.unlink()
            self._socket_path = None

    def check_token(self, token: object) -> bool:
        if self.token is None:
            return True
        given = token.encode() if isinstance(token, str) else token if isinstance(token, bytes) else b""
        return hmac.compare_digest(given, self.token)


def _unix_listener(path: Path) -> socket.socket:
    """A listening unix socket at ``path``, only for this user (mode 0600; the default
    directory 0700). A socket file left by a dead server is replaced; a live server's is not."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(path.parent)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ServeConfigError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: a dead server's
        else:
            raise ServeConfigError(f"another server is listening at {path} (pass another --control address)")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _check_private(directory: Path) -> None:
    """A socket's directory inside a directory anyone may write (``/tmp``) must be this user's
    alone, or another user could have made it to watch or replace the socket."""
    outer = os.stat(directory.parent)
    if not outer.st_mode & stat.S_IWOTH:
        return
    inner = os.stat(directory)
    if inner.st_uid != os.getuid() or inner.st_mode & 0o077:
        raise ServeConfigError(
            f"{directory} must belong to this user and be private (mode 0700) for a socket in it"
        )


class _Connection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.decoder = rpc.Decoder(server.config.max_frame_size)
        self.authenticated = server.token is None
        if not self.authenticated:  # a stranger: small messages only, until the token is checked
            self.decoder.max_frame_size = min(MAX_AUTH_FRAME, server.config.max_frame_size)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.pending = 0
        self.write_paused = False
        self.read_paused = False
        self.closing = False
        self.auth_timer: asyncio.TimerHandle | None = None
        self.message_timer: asyncio.TimerHandle | None = None  # armed while a message is partial
        self.futures: set[asyncio.Future[Any]] = set()

    # --- asyncio's side -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.server.connections) >= self.server.config.max_connections:
            self.fail(
                Code.BUSY, f"the server has {len(self.server.connections)} connections, its limit", "busy"
            )
            return
        self.server.connections.add(self)
        if not self.authenticated:
            self.auth_timer = self.loop.call_later(self.server.config.auth_timeout, self._auth_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        self._disarm_message_timer()
        for future in list(self.futures):  # nobody is left to answer
            future.cancel()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            messages = self.decoder.feed(data)
        except ProtocolError as exc:
            self.fail(exc.code, str(exc), "too_large" if exc.code == Code.TOO_LARGE else "not_msgpack")
            return
        if messages:  # progress: a message begun now gets the full time
            self._disarm_message_timer()
        if self.decoder.buffered and self.message_timer is None:
            self.message_timer = self.loop.call_later(self.server.config.message_timeout, self._stalled)
        for message in messages:
            if self.closing:
                return
            self.handle(message)

    # --- messages -----------------------------------------------------------------------------

    def handle(self, message: rpc.Message | rpc.Invalid) -> None:
        server = self.server
        if type(message) is rpc.Request:
            msgid, method, values = message
        elif type(message) is rpc.Notification:
            msgid, (method, values) = None, message
        elif type(message) is rpc.Invalid:
            if message.msgid is None:
                self.notify_error(Code.MALFORMED, message.reason)
            else:
                self.answer_error(message.msgid, "(invalid)", Code.MALFORMED, message.reason)
            return
        else:  # a Response: this server asks nothing
            self.notify_error(Code.MALFORMED, "the server sends no requests, so it takes no responses")
            return
        if not self.authenticated:
            self.authenticate(msgid, method, values)
            return
        if method == AUTH_METHOD:
            self.answer(msgid, method, True)
            return
        entry = server.methods.get(method)
        if entry is None:
            server.requests["(unknown)"] += 1
            self.answer_error(msgid, method, Code.UNKNOWN_METHOD, f"no method {method!r}")
            return
        server.requests[method] += 1
        if server.draining and not entry.while_draining:
            self.answer_error(msgid, method, Code.SHUTTING_DOWN, "the server is stopping")
            return
        try:
            result = entry.handler(Params(method, values))
        except CallError as exc:
            self.answer_error(msgid, method, exc.code, exc.message)
            return
        except Exception:  # a handler's bug must not take the server down
            log.exception("control method %s failed", method)
            self.answer_error(msgid, method, Code.INTERNAL, "the server failed; see its log")
            return
        if asyncio.isfuture(result):
            future: asyncio.Future[Any] = result
        elif asyncio.iscoroutine(result):
            future = self.loop.create_task(result)
        else:
            self.answer(msgid, method, result)
            return
        self.futures.add(future)
        self.pending += 1
        server.started()
        if self.pending >= MAX_PENDING:
            self._update_reading()
        future.add_done_callback(lambda done: self._finish(msgid, method, done))

    def _finish(self, msgid: int | None, method: str, done: asyncio.Future[Any]) -> None:
        self.futures.discard(done)
        self.pending -= 1
        self.server.finished()
        if self.read_paused:
            self._update_reading()
        if done.cancelled():
            self.answer_error(msgid, method, Code.SHUTTING_DOWN, "the server stopped before answering")
            return
        exc = done.exception()
        if exc is None:
            self.answer(msgid, method, done.result())
        elif isinstance(exc, CallError):
            self.answer_error(msgid, method, exc.code, exc.message)
        else:
            log.error("control method %s failed", method, exc_info=exc)
            self.answer_error(msgid, method, Code.INTERNAL, "the server failed; see its log")

    def authenticate(self, msgid: int | None, method: str, values: list[Any]) -> None:
        if method != AUTH_METHOD:
            self.server.closed["no_token"] += 1
            self.answer_error(msgid, method, Code.UNAUTHORIZED, "send `auth [token]` first")
            self.close()
            return
        if len(values) != 1 or not self.server.check_token(values[0]):
            log.warning("control connection %s gave a wrong token; closing it", self.peer())
            self.server.closed["wrong_token"] += 1
            self.answer_error(msgid, method, Code.UNAUTHORIZED, "wrong token")
            self.close()
            return
        self.authenticated = True
        self.decoder.max_frame_size = self.server.config.max_frame_size
        if self.auth_timer is not None:
            self.auth_timer.cancel()
            self.auth_timer = None
        self.answer(msgid, method, True)

    def _auth_expired(self) -> None:
        if not self.authenticated and not self.closing:
            self.fail(Code.UNAUTHORIZED, "no token within the time allowed", "auth_timeout")

    def _stalled(self) -> None:
        self.message_timer = None
        if not self.closing and not self.read_paused:
            timeout = self.server.config.message_timeout
            self.fail(
                Code.STALLED, f"a message was begun and not finished within {timeout:g} seconds", "stalled"
            )

    def _disarm_message_timer(self) -> None:
        if self.message_timer is not None:
            self.message_timer.cancel()
            self.message_timer = None

    # --- answers ------------------------------------------------------------------------------

    def answer(self, msgid: int | None, method: str, result: Any) -> None:
        if msgid is None or self.closing:
            return
        try:
            data = rpc.encode_response(msgid, None, result)
        except ProtocolError:
            log.exception("the result of %s cannot be encoded", method)
            self.answer_error(msgid, method, Code.INTERNAL, "the server failed; see its log")
            return
        self.write(data)

    def answer_error(self, msgid: int | None, method: str, code: str, message: str) -> None:
        self.server.errors[code] += 1
        if msgid is None:
            log.debug("notification %s failed: %s: %s", method, code, message)
            return
        self.respond_error(msgid, code, message)

    def respond_error(self, msgid: int, code: str, message: str) -> None:
        if msgid is not None and not self.closing:
            self.write(rpc.encode_response(msgid, rpc.error_object(code, message), None))

    def notify_error(self, code: str, message: str) -> None:
        self.server.errors[code] += 1
        if not self.closing:
            self.write(rpc.encode_notification(rpc.ERROR_NOTIFICATION, [rpc.error_object(code, message)]))

    def fail(self, code: str, message: str, reason: str) -> None:
        """An error the connection cannot go on after: say it, then close (counted under
        ``reason`` in :attr:`ControlServer.closed`)."""
        log.info("closing control connection %s: %s: %s", self.peer(), code, message)
        self.server.closed[reason] += 1
        self.notify_error(code, message)
        self.close()

    def write(self, data: bytes) -> None:
        """Queue ``data``; answers are written together once per turn of the event loop."""
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.transport.is_closing():
            data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
            self.transport.write(data)
        self.out.clear()

    def close(self) -> None:
        """Write what is queued, then close."""
        if self.transport is None or self.closing:
            return
        self.flush()
        self.closing = True
        self.transport.close()

    def _update_reading(self) -> None:
        if self.transport is None or self.closing:
            return
        should_pause = self.write_paused or self.pending >= MAX_PENDING
        if should_pause and not self.read_paused:
            self.transport.pause_reading()
            self.read_paused = True
            self._disarm_message_timer()  # the rest of a message waits on us, not on the client
        elif not should_pause and self.read_paused and self.pending < MAX_PENDING // 2:
            self.transport.resume_reading()
            self.read_paused = False
            if self.decoder.buffered and self.message_timer is None:
                self.message_timer = self.loop.call_later(self.server.config.message_timeout, self._stalled)

    def peer(self) -> str:
        if self.transport is None:
            return "?"
        name = self.transport.get_extra_info("peername")
        return str(name) if name else "(unix)"


def lunatic_error_code(exc: LunaticError) -> str:
    """The error code for a runtime error (``SpawnError``, ``InvalidName``, else ``Failed``)."""
    if isinstance(exc, SpawnError):
        return Code.SPAWN_ERROR
    if isinstance(exc, InvalidNameError):
        return Code.INVALID_NAME
    return Code.FAILED


__all__ = ["MAX_PENDING", "CallError", "ControlServer", "Handler", "Method", "Params", "lunatic_error_code"]
