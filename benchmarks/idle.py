"""idle: memory per idle process, and the most live processes the machine holds.

A runtime of its own (N workers, default settings) is filled: on each worker a ``fill`` process
spawns ``idle`` children (each waits in ``receive`` for a message that never comes) until a spawn
fails because the worker is at capacity (CapacityError: the engine's limit, from address space
and RAM, lunatic_mp/vm/capacity.py), or until a cap in a --quick run. RSS per process is the
growth of the workers' resident memory divided by the processes added, once every process has
waited longer than the runtime's ``hibernate_after`` (1 s) and had its pages given back
(``rss_per_process_kib``: what an idle process costs a server that holds many;
lunatic_mp/vm/hibernate.c). Before it, the same for 20,000 idle processes per worker on a
runtime without hibernation (``rss_per_process_awake_kib``). Beside them: 10,000 idle
processes on one engine in this process (the figure issue 2 measured); the memory a queued message
takes beyond its data, on that engine (a flood into a mailbox nobody takes from); spawn and
exit with 200,000 processes live against an empty engine; the CPU the full runtime takes while
nothing happens (``idle_runtime_cpu_percent``); the CPU a hibernation costs, and what
it adds to waking a process; what explicit bounds checks cost a
memory-heavy loop (the price of memory slots without guard regions); plain wasmtime instances
kept alive, and Erlang.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

from benchmarks import baselines, engine
from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.bench.runner import Context, at_least, at_most

TITLE = "memory per idle process, and the most live processes"
FILLERS = EnvConfig(can_spawn_processes=True, spawn_local=True)
QUICK_CAP = 2_000
"""Idle processes per worker in a --quick run (a full run fills every worker to capacity)."""
AWAKE_SAMPLE = 20_000
"""Idle processes per worker for the figure before hibernation (per process, it is the same at
capacity: 18.6 KiB either way on the machine of docs/benchmarks.md)."""
HIBERNATION_WAIT_S = 60.0
"""How long the workers get to hibernate their idle processes (two sweeps, 1 s apart, do it)."""


IDLE_CPU_S = 5.0
"""How long the idle runtime's CPU is counted."""


def idle_cpu_percent(seconds: float) -> float:
    """Percent of one core that this process's threads and its children (an idle runtime's
    workers and registry, its supervisor's thread here) take while the main thread sleeps."""
    pids = [os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))]
    before, start = cpu_ns(pids), time.perf_counter()
    time.sleep(seconds)
    return 100 * (cpu_ns(pids) - before) / 1e9 / (time.perf_counter() - start)


def cpu_ns(pids: list[int]) -> int:
    """Nanoseconds on a CPU of every thread of ``pids`` so far (Linux's schedstat: exact, where
    the clock ticks of ``cpu_times`` would round an idle runtime's few milliseconds to 0)."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError):  # a thread that has just ended
                total += int(stat.read_text().split()[0])
    return total


def rss(runtime: Runtime) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in runtime.worker_pids().values())


def fill(ctx: Context, runtime: Runtime, cap: int) -> tuple[int, int]:
    """Fill every worker with up to ``cap`` idle processes (a ``fill`` process spawning ``idle``
    children until the worker is at capacity): the workers' RSS growth and the processes added."""
    module = runtime.load_module(ctx.guest("workers.wat"))
    before = rss(runtime)
    fillers = [runtime.spawn(module, "fill", (cap,), FILLERS, worker=w) for w in runtime.worker_ids]
    spawned = 0
    for filler in fillers:
        finished = runtime.join(filler, timeout=600)
        assert finished is not None and finished.ok, finished
        spawned += finished.result[0]
    return rss(runtime) - before, spawned


def run(ctx: Context) -> None:
    ctx.step("one engine in this process")
    engine_kib, _ = engine.bench_idle(ctx.pick(10_000, 1_000))
    ctx.record("engine_rss_per_process_kib", engine_kib)
    ctx.step("a slow receiver's backlog of 8-byte messages")
    overhead = engine.bench_backlog(ctx.pick(1_000_000, 100_000))
    ctx.record("queued_message_overhead_bytes", overhead, target=at_most(64))
    live = ctx.pick(200_000, 20_000)
    ctx.step(f"spawn into an empty engine and into one with {live:,} live processes")
    empty_us, loaded_us = engine.bench_spawn_loaded(live, ctx.pick(20_000, 5_000))
    ctx.record("engine_spawn_empty_us", empty_us)
    ctx.record("engine_spawn_loaded_us", loaded_us)
    ctx.record("engine_spawn_loaded_slowdown_x", loaded_us / empty_us, target=at_most(1.5))
    ctx.step("hibernating idle processes, and waking them")
    hibernate_us, wake_us, wake_hibernated_us = engine.bench_hibernation(ctx.pick(20_000, 2_000))
    ctx.record("engine_hibernate_us", hibernate_us)
    ctx.record("engine_wake_us", wake_us)
    ctx.record("engine_wake_hibernated_us", wake_hibernated_us)
    ctx.step("bounds checks on a memory-heavy loop")
    checked, pooled = engine.bench_bounds_checks(ctx.pick(300, 30))
    ctx.record("bounds_checks_overhead_percent", checked)
    ctx.record("pooling_bounds_checks_overhead_percent", pooled)

    ctx.step(f"idle processes before they hibernate: a runtime of {ctx.workers} workers without it")
    with Runtime(workers=ctx.workers, hibernate_after=None) as runtime:
        added, spawned = fill(ctx, runtime, ctx.pick(AWAKE_SAMPLE, QUICK_CAP))
        ctx.record("rss_per_process_awake_kib", added / spawned / 1024)

    ctx.step(f"starting a runtime of {ctx.workers} workers")
    with Runtime(workers=ctx.workers) as runtime:
        ctx.step("filling every worker with idle processes")
        before = rss(runtime)
        _, spawned = fill(ctx, runtime, ctx.pick(2**62, QUICK_CAP))
        stats = runtime.stats()
        live = sum(s["processes"] for s in stats)
        capacity = sum(s["capacity"] for s in stats)
        assert live == spawned, (live, spawned)
        ctx.step("waiting for the idle processes to hibernate")
        deadline = time.monotonic() + HIBERNATION_WAIT_S
        while sum(s["hibernated"] for s in runtime.stats()) < live and time.monotonic() < deadline:
            time.sleep(0.1)
        ctx.record("hibernated_count", sum(s["hibernated"] for s in runtime.stats()))
        ctx.record("rss_per_process_kib", (rss(runtime) - before) / spawned / 1024, target=at_most(16))
        ctx.step("the CPU the idle runtime takes")
        ctx.record("idle_runtime_cpu_percent", idle_cpu_percent(ctx.pick(IDLE_CPU_S, 1.0)))
        ctx.record("live_processes_count", live, target=None if ctx.quick else at_least(250_000))
        ctx.record("capacity_count", capacity)
        workers = len(runtime.worker_ids)
        if ctx.quick:
            ctx.note(f"--quick: at most {QUICK_CAP:,} idle processes per worker, not the capacity")
        else:
            assert live == capacity - workers, "a worker stopped short of its capacity"
            ctx.note(f"capacity reached on every worker ({capacity:,} processes on {workers} workers)")
        ctx.step("closing the full runtime")

    ctx.step("plain wasmtime")
    ctx.record(
        "plain_wasmtime_rss_per_instance_kib",
        baselines.rss_per_instance_kib(ctx.guest("engine.wat"), ctx.pick(10_000, 1_000)),
    )
    missing = baselines.erlang_missing()
    if missing:
        ctx.note(missing)
    else:
        ctx.step("Erlang")
        figures = baselines.erlang("idle", ctx.pick(100_000, 10_000))
        ctx.record("erlang_memory_per_process_kib", figures["kib_per_process"])
        ctx.record("erlang_process_limit_count", round(figures["process_limit_count"]))
