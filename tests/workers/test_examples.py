"""The example actors of workers/examples, built from C and run on the real runtime.

Each runs as `lunatic-mp run` would run it (in one engine, or over two worker processes), and is
judged by its output and exit status; the fan-out jobs also run under the WasmExecutor.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import wasmtime
from c_guests import ROOT, TIMEOUT, WORKERS, lunatic_mp_script

from lunatic_mp import Runtime

RunGuest = Callable[..., subprocess.CompletedProcess[str]]
MASK64 = (1 << 64) - 1
EXAMPLE_NAMES = ["fanout", "hello", "http_hello", "kv", "ping_pong", "supervisor", "tcp_echo"]
IMPLEMENTED = {
    "wasi_snapshot_preview1",
    *(f"lunatic::{ns}" for ns in ("process", "message", "timer", "registry", "error", "version", "trap")),
    *(f"lunatic::{ns}" for ns in ("wasi", "metrics", "networking")),
}
"""Import modules lunatic_mp defines: the whole ABI."""


def ok(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout.splitlines()


def test_every_example_is_built_and_imports_only_what_the_runtime_defines(c_build: Path) -> None:
    """The examples are the ones this file tests, and each imports only modules of the ABI that
    lunatic_mp defines (tcp_echo uses lunatic::networking)."""
    examples = sorted(path.stem for path in (WORKERS / "examples").glob("*.c"))
    assert examples == EXAMPLE_NAMES
    engine = wasmtime.Engine()
    for name in examples:
        module = wasmtime.Module.from_file(engine, str(c_build / f"{name}.wasm"))
        namespaces = {item.module for item in module.imports}
        assert namespaces <= IMPLEMENTED, (name, namespaces)
        assert {item.name for item in module.exports} >= {"memory", "_start"}


# --- hello -----------------------------------------------------------------------------------------


def test_hello_greets_its_arguments(run_guest: RunGuest) -> None:
    result = run_guest("hello", "Ada", "Grace Hopper")
    lines = ok(result)
    assert re.fullmatch(r"lunatic ABI 0\.13\.\d+, process \d+ on worker \d+", lines[0])
    assert lines[1:] == ["Hello, Ada!", "Hello, Grace Hopper!"]
    assert result.stderr == "hello: 2 argument(s)\n"


def test_hello_without_arguments_on_workers(run_guest: RunGuest) -> None:
    result = run_guest("hello", workers=2)
    lines = ok(result)
    worker = re.fullmatch(r"lunatic ABI 0\.13\.\d+, process \d+ on worker (\d+)", lines[0])
    assert worker is not None and int(worker.group(1)) >= 2  # 0 and 1: the supervisor, the registry
    assert lines[1:] == ["Hello, world!"]
    assert result.stderr == "hello: 0 argument(s)\n"


# --- ping-pong -------------------------------------------------------------------------------------

PONG = re.compile(r"pong (\d+) on worker (\d+): (\d+) round trips, ball at (\d+), [\d.]+ us per round trip")


def test_ping_pong_across_two_workers(run_guest: RunGuest) -> None:
    """Two pong processes, placed round robin: one on each worker; every round trip counted."""
    lines = ok(run_guest("ping_pong", "300", "2", workers=2))
    assert re.fullmatch(r"ping on worker \d+", lines[0])
    pongs = [PONG.fullmatch(line) for line in lines[1:]]
    assert len(pongs) == 2 and all(pongs), lines
    assert [int(m.group(1)) for m in pongs if m] == [1, 2]
    assert {int(m.group(2)) for m in pongs if m} == {2, 3}
    assert all(m.group(3) == m.group(4) == "300" for m in pongs if m)


def test_ping_pong_in_one_engine(run_guest: RunGuest) -> None:
    lines = ok(run_guest("ping_pong", "50", "3"))
    matches = [PONG.fullmatch(line) for line in lines[1:]]
    assert len(matches) == 3 and all(m and m.group(4) == "50" for m in matches)


def test_ping_pong_rejects_bad_arguments(run_guest: RunGuest) -> None:
    result = run_guest("ping_pong", "0")
    assert result.returncode == 2
    assert "usage: ping_pong" in result.stderr


# --- fan-out ---------------------------------------------------------------------------------------


def payload(size: int, seed: int) -> bytes:
    """fanout.c's fill(): the low byte of each xorshift64 step."""
    x = (seed * 0x9E3779B97F4A7C15) & MASK64
    out = bytearray(size)
    for i in range(size):
        x ^= (x << 13) & MASK64
        x ^= x >> 7
        x ^= (x << 17) & MASK64
        out[i] = x & 0xFF
    return bytes(out)


def fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & MASK64
    return value


def test_fanout_program_checksums_every_job(run_guest: RunGuest) -> None:
    """The root process fans 6 jobs out over two workers; each CRC is zlib's."""
    lines = ok(run_guest("fanout", "6", "4096", workers=2))
    expected = [f"job {job}: crc32 {zlib.crc32(payload(4096, job)):08x}" for job in range(1, 7)]
    assert lines[:6] == expected
    assert re.fullmatch(r"6 jobs of 4096 bytes in [\d.]+ ms", lines[6])
    assert len(lines) == 7


def test_fanout_jobs_under_the_wasm_executor(c_build: Path) -> None:
    """crc32 and fnv1a64 are bytes jobs for WasmExecutor: input as the first message, the
    answer as the reply. Empty, odd-sized and large payloads."""
    payloads = [b"", b"a", b"hello, lunatic_mp", bytes(range(256)) * 4096]
    payloads += [payload(777, seed) for seed in range(20)]
    with Runtime(workers=2) as runtime:
        module = runtime.load_module(c_build / "fanout.wasm")
        with runtime.executor(module, timeout=60) as executor:
            crcs = list(executor.map("crc32", payloads))
            hashes = list(executor.map("fnv1a64", payloads))
    assert [int.from_bytes(c, "little") for c in crcs] == [zlib.crc32(p) for p in payloads]
    assert [int.from_bytes(h, "little") for h in hashes] == [fnv1a64(p) for p in payloads]


# --- supervisor ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_supervisor_restarts_a_crashing_child(run_guest: RunGuest, workers: int) -> None:
    assert ok(run_guest("supervisor", workers=workers)) == [
        "supervisor: started child attempt 1",
        "supervisor: child attempt 1 crashed",
        "supervisor: started child attempt 2",
        "supervisor: child attempt 2 crashed",
        "supervisor: started child attempt 3",
        f"supervisor: child attempt 3 answered {sum(i * i for i in range(1, 1001))} after 2 restart(s)",
    ]


def test_supervisor_child_that_does_not_crash(run_guest: RunGuest) -> None:
    """A child that does not crash answers; its normal exit is not taken for a crash."""
    assert ok(run_guest("supervisor", "0", workers=2)) == [
        "supervisor: started child attempt 1",
        "supervisor: child attempt 1 answered 333833500 after 0 restart(s)",
    ]


def test_supervisor_gives_up(run_guest: RunGuest) -> None:
    """More crashes than restarts allowed: it stops after max_restarts and exits with 1."""
    result = run_guest("supervisor", "5", "1")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "supervisor: started child attempt 1",
        "supervisor: child attempt 1 crashed",
        "supervisor: started child attempt 2",
        "supervisor: child attempt 2 crashed",
        "supervisor: giving up after 1 restart(s)",
    ]


# --- key-value server ------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_kv_server_found_by_name(run_guest: RunGuest, workers: int) -> None:
    clients, keys = 3, 40
    assert ok(run_guest("kv", str(clients), str(keys), workers=workers)) == [
        "kv@^1 is the server",
        "kv@^2 is not registered",
        *(f"client {c}: {keys} puts, {keys} read back, {keys // 2} deleted" for c in range(1, clients + 1)),
        f"the server holds {clients * keys // 2} keys",
        "server stopping; kv is no longer registered",
        "server ended",
    ]


def test_kv_rejects_too_many_keys(run_guest: RunGuest) -> None:
    result = run_guest("kv", "2", "5000")
    assert result.returncode == 2
    assert "usage: kv" in result.stderr


# --- TCP echo server -------------------------------------------------------------------------------

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
ECHOED = re.compile(r"connection (\d+) on worker (\d+): (\d+) bytes echoed")


def read_line(pipe: int, timeout: float) -> str:
    """One line from an unbuffered pipe, a byte at a time so that nothing after it is taken from
    the pipe (communicate() reads the rest); what came before EOF or the deadline otherwise."""
    deadline = time.monotonic() + timeout
    line = bytearray()
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
        byte = os.read(pipe, 1) if ready else b""
        if not byte:
            break
        line += byte
    return line.decode()


@contextmanager
def echo_server(c_build: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`lunatic-mp run --workers 2 tcp_echo.wasm -- ARGS` and the port from its first line; the
    process is killed on the way out if it is still running."""
    command = [lunatic_mp_script(), "run", "--workers", "2", str(c_build / "tcp_echo.wasm"), "--", *args]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=ROOT)
    try:
        assert server.stdout is not None
        first = read_line(server.stdout.fileno(), TIMEOUT)
        match = LISTENING.fullmatch(first.rstrip("\n"))
        assert match is not None, (first, server.poll())
        yield server, int(match.group(1))
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=TIMEOUT)


def echo_client(port: int, payloads: list[bytes], together: threading.Barrier) -> int:
    """Connect, wait until every client is connected, then send each payload and read it back
    whole; close the sending side and expect the server to close too. Returns the bytes sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        together.wait(TIMEOUT)
        for data in payloads:
            conn.sendall(data)
            echoed = bytearray()
            while len(echoed) < len(data):
                chunk = conn.recv(len(data) - len(echoed))
                assert chunk, "the server closed early"
                echoed += chunk
            assert echoed == data
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1) == b""
    return sum(map(len, payloads))


def test_tcp_echo_serves_concurrent_clients_on_both_workers(c_build: Path) -> None:
    """Six clients at once, each with three payloads (one of 200 KB, more than a read takes): every
    byte comes back to its own client; the connection processes alternate between the two
    workers; after the sixth connection the server waits for its processes and exits 0."""
    clients = 6
    together = threading.Barrier(clients)
    payloads = [
        [f"client {c} says hello\n".encode(), bytes([c]) * (200_000 + c), payload(1000 + c, c)]
        for c in range(clients)
    ]
    with echo_server(c_build, "0", str(clients)) as (server, port):
        with ThreadPoolExecutor(clients) as pool:
            sent = list(pool.map(lambda p: echo_client(port, p, together), payloads))
        out, err = server.communicate(timeout=TIMEOUT)
    assert server.returncode == 0, err
    assert err == b""
    reports = [ECHOED.fullmatch(line) for line in out.decode().splitlines()]
    assert len(reports) == clients and all(reports), out
    assert sorted(int(m.group(1)) for m in reports if m) == list(range(1, clients + 1))
    assert sorted(int(m.group(3)) for m in reports if m) == sorted(sent)
    workers = {int(m.group(2)) for m in reports if m}
    assert len(workers) == 2 and min(workers) >= 2, out  # 0 and 1: the supervisor, the registry


def test_tcp_echo_without_a_limit_stops_on_sigterm(c_build: Path) -> None:
    """With no connection limit it serves until SIGTERM, which stops the runtime cleanly."""
    with echo_server(c_build) as (server, port):
        assert echo_client(port, [b"ping", b"pong"], threading.Barrier(1)) == 8
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=TIMEOUT)
    assert server.returncode == 130, err
    report = ECHOED.fullmatch(out.decode().rstrip("\n"))  # printed before the connection closed
    assert report is not None and report.group(1, 3) == ("1", "8"), out
    assert err == b""


def test_tcp_echo_reports_a_port_in_use(run_guest: RunGuest) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_guest("tcp_echo", str(port), "1", workers=2)
    assert result.returncode == 1
    assert result.stderr.startswith(f"tcp_echo: cannot listen on 127.0.0.1:{port}: "), result.stderr
    assert "in use" in result.stderr


@pytest.mark.parametrize("args", [["65536"], ["-1"], ["80x"], ["0", "-2"], ["0", "1", "extra"]])
def test_tcp_echo_rejects_bad_arguments(run_guest: RunGuest, args: list[str]) -> None:
    result = run_guest("tcp_echo", *args)
    assert result.returncode == 2
    assert "usage: tcp_echo" in result.stderr
