"""``lunatic-mp serve``: a runtime as a long-lived service, with a control socket and metrics.

:class:`Server` owns a :class:`~lunatic_mp.api.runtime.Runtime` and everything around it:

- start-up (on the main thread, so that the workers die with the server even on SIGKILL):
  the runtime's processes, the config's modules compiled, its boot processes spawned and named;
- an asyncio loop that serves the control socket (:mod:`lunatic_mp.serve.control`, methods below)
  and, on aiohttp, ``/metrics`` (:mod:`lunatic_mp.serve.prometheus`) and ``/healthz``;
- HTTP routes, served by the workers themselves (:mod:`lunatic_mp.serve.http`): the server reserves
  the port, hands every worker the route table, and hands it again after a reload;
- signals: SIGTERM and Ctrl-C drain (requests already read are answered, within
  ``control.drain_timeout``, HTTP requests in flight too; new ones are refused) and then
  stop the runtime, exit status 0;
  a second one stops at once. SIGHUP reloads the modules (:meth:`Server.reload`).

Blocking runtime calls (registry, statistics, process lists, compiling) run in threads; the
rest (send, spawn, join through the runtime's futures) never blocks the loop. Replies to
``request`` come back through the host program's mailbox: one thread moves them to the loop in
batches, where each goes to its request by tag. Messages nobody waits for (a reply after its
request timed out, a guest writing to the host) are counted and dropped, so a long-lived server's
mailbox cannot grow without bound.

What reload means
    Every module of the config is compiled again from its file; if any fails, none changes
    (the error is logged and returned). Processes spawned afterwards by name (boot processes
    are not restarted, ``spawn`` through the control socket) run the new code. Processes
    already running keep the code they started with, as do the children they spawn from
    their own module: a Wasm instance cannot change its code while it runs. To move a named
    service to new code, spawn a new process and register it under a higher version.

The control methods, their parameters and results: :mod:`lunatic_mp.serve.methods`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import logging
import os
import signal
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from aiohttp import web

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import frames
from lunatic_mp.errors import LunaticError, ServeConfigError
from lunatic_mp.serve import http as http_routes
from lunatic_mp.serve import prometheus
from lunatic_mp.serve.config import ServeConfig
from lunatic_mp.serve.control import CallError, ControlServer
from lunatic_mp.serve.methods import (
    DEFAULT_REQUEST_TIMEOUT,
    SPAWN_TIMEOUT,
    ControlMethods,
    finished_to_wire,
    full_name,
)
from lunatic_mp.serve.replies import Replies
from lunatic_mp.serve.rpc import Code
from lunatic_mp.vm.finished import Finished
from lunatic_mp.vm.module import Module

log = logging.getLogger(__name__)

HTTP_POLL_S = 0.02
"""How often the server asks the workers whether they listen (starting) or are done (draining)."""


class Server(ControlMethods):
    """``lunatic-mp serve`` (see the module docstring). ``announce`` gets the lines a person
    running the server should see (where it listens, that it is ready, reloads, stopping)."""

    def __init__(self, config: ServeConfig, announce: Callable[[str], None] | None = None) -> None:
        config.check()
        self.config = config
        self.announce = announce or (lambda line: None)
        self.runtime: Runtime | None = None
        self.modules: dict[str, Module] = {}
        self.module_names: dict[bytes, str] = {}  # every digest compiled, old ones too
        self.ends: OrderedDict[int, Future[Finished]] = OrderedDict()
        self.reloads = {"ok": 0, "failed": 0}
        self.started_at = time.time()
        self.control = ControlServer(self.methods(), config.control)
        self.replies: Replies | None = None
        self.metrics_url: str | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._http: web.AppRunner | None = None
        self._signals = 0
        self.http_url: str | None = None
        """Where the workers serve the HTTP routes, once they do."""
        self._http_socket: socket.socket | None = None  # holds the routes' port while serving

    # --- starting and stopping ----------------------------------------------------------------

    def start(self) -> None:
        """Start the runtime, compile the modules, spawn the boot processes (blocking: call it
        on the main thread before :meth:`serve`)."""
        config = self.config
        runtime = Runtime(
            workers=config.workers, max_metric_series=config.metrics_max_series, cluster=config.cluster
        )
        self.runtime = runtime
        self.announce(
            f"started {runtime.worker_count} worker{_s(runtime.worker_count)} (run {runtime.run_id})"
        )
        if config.cluster is not None:
            nodes = runtime.nodes()
            self.announce(f"spanning a Ray cluster of {len(nodes)} node{_s(len(nodes))}: {sorted(nodes)}")
        self.modules = self._compile()
        self.module_names.update((module.digest, name) for name, module in self.modules.items())
        for name, module in self.modules.items():
            self.announce(f"module {name}: {config.modules[name]} ({len(module.exports)} exports)")
        self._boot()
        if config.http_enabled:
            self._start_routes()

    def _compile(self) -> dict[str, Module]:
        runtime = self._runtime()
        compiled = {}
        for name, path in self.config.modules.items():
            try:
                compiled[name] = runtime.load_module(Path(path), name)
            except OSError as exc:
                raise ServeConfigError(f"module {name}: cannot read {path}: {exc.strerror or exc}") from None
            except LunaticError as exc:
                raise ServeConfigError(f"module {name} ({path}): {exc}") from None
        for route in self.config.routes:
            if route.module is not None and route.function not in compiled[route.module].exports:
                raise ServeConfigError(
                    f"route {route.path}: module {route.module} has no export {route.function!r}"
                )
        return compiled

    def _boot(self) -> None:
        runtime = self._runtime()
        total = sum(spec.count for spec in self.config.processes)
        tqdm = importlib.import_module("tqdm").tqdm  # untyped: kept out of mypy's sight
        with tqdm(
            total=total, desc="starting processes", unit="process", disable=None, file=sys.stderr
        ) as bar:
            for spec in self.config.processes:
                module = self.modules[spec.module]
                if spec.function not in module.exports:
                    raise ServeConfigError(f"module {spec.module} has no export {spec.function!r}")
                if spec.name is not None:
                    self._check_name(full_name(spec.name, spec.version))
                label = f"{spec.module}.{spec.function}"
                pids = []
                try:
                    futures = [
                        runtime.spawn_future(module, spec.function, spec.params, spec.config.copy())
                        for _ in range(spec.count)
                    ]
                    for future in futures:
                        pids.append(future.result(SPAWN_TIMEOUT))
                        self._remember(pids[-1])
                        bar.update()
                except LunaticError as exc:
                    raise ServeConfigError(f"cannot start {label}: {exc}") from None
                if spec.name is not None:  # then count is 1
                    pid = pids[0]
                    runtime.registry_put(full_name(spec.name, spec.version), pid)
                    self.announce(
                        f"process {pid:#x} ({label}) registered as {full_name(spec.name, spec.version)}"
                    )
                else:
                    self.announce(f"{spec.count} process{'es' if spec.count > 1 else ''} of {label}")

    def close(self) -> None:
        """Stop the runtime (idempotent)."""
        if self.runtime is not None:
            self.runtime.close()
        if self._http_socket is not None:
            self._http_socket.close()
            self._http_socket = None

    # --- HTTP routes (served by the workers) --------------------------------------------------

    def _start_routes(self) -> None:
        """Reserve the routes' port, hand the workers the table, wait until they all listen."""
        address = self.config.http.address
        try:
            try:
                sock = reserve_port(address.host, address.port)
            except OSError as exc:
                if not (self.config.http.any_port_if_taken and exc.errno == errno.EADDRINUSE):
                    raise
                self.announce(f"HTTP port {address.port} is taken: serving HTTP on another one")
                sock = reserve_port(address.host, 0)
        except OSError as exc:
            raise ServeConfigError(
                f"cannot serve HTTP on {address.netloc}: {exc.strerror or exc} "
                "(pass --http HOST:PORT, or off)"
            ) from None
        self._http_socket = sock
        port = sock.getsockname()[1]
        runtime = self._runtime()
        runtime.set_http(self._routes_table())
        deadline = time.monotonic() + SPAWN_TIMEOUT
        while not self._all_serving(listening=True):
            if time.monotonic() > deadline:
                raise ServeConfigError(
                    f"the workers did not all listen on {address.host}:{port} (see the log)"
                )
            time.sleep(HTTP_POLL_S)
        host = f"[{address.host}]" if ":" in address.host else address.host
        self.http_url = f"http://{host}:{port}"
        self.announce(f"http {self.http_url} ({len(self.config.routes)} route{_s(len(self.config.routes))})")
        for route in self.config.routes:
            self.announce(f"route {','.join(route.methods)} {route.path} -> {route.target}")

    def _routes_table(self, *, draining: bool = False) -> bytes:
        """The table the workers serve (:class:`lunatic_mp.serve.http.Table`), with today's modules."""
        assert self._http_socket is not None
        host, port = self._http_socket.getsockname()[:2]
        routes = [
            http_routes.Route(
                route.methods,
                route.path,
                route.timeout,
                module=b"" if route.module is None else self.modules[route.module].digest,
                function=route.function,
                config=frames.encode_config(route.config),
                process="" if route.process is None else full_name(route.process, route.version),
            )
            for route in self.config.routes
        ]
        table = http_routes.Table(
            host, port, self.config.http.max_body, routes, draining, self.config.http.limits
        )
        return http_routes.encode_table(table)

    def _all_serving(self, *, listening: bool) -> bool:
        """Whether every live worker listens (``listening``), or has stopped listening and has
        no HTTP request in flight."""
        for stats in self._runtime().stats():
            http = stats.get("http") or {}
            if listening and not http.get("listening"):
                return False
            if not listening and (http.get("listening") or http.get("in_flight")):
                return False
        return True

    async def _drain_routes(self, timeout: float) -> None:
        """Stop the workers accepting HTTP connections; wait for requests in flight to end."""
        if self._http_socket is None or self.runtime is None:
            return
        await asyncio.to_thread(self.runtime.set_http, self._routes_table(draining=True))
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self._all_serving, listening=False):
            if time.monotonic() > deadline:
                log.warning("HTTP requests were still in flight when draining ended")
                return
            await asyncio.sleep(HTTP_POLL_S)

    async def serve(self, *, handle_signals: bool = True) -> int:
        """Serve until stopped; the exit status (0). Without ``handle_signals`` (a server run on
        a thread other than the main one) only :meth:`stop_threadsafe` or the ``stop`` method
        stop it."""
        runtime = self._runtime()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.replies = Replies(runtime)
        self.replies.start(loop)
        try:
            address = await self.control.start()
            self.announce(f"control socket {address}")
            if self.config.metrics_address is not None:
                await self._start_http()
                self.announce(f"metrics {self.metrics_url}")
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(signum, self._on_stop_signal, signum)
                loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
            self.announce(f"ready: {len(self.modules)} module{_s(len(self.modules))}, pid {os.getpid()}")
            await self._stopping.wait()
            self.announce(f"stopping: {self.control.in_flight} request{_s(self.control.in_flight)} in flight")
            drain_timeout = self.config.control.drain_timeout
            abandoned, _ = await asyncio.gather(
                self.control.drain(drain_timeout), self._drain_routes(drain_timeout)
            )
            if abandoned:
                log.warning("%d control request(s) were still unanswered when draining ended", abandoned)
        finally:
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(signum)
            if self._http is not None:
                await self._http.cleanup()
            self.replies.stop()
            await asyncio.to_thread(self.close)
            await self.control.close()
        self.announce("stopped")
        return 0

    def request_stop(self, why: str = "asked to stop") -> None:
        """Begin draining (from the loop's thread)."""
        if self._stopping is not None and not self._stopping.is_set():
            log.info("stopping: %s", why)
            self._stopping.set()

    def stop_threadsafe(self, why: str = "asked to stop") -> None:
        """:meth:`request_stop` from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.request_stop, why)

    def _on_stop_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second %s: not waiting for requests in flight", signal.Signals(signum).name)
            for connection in list(self.control.connections):
                for future in list(connection.futures):
                    future.cancel()
            return
        self.request_stop(signal.Signals(signum).name)

    def _on_reload_signal(self) -> None:
        task = asyncio.ensure_future(self._reload_logged())
        task.add_done_callback(lambda _: None)

    async def _reload_logged(self) -> None:
        with contextlib.suppress(CallError):  # already logged and announced
            await self.reload()

    async def reload(self) -> list[str]:
        """Compile every module of the config again (all or none; see the module docstring);
        the names of the modules reloaded."""
        assert self._reload_lock is not None
        async with self._reload_lock:
            try:
                compiled = await asyncio.to_thread(self._compile)
            except ServeConfigError as exc:
                self.reloads["failed"] += 1
                log.error("reload failed, the modules stay as they were: %s", exc)
                self.announce(f"reload failed: {exc}")
                raise CallError(Code.FAILED, f"reload failed, the modules stay as they were: {exc}") from None
            self.modules = compiled
            self.module_names.update((module.digest, name) for name, module in compiled.items())
            if self._http_socket is not None:  # the workers' fresh-process routes run the new code
                await asyncio.to_thread(self._runtime().set_http, self._routes_table())
            self.reloads["ok"] += 1
            names = sorted(compiled)
            log.info("reloaded %d module(s): %s", len(names), ", ".join(names))
            self.announce(f"reloaded {', '.join(names) or 'no modules'}")
            return names

    # --- HTTP: /metrics and /healthz ----------------------------------------------------------

    async def _start_http(self) -> None:
        address = self.config.metrics_address
        assert address is not None
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._http = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._http.setup()
        site = web.TCPSite(self._http, address.host, address.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ServeConfigError(
                f"cannot listen for metrics on {address.netloc}: {exc.strerror or exc} "
                "(pass --metrics HOST:PORT, or off)"
            ) from None
        host, port = self._http.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self.metrics_url = f"http://{host}:{port}/metrics"

    async def _metrics(self, request: web.Request) -> web.Response:
        server = {
            "requests": dict(self.control.requests),
            "errors": dict(self.control.errors),
            "closed": dict(self.control.closed),
            "connections": len(self.control.connections),
            "in_flight": self.control.in_flight,
            "reloads": dict(self.reloads),
        }
        try:
            body = await asyncio.to_thread(self._render_metrics, server)
        except (LunaticError, TimeoutError) as exc:
            return web.Response(status=503, text=f"the runtime did not answer: {exc}\n")
        return web.Response(body=body, headers={"Content-Type": prometheus.CONTENT_TYPE})

    def _render_metrics(self, server: dict[str, Any]) -> bytes:
        runtime = self._runtime()
        snapshot = prometheus.Snapshot(
            workers=runtime.stats(),
            configured_workers=runtime.worker_count,
            workers_lost=runtime.workers_lost,
            modules=len(self.modules),
            start_time=self.started_at,
            **server,
        )
        return prometheus.render(snapshot)

    async def _healthz(self, request: web.Request) -> web.Response:
        runtime = self._runtime()
        live = len(runtime.worker_ids)
        if self.control.draining:
            status = "stopping"
        elif live < runtime.worker_count:
            status = "degraded"
        else:
            status = "ok"
        body = {
            "status": status,
            "workers": live,
            "workers_configured": runtime.worker_count,
            "uptime_s": round(time.time() - self.started_at, 3),
        }
        return web.json_response(body, status=200 if status == "ok" else 503)

    # --- helpers ------------------------------------------------------------------------------


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT, never listening: it keeps the port (a
    free one for port 0) for the workers' listening sockets, and takes no connection itself.

    A port some socket already listens on is refused first (EADDRINUSE): with SO_REUSEPORT alone
    a second server of the same user would silently share the first one's connections.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            probe.bind((host, port))
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def run_server(config: ServeConfig, announce: Callable[[str], None]) -> int:
    """Start, serve until stopped, stop: ``lunatic-mp serve``. The exit status."""
    server = Server(config, announce)
    try:
        server.start()
        return asyncio.run(server.serve())
    finally:
        server.close()


__all__ = ["DEFAULT_REQUEST_TIMEOUT", "Server", "finished_to_wire", "run_server"]
