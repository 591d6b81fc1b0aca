"""spawn: processes spawned and run to exit per second, on one worker and on all of them.

On workers, one ``spawner`` process per worker (spawn_local) spawns ``noop`` children in batches
of 256 from Wasm, as guests do; the spawner monitors the last child of each batch and waits for
its exit (the run queue is FIFO, so the whole batch has then run). Beside it: the same on one
engine in this process (the host spawning, the figure issue 2 measured), plain wasmtime creating a
fresh instance and calling the same export in a loop (the per-core ceiling), and Erlang.
"""

from __future__ import annotations

import time

from benchmarks import baselines, engine
from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.bench.runner import Context, at_least, at_most
from lunatic_mp.vm.module import Module

TITLE = "processes spawned and run to exit"
BATCH = 256
SPAWNERS = EnvConfig(can_spawn_processes=True, spawn_local=True)


def spawners(runtime: Runtime, module: Module, workers: list[int], each: int) -> float:
    """Processes per second, in all, with one spawner of ``each`` children on each worker."""
    start = time.perf_counter()
    pids = [runtime.spawn(module, "spawner", (each, BATCH), SPAWNERS, worker=w) for w in workers]
    for pid in pids:
        finished = runtime.join(pid, timeout=600)
        assert finished is not None and finished.ok and finished.result == (each,), finished
    return each * len(workers) / (time.perf_counter() - start)


def run(ctx: Context) -> None:
    ctx.step("one engine in this process")
    spawn_us = min(engine.bench_spawn(ctx.pick(20_000, 2_000)) for _ in range(3))  # best of 3: a quiet moment
    ctx.record("engine_spawn_and_exit_us", spawn_us, target=at_most(8))
    ctx.record("engine_guest_spawn_cpu_us", engine.bench_guest_spawn(ctx.pick(50_000, 5_000)))

    runtime = ctx.runtime()
    module = runtime.load_module(ctx.guest("workers.wat"))
    workers = runtime.worker_ids
    each = ctx.pick(50_000, 5_000)
    ctx.step("warming up")
    spawners(runtime, module, workers, 2 * BATCH)
    ctx.step("on one worker")
    one = spawners(runtime, module, workers[:1], each)
    ctx.step(f"on {len(workers)} workers")
    every = spawners(runtime, module, workers, each)
    ctx.record("one_worker_processes_per_s", round(one))
    ctx.record("all_workers_processes_per_s", round(every), target=at_least(150_000))
    ctx.record("all_workers_speedup_x", every / one)
    ctx.scaling(
        "throughput",
        "lunatic_mp",
        [(1, one), (len(workers), every)],
        x_label="workers",
        y_label="processes spawned and run to exit per second",
        ideal=one,
    )

    ctx.step("plain wasmtime")
    plain = baselines.instances_per_s(ctx.guest("workers.wat"), "noop", ctx.pick(20_000, 2_000))
    ctx.record("plain_wasmtime_instances_per_s", round(plain))
    ctx.record("one_worker_vs_plain_wasmtime_x", one / plain)

    missing = baselines.erlang_missing()
    if missing:
        ctx.note(missing)
    else:
        ctx.step("Erlang")
        figures = baselines.erlang("spawn", each * len(workers))
        ctx.record("erlang_processes_per_s", round(figures["processes_per_s"]))
        ctx.record("all_workers_vs_erlang_x", every / figures["processes_per_s"], target=at_least(0.1))
