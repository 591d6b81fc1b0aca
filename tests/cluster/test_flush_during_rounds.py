"""A worker's frames leave during a long scheduler round, not only at its end: once a tick has
gone by in a round with more processes to run, the worker flushes what is queued (Runner.between),
so a reply is not held behind the slices left in the round."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime

GUESTS = Path(__file__).parent.parent / "guests"
DEADLINE = 60.0
SPINNERS = 8

BUSY = """
(module
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (memory (export "memory") 1)
  ;; Forever: `work` loop turns (about a millisecond here), then a sleep of 0 ms, which queues it
  ;; again when the next round's timers fire: after what arrived for others in between.
  (func (export "busy") (param $work i64)
    (local $i i64)
    (loop $forever
      (local.set $i (local.get $work))
      (loop $spin
        (local.set $i (i64.sub (local.get $i) (i64.const 1)))
        (br_if $spin (i64.gt_s (local.get $i) (i64.const 0))))
      (call $sleep (i64.const 0))
      (br $forever))))
"""


def test_a_reply_leaves_before_the_rest_of_a_long_round() -> None:
    with Runtime(workers=1) as runtime:
        (worker,) = runtime.worker_ids
        busy = runtime.load_module(BUSY)
        spinners = [runtime.spawn(busy, "busy", (1_000_000,), worker=worker) for _ in range(SPINNERS)]
        server = runtime.spawn(
            runtime.load_module(GUESTS / "hostile.wat"), "echo", (), EnvConfig.permissive(), worker=worker
        )
        round_trips = []
        for value in range(30):
            start = time.perf_counter()
            runtime.send(server, value.to_bytes(8, "little"), 3)
            reply = runtime.receive([3], timeout=DEADLINE)
            round_trips.append(time.perf_counter() - start)
            assert reply is not None and bytes(reply.data) == value.to_bytes(8, "little")
        (stats,) = runtime.stats()
        assert stats["flushes_during_rounds"] > 0, stats
        for pid in [*spinners, server]:
            runtime.kill(pid)
    print(f"round trip median {statistics.median(round_trips) * 1e3:.2f} ms")  # for a person reading -s
