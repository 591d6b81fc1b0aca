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

HTTP requests per second through a Wasm handler (issue 6's serve figure, against a plain aiohttp
hello-world) need serve's HTTP routes: until its config has them, the scenario notes that.
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
from lunatic_mp import cli
from lunatic_mp.bench import Context, at_least
from lunatic_mp.errors import BenchError

TITLE = "requests per second through lunatic-mp serve"
WINDOW = 256
"""Requests in flight when pipelined (serve_rpc.py's default)."""
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
        command += ["--control", self.address, "--metrics", "off"]
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
    from lunatic_mp.client import connect

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
        finally:
            ctx.step("stopping the server")
            server.stop()
        ctx.step("asyncio unix-socket echo server")
        echo = echo_round_trips(directory, count, request_size())
    ctx.record("control_round_trips_per_s", round(1e6 / statistics.fmean(samples)))
    ctx.record("control_round_trip_p50_us", statistics.median(samples))
    ctx.record("control_round_trip_p99_us", samples[int(len(samples) * 0.99)])
    ctx.record("control_pipelined_requests_per_s", round(raw), target=at_least(20_000))
    ctx.record("control_async_client_requests_per_s", round(gathered))
    ctx.record("echo_round_trip_p50_us", statistics.median(echo))
    ctx.record("control_round_trip_p50_vs_echo_x", statistics.median(samples) / statistics.median(echo))
    ctx.distribution("round trips", "lunatic-mp serve control socket (request to a Wasm counter)", samples)
    ctx.distribution("round trips", "asyncio unix-socket echo server", echo)
    from lunatic_mp import serve_config

    if "routes" in serve_config.TOP_LEVEL_KEYS:
        ctx.note("serve has HTTP routes now, which this scenario does not measure yet")
    else:
        ctx.note("HTTP requests per second: not measured, lunatic-mp serve has no HTTP routes yet")


def request_size() -> int:
    """The bytes of one encoded control request, so that the echo baseline carries as many."""
    from lunatic_mp import rpc

    return len(rpc.encode_request(1, "request", [1 << 48, PAYLOAD, 30.0]))
