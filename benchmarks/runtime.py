"""Several workers: cross-worker latency and throughput, and CPU-bound scaling.

    python benchmarks/runtime.py [--quick] [--workers N] [--json FILE]

Targets (issue 3, on a 2-core machine): cross-worker ping-pong round trip p50 <= 20 us; streaming
64-byte messages between workers >= 500,000 messages/s in total; CPU-bound Wasm work over 2 workers
>= 1.8 times as fast as on 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time
from pathlib import Path

from lunatic_mp import EnvConfig
from lunatic_mp.module import Module
from lunatic_mp.runtime import Runtime

GUEST = Path(__file__).parent / "guests" / "cross.wat"
PERMISSIVE = EnvConfig.permissive()


def ping_pong(runtime: Runtime, module: Module, count: int, same_worker: bool) -> dict[str, float]:
    """Round-trip times measured by the pinger itself (WASI monotonic clock), in microseconds."""
    first, second = runtime.worker_ids[0], runtime.worker_ids[-1 if not same_worker else 0]
    ponger = runtime.spawn(module, "pong", (), PERMISSIVE, worker=second)
    pinger = runtime.spawn(module, "ping", (ponger, count, runtime.pid), PERMISSIVE, worker=first)
    report = runtime.receive(tags=[7], timeout=600)
    assert report is not None, "no report from the pinger"
    runtime.join(pinger, timeout=60)
    runtime.join(ponger, timeout=60)
    times = sorted(t / 1000 for t in struct.unpack(f"<{count}Q", bytes(report.data)))
    return {
        "p50_us": round(statistics.median(times), 2),
        "p99_us": round(times[int(len(times) * 0.99)], 2),
        "mean_us": round(statistics.fmean(times), 2),
    }


def stream(runtime: Runtime, module: Module, count: int, pairs: list[tuple[int, int]]) -> float:
    """Messages per second, in total, over producer -> consumer pairs (worker ids given)."""
    consumers = [runtime.spawn(module, "consume", (count,), PERMISSIVE, worker=b) for _, b in pairs]
    start = time.perf_counter()
    producers = [
        runtime.spawn(module, "produce", (consumer, count), PERMISSIVE, worker=a)
        for (a, _), consumer in zip(pairs, consumers, strict=True)
    ]
    for consumer in consumers:
        finished = runtime.join(consumer, timeout=600)
        assert finished is not None and finished.result == (count,), finished
    elapsed = time.perf_counter() - start
    for producer in producers:
        runtime.join(producer, timeout=60)
    return count * len(pairs) / elapsed


def fan_out(runtime: Runtime, module: Module, jobs: int, work: int, workers: list[int]) -> float:
    """Seconds to run ``jobs`` CPU-bound jobs spread over ``workers``."""
    start = time.perf_counter()
    pids = [
        runtime.spawn(module, "crunch", (work,), PERMISSIVE, worker=workers[i % len(workers)])
        for i in range(jobs)
    ]
    for pid in pids:
        finished = runtime.join(pid, timeout=600)
        assert finished is not None and finished.ok, finished
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: checks that it runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    options = parser.parse_args()
    scale = 20 if options.quick else 1
    results: dict[str, dict[str, float]] = {}
    with Runtime(workers=options.workers) as runtime:
        module = runtime.load_module(GUEST)
        a, b = runtime.worker_ids[0], runtime.worker_ids[-1]
        cross = ping_pong(runtime, module, 20_000 // scale, same_worker=False)
        local = ping_pong(runtime, module, 20_000 // scale, same_worker=True)
        results["ping_pong"] = {
            **{f"cross_worker_{k}": v for k, v in cross.items()},
            **{f"same_worker_{k}": v for k, v in local.items()},
            "target_cross_p50_us": 20,
        }
        count = 400_000 // scale
        results["stream"] = {
            "cross_worker_one_pair_msgs_per_s": round(stream(runtime, module, count, [(a, b)])),
            "cross_worker_two_pairs_msgs_per_s": round(stream(runtime, module, count, [(a, b), (b, a)])),
            "same_worker_one_pair_msgs_per_s": round(stream(runtime, module, count, [(a, a)])),
            "target_total_msgs_per_s": 500_000,
        }
        jobs, work = 8, 200_000_000 // scale
        one = fan_out(runtime, module, jobs, work, [a])
        every = fan_out(runtime, module, jobs, work, runtime.worker_ids)
        results["fan_out"] = {
            "one_worker_s": round(one, 3),
            f"{len(runtime.worker_ids)}_workers_s": round(every, 3),
            "speedup": round(one / every, 2),
            "target_speedup": 1.8,
        }
    for scenario, metrics in results.items():
        print(f"{scenario:10} " + "  ".join(f"{key}={value}" for key, value in metrics.items()))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
