"""stream: messages per second from producers to consumers, 64-byte and 4 KiB payloads.

A ``produce`` process sends ``count`` messages as fast as it can to a ``consume`` process, which
receives and reads each; the time runs from the producers' spawn to the consumers' exit. Pairs:
one on one worker, one across two workers, and one pair per worker each sending to the next
worker (in total: the cross-worker target). Beside it: a 64-byte stream on one engine in this
process (per message, the figure issue 2 measured) and ``multiprocessing.Pipe`` between two
Python processes, one message per send.
"""

from __future__ import annotations

import time

from benchmarks import engine, transport
from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.bench.runner import Context, at_least, at_most
from lunatic_mp.vm.module import Module

TITLE = "messages per second between producer/consumer pairs"
PERMISSIVE = EnvConfig.permissive()
SIZES = {"64b": 64, "4kib": 4096}


def stream(runtime: Runtime, module: Module, count: int, size: int, pairs: list[tuple[int, int]]) -> float:
    """Messages per second, in all, over (producer's worker, consumer's worker) pairs."""
    consumers = [runtime.spawn(module, "consume", (count, size), PERMISSIVE, worker=b) for _, b in pairs]
    start = time.perf_counter()
    producers = [
        runtime.spawn(module, "produce", (consumer, count, size), PERMISSIVE, worker=a)
        for (a, _), consumer in zip(pairs, consumers, strict=True)
    ]
    for consumer in consumers:
        finished = runtime.join(consumer, timeout=600)
        assert finished is not None and finished.result == (count,), finished
    elapsed = time.perf_counter() - start
    for producer in producers:
        finished = runtime.join(producer, timeout=60)
        assert finished is not None and finished.ok, finished
    return count * len(pairs) / elapsed


def run(ctx: Context) -> None:
    ctx.step("one engine in this process")
    ctx.record("engine_64b_message_us", engine.bench_message(ctx.pick(200_000, 20_000)), target=at_most(1))

    runtime = ctx.runtime()
    module = runtime.load_module(ctx.guest("workers.wat"))
    workers = runtime.worker_ids
    count = ctx.pick(400_000, 20_000)
    a, b = workers[0], workers[-1]
    ring = [(w, workers[(i + 1) % len(workers)]) for i, w in enumerate(workers)]
    stream(runtime, module, 1000, 64, [(a, b)])  # warm up
    for name, size in SIZES.items():
        ctx.step(f"{name} on one worker")
        same = stream(runtime, module, count, size, [(a, a)])
        ctx.record(f"same_worker_{name}_msgs_per_s", round(same))
        ctx.record(f"same_worker_{name}_message_us", 1e6 / same, target=at_most(5) if size == 64 else None)
        if len(workers) > 1:
            ctx.step(f"{name} across workers")
            cross = stream(runtime, module, count, size, [(a, b)])
            ctx.record(
                f"cross_worker_{name}_msgs_per_s",
                round(cross),
                target=at_least(1_000_000) if size == 64 else None,
            )
            ctx.step(f"{name}, {len(ring)} pairs across workers")
            total = stream(runtime, module, count, size, ring)
            ctx.record(
                f"cross_worker_{name}_all_pairs_msgs_per_s",
                round(total),
                target=at_least(500_000) if size == 64 else None,
            )
        ctx.step(f"{name} through multiprocessing.Pipe")
        pipe = transport.pipe_throughput(count, batched=False, frame=bytes(size))
        ctx.record(f"pipe_{name}_msgs_per_s", round(pipe))
        if len(workers) > 1:
            ctx.record(
                f"cross_worker_{name}_vs_pipe_x", cross / pipe, target=at_least(3) if size == 64 else None
            )
    if len(workers) == 1:
        ctx.note("cross-worker streams need at least 2 workers")
