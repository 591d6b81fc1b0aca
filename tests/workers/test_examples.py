"""The example actors of workers/examples, built from C and run on the real runtime.

Each runs as `lunatic-mp run` would run it (in one engine, or over two worker processes), and is
judged by its output and exit status; the fan-out jobs also run under the WasmExecutor.
"""

from __future__ import annotations

import re
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from c_guests import WORKERS

from lunatic_mp import Runtime

RunGuest = Callable[..., subprocess.CompletedProcess[str]]
MASK64 = (1 << 64) - 1
EXAMPLE_NAMES = ["fanout", "hello", "http_hello", "kv", "ping_pong", "supervisor"]
IMPLEMENTED = {
    "wasi_snapshot_preview1",
    *(f"lunatic::{ns}" for ns in ("process", "message", "timer", "registry", "error", "version", "trap")),
    *(f"lunatic::{ns}" for ns in ("wasi", "metrics")),
}
"""Import modules lunatic_mp defines: all of the ABI but lunatic::networking, for now."""


def ok(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout.splitlines()


def test_every_example_is_built_and_imports_only_what_the_runtime_defines(c_build: Path) -> None:
    """The examples are the ones this file tests, and none imports lunatic::networking, which
    lunatic_mp does not implement yet."""
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
