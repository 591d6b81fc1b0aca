"""Control-socket round trips of `lunatic-mp serve` (issue 5): calls per second through the socket.

    python benchmarks/serve_rpc.py [--quick] [--workers N] [--seconds S] [--window W] [--json FILE]

Starts `lunatic-mp serve` (the built-in example: a counter actor) as a subprocess on a unix
socket in a temporary directory, then measures from this process:

- sequential: one call at a time with the synchronous client (`lunatic_mp.connect`): what a
  script calling the server gets, latency-bound (p50 of each call);
- pipelined: one connection keeping ``--window`` requests in flight (msgpack-RPC allows it), a
  raw load generator of pre-encoded requests so that the client is not the bottleneck: what
  the server can do;
- async client: the same through `AsyncClient` with ``--window`` calls gathered at once.

Methods: `ping` (the server alone), `send` (into the runtime, to the counter, no reply) and
`request` (a round trip through the runtime: server -> worker -> guest -> server).

Target (issue 5): control-socket request round trips >= 20,000 per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lunatic_mp
from lunatic_mp.serve import rpc
from lunatic_mp.serve.client import AsyncClient

TARGET_RPS = 20_000


def lunatic_mp_script() -> str:
    beside_python = Path(sys.executable).parent / "lunatic-mp"
    found = str(beside_python) if beside_python.exists() else shutil.which("lunatic-mp")
    if found is None:
        raise SystemExit("the lunatic-mp script is not installed (pip install -e .)")
    return found


def start_server(directory: Path, workers: int) -> tuple[subprocess.Popen[str], Path]:
    address = directory / "control.sock"
    server = subprocess.Popen(
        [lunatic_mp_script(), "--log-level", "warning", "serve", "--workers", str(workers),
         "--control", str(address), "--metrics", "off"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("lunatic-mp: ready"):
            return server, address
    raise SystemExit(f"the server did not start (exit status {server.wait()})")


def sequential(address: Path, method: str, params: list[Any], seconds: float) -> dict[str, float]:
    """One call at a time; calls per second and the latency of each."""
    times = []
    with lunatic_mp.connect(address) as client:
        for _ in range(100):  # warm up
            client.call(method, *params)
        deadline = time.perf_counter() + seconds
        while (start := time.perf_counter()) < deadline:
            client.call(method, *params)
            times.append(time.perf_counter() - start)
    return {
        "calls_per_s": round(len(times) / sum(times)),
        "p50_us": round(statistics.median(times) * 1e6, 1),
        "p99_us": round(sorted(times)[int(len(times) * 0.99)] * 1e6, 1),
    }


def pipelined(address: Path, method: str, params: list[Any], seconds: float, window: int) -> dict[str, float]:
    """One connection, ``window`` requests in flight; answers per second."""
    requests = [rpc.encode_request(i, method, params) for i in range(window)]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(address))
    decoder = rpc.Decoder()
    answered = errors = 0

    def run(duration: float) -> tuple[int, float]:
        nonlocal answered, errors
        answered = 0
        sock.sendall(b"".join(requests))
        start = time.perf_counter()
        deadline = start + duration
        outstanding = window
        while outstanding:
            data = sock.recv(1 << 20)
            if not data:
                raise SystemExit("the server closed the connection")
            replies = decoder.feed(data)
            outstanding -= len(replies)
            answered += len(replies)
            errors += sum(1 for reply in replies if getattr(reply, "error", None) is not None)
            if time.perf_counter() < deadline:
                sock.sendall(b"".join(requests[reply.msgid] for reply in replies))  # type: ignore[union-attr]
                outstanding += len(replies)
        return answered, time.perf_counter() - start

    run(min(seconds, 0.5))  # warm up
    count, elapsed = run(seconds)
    sock.close()
    if errors:
        raise SystemExit(f"{errors} {method} calls failed")
    return {"calls_per_s": round(count / elapsed)}


def async_client(address: Path, pid: int, seconds: float, window: int) -> dict[str, float]:
    """`request` through AsyncClient, ``window`` calls gathered at a time."""

    async def main() -> dict[str, float]:
        async with await AsyncClient.connect(address) as client:
            await asyncio.gather(*(client.request(pid, b"0") for _ in range(window)))
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                await asyncio.gather(*(client.request(pid, b"0") for _ in range(window)))
                count += window
            return {"calls_per_s": round(count / (time.perf_counter() - start))}

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("--workers", type=int, default=min(2, len(os.sched_getaffinity(0))))
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--window", type=int, default=256, help="requests in flight when pipelined")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else args.seconds
    results: dict[str, Any] = {"workers": args.workers, "window": args.window, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="lunatic-mp-bench-") as directory:
        server, address = start_server(Path(directory), args.workers)
        try:
            with lunatic_mp.connect(address) as client:
                counter = client.registry_get("counter")
            assert counter is not None
            runs = {
                "sequential ping": lambda: sequential(address, "ping", [], seconds),
                "sequential request": lambda: sequential(address, "request", [counter, b"0"], seconds),
                "pipelined ping": lambda: pipelined(address, "ping", [], seconds, args.window),
                "pipelined send": lambda: pipelined(address, "send", [counter, b"0"], seconds, args.window),
                "pipelined request": lambda: pipelined(
                    address, "request", [counter, b"0"], seconds, args.window
                ),
                "async client request": lambda: async_client(address, counter, seconds, args.window),
            }
            for name, run in runs.items():
                figures = run()
                results[name] = figures
                extra = "".join(f"  {k} {v}" for k, v in figures.items() if k != "calls_per_s")
                print(f"{name:22} {figures['calls_per_s']:>9,} calls/s{extra}", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    rate = results["pipelined request"]["calls_per_s"]
    verdict = "meets" if rate >= TARGET_RPS else "misses"
    print(f"request round trips: {rate:,}/s pipelined, {verdict} the target of {TARGET_RPS:,}/s")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
