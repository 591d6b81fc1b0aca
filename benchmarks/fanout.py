"""fanout: a CPU-bound Wasm job over 1..N workers, and the overhead of tiny jobs.

CPU-bound: ``jobs`` calls of ``crunch`` (an LCG loop, about a quarter of a second each), spawned
from the host program onto the first k workers for k = 1..N: speed-up t1 / tk and efficiency
speed-up / k. Beside it: the same jobs one after another with plain wasmtime in this process (the
per-core ceiling: efficiency against it is t_plain / (N * tN)), a ProcessPoolExecutor of N
processes (in turns with all workers, best of five each; and with a runtime without long slices,
what they buy), and Ray. The cost of fuel yields (lunatic's preemption) on the same loop, on one engine
in this process, is the figure issue 2 measured.

Tiny jobs: ``WasmExecutor.map`` of ``square`` over every worker, best of three, wall time per
job; against the same module's export called in a loop with plain wasmtime, and a
ProcessPoolExecutor of N processes running each job on a fresh instance.
"""

from __future__ import annotations

import time

from benchmarks import baselines, engine
from lunatic_mp import EnvConfig
from lunatic_mp.api.executor import WasmExecutor
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.bench.runner import Context, at_least, at_most
from lunatic_mp.vm.module import Module

TITLE = "CPU-bound jobs over 1..N workers, and tiny jobs"
PERMISSIVE = EnvConfig.permissive()
TURNS = 5
"""Runs of the pool and of all workers, in turns: each figure is the best of its runs (with three,
the ratio moved by 1-2% from one bench to the next on a quiet 2-core VM; see docs/performance.md,
"The thirteenth round")."""


def cpu_jobs(runtime: Runtime, module: Module, jobs: int, work: int, workers: list[int]) -> float:
    """Seconds to run ``jobs`` CPU-bound jobs spread over ``workers``."""
    start = time.perf_counter()
    futures = [
        runtime.spawn_future(module, "crunch", (work,), PERMISSIVE, worker=workers[i % len(workers)])
        for i in range(jobs)
    ]
    for future in futures:
        finished = runtime.join(future.result(60), timeout=600)
        assert finished is not None and finished.ok, finished
    return time.perf_counter() - start


def tiny_jobs_us(runtime: Runtime, module: Module, count: int) -> float:
    """Wall microseconds per tiny job through the executor (best of three maps)."""
    with WasmExecutor(runtime, module) as executor:
        list(executor.map("square", range(1000)))  # warm up
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            results = list(executor.map("square", range(count)))
            best = min(best, time.perf_counter() - start)
            assert results[-1] == (count - 1) ** 2
    return best / count * 1e6


def run(ctx: Context) -> None:
    runtime = ctx.runtime()
    guest = ctx.guest("workers.wat")
    module = runtime.load_module(guest)
    workers = runtime.worker_ids
    n = len(workers)
    jobs, work = 4 * n, ctx.pick(200_000_000, 20_000_000)
    ctx.note(f"{jobs} CPU-bound jobs of {work:,} LCG steps")

    ctx.step("plain wasmtime, CPU-bound")
    plain = baselines.jobs_s(guest, "crunch", [work] * jobs)
    ctx.record("plain_wasmtime_job_s", plain / jobs)
    times = {}
    for k in range(1, n + 1):
        ctx.step(f"CPU-bound on {k} worker{'s' * (k > 1)}")
        times[k] = cpu_jobs(runtime, module, jobs, work, workers[:k])
    ctx.record("one_worker_job_s", times[1] / jobs)
    ctx.record("one_worker_vs_plain_wasmtime_x", plain / times[1], target=at_least(0.95))
    ctx.record("all_workers_speedup_x", times[1] / times[n])
    ctx.record("all_workers_efficiency_percent", 100 * times[1] / (n * times[n]), target=at_least(95))
    ctx.record("all_workers_vs_plain_wasmtime_ceiling_percent", 100 * plain / (n * times[n]))
    ctx.scaling(
        "speed-up",
        "lunatic_mp",
        [(k, times[1] / t) for k, t in times.items()],
        x_label="workers",
        y_label="speed-up over one worker",
        ideal=1.0,
    )

    ctx.step(f"ProcessPoolExecutor of {n} beside all workers, CPU-bound, in turns")
    with baselines.WasmPool(guest, n) as pool, Runtime(workers=n, long_slice_ns=0) as short:
        short_module = short.load_module(guest)
        pool_runs, ours, shorts = [], [], []
        for _ in range(ctx.pick(TURNS, 1)):  # one run of each moves by a few % from run to run
            pool_runs.append(pool.run("crunch", [work] * jobs)[0])
            ours.append(cpu_jobs(runtime, module, jobs, work, workers))
            shorts.append(cpu_jobs(short, short_module, jobs, work, short.worker_ids))
        pool_s = min(pool_runs)
        ctx.record("process_pool_s", pool_s)
        ctx.record("all_workers_vs_process_pool_x", pool_s / min(ours), target=at_least(1))
        ctx.record("all_workers_no_long_slices_vs_process_pool_x", pool_s / min(shorts))

        ctx.step("tiny jobs through WasmExecutor")
        count = ctx.pick(20_000, 2_000)
        tiny = tiny_jobs_us(runtime, module, count)
        ctx.record("tiny_job_overhead_us", tiny, target=at_most(15))
        ctx.step(f"tiny jobs through ProcessPoolExecutor of {n}")
        pool_tiny = min(pool.run("square", list(range(count)))[0] for _ in range(3)) / count * 1e6
    ctx.record("process_pool_tiny_job_us", pool_tiny)
    ctx.record("tiny_job_vs_process_pool_x", pool_tiny / tiny)
    ctx.step("plain wasmtime, tiny")
    ctx.record("plain_wasmtime_call_us", baselines.call_us(guest, "square", range(count)))

    ctx.step("time slices and fuel metering, one engine in this process")
    slices, metering = engine.bench_preemption(ctx.pick(100_000_000, 10_000_000))
    ctx.record("engine_slice_yield_overhead_percent", slices)
    ctx.record("engine_fuel_metering_overhead_percent", metering)

    missing = baselines.ray_missing()
    if missing:
        ctx.note(missing)
    else:
        ctx.step("Ray")
        ray = baselines.ray_jobs_s(
            guest, {"cpu": ("crunch", [work] * jobs), "tiny": ("square", list(range(count)))}, n
        )
        ctx.record("ray_s", ray["cpu"])
        ctx.record("all_workers_vs_ray_x", ray["cpu"] / times[n])
        ctx.record("ray_tiny_job_us", ray["tiny"] / count * 1e6)
        ctx.record("tiny_job_vs_ray_x", ray["tiny"] / count * 1e6 / tiny)
