"""Python clients of ``lunatic-mp serve``'s control socket, mirroring the Runtime API.

>>> with lunatic_mp.connect() as client:           # the default socket, or an address
...     counter = client.registry_get("counter")
...     print(client.request(counter, b"5").data)  # b'5'
...     pid = client.spawn("counter", "add", [2, 3])
...     print(client.join(pid))                      # finished normally with (5,)

:class:`Client` is synchronous: one call at a time per client (calls from several threads wait
for each other; give each thread its own client to go faster). :class:`AsyncClient` is its
asyncio twin, and keeps any number of calls in flight on one connection.

Calls mirror :class:`~lunatic_mp.api.runtime.Runtime` and take the same values, with two
differences: a module is named by the name the server's config gives it (``spawn("counter",
...)``), and wherever a process is expected, a registry name (``"counter"`` or
``"counter@^1.0"``) works as well as a pid or a process handle. Errors the server answers with
become exceptions: :class:`~lunatic_mp.errors.SpawnError`,
:class:`~lunatic_mp.errors.InvalidNameError` and :class:`TimeoutError` where the Runtime raises
those, else :class:`~lunatic_mp.errors.RemoteError` with the error's ``code``. A connection the
server closed raises :class:`ConnectionError`.

Addresses are those of the server (:func:`lunatic_mp.serve.config.parse_address`):
``unix:PATH``, a path (str or Path), ``tcp:HOST:PORT`` or ``HOST:PORT``; None means ``$LUNATIC_MP_CONNECT``
or the server's default socket. A token, when the server has one, is sent first (``auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from lunatic_mp.api.handles import Process
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import InvalidNameError, ProtocolError, RemoteError, SpawnError, UntrustedServer
from lunatic_mp.serve import calls, rpc
from lunatic_mp.serve.calls import WAIT, Call, ProcessInfo
from lunatic_mp.serve.config import Address, TcpAddress, UnixAddress, client_address, parse_address
from lunatic_mp.serve.peer import check_peer, check_socket_path
from lunatic_mp.serve.rpc import Code
from lunatic_mp.vm.finished import Finished
from lunatic_mp.vm.mailbox import Message

DEFAULT_TIMEOUT = 30.0
"""Seconds a call waits for its answer, unless it says otherwise (``request`` and ``join``
wait as long as they ask the server to, plus this margin)."""
READ_SIZE = 256 * 1024

T = TypeVar("T")


# -- how both clients read the server's errors and find it --------------------------------------


def _exception(error: Any) -> Exception:
    """The exception for an error the server answered with."""
    code, message = rpc.error_parts(error)
    if code == Code.TIMEOUT:
        return TimeoutError(message)
    if code == Code.SPAWN_ERROR:
        return SpawnError(message)
    if code == Code.INVALID_NAME:
        return InvalidNameError(message)
    return RemoteError(code, message)


def _address(address: str | Path | Address | None) -> Address:
    if isinstance(address, UnixAddress | TcpAddress):
        return address
    if isinstance(address, Path):
        return UnixAddress(address)
    return client_address(address) if address is None else parse_address(address)


def _no_server(address: Address, exc: OSError) -> ConnectionError:
    return ConnectionError(f"no lunatic-mp server at {address} ({exc.strerror or exc})")


# -- the synchronous client ----------------------------------------------------------------------


class Client:
    """A connection to a server's control socket (see the module docstring)."""

    def __init__(
        self,
        address: str | Path | Address | None = None,
        token: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_frame_size: int = rpc.DEFAULT_MAX_FRAME_SIZE,
    ) -> None:
        self.address = _address(address)
        self.timeout = timeout
        self._decoder = rpc.Decoder(max_frame_size)
        self._ready: list[rpc.Message | rpc.Invalid] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._sock = self._connect()
        try:
            if token is not None:
                self.call("auth", token)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> socket.socket:
        address = self.address
        try:
            if isinstance(address, UnixAddress):
                check_socket_path(address.path)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(str(address.path))
                    check_peer(sock, address)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((address.host, address.port), self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise _no_server(address, exc) from None
        return sock

    def call(self, method: str, *params: Any, timeout: Any = WAIT) -> Any:
        """Call ``method`` with ``params``; its result, or the exception for its error."""
        wait = self.timeout if timeout is WAIT else timeout
        with self._lock:
            msgid = next(self._ids) & rpc.MAX_MSGID
            self._send(rpc.encode_request(msgid, method, list(params)))
            deadline = None if wait is None else time.monotonic() + wait
            while True:
                message = self._next(deadline)
                if type(message) is rpc.Response and message.msgid == msgid:
                    if message.error is not None:
                        raise _exception(message.error)
                    return message.result
                self._unexpected(message)

    def make(self, call: Call[T]) -> T:
        """Make a call (:mod:`lunatic_mp.serve.calls`); its answer as the call reads it."""
        return call.read(self.call(call.method, *call.params, timeout=call.timeout))

    def notify(self, method: str, *params: Any) -> None:
        """Send a notification: ``method`` runs, and nothing is answered (not even an error)."""
        with self._lock:
            self._send(rpc.encode_notification(method, list(params)))

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionError("the client is closed")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise ConnectionError(f"lost the connection to {self.address}: {exc}") from exc

    def _next(self, deadline: float | None) -> rpc.Message | rpc.Invalid:
        while not self._ready:
            assert self._sock is not None
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if remaining == 0.0:
                raise TimeoutError(f"no answer from {self.address} in time")
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(READ_SIZE)
            except TimeoutError:
                raise TimeoutError(f"no answer from {self.address} in time") from None
            except OSError as exc:
                raise ConnectionError(f"lost the connection to {self.address}: {exc}") from exc
            if not data:
                raise ConnectionError(f"the server at {self.address} closed the connection")
            self._ready.extend(self._decoder.feed(data))
        return self._ready.pop(0)

    @staticmethod
    def _unexpected(message: rpc.Message | rpc.Invalid) -> None:
        """A message that answers no call of ours: the server's error notice, or a late answer
        to a call that timed out (ignored)."""
        if type(message) is rpc.Notification and message.method == rpc.ERROR_NOTIFICATION:
            raise _exception(message.params[0] if message.params else "error")
        if type(message) is rpc.Invalid:
            raise ProtocolError(f"the server sent no msgpack-RPC message: {message.reason}")

    def wait_closed(self, timeout: float | None = 60.0) -> None:
        """Wait until the server closes the connection (after ``stop_server``)."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            with contextlib.suppress(ConnectionError):
                while True:
                    self._unexpected(self._next(deadline))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None  # type: ignore[assignment]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the Runtime API ----------------------------------------------------------------------

    def ping(self) -> None:
        """A round trip that does nothing."""
        self.make(calls.ping())

    def spawn(
        self,
        module: str,
        function: str = "_start",
        params: Any = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        name: str | None = None,
        version: str | None = None,
    ) -> int:
        """Start ``module.function(*params)`` under ``config`` (default: the server's
        EnvConfig(), everything denied); its pid. ``name`` (and ``version``) register it."""
        return self.make(calls.spawn(module, function, params, config, worker, name, version))

    def send(self, process: Process | int | str, data: bytes | str = b"", tag: int = 0) -> None:
        """Send ``data`` with ``tag`` to a process (from the server's host mailbox)."""
        self.make(calls.send(process, data, tag))

    def request(
        self, process: Process | int | str, data: bytes | str = b"", *, timeout: float = 30.0
    ) -> Message:
        """Send ``data`` with a fresh tag and wait for the reply with that tag (the guest replies
        to the sender with the request's tag); :class:`TimeoutError` after ``timeout`` seconds."""
        return self.make(calls.request(process, data, timeout, self.timeout or DEFAULT_TIMEOUT))

    def join(self, pid: Process | int, timeout: float | None = None) -> Finished | None:
        """How a process spawned through the server ended; None after ``timeout`` seconds."""
        return self.make(calls.join(pid, timeout, self.timeout or DEFAULT_TIMEOUT))

    def kill(self, process: Process | int | str, reason: str | None = None) -> None:
        self.make(calls.kill(process, reason))

    def exists(self, process: Process | int | str) -> bool:
        return self.make(calls.exists(process))

    def registry_put(self, name: str, pid: Process | int) -> None:
        """Register ``pid`` as ``name`` (``name@version`` for a version)."""
        self.make(calls.registry_put(name, pid))

    def registry_get(self, name: str) -> int | None:
        """The pid registered as ``name`` (``name@requirement``: the newest matching), or None."""
        return self.make(calls.registry_get(name))

    def registry_remove(self, name: str) -> None:
        """Remove ``name@version``, or every version of ``name``."""
        self.make(calls.registry_remove(name))

    @property
    def registry(self) -> RemoteRegistry:
        """The registry as :class:`lunatic_mp.api.handles.Registry` shows it (versions apart)."""
        return RemoteRegistry(self)

    def registry_names(self) -> list[tuple[str, str | None, int]]:
        """Every registry entry: ``(name, version or None, pid)``."""
        return self.make(calls.registry_names())

    def processes(self, limit: int = 10_000) -> tuple[int, list[ProcessInfo]]:
        """How many live processes there are, and at most ``limit`` of each worker's."""
        return self.make(calls.processes(limit))

    def stats(self) -> dict[str, Any]:
        """``{"workers": [each worker's figures], "server": {the server's own}}``."""
        return self.make(calls.stats())

    def modules(self) -> list[dict[str, Any]]:
        """The modules the server serves: name, path and exports."""
        return self.make(calls.modules())

    def reload(self) -> list[str]:
        """Compile the server's modules again (as SIGHUP does); the names reloaded."""
        return self.make(calls.reload())

    def stop_server(self, *, wait: bool = True, timeout: float | None = 60.0) -> None:
        """Ask the server to stop (it drains first); with ``wait``, return once it has."""
        self.make(calls.stop())
        if wait:
            self.wait_closed(timeout)


class RemoteRegistry:
    """Versions apart from names, as :class:`lunatic_mp.api.handles.Registry`; pids, not handles."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def put(self, name: str, version: str | None, process: Process | int) -> None:
        self._client.make(calls.register(name, version, process))

    def get(self, name: str, requirement: str | None = None) -> int | None:
        return self._client.make(calls.lookup(name, requirement))

    def remove(self, name: str, version: str | None = None) -> None:
        self._client.make(calls.unregister(name, version))


def connect(
    address: str | Path | Address | None = None,
    token: str | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> Client:
    """A :class:`Client` connected to the server at ``address`` (None: ``$LUNATIC_MP_CONNECT``
    or the default socket); ``token`` when the server asks for one."""
    return Client(address, token, timeout=timeout)


# -- the asyncio client --------------------------------------------------------------------------


class AsyncClient:
    """The asyncio twin of :class:`Client`: the same calls, awaitable, any number in flight.

    >>> async with await AsyncClient.connect() as client:
    ...     replies = await asyncio.gather(*(client.request("counter", b"1") for _ in range(100)))
    """

    def __init__(self, address: Address, timeout: float | None, max_frame_size: int) -> None:
        self.address = address
        self.timeout = timeout
        self._decoder = rpc.Decoder(max_frame_size)
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None

    @classmethod
    async def connect(
        cls,
        address: str | Path | Address | None = None,
        token: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_frame_size: int = rpc.DEFAULT_MAX_FRAME_SIZE,
    ) -> AsyncClient:
        client = cls(_address(address), timeout, max_frame_size)
        target = client.address
        try:
            if isinstance(target, UnixAddress):
                check_socket_path(target.path)
                opened = asyncio.open_unix_connection(str(target.path), limit=READ_SIZE)
            else:
                opened = asyncio.open_connection(target.host, target.port, limit=READ_SIZE)
            client._reader, client._writer = await asyncio.wait_for(opened, timeout)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise _no_server(target, exc) from None
        sock = client._writer.get_extra_info("socket") if client._writer is not None else None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        elif sock is not None:
            try:
                check_peer(sock, target)
            except UntrustedServer:
                client._writer.close()  # type: ignore[union-attr]
                raise
        client._closed = asyncio.get_running_loop().create_future()
        client._task = asyncio.create_task(client._read())
        try:
            if token is not None:
                await client.call("auth", token)
        except BaseException:
            await client.close()
            raise
        return client

    async def _read(self) -> None:
        assert self._reader is not None and self._closed is not None
        failure: Exception = ConnectionError(f"the server at {self.address} closed the connection")
        try:
            while data := await self._reader.read(READ_SIZE):
                for message in self._decoder.feed(data):
                    if type(message) is rpc.Response:
                        call = self._calls.pop(message.msgid, None)
                        if call is not None and not call.done():
                            if message.error is None:
                                call.set_result(message.result)
                            else:
                                call.set_exception(_exception(message.error))
                    elif type(message) is rpc.Notification and message.method == rpc.ERROR_NOTIFICATION:
                        failure = _exception(message.params[0] if message.params else "error")
        except (OSError, ProtocolError) as exc:
            failure = ConnectionError(f"lost the connection to {self.address}: {exc}")
        finally:
            for call in self._calls.values():
                if not call.done():
                    call.set_exception(failure)
            self._calls.clear()
            if not self._closed.done():
                self._closed.set_result(None)

    async def call(self, method: str, *params: Any, timeout: Any = WAIT) -> Any:
        """Call ``method``; its result, or the exception for its error."""
        if self._writer is None or self._closed is None or self._closed.done():
            raise ConnectionError(f"the connection to {self.address} is closed")
        msgid = next(self._ids) & rpc.MAX_MSGID
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[msgid] = answer
        self._writer.write(rpc.encode_request(msgid, method, list(params)))
        wait = self.timeout if timeout is WAIT else timeout
        try:
            return await asyncio.wait_for(answer, wait)
        finally:
            self._calls.pop(msgid, None)

    async def make(self, call: Call[T]) -> T:
        """Make a call (:mod:`lunatic_mp.serve.calls`); its answer as the call reads it."""
        return call.read(await self.call(call.method, *call.params, timeout=call.timeout))

    async def wait_closed(self, timeout: float | None = 60.0) -> None:
        """Wait until the server closes the connection."""
        assert self._closed is not None
        await asyncio.wait_for(asyncio.shield(self._closed), timeout)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the Runtime API (see Client) ---------------------------------------------------------

    async def ping(self) -> None:
        await self.make(calls.ping())

    async def spawn(
        self,
        module: str,
        function: str = "_start",
        params: Any = (),
        config: EnvConfig | None = None,
        *,
        worker: int | None = None,
        name: str | None = None,
        version: str | None = None,
    ) -> int:
        return await self.make(calls.spawn(module, function, params, config, worker, name, version))

    async def send(self, process: Process | int | str, data: bytes | str = b"", tag: int = 0) -> None:
        await self.make(calls.send(process, data, tag))

    async def request(
        self, process: Process | int | str, data: bytes | str = b"", *, timeout: float = 30.0
    ) -> Message:
        return await self.make(calls.request(process, data, timeout, self.timeout or DEFAULT_TIMEOUT))

    async def join(self, pid: Process | int, timeout: float | None = None) -> Finished | None:
        return await self.make(calls.join(pid, timeout, self.timeout or DEFAULT_TIMEOUT))

    async def kill(self, process: Process | int | str, reason: str | None = None) -> None:
        await self.make(calls.kill(process, reason))

    async def exists(self, process: Process | int | str) -> bool:
        return await self.make(calls.exists(process))

    async def registry_put(self, name: str, pid: Process | int) -> None:
        await self.make(calls.registry_put(name, pid))

    async def registry_get(self, name: str) -> int | None:
        return await self.make(calls.registry_get(name))

    async def registry_remove(self, name: str) -> None:
        await self.make(calls.registry_remove(name))

    async def registry_names(self) -> list[tuple[str, str | None, int]]:
        return await self.make(calls.registry_names())

    async def processes(self, limit: int = 10_000) -> tuple[int, list[ProcessInfo]]:
        return await self.make(calls.processes(limit))

    async def stats(self) -> dict[str, Any]:
        return await self.make(calls.stats())

    async def modules(self) -> list[dict[str, Any]]:
        return await self.make(calls.modules())

    async def reload(self) -> list[str]:
        return await self.make(calls.reload())

    async def stop_server(self, *, wait: bool = True, timeout: float | None = 60.0) -> None:
        await self.make(calls.stop())
        if wait:
            await self.wait_closed(timeout)


async def connect_async(
    address: str | Path | Address | None = None,
    token: str | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> AsyncClient:
    """An :class:`AsyncClient` connected to the server at ``address``."""
    return await AsyncClient.connect(address, token, timeout=timeout)


__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "Client",
    "ProcessInfo",
    "RemoteRegistry",
    "connect",
    "connect_async",
]
