"""HTTP routes of ``lunatic-mp serve``, served by every worker on one port (SO_REUSEPORT).

Each worker runs an aiohttp server on its own event loop (the one that drives its processes,
:meth:`Worker.run <lunatic_mp.cluster.worker.Worker.run>`), so a request reaches a guest with no hop
through the supervisor: the kernel spreads connections over the workers, and the worker that
accepted one spawns the handler (a fresh process per request) or sends the request to a
registered process (anywhere in the runtime). Replies and death notices come back to the
front end's *port*: a process of the worker's engine that Python drives (it never runs), whose
deliveries resolve the waiting request.

The supervisor hands every worker a :class:`Table` (address, body limit, routes with module
digests) in its :class:`~lunatic_mp.cluster.specs.WorkerSpec` and, when it changes (a reload, the
drain before stopping), in an :class:`~lunatic_mp.cluster.frames.HttpRoutes` frame; a worker started
later (a replacement after a crash) gets the latest in its spec.

The guest convention (requests and replies as messages) and the route table are in
:mod:`lunatic_mp.serve.http_messages`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict

from lunatic_mp.cluster import frames
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import HttpMessageError, LunaticError, ServeConfigError
from lunatic_mp.pids import REGISTRY
from lunatic_mp.serve import http_server
from lunatic_mp.serve.http_limits import HttpLimits
from lunatic_mp.serve.http_messages import (
    HttpRequest,
    Route,
    Table,
    decode_reply,
    decode_request,
    decode_table,
    encode_reply,
    encode_request,
    encode_table,
)
from lunatic_mp.vm.finished import Finished
from lunatic_mp.vm.mailbox import Kind, Mailbox, Message
from lunatic_mp.vm.process import BaseProcess, Phase

if TYPE_CHECKING:
    from lunatic_mp.cluster.worker import Worker
    from lunatic_mp.vm.module import Module

log = logging.getLogger(__name__)

NAME_TTL = 1.0
"""Seconds a worker trusts a registry lookup of a route's process (sooner forgotten when that
process dies: the port monitors it)."""
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the request latency histogram's buckets; one more for the rest."""
UNMATCHED = "none"
"""The ``route`` label of requests no route matched (404, 405)."""
DROPPED_REPLY_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
RESOLVED_PATHS = 4096
"""(method, path) pairs whose route a worker remembers (aiohttp's matching costs more than the
lookup); forgotten all at once when there are more, and when the routes change."""
CLOSE_TIMEOUT = 5.0
"""Seconds a stopping worker gives its open connections (the drain came before)."""


def check_routes(routes: Sequence[tuple[Sequence[str], str]]) -> None:
    """Raise :class:`ServeConfigError` unless aiohttp accepts every (methods, path) pattern."""
    _dispatcher([(methods, path, index) for index, (methods, path) in enumerate(routes)])


def _dispatcher(
    routes: Iterable[tuple[Sequence[str], str, int]],
) -> tuple[web.UrlDispatcher, dict[web.AbstractRoute, int]]:
    """An aiohttp router that only resolves (its handlers are never called), and the index of
    the route each of its routes stands for."""
    dispatcher = web.UrlDispatcher()
    indexes = {}
    for methods, path, index in routes:
        for method in methods:
            try:
                indexes[dispatcher.add_route(method, path, _never_called)] = index
            except (ValueError, RuntimeError) as exc:
                raise ServeConfigError(f"route {method} {path}: {exc}") from None
    return dispatcher, indexes


async def _never_called(request: web.Request) -> web.StreamResponse:
    raise AssertionError("the front end resolves routes and handles them itself")


# -- the worker's front end ---------------------------------------------------------------------


class _PortMailbox(Mailbox):
    """A mailbox that hands each message to the front end instead of keeping it."""

    __slots__ = ("on_message",)

    def __init__(self, on_message: Any) -> None:
        super().__init__()
        self.on_message = on_message

    def put(self, message: Message) -> None:
        self.on_message(message)


class Port(BaseProcess):
    """The front end's pid: replies and death notices for requests go here; it never runs."""

    native = True
    function = "lunatic_mp.serve.http (port)"

    def __init__(self, pid: int, on_message: Any) -> None:
        super().__init__(pid, EnvConfig())
        self.phase = Phase.RUNNING
        self.mailbox = _PortMailbox(on_message)
        self.die_when_link_dies = False


@dataclass
class _Bound:
    """A route with what serving it needs in this worker."""

    route: Route
    module: Module | None
    config: EnvConfig | None
    error: str = ""
    """Why it cannot be served here (its module did not load): 503."""


class _Pending:
    __slots__ = ("future", "pid")

    def __init__(self, future: asyncio.Future[Any], pid: int) -> None:
        self.future = future
        self.pid = pid


class _Outcome:
    """What a request got other than a reply."""

    TIMEOUT = "timeout"
    DIED = "died"
    UNAVAILABLE = "unavailable"


class _Latency:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds


class HttpFrontEnd:
    """One worker's HTTP server: routes resolved here, handled by its engine's processes."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.engine = worker.engine
        self.loop = worker.loop
        self.payload = b""
        self.table: Table | None = None
        self.bound: list[_Bound] = []
        self.dispatcher, self.indexes = _dispatcher(())
        self.resolved: dict[tuple[str, str], int] = {}  # (method, raw path) -> route, lately matched
        self.runner: web.ServerRunner | None = None
        self.site: web.TCPSite | None = None
        self.listening: tuple[str, int] | None = None
        self.port: Port | None = None
        self.pending: dict[int, _Pending] = {}
        self.names: dict[str, tuple[int, float]] = {}  # route process -> (pid, looked up until)
        self.lookups: dict[str, asyncio.Future[int | None]] = {}
        self.in_flight = 0
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Latency] = {}
        self.dropped_replies = 0
        self._applying: asyncio.Task[None] | None = None
        self._closed = False

    # --- configuration --------------------------------------------------------------------------

    def configure(self, payload: bytes) -> None:
        """Serve ``payload`` (an encoded :class:`Table`) from now on; applied on the loop, in order."""
        if payload == self.payload or self._closed:
            return
        self.payload = payload
        previous = self._applying

        async def apply() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await self._apply(decode_table(payload))

        self._applying = self.loop.create_task(apply())

    async def _apply(self, table: Table) -> None:
        if self._closed:
            return
        bound = []
        for route in table.routes:
            if not route.module:
                bound.append(_Bound(route, None, None))
                continue
            try:
                module = self.worker.module(route.module)
                config = frames.decode_config(route.config)
            except LunaticError as exc:
                log.error("HTTP route %s cannot be served by this worker: %s", route.path, exc)
                bound.append(_Bound(route, None, None, error=str(exc)))
                continue
            bound.append(_Bound(route, module, config))
        self.bound = bound
        self.dispatcher, self.indexes = _dispatcher(
            (b.route.methods, b.route.path, i) for i, b in enumerate(bound)
        )
        self.resolved.clear()
        self.table = table
        self.names.clear()
        if table.draining:
            await self._stop_listening()
        elif self.listening != (table.host, table.port):
            await self._stop_listening()
            await self._listen(table.host, table.port)

    async def _listen(self, host: str, port: int) -> None:
        if self.runner is None:  # aiohttp's low-level server: the routes are resolved here
            server = http_server.Server(self._handle, self._limits)
            self.runner = web.ServerRunner(server, handle_signals=False)
            await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_port=True, reuse_address=True, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            log.error("worker %d cannot serve HTTP on %s:%d: %s", self.worker.worker_id, host, port, exc)
            return
        self.site = site
        self.listening = (host, port)
        log.debug("worker %d serves HTTP on %s:%d", self.worker.worker_id, host, port)

    def _limits(self) -> HttpLimits:
        return self.table.limits if self.table is not None else HttpLimits()

    async def _stop_listening(self) -> None:
        if self.site is not None:
            site, self.site = self.site, None
            self.listening = None
            with contextlib.suppress(RuntimeError):
                await site.stop()

    async def close(self) -> None:
        """Stop serving (the worker is stopping): requests still waiting get 503."""
        self._closed = True
        if self._applying is not None:
            self._applying.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._applying
        for pending in self.pending.values():
            _settle(pending.future, _Outcome.UNAVAILABLE)
        if self.runner is not None:
            runner, self.runner = self.runner, None
            self.site = None
            self.listening = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner.cleanup(), CLOSE_TIMEOUT)

    def stats(self) -> dict[str, Any]:
        """For the worker's statistics (``/metrics``, the ``stats`` method)."""
        return {
            "listening": self.listening is not None,
            "in_flight": self.in_flight,
            "dropped_replies": self.dropped_replies,
            "requests": [[label, status, count] for (label, status), count in self.requests.items()],
            "latency": {label: [h.buckets, h.total, h.count] for label, h in self.latency.items()},
        }

    # --- the port -------------------------------------------------------------------------------

    def _port(self) -> Port:
        port = self.port
        if port is None or port.finished is not None:
            port = self.engine.attach(lambda pid: Port(pid, self._on_port_message))
            port.on_exit.append(self._on_port_exit)
            self.port = port
        return port

    def _on_port_message(self, message: Message) -> None:
        if message.kind is Kind.PROCESS_DIED:
            dead = message.pid
            for name in [n for n, (pid, _) in self.names.items() if pid == dead]:
                del self.names[name]
            for waiting in self.pending.values():
                if waiting.pid == dead:
                    _settle(waiting.future, _Outcome.DIED)
            return
        if message.kind is not Kind.DATA:
            return
        pending = self.pending.get(message.tag)
        if pending is None or pending.future.done():
            self.dropped_replies += 1  # late (timed out) or made up
            return
        pending.future.set_result(bytes(message.data))

    def _on_port_exit(self, finished: Finished) -> None:
        if not self._closed:
            log.warning("the HTTP front end's port of worker %d ended (%s)", self.worker.worker_id, finished)
        for pending in self.pending.values():
            _settle(pending.future, _Outcome.UNAVAILABLE)
        self.names.clear()

    def _tag(self) -> int:
        """A request's tag: random, so that no process can answer a request it was not sent by
        guessing its tag (the next one of a counter would be easy)."""
        while (tag := secrets.randbits(62) + 1) in self.pending:
            pass
        return tag

    # --- requests -------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        path, _, query = request.raw_path.partition("?")
        key = (request.method, path)  # as sent: %2F is no "/"
        index = self.resolved.get(key)
        if index is None:
            match = await self.dispatcher.resolve(request)  # type: ignore[arg-type]  # reads method and URL
            if match.http_exception is not None:
                self._record(UNMATCHED, match.http_exception.status, started)
                raise match.http_exception
            index = self.indexes[match.route]
            if len(self.resolved) >= RESOLVED_PATHS:
                self.resolved.clear()
            self.resolved[key] = index
        bound = self.bound[index]
        self.in_flight += 1
        try:
            response = await self._serve(bound, request, path, query)
        except asyncio.CancelledError:  # the client went away
            self._record(bound.route.label, 499, started)
            raise
        finally:
            self.in_flight -= 1
        self._record(bound.route.label, response.status, started)
        return response

    def _record(self, label: str, status: int, started: float) -> None:
        key = (label, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        latency = self.latency.get(label)
        if latency is None:
            latency = self.latency[label] = _Latency()
        latency.observe(time.perf_counter() - started)

    async def _serve(self, bound: _Bound, request: web.BaseRequest, path: str, query: str) -> web.Response:
        table = self.table
        assert table is not None
        if table.draining or self._closed:
            return _error(503, "the server is stopping", close=True)
        if bound.error:
            return _error(503, "this route cannot be served now")
        body = await http_server.read_body(request, table.max_body, table.limits.body_timeout)
        if isinstance(body, web.Response):
            return body
        data = encode_request(
            request.method.encode(),
            path.encode(),
            query.encode(),
            request.raw_headers,
            body,
        )
        route = bound.route
        try:
            port = self._port()
        except LunaticError:
            return _error(503, "the server is stopping")
        child = None
        if bound.module is not None:
            child = self._spawn(bound)
            if child is None:
                return _error(503, "the handler could not start")
            pid = child.pid
        else:
            looked_up = await self._lookup(route.process, route.timeout)
            if looked_up is None:
                return _error(503, "the route's process is not running")
            pid = looked_up
        return await self._exchange(route, pid, data, port, child)

    def _spawn(self, bound: _Bound) -> BaseProcess | None:
        """A fresh process for one request; None (logged) if it cannot start."""
        assert bound.module is not None and bound.config is not None
        try:
            # the route's config itself: a process's config is a value nothing changes in place
            return self.engine.spawn(bound.module, bound.route.function, (), bound.config)
        except LunaticError as exc:
            log.warning("HTTP route %s: the handler could not start: %s", bound.route.path, exc)
            return None

    async def _exchange(
        self, route: Route, pid: int, data: bytes, port: Port, child: BaseProcess | None
    ) -> web.Response:
        """Send the request to ``pid`` (``child``: a fresh process of this request's, else a
        named one) and wait for its reply, its death, or the timeout."""
        engine, loop = self.engine, self.loop
        fresh = child is not None
        tag = self._tag()
        future: asyncio.Future[Any] = loop.create_future()
        self.pending[tag] = _Pending(future, pid)
        if child is not None:
            child.on_exit.append(lambda finished: _settle(future, finished))
        elif pid not in port.monitoring:
            engine.monitor(port, pid)
        engine.deliver(pid, Message(tag, data, pid=port.pid))
        self.worker.wake()
        timer = loop.call_later(route.timeout, _settle, future, _Outcome.TIMEOUT)
        try:
            result = await future
        except asyncio.CancelledError:  # the client went away: so does its handler
            if fresh:
                self._kill(pid, "its HTTP client went away")
            raise
        finally:
            timer.cancel()
            del self.pending[tag]
        if isinstance(result, bytes):
            if child is not None and child.finished is None:
                # it replied and goes on: it gets until its timeout, counted from now, to end
                expire = loop.call_later(route.timeout, self._kill, pid, "its HTTP reply was sent long ago")
                child.on_exit.append(lambda finished: expire.cancel())
            return _response(route, pid, result)
        if result is _Outcome.TIMEOUT:
            if fresh:
                self._kill(pid, f"HTTP request timed out after {route.timeout:g} s")
            else:
                self.names.pop(route.process, None)
            log.warning(
                "HTTP route %s: process %#x did not reply within %g s", route.path, pid, route.timeout
            )
            return _error(504, "the handler did not reply in time")
        if isinstance(result, Finished):
            if result.ok:
                log.warning("HTTP route %s: process %#x ended without a reply", route.path, pid)
            else:
                log.warning(
                    "HTTP route %s: process %#x failed: %s%s",
                    route.path, pid, result, "".join(f"\n    {line}" for line in result.backtrace),
                )  # fmt: skip
            return _error(500, "the request's handler failed")
        if result is _Outcome.DIED:
            log.warning("HTTP route %s: process %#x died before it replied", route.path, pid)
            return _error(502, "the route's process ended before it replied")
        return _error(503, "the server is stopping")

    def _kill(self, pid: int, reason: str) -> None:
        if self.engine.kill(pid, reason):
            self.worker.wake()

    async def _lookup(self, name: str, timeout: float) -> int | None:
        """The pid registered as ``name`` (cached for :data:`NAME_TTL` s); None if there is none."""
        cached = self.names.get(name)
        now = self.loop.time()
        if cached is not None and cached[1] > now:
            return cached[0]
        future = self.lookups.get(name)
        if future is None:
            future = self.lookups[name] = self.loop.create_future()
            self._ask_registry(name, future)
        try:
            pid = await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            log.warning("the registry did not answer a lookup of %r within %g s", name, timeout)
            return None
        if pid is not None:
            self.names[name] = (pid, self.loop.time() + NAME_TTL)
        return pid

    def _ask_registry(self, name: str, future: asyncio.Future[int | None]) -> None:
        def answered(reply: Any) -> None:
            self.lookups.pop(name, None)
            if future.done():
                return
            if reply is None or reply.error:
                log.warning("looking up %r for an HTTP route failed: %s", name, reply and reply.error)
                future.set_result(None)
            else:
                future.set_result(reply.pid if reply.found else None)

        port = self._port()
        if not self.worker.is_live(REGISTRY):
            answered(None)
            return
        self.worker.router.registry_get(port.pid, name, False, answered)
        self.worker.wake()


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _response(route: Route, pid: int, reply: bytes) -> web.Response:
    try:
        status, headers, body = decode_reply(reply)
    except HttpMessageError as exc:
        log.warning("HTTP route %s: process %#x sent a reply that does not parse: %s", route.path, pid, exc)
        return _error(500, "the request's handler failed")
    kept = [(n, v) for n, v in headers if n.lower() not in DROPPED_REPLY_HEADERS]
    return web.Response(status=status, body=body, headers=CIMultiDict(kept) if kept else None)


def _error(status: int, text: str, *, close: bool = False) -> web.Response:
    """An error response with nothing of the guest in it."""
    response = web.Response(status=status, text=f"{status}: {text}\n")
    if close:
        response.force_close()
    return response


__all__ = [
    "LATENCY_BUCKETS",
    "HttpFrontEnd",
    "HttpRequest",
    "Port",
    "Route",
    "Table",
    "check_routes",
    "decode_reply",
    "decode_request",
    "decode_table",
    "encode_reply",
    "encode_request",
    "encode_table",
]
