"""A guest's plain sends to another worker of the node leave in C-built batches (a Forward frame
of records, lunatic_mp/vm/inbox.c); every other frame to that worker leaves after them, so a
sender's messages arrive in the order sent, whichever path each took."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime

GUESTS = Path(__file__).parent.parent / "guests"
DEADLINE = 60.0

MIXED = """
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (memory (export "memory") 2)
  ;; n messages tagged 0 carrying 0..n-1; every fourth also carries 70,000 more bytes, past what
  ;; C batches (64 KiB), so it takes the Python path between batched ones
  (func (export "send_mixed") (param $target i64) (param $n i64)
    (local $i i64)
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $create (i64.const 0) (i64.const 8))
      (i64.store (i32.const 0) (local.get $i))
      (drop (call $write (i32.const 0) (i32.const 8)))
      (if (i64.eq (i64.rem_u (local.get $i) (i64.const 4)) (i64.const 3))
        (then (drop (call $write (i32.const 8) (i32.const 70000)))))
      (drop (call $send (local.get $target)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))))
"""


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as runtime:
        yield runtime


def test_messages_keep_their_order_across_the_batched_and_python_paths(runtime: Runtime) -> None:
    a, b = runtime.worker_ids
    count = 4_000
    checker = runtime.spawn(runtime.load_module(GUESTS / "msg_fifo.wat"), "check_seq", (count,), worker=a)
    sender = runtime.spawn(runtime.load_module(MIXED), "send_mixed", (checker, count), worker=b)
    sent = runtime.join(sender, timeout=DEADLINE)
    assert sent is not None and sent.ok, sent
    checked = runtime.join(checker, timeout=DEADLINE)
    assert checked is not None and checked.result == (count,), checked


def test_a_stream_to_another_worker_arrives_whole(runtime: Runtime) -> None:
    """Enough small messages to fill several batches in one step (1 MiB each) all arrive."""
    a, b = runtime.worker_ids
    module = runtime.load_module(Path(__file__).parent.parent.parent / "benchmarks/guests/workers.wat")
    count = 60_000
    consumer = runtime.spawn(module, "consume", (count, 64), EnvConfig.permissive(), worker=b)
    producer = runtime.spawn(module, "produce", (consumer, count, 64), EnvConfig.permissive(), worker=a)
    consumed = runtime.join(consumer, timeout=DEADLINE)
    assert consumed is not None and consumed.result == (count,), consumed
    produced = runtime.join(producer, timeout=DEADLINE)
    assert produced is not None and produced.ok, produced
