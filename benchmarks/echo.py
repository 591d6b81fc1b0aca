"""echo: TCP round trips per second through a guest echo server, against plain asyncio.

The guest (``guests/echo.wat``) listens on 127.0.0.1 and hands each connection to a child
process in a message (``push_tcp_stream``); the runtime places the children on every worker, so
most streams move to another worker with their file descriptor. A load generator in its own
Python process (asyncio, uvloop where installed) keeps ``CONNECTIONS`` connections busy, each
sending a ``SIZE``-byte request and waiting for its echo, and counts round trips for a fixed
time. Beside it: the same load against a plain asyncio echo server (asyncio's own loop, a
``Protocol`` that writes back what it reads) in another Python process. The target (issue 16):
the guest server does at least 0.7 times the asyncio server's round trips per second.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.synchronize
import struct
import time
from typing import Any

from lunatic_mp import EnvConfig
from lunatic_mp.bench.runner import Context, at_least

TITLE = "TCP echo round trips through a guest server"
CONNECTIONS = 50
SIZE = 64
PORT_TAG = 2


def run(ctx: Context) -> None:
    seconds = ctx.pick(5.0, 0.5)
    runtime = ctx.runtime()
    module = runtime.load_module(ctx.guest("echo.wat"))
    ctx.step(f"guest echo server, {CONNECTIONS} connections")
    server = runtime.spawn(module, "serve", (runtime.pid, CONNECTIONS), EnvConfig.permissive())
    reply = runtime.receive([PORT_TAG], timeout=60)
    assert reply is not None, "the guest server did not report its port"
    port = struct.unpack("<q", bytes(reply.data))[0]
    guest = load(port, seconds)
    finished = runtime.join(server, timeout=60)
    assert finished is not None and finished.ok, finished
    ctx.record("guest_round_trips_per_s", guest)

    ctx.step(f"plain asyncio echo server, {CONNECTIONS} connections")
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    port_box: Any = context.Value("i", 0)
    baseline = context.Process(target=_asyncio_server, args=(ready, port_box), daemon=True)
    baseline.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the asyncio echo server did not start")
        plain = load(port_box.value, seconds)
    finally:
        baseline.terminate()
        baseline.join(10)
    ctx.record("asyncio_round_trips_per_s", plain)
    ctx.record("guest_vs_asyncio_x", guest / plain, target=at_least(0.7))


def load(port: int, seconds: float) -> float:
    """Round trips per second that the load generator (a subprocess) got from ``port``."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        count, elapsed = pool.apply(_load, (port, CONNECTIONS, SIZE, seconds))
    return count / elapsed


def _load(port: int, connections: int, size: int, seconds: float) -> tuple[int, float]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_clients(port, connections, size, seconds))


async def _clients(port: int, connections: int, size: int, seconds: float) -> tuple[int, float]:
    payload = b"x" * size
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    counts = [0] * connections
    stop = time.monotonic() + seconds

    async def client(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while time.monotonic() < stop:
            writer.write(payload)
            await reader.readexactly(size)
            counts[index] += 1

    began = time.monotonic()
    await asyncio.gather(*(client(i, r, w) for i, (r, w) in enumerate(streams)))
    elapsed = time.monotonic() - began
    for _, writer in streams:
        writer.close()
    return sum(counts), elapsed


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def _asyncio_server(ready: multiprocessing.synchronize.Event, port: Any) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Echo, "127.0.0.1", 0)
        port.value = server.sockets[0].getsockname()[1]
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())
