"""ring: the classic ring benchmark, a token passed around a ring of processes.

``size`` ``node`` processes form a ring (the host program tells each its successor); the host
sends a token that makes ``hops`` hops in all, each node passing it on to the next, and the node
making the last hop reports to the host. Two layouts: every node on one worker, and the ring cut
into one contiguous block per worker (so one hop in ``size / workers`` crosses to another
worker). Set-up is not timed. Beside it: Erlang, same ring, same hops, run in turns with the ring
on one worker (each figure the best of its runs).
"""

from __future__ import annotations

import struct
import time

from benchmarks import baselines, engine
from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.bench.runner import Context, at_least
from lunatic_mp.vm.module import Module

TITLE = "a token passed around a ring of processes"
PERMISSIVE = EnvConfig.permissive()
SUCCESSOR, TOKEN, REPORT = engine.RING_SUCCESSOR, engine.RING_TOKEN, engine.RING_REPORT
TURNS = 3
"""Runs of the ring on one worker and of Erlang's, in turns: each figure is the best of its runs,
so that one slow run of either (this machine's figures moved 10-20% from run to run) does not
decide the ratio."""


def ring(runtime: Runtime, module: Module, placement: list[int], hops: int) -> float:
    """Hops per second around a ring whose node i runs on worker ``placement[i]``."""
    futures = [runtime.spawn_future(module, "node", (runtime.pid,), PERMISSIVE, worker=w) for w in placement]
    nodes = [future.result(60) for future in futures]
    for node, successor in zip(nodes, nodes[1:] + nodes[:1], strict=True):
        runtime.send(node, struct.pack("<q", successor), tag=SUCCESSOR)
    start = time.perf_counter()
    runtime.send(nodes[0], struct.pack("<qq", hops, 0), tag=TOKEN)
    report = runtime.receive(tags=[REPORT], timeout=600)
    elapsed = time.perf_counter() - start
    assert report is not None and struct.unpack("<q", bytes(report.data)) == (hops,), report
    visits = 0
    for node in nodes:
        finished = runtime.join(node, timeout=60)
        assert finished is not None and finished.ok, finished
        visits += finished.result[0]
    assert visits == hops, (visits, hops)
    return hops / elapsed


def run(ctx: Context) -> None:
    runtime = ctx.runtime()
    module = runtime.load_module(ctx.guest("workers.wat"))
    workers = runtime.worker_ids
    size, rounds = ctx.pick((1000, 200), (100, 20))
    hops = size * rounds
    ctx.note(f"{size} processes, {hops:,} hops")
    ctx.step("warming up")
    ring(runtime, module, [workers[0]] * 10, 1000)
    missing = baselines.erlang_missing()
    turns = ctx.pick(TURNS, 1)
    ctx.step("on one worker" if missing else "on one worker and Erlang, in turns")
    ones: list[float] = []
    erlangs: list[float] = []
    for _ in range(turns):
        ones.append(ring(runtime, module, [workers[0]] * size, hops))
        if not missing:
            erlangs.append(baselines.erlang("ring", size, hops)["hops_per_s"])
    one = max(ones)
    ctx.record("one_worker_hops_per_s", round(one))
    ctx.record("one_worker_hop_us", 1e6 / one)
    ctx.step(f"over {len(workers)} workers")
    blocks = [workers[i * len(workers) // size] for i in range(size)]
    every = ring(runtime, module, blocks, hops)
    ctx.record("all_workers_hops_per_s", round(every))
    ctx.record("all_workers_hop_us", 1e6 / every)
    ctx.step("on one engine in this process")
    ctx.record("engine_hop_us", min(engine.bench_ring(size, hops) for _ in range(3)))

    if missing:
        ctx.note(missing)
    else:
        ctx.record("erlang_hops_per_s", round(max(erlangs)))
        ctx.record("one_worker_vs_erlang_x", one / max(erlangs), target=at_least(0.3))
