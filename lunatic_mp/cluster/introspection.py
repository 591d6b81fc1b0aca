"""What a worker tells about itself, packed for its reply frame: its figures (``Runtime.stats()``,
``lunatic-mp serve``'s ``/metrics``) and its live processes (``lunatic-mp ps``)."""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

import msgpack

from lunatic_mp.vm import core
from lunatic_mp.vm.engine import Engine

if TYPE_CHECKING:
    from lunatic_mp.cluster.worker import Worker


def worker_stats(worker: Worker) -> bytes:
    """The worker's figures: its engine's processes, capacity, slices, chains, hibernation and
    arenas; its loop's counters; its HTTP front end's; and the guests' metrics."""
    engine = worker.engine
    ticker = engine.preemption.ticker
    packed: bytes = msgpack.packb(
        {
            "worker": worker.worker_id,
            "os_pid": os.getpid(),
            "processes": len(engine.processes),
            "capacity": engine.capacity,
            "capacity_limit": engine.capacity_limit.reason,
            "time_slice_ns": ticker.period_ns,
            "long_slice_ns": engine.scheduler.long_slice_ns,
            "long_slices": ticker.long_slices,
            "long_slices_cut": ticker.long_slices_cut,
            "long_chains": ticker.long_chains,
            "long_chains_cut": ticker.long_chains_cut,
            "hibernated": core.hibernation_stats()[0],
            "arena_reserved_bytes": engine.arenas.memory_stats().reserved_bytes
            + engine.arenas.stack_stats().reserved_bytes,
            "malformed_frames": worker.malformed_frames,
            "flushes_during_rounds": worker.flushes_during_rounds,
            "socket_rounds": worker.socket_rounds,
            "http": worker.http.stats() if worker.http is not None else {},
            "counters": engine.metrics.counters,
            "gauges": engine.metrics.gauges,
            "metrics_dropped": engine.metrics.dropped,
            "histograms": {
                name: [h.count, h.total, h.minimum, h.maximum]
                for name, h in engine.metrics.histograms.items()
            },
        }
    )
    return packed


def process_list(engine: Engine, limit: int) -> bytes:
    """At most ``limit`` of the engine's live processes: each one's pid, kind (``wasm`` or
    ``native``), module (name and digest) and function (for a native process, its function's
    qualified name), phase, whether it waits in a host call, and how many messages, links and
    monitors it has; and how many live processes there are in all."""
    rows = []
    for process in itertools.islice(engine.processes.values(), max(limit, 0)):
        module = getattr(process, "module", None)
        function = getattr(process, "function", None)
        if not isinstance(function, str):  # a native process runs a Python function
            function = getattr(function, "__qualname__", "")
        rows.append(
            {
                "pid": process.pid,
                "kind": "native" if process.native else "wasm",
                "module": module.name if module is not None else "",
                "digest": module.digest if module is not None else b"",
                "function": function,
                "phase": process.phase.value,
                "waiting": process.waiting,
                "mailbox": len(process.mailbox),
                "links": len(process.links),
                "monitors": len(process.monitored_by),
            }
        )
    packed: bytes = msgpack.packb({"total": len(engine.processes), "processes": rows})
    return packed
