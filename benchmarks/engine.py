"""One engine, one thread: spawn, message, idle-memory and fuel-yield costs.

    python benchmarks/engine.py [--quick] [--json FILE]

Targets (issue 2, on a 2-core machine): spawn and run to exit <= 30 us; a message from one Wasm
process to another and its receipt <= 5 us; 10,000 idle processes at <= 25 KiB RSS each; fuel
yields cost <= 20% on a CPU-bound loop.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import psutil

from lunatic_mp import Engine, EnvConfig

GUEST = Path(__file__).parent / "guests" / "bench.wat"
BATCH = 1000


def bench_spawn(count: int) -> float:
    """Microseconds to spawn a trivial process and run it to exit."""
    engine = Engine()
    module = engine.load_module(GUEST)
    config = EnvConfig()
    engine.spawn(module, "noop", (), config)
    engine.run()
    start = time.perf_counter()
    for _ in range(count // BATCH):
        for _ in range(BATCH):
            engine.spawn(module, "noop", (), config)
        engine.run()
    elapsed = time.perf_counter() - start
    engine.close()
    return elapsed / (count // BATCH * BATCH) * 1e6


def _pair(first: str, second: str, count: int) -> float:
    """Run two processes that know each other's pid; microseconds per message between them.

    Pids are allocated in spawn order, so the first one's pid is known before it is spawned.
    """
    engine = Engine()
    module = engine.load_module(GUEST)
    config = EnvConfig()
    first_pid = engine.pid_base | 1
    one = engine.spawn(module, first, (first_pid + 1, count), config)
    two = engine.spawn(module, second, (first_pid, count) if second == "produce" else (first_pid,), config)
    assert one.pid == first_pid
    start = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - start
    assert one.finished and one.finished.ok and two.finished and two.finished.ok, (one.finished, two.finished)
    engine.close()
    return elapsed / count * 1e6


def bench_message(count: int) -> float:
    """Microseconds per 64-byte message from a producer to a consumer process, received and read."""
    return _pair("consume", "produce", count)


def bench_ping_pong(count: int) -> float:
    """Microseconds per message in a ping-pong: every message resumes a suspended receiver."""
    return _pair("ping", "pong", count) / 2


def bench_idle(count: int) -> tuple[float, float]:
    """RSS in KiB per process idle in receive, and microseconds to spawn each one."""
    engine = Engine(max_processes=count + 10)
    module = engine.load_module(GUEST)
    config = EnvConfig()
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    for _ in range(count):
        engine.spawn(module, "idle", (), config)
    engine.run()
    elapsed = time.perf_counter() - start
    rss_after = psutil.Process().memory_info().rss
    assert len(engine.processes) == count
    engine.close()
    return (rss_after - rss_before) / count / 1024, elapsed / count * 1e6


def bench_fuel(iterations: int) -> tuple[float, float, float]:
    """Seconds for a CPU-bound loop without fuel yields and with them; overhead in percent."""
    timings = []
    for interval in (2**62, 100_000):
        engine = Engine(fuel_yield_interval=interval)
        module = engine.load_module(GUEST)
        best = float("inf")
        for _ in range(3):
            process = engine.spawn(module, "crunch", (iterations,), EnvConfig())
            start = time.perf_counter()
            engine.run_until_finished(process)
            best = min(best, time.perf_counter() - start)
        timings.append(best)
        engine.close()
    plain, yielding = timings
    return plain, yielding, (yielding / plain - 1) * 100


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: checks that it runs")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    options = parser.parse_args()
    scale = 10 if options.quick else 1
    spawn_us = bench_spawn(20_000 // scale)
    message_us = bench_message(200_000 // scale)
    ping_pong_us = bench_ping_pong(100_000 // scale)
    idle_kib, idle_spawn_us = bench_idle(10_000 // scale)
    plain_s, yielding_s, overhead = bench_fuel(100_000_000 // scale)
    results = {
        "spawn": {"spawn_and_exit_us": round(spawn_us, 2), "target_us": 30},
        "message": {
            "message_us": round(message_us, 2),
            "ping_pong_message_us": round(ping_pong_us, 2),
            "target_us": 5,
        },
        "idle": {
            "rss_per_process_kib": round(idle_kib, 2),
            "spawn_idle_us": round(idle_spawn_us, 2),
            "target_kib": 25,
        },
        "fuel": {
            "no_yield_s": round(plain_s, 3),
            "yield_s": round(yielding_s, 3),
            "overhead_percent": round(overhead, 1),
            "target_percent": 20,
        },
    }
    for scenario, metrics in results.items():
        print(f"{scenario:8} " + "  ".join(f"{key}={value}" for key, value in metrics.items()))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
