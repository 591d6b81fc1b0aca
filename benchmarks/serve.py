"""serve: requests per second through ``lunatic-mp serve``.

Skipped with the note "serve not available" while the command does not exist. The server runs
as a subprocess with its built-in example (a counter actor registered as ``counter``), its control
socket on a unix socket of a temporary directory, its metrics off. Measured: ``request`` round
trips to the counter through the control socket from one synchronous client (one request at a
time), and ``request`` calls per second with ``WINDOW`` in flight, from a raw load generator on one
connection and from one ``AsyncClient`` (the load generators of ``benchmarks/serve_rpc.py``, the
serve work's own script, so that both report the same figures). Beside it: round trips of as many
bytes through a plain asyncio unix-socket echo server in a Python subprocess (what any Python
server pays per request).

HTTP: requests per second to the example's route ``GET /hello/{name}`` (a trivial Wasm handler,
``lunatic_mp/examples/hello_http.wat``, in a fresh process per request, served by every worker
on one port), in the same run and with the same load generator (an aiohttp client in a separate
process, ``HTTP_CONNECTIONS`` keep-alive connections, each request waiting for its answer before
the next goes on that connection) as a plain aiohttp hello-world (uvloop, as the workers use):
one process, as such an app is usually run (target: >= 0.8 of it, issue 16), and as many
processes as workers on one port (SO_REUSEPORT), the same spread as serve's. Also measured: the
example's route to a long-lived process, ``GET /greeter/{name}`` (one process answers every
request, from whichever worker took it).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from benchmarks import serve_rpc
from lunatic_mp.bench.runner import Context, at_least
from lunatic_mp.cli import app as cli
from lunatic_mp.errors import BenchError

TITLE = "requests per second through lunatic-mp serve"
WINDOW = 256
"""Requests in flight when pipelined (serve_rpc.py's default)."""
HTTP_CONNECTIONS = 64
"""Keep-alive connections of the HTTP load generator (one request in flight on each)."""
HTTP_PATH = "/hello/bench"
HTTP_NAMED_PATH = "/greeter/bench"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
PAYLOAD = b"1"


def unavailable() -> str | None:
    if "serve" not in cli.main.commands:
        return "serve not available"
    return None


def _command() -> list[str]:
    beside_python = Path(sys.executable).parent / "lunatic-mp"
    found = str(beside_python) if beside_python.exists() else shutil.which("lunatic-mp")
    if found is None:
        raise BenchError("the lunatic-mp command is not on PATH: the serve scenario starts it")
    return [found]


def _read_announcements(stdout: IO[str], lines: list[str], ready: threading.Event) -> None:
    """Keep the server's stdout drained; ``ready`` is set when it says it is ready."""
    for line in stdout:
        lines.append(line.rstrip())
        if line.startswith("lunatic-mp: ready"):
            ready.set()


class Server:
    """``lunatic-mp serve`` in a subprocess, serving its example on a unix socket."""

    def __init__(self, workers: int, directory: Path) -> None:
        self.address = f"unix:{directory / 'control.sock'}"
        self.stderr_path = directory / "serve.stderr"
        command = [*_command(), "--log-level", "warning", "serve", "--workers", str(workers)]
        command += ["--control", self.address, "--metrics", "off", "--http", "127.0.0.1:0"]
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        stdout = self.process.stdout
        assert stdout is not None
        self.lines: list[str] = []
        ready = threading.Event()
        self.reader = threading.Thread(
            target=_read_announcements, args=(stdout, self.lines, ready), daemon=True
        )
        self.reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.1):  # until ready, or until the server has exited
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                said = " / ".join([*self.lines, self.stderr_path.read_text().strip()])
                raise BenchError(f"lunatic-mp serve did not start: {said}")
        urls = [
            line.split("http ", 1)[1].split()[0]
            for line in self.lines
            if line.startswith("lunatic-mp: http ")
        ]
        self.http_url = urls[0] if urls else None
        """Where the example's HTTP routes are served."""

    def stop(self) -> None:
        """SIGTERM (the server drains and stops), then SIGKILL if it does not."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(STOP_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()


def round_trips(address: str, count: int) -> tuple[list[float], int]:
    """Microseconds per request, one at a time, from a synchronous client (sorted); the
    counter's pid."""
    from lunatic_mp.serve.client import connect

    with connect(address) as client:
        counter = client.registry_get("counter")
        assert counter is not None, "the example's counter is not registered"
        for _ in range(100):
            client.request(counter, PAYLOAD)
        samples = []
        clock = time.perf_counter
        for _ in range(count):
            start = clock()
            client.request(counter, PAYLOAD)
            samples.append((clock() - start) * 1e6)
    return sorted(samples), counter


def loaded(measure: Callable[[], dict[str, float]]) -> float:
    """Calls per second from one of benchmarks/serve_rpc.py's load generators (which stop the
    script with SystemExit on failure: here that becomes this scenario's failure)."""
    try:
        return measure()["calls_per_s"]
    except SystemExit as exc:
        raise BenchError(f"serve: {exc}") from None


# --- the baseline: a plain asyncio unix-socket echo server ----------------------------------------


def _echo_server(path: str, ready: multiprocessing.synchronize.Event) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_unix_server(echo, path)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def echo_round_trips(directory: Path, count: int, size: int) -> list[float]:
    """Microseconds per round trip of ``size`` bytes through an asyncio echo server (sorted)."""
    context = multiprocessing.get_context("spawn")
    path = str(directory / "echo.sock")
    ready = context.Event()
    server = context.Process(target=_echo_server, args=(path, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(START_TIMEOUT_S):
            raise BenchError("the asyncio echo server did not start")
        payload = bytes(size)
        samples = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            clock = time.perf_counter
            for i in range(count + 100):
                start = clock()
                sock.sendall(payload)
                got = 0
                while got < size:
                    got += len(sock.recv(65536))
                if i >= 100:
                    samples.append((clock() - start) * 1e6)
    finally:
        server.terminate()
        server.join(STOP_TIMEOUT_S)
    return sorted(samples)


# --- HTTP: the load generator, and the baseline: a plain aiohttp hello-world -----------------------


def _http_load(url: str, connections: int, seconds: float, results: multiprocessing.Queue[object]) -> None:
    """Send GETs to ``url`` on ``connections`` keep-alive connections for ``seconds`` (after a
    warm-up); put (requests, seconds, failures) on ``results``."""
    import aiohttp

    async def main() -> tuple[int, float, int]:
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            counts = [0, 0]  # answered, failed

            async def client(until: float) -> None:
                while time.perf_counter() < until:
                    async with session.get(url) as response:
                        await response.read()
                        counts[response.status != 200] += 1

            warm = time.perf_counter() + min(1.0, seconds / 3)
            await asyncio.gather(*(client(warm) for _ in range(connections)))
            counts[:] = [0, 0]
            start = time.perf_counter()
            await asyncio.gather(*(client(start + seconds) for _ in range(connections)))
            return counts[0] + counts[1], time.perf_counter() - start, counts[1]

    try:
        results.put(asyncio.run(main()))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        results.put(f"{type(exc).__name__}: {exc}")


def http_requests_per_s(url: str, seconds: float) -> float:
    """Requests per second that :func:`_http_load`, run in a separate process, gets from ``url``."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[object] = context.Queue()
    load = context.Process(target=_http_load, args=(url, HTTP_CONNECTIONS, seconds, results), daemon=True)
    load.start()
    try:
        result = results.get(timeout=START_TIMEOUT_S + seconds * 2)
    finally:
        load.join(STOP_TIMEOUT_S)
    if isinstance(result, str):
        raise BenchError(f"the HTTP load generator failed on {url}: {result}")
    count, elapsed, failures = result  # type: ignore[misc]
    if failures:
        raise BenchError(f"{failures} of {count} HTTP requests to {url} failed")
    return float(count / elapsed)


def _hello_world(port: int, ready: multiprocessing.synchronize.Event) -> None:
    """A plain aiohttp hello-world on ``port`` (SO_REUSEPORT: one of several processes)."""
    from aiohttp import web

    from lunatic_mp.cluster.worker import new_event_loop

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"Hello, {request.match_info['name']}!\n")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024).start()
        ready.set()
        await asyncio.Event().wait()

    new_event_loop().run_until_complete(main())


def hello_world_requests_per_s(processes: int, seconds: float) -> float:
    """:func:`http_requests_per_s` of ``processes`` plain aiohttp hello-world processes."""
    context = multiprocessing.get_context("spawn")
    with socket.socket() as reserve:  # holds the port for the servers (bound, never listening)
        reserve.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserve.bind(("127.0.0.1", 0))
        port = reserve.getsockname()[1]
        servers = []
        try:
            for _ in range(processes):
                ready = context.Event()
                server = context.Process(target=_hello_world, args=(port, ready), daemon=True)
                server.start()
                servers.append(server)
                if not ready.wait(START_TIMEOUT_S):
                    raise BenchError("the aiohttp hello-world did not start")
            return http_requests_per_s(f"http://127.0.0.1:{port}{HTTP_PATH}", seconds)
        finally:
            for server in servers:
                server.terminate()
                server.join(STOP_TIMEOUT_S)


def run(ctx: Context) -> None:
    count = ctx.pick(20_000, 1_000)
    with tempfile.TemporaryDirectory(prefix="lmp-bench-") as scratch:
        directory = Path(scratch)
        ctx.step(f"starting lunatic-mp serve with {ctx.workers} workers")
        server = Server(ctx.workers, directory)
        try:
            ctx.step("control-socket round trips, one client")
            samples, counter = round_trips(server.address, count)
            socket_path, seconds = directory / "control.sock", ctx.pick(3.0, 0.3)
            ctx.step(f"control-socket requests, {WINDOW} in flight")
            raw = loaded(
                lambda: serve_rpc.pipelined(socket_path, "request", [counter, b"0"], seconds, WINDOW)
            )
            ctx.step(f"control-socket requests through AsyncClient, {WINDOW} in flight")
            gathered = loaded(lambda: serve_rpc.async_client(socket_path, counter, seconds, WINDOW))
            if server.http_url is None:
                raise BenchError("lunatic-mp serve did not say where it serves HTTP")
            http_seconds = ctx.pick(5.0, 0.5)
            ctx.step(f"HTTP GET {HTTP_PATH} (a fresh Wasm process each), {HTTP_CONNECTIONS} connections")
            http = http_requests_per_s(server.http_url + HTTP_PATH, http_seconds)
            ctx.step(f"HTTP GET {HTTP_NAMED_PATH} (the long-lived Wasm process `greeter`)")
            named = http_requests_per_s(server.http_url + HTTP_NAMED_PATH, http_seconds)
        finally:
            ctx.step("stopping the server")
            server.stop()
        ctx.step("asyncio unix-socket echo server")
        echo = echo_round_trips(directory, count, request_size())
        ctx.step(f"plain aiohttp hello-world, one process, {HTTP_CONNECTIONS} connections")
        baseline = hello_world_requests_per_s(1, http_seconds)
        ctx.step(f"plain aiohttp hello-world, {ctx.workers} processes, {HTTP_CONNECTIONS} connections")
        baseline_spread = hello_world_requests_per_s(ctx.workers, http_seconds)
    ctx.record("control_round_trips_per_s", round(1e6 / statistics.fmean(samples)))
    ctx.record("control_round_trip_p50_us", statistics.median(samples))
    ctx.record("control_round_trip_p99_us", samples[int(len(samples) * 0.99)])
    ctx.record("control_pipelined_requests_per_s", round(raw), target=at_least(20_000))
    ctx.record("control_async_client_requests_per_s", round(gathered))
    ctx.record("echo_round_trip_p50_us", statistics.median(echo))
    ctx.record("control_round_trip_p50_vs_echo_x", statistics.median(samples) / statistics.median(echo))
    ctx.distribution("round trips", "lunatic-mp serve control socket (request to a Wasm counter)", samples)
    ctx.distribution("round trips", "asyncio unix-socket echo server", echo)
    ctx.record("http_requests_per_s", round(http))
    ctx.record("http_named_process_requests_per_s", round(named))
    ctx.record("http_aiohttp_hello_world_requests_per_s", round(baseline))
    ctx.record("http_vs_aiohttp_x", http / baseline, target=at_least(0.8))
    ctx.record("http_named_process_vs_aiohttp_x", named / baseline)
    ctx.record(f"http_aiohttp_hello_world_{ctx.workers}_processes_requests_per_s", round(baseline_spread))
    ctx.record("http_vs_aiohttp_same_processes_x", http / baseline_spread)


def request_size() -> int:
    """The bytes of one encoded control request, so that the echo baseline carries as many."""
    from lunatic_mp.serve import rpc

    return len(rpc.encode_request(1, "request", [1 << 48, PAYLOAD, 30.0]))
