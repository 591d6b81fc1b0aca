"""One engine on this thread, no workers: the costs every scenario on workers builds on.

The spawn, stream, ping-pong, idle and fan-out scenarios each report the matching figure from here
(``engine_...``), measured as issue 2 defined them, so they stay comparable with the figures
taken before the harness existed. Guest: ``guests/engine.wat``.
"""

from __future__ import annotations

import gc
import multiprocessing
import struct
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

import psutil
import wasmtime
from wasmtime import _bindings as ffi

from lunatic_mp import Engine, EnvConfig
from lunatic_mp.vm import core, wasm
from lunatic_mp.vm.engine import DEFAULT_MAX_MEMORY
from lunatic_mp.vm.module import Module

GUEST = Path(__file__).parent / "guests" / "engine.wat"
WORKERS_GUEST = Path(__file__).parent / "guests" / "workers.wat"
BATCH = 1000
RING_SUCCESSOR, RING_TOKEN, RING_REPORT = 1, 2, 4
"""The tags of ``workers.wat``'s ``node``: its successor's pid, the token, the last hop's report."""
T = TypeVar("T")


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


def bench_guest_spawn(count: int) -> float:
    """Microseconds of this thread's CPU per child a guest spawns and runs to exit: the ``spawner``
    of ``guests/workers.wat`` (the spawn scenario's guest) on one engine, in batches of 256 with
    the last of each batch monitored, as on a worker. CPU time: the figure the worker's share of
    ``spawn.one_worker_processes_per_s`` is made of, without the machine's other load."""
    engine = Engine()
    module = engine.load_module(WORKERS_GUEST)
    config = EnvConfig(can_spawn_processes=True, spawn_local=True)
    engine.run_until_finished(engine.spawn(module, "spawner", (1024, 256), config))  # warm
    spawner = engine.spawn(module, "spawner", (count, 256), config)
    start = time.thread_time()
    finished = engine.run_until_finished(spawner)
    elapsed = time.thread_time() - start
    assert finished is not None and finished.ok and finished.result == (count,), finished
    engine.close()
    return elapsed / count * 1e6


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


def bench_ring(size: int, hops: int) -> float:
    """Microseconds per hop of a token around a ring of ``size`` processes (``workers.wat``'s
    ``node``, as the ring scenario runs it on a worker), on one engine: the hop without a worker's
    loop around it. The report of the last hop goes to a pid that has exited (and is dropped)."""
    engine = Engine()
    module = engine.load_module(WORKERS_GUEST)
    config = EnvConfig()
    gone = engine.spawn(module, "square", (0,), config)
    engine.run()
    nodes = [engine.spawn(module, "node", (gone.pid,), config) for _ in range(size)]
    engine.run()
    for node, successor in zip(nodes, nodes[1:] + nodes[:1], strict=True):
        engine.send(node.pid, struct.pack("<q", successor.pid), tag=RING_SUCCESSOR)
    engine.run()
    start = time.perf_counter()
    engine.send(nodes[0].pid, struct.pack("<qq", hops, 0), tag=RING_TOKEN)
    engine.run()
    elapsed = time.perf_counter() - start
    visits = 0
    for node in nodes:
        assert node.finished is not None and node.finished.ok, node.finished
        visits += node.finished.result[0]
    assert visits == hops, (visits, hops)
    engine.close()
    return elapsed / hops * 1e6


def bench_idle(count: int) -> tuple[float, float]:
    """RSS in KiB per process idle in receive, and microseconds to spawn each one; in a fresh
    process, as :func:`bench_backlog`."""
    return _in_fresh_process(_idle, count)


def _idle(count: int) -> tuple[float, float]:
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


def bench_hibernation(count: int) -> tuple[float, float, float]:
    """Microseconds of CPU to hibernate a process idle in receive (``workers.wat``'s ``idle``:
    two whole sweeps over ``count`` of them), and to wake one with a message and run it to exit
    when it was not hibernated and when it was (best of 2 each, in turns)."""
    hibernate_us, wake_us = float("inf"), {True: float("inf"), False: float("inf")}
    for hibernated in (False, True, False, True):
        engine = Engine(max_processes=count + 10)
        module = engine.load_module(WORKERS_GUEST)
        for _ in range(count):
            engine.spawn(module, "idle", (), EnvConfig())
        engine.run()
        if hibernated:
            start = time.process_time()
            for _ in range(2):  # the first marks them, the second hibernates them
                position = 0
                while position >= 0:
                    position, _, _ = core.hibernate_idle(engine.processes, position, 10**9)
            hibernate_us = min(hibernate_us, (time.process_time() - start) / count * 1e6)
            assert core.hibernation_stats()[0] >= count, "the idle processes did not hibernate"
        start = time.process_time()
        for pid in list(engine.processes):
            engine.send(pid, b"12345678")
        engine.run()
        wake_us[hibernated] = min(wake_us[hibernated], (time.process_time() - start) / count * 1e6)
        assert not engine.processes
        engine.close()
    return hibernate_us, wake_us[False], wake_us[True]


def bench_backlog(count: int) -> float:
    """Bytes of RSS per queued 8-byte message beyond its data: a process floods ``count`` of them
    into the mailbox of one that never takes them (unbounded: ``max_mailbox=0``). In a fresh
    process: in this one, memory freed by earlier scenarios would be reused and hide the cost."""
    return _in_fresh_process(_backlog, count)


def _in_fresh_process(function: Callable[[int], T], count: int) -> T:
    """``function(count)`` in a fresh Python process: memory figures there start from nothing."""
    with ProcessPoolExecutor(1, multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, count).result()


def _backlog(count: int) -> float:
    engine = Engine()
    module = engine.load_module(GUEST)
    config = EnvConfig(max_mailbox=0)
    holder = engine.spawn(module, "hold", (), config)
    engine.run_until_finished(engine.spawn(module, "flood", (holder.pid, 1000), config))  # warm up
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    engine.run_until_finished(engine.spawn(module, "flood", (holder.pid, count), config))
    rss_after = psutil.Process().memory_info().rss
    assert len(holder.mailbox) == count + 1000 and holder.finished is None
    engine.close()
    return (rss_after - rss_before) / count - 8


def bench_preemption(iterations: int) -> tuple[float, float]:
    """Overhead in percent of a CPU-bound loop's time slices (1 ms epochs, long slices off,
    against 10 s ones), and of a fuel budget (``max_fuel``: the fuel-metering engine) against none.
    CPU time of this thread (the guest runs on it): on a shared machine wall time mostly measures
    the others."""

    def best_of_3(engine: Engine, config: EnvConfig) -> float:
        module = engine.load_module(GUEST)
        best = float("inf")
        for _ in range(3):
            process = engine.spawn(module, "crunch", (iterations,), config)
            start = time.thread_time()
            engine.run_until_finished(process)
            best = min(best, time.thread_time() - start)
        engine.close()
        return best

    budget = EnvConfig()
    budget.max_fuel = 2**40
    unsliced = best_of_3(Engine(time_slice_ns=10_000_000_000), EnvConfig())
    sliced = best_of_3(Engine(long_slice_ns=0), EnvConfig())
    metered = best_of_3(Engine(long_slice_ns=0), budget)
    return (sliced / unsliced - 1) * 100, (metered / sliced - 1) * 100


if __name__ == "__main__":
    raise SystemExit(
        "benchmarks/engine.py is part of lunatic-mp bench now: run "
        "`lunatic-mp bench spawn pingpong stream idle fanout` (the engine_... figures)"
    )


def _spawn_us(engine: Engine, module: Module, count: int) -> float:
    """Microseconds to spawn a trivial process and run it to exit, best of 3 rounds of ``count``."""
    config = EnvConfig()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count // BATCH):
            for _ in range(BATCH):
                engine.spawn(module, "noop", (), config)
            engine.run()
        best = min(best, (time.perf_counter() - start) / (count // BATCH * BATCH) * 1e6)
    return best


def bench_spawn_loaded(live: int, count: int) -> tuple[float, float]:
    """Microseconds per spawn and exit into an empty engine, and with ``live`` idle processes."""
    engine = Engine(max_processes=live + BATCH + 10)
    module = engine.load_module(GUEST)
    _spawn_us(engine, module, BATCH)  # warm: arena chunks, page tables, the free lists
    empty = _spawn_us(engine, module, count)
    config = EnvConfig()
    for _ in range(live):
        engine.spawn(module, "idle", (), config)
    engine.run()
    loaded = _spawn_us(engine, module, count)
    assert len(engine.processes) == live
    engine.close()
    return empty, loaded


MEMORY_LOOP = """(module (memory 17)
  (func (export "loop") (param $rounds i32) (result i32) (local $i i32) (local $acc i32)
    (loop $round
      (local.set $i (i32.const 0))
      (loop $next
        (i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (local.get $i)))
        (local.set $acc (i32.add (local.get $acc) (i32.load offset=4 (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const 1048576))))
      (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
      (br_if $round (i32.gt_s (local.get $rounds) (i32.const 0))))
    (local.get $acc)))"""


def _loop_s(engine: wasmtime.Engine, rounds: int) -> float:
    """CPU seconds of the memory loop on ``engine``, best of 3 (this thread's time)."""
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)
    run = wasmtime.Instance(store, wasmtime.Module(engine, MEMORY_LOOP), []).exports(store)["loop"]
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        run(store, rounds)  # type: ignore[operator]
        best = min(best, time.thread_time() - start)
    return best


def bench_bounds_checks(rounds: int) -> tuple[float, float]:
    """What explicit bounds checks cost a memory-heavy loop (a load, a store and a load per 8
    bytes of 1 MiB, ``rounds`` times), in percent: the arenas' engine (no reservation, no guard:
    every access checked against the memory's size) against wasmtime's default (4 GiB reserved
    and a guard region: no checks), and the pooling configuration before the arenas (256 MiB
    reserved, a 64 KiB guard) against the default."""
    ours = wasm.new_engine(
        async_stack_size=2 << 20, max_wasm_stack=1 << 20, max_instances=1, max_memory=DEFAULT_MAX_MEMORY
    )
    default = wasmtime.Config()
    default.epoch_interruption = True
    pooled = wasmtime.Config()
    pooled.epoch_interruption = True
    ffi.wasmtime_config_memory_reservation_set(pooled.ptr(), DEFAULT_MAX_MEMORY)
    ffi.wasmtime_config_memory_guard_size_set(pooled.ptr(), 64 * 1024)
    ffi.wasmtime_config_memory_may_move_set(pooled.ptr(), False)
    unchecked = _loop_s(wasmtime.Engine(default), rounds)
    checked = _loop_s(ours, rounds)
    before = _loop_s(wasmtime.Engine(pooled), rounds)
    return (checked / unchecked - 1) * 100, (before / unchecked - 1) * 100
