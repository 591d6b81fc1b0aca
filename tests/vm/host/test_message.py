"""End-to-end tests of ``lunatic::message``: sending, FIFO order, selective and timed receive,
request/reply, message data, and messages from the host."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from unittest import mock

import pytest
from conftest import finish_ok as finish
from conftest import start

from lunatic_mp import Engine, Finished, Module, Outcome
from lunatic_mp.vm.mailbox import Message
from lunatic_mp.vm.wasm import GuestTrap

TIMEOUT = 9027

Load = Callable[[str], Module]
Run = Callable[..., Finished]


def i64(data: bytes) -> int:
    """Little-endian bytes (at most 8) as the i64 a guest loads from zeroed memory."""
    return int.from_bytes(data.ljust(8, b"\0"), "little", signed=True)


# --- ping-pong and FIFO order ---------------------------------------------------------------------


def test_ping_pong_round_trips(load: Load, run: Run) -> None:
    """Two Wasm processes exchange 500 ping/pong pairs; every reply carries the expected value."""
    n = 500
    finished = run(load("msg_ping_pong.wat"), "main", (n,))
    assert finished.result == (n * (n - 1),)


def test_ping_pong_reference_guest(load: Load, run: Run) -> None:
    """The shared ping_pong.wat guest completes all its round trips."""
    assert run(load("ping_pong.wat"), "main", (300,)).result == (300,)


def test_fifo_order_from_one_sender(engine: Engine, load: Load) -> None:
    """200 messages sent in one burst by one process arrive in the order they were sent."""
    module = load("msg_fifo.wat")
    receiver = start(engine, module, "check_seq", 200)
    start(engine, module, "send_seq", receiver.pid, 1, 200, 0)
    assert finish(engine, receiver).result == (200,)
    assert len(receiver.mailbox) == 0


def test_fifo_order_per_sender_interleaved(engine: Engine, load: Load) -> None:
    """Three senders that yield between sends interleave, yet each one's messages stay in order."""
    module = load("msg_fifo.wat")
    receiver = start(engine, module, "check_seq", 3 * 50)
    senders = [start(engine, module, "send_seq", receiver.pid, tag, 50, 1) for tag in (1, 2, 3)]
    assert finish(engine, receiver).result == (150,)
    assert all(finish(engine, sender).ok for sender in senders)


# --- selective receive ----------------------------------------------------------------------------


def test_selective_receive_takes_oldest_match(load: Load, run: Run) -> None:
    """A tag filter takes the oldest matching message; the others stay, in their original order."""
    packed, missing_tag, empty = run(load("msg_selective.wat"), "pick").result
    # mailbox 1:1 2:2 1:3 3:4 2:5 -> tag 2 -> 2, tag 3 -> 4, tags {2,3} -> 5, any -> 1, any -> 3
    assert packed == 2_04_05_01_03
    assert missing_tag == TIMEOUT  # tag 9 matched nothing and took nothing
    assert empty == TIMEOUT


def test_selective_receive_waits_past_other_tags(engine: Engine, load: Load) -> None:
    """A process waiting for tag 5 stays blocked when tag 1 arrives, wakes on tag 5, and then
    still finds the tag 1 message in its mailbox."""
    waiter = start(engine, load("msg_selective.wat"), "wait_tag", 5)
    engine.run(timeout=30)
    assert engine.send(waiter.pid, struct.pack("<q", 11), tag=1)
    engine.run(timeout=30)
    assert waiter.finished is None
    assert [m.tag for m in waiter.mailbox] == [1]
    assert engine.send(waiter.pid, struct.pack("<q", 55), tag=5)
    assert finish(engine, waiter).result == (5, 55, 1)


# --- receive timeouts -----------------------------------------------------------------------------


def test_receive_times_out(load: Load, run: Run) -> None:
    """With nothing arriving, receive with a 30 ms timeout returns 9027, and not before 30 ms."""
    began = time.monotonic()
    assert run(load("msg_timeout.wat"), "receive_within", (30,)).result == (TIMEOUT,)
    elapsed = time.monotonic() - began
    assert 0.03 <= elapsed < 10


def test_receive_timeout_zero_on_empty_mailbox(load: Load, run: Run) -> None:
    """receive with timeout 0 and an empty mailbox returns 9027."""
    assert run(load("msg_timeout.wat"), "receive_within", (0,)).result == (TIMEOUT,)


def test_receive_timeout_zero_does_not_suspend(engine: Engine, load: Load) -> None:
    """A timeout-0 receive returns at once: its process reports before one spawned after it."""
    module = load("msg_collector.wat")
    collector = start(engine, module, "collect", 2)
    start(engine, module, "report_after_zero_receive", collector.pid, 1)
    start(engine, module, "report", collector.pid, 2)
    assert finish(engine, collector).result == (1_02,)


def test_message_before_timeout_wins(engine: Engine, load: Load) -> None:
    """A message sent 10 ms into a 10 s receive timeout is received (code 0) long before 10 s."""
    module = load("msg_timeout.wat")
    began = time.monotonic()
    receiver = start(engine, module, "receive_within", 10_000)
    start(engine, module, "send_later", receiver.pid, 10)
    assert finish(engine, receiver).result == (0,)
    assert time.monotonic() - began < 5


def test_message_after_timeout_is_kept(engine: Engine, load: Load) -> None:
    """A message arriving after a receive timed out is not lost: the next receive gets it."""
    module = load("msg_timeout.wat")
    receiver = start(engine, module, "receive_twice", 10)
    start(engine, module, "send_later", receiver.pid, 40)
    assert finish(engine, receiver).result == (TIMEOUT, 0)


# --- send_receive_skip_search ---------------------------------------------------------------------


def test_request_reply(engine: Engine, load: Load) -> None:
    """send_receive_skip_search returns the tagged reply, skipping an older message with the same
    tag and a newer one with another tag; both stay in the mailbox, in order."""
    module = load("msg_request.wat")
    server = start(engine, module, "server")
    client = start(engine, module, "client", server.pid, 1234, 21)
    code, tag, value, leftovers = finish(engine, client).result
    assert (code, tag, value) == (0, 1234, 42)
    assert leftovers == 99_01  # the stale message (99), then the server's noise (1)


def test_request_reply_many_clients(engine: Engine, load: Load) -> None:
    """Several clients with distinct tags share one server; each gets its own answer."""
    module = load("msg_request.wat")
    server = start(engine, module, "server")
    clients = [start(engine, module, "client", server.pid, 100 + x, x) for x in range(1, 6)]
    for x, client in enumerate(clients, start=1):
        assert finish(engine, client).result == (0, 100 + x, 2 * x, 99_01)


def test_request_times_out(engine: Engine, load: Load) -> None:
    """A request to a process that never answers returns 9027 after its timeout; the request
    itself was delivered."""
    module = load("msg_request.wat")
    sink = start(engine, module, "sink")
    began = time.monotonic()
    client = start(engine, module, "request_within", sink.pid, 30)
    assert finish(engine, client).result == (TIMEOUT,)
    assert 0.03 <= time.monotonic() - began < 10
    assert sink.finished is None
    assert [m.tag for m in sink.mailbox] == [77]


# --- message data ---------------------------------------------------------------------------------


def test_data_round_trip(load: Load, run: Run) -> None:
    """write_data/read_data/seek_data/data_size/get_tag agree; reads past the end return fewer
    bytes (or none)."""
    result = run(load("msg_data.wat"), "roundtrip").result
    assert result == (
        5, 6,  # write counts
        42, 11,  # tag, data size
        5, i64(b"hello"),  # read 5
        6, i64(b" world"),  # read 100: only 6 left
        0,  # read at the end
        5, i64(b"world"),  # seek 6, read 5
        0,  # seek past the end, read
    )  # fmt: skip


def test_a_received_message_extended_and_sent_on(load: Load, run: Run) -> None:
    """write_data onto a received message (which the host holds inline, fixed) writes onto a copy,
    which is what goes on with the next send."""
    assert run(load("msg_data.wat"), "extend_received").result == (7, 11, 11, i64(b"hello wo"))


def test_a_module_attached_to_a_received_message(load: Load, run: Run) -> None:
    """push_module onto a received message (inline, fixed) attaches to a copy that goes on."""
    assert run(load("msg_data.wat"), "attach_to_received").result == (0, 5, 1)


def test_message_from_host(engine: Engine, load: Load) -> None:
    """engine.send delivers tag and data to a waiting guest."""
    guest = start(engine, load("msg_data.wat"), "from_host")
    engine.run(timeout=30)
    assert guest.finished is None
    payload = b"abcdefgh-and-more"
    assert engine.send(guest.pid, payload, tag=-3) is True
    assert finish(engine, guest).result == (-3, len(payload), i64(payload[:8]))


def test_message_from_host_before_receive(engine: Engine, load: Load) -> None:
    """A host message sent before the guest runs waits in its mailbox."""
    guest = start(engine, load("msg_data.wat"), "from_host")
    assert engine.send(guest.pid, b"xy", tag=9)
    assert len(guest.mailbox) == 1
    assert finish(engine, guest).result == (9, 2, i64(b"xy"))


def test_send_to_dead_process_is_dropped(engine: Engine, load: Load) -> None:
    """Sending to a dead pid returns 0 and the sender carries on; the host's send returns False."""
    module = load("msg_data.wat")
    dead = start(engine, module, "roundtrip")
    finish(engine, dead)
    assert dead.pid not in engine.processes
    sender = start(engine, module, "send_to_dead", dead.pid)
    assert finish(engine, sender).result == (0, 0, 123)
    assert engine.send(dead.pid, b"late") is False


def test_killed_receiver_drops_later_messages(engine: Engine, load: Load) -> None:
    """A process killed while blocked in receive is gone: later host sends to it are dropped."""
    guest = start(engine, load("msg_data.wat"), "from_host")
    engine.run(timeout=30)
    assert engine.kill(guest.pid)
    assert guest.finished is not None and guest.finished.outcome is Outcome.KILLED
    assert engine.send(guest.pid, b"x") is False
    engine.run(timeout=30)


@pytest.mark.parametrize("n", [1, 2, 64])
def test_ping_pong_counts(load: Load, run: Run, n: int) -> None:
    """Ping-pong works for small and larger round-trip counts."""
    assert run(load("msg_ping_pong.wat"), "main", (n,)).result == (n * (n - 1),)


# --- the request/reply trap: a reply to get_process_id after create_data -----------------------

REPLY_AFTER_CREATE = """
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "get_process_id" (func $sender (result i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "get_tag" (func $get_tag (result i64)))
  (memory (export "memory") 1)
  ;; The asker: returns the tag of the reply it gets.
  (func (export "collect") (result i64)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $get_tag))
  ;; Wrong: create_data replaces the received message, so get_process_id returns 0 here.
  (func (export "wrong") (result i32)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (call $create (i64.const 1) (i64.const 0))
    (call $send (call $sender)))
  ;; Right: the sender first, then the reply.
  (func (export "right") (result i32)
    (local $from i64)
    (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
    (local.set $from (call $sender))
    (call $create (i64.const 1) (i64.const 0))
    (call $send (local.get $from))))
"""


def test_a_send_to_pid_0_traps_and_says_why(engine: Engine, load: Load) -> None:
    """The reply used to vanish (or land in the host program's mailbox, on a runtime), so a
    server that worked when the host asked lost every reply to another process."""
    module = load(REPLY_AFTER_CREATE)
    wrong = start(engine, module, "wrong")
    right = start(engine, module, "right")
    asker = start(engine, module, "collect")
    for server in (wrong, right):
        engine.deliver(server.pid, Message(5, b"ask", pid=asker.pid))
    failed = engine.run_until_finished(wrong, timeout=TIMEOUT)
    assert failed is not None and failed.outcome is Outcome.FAILED
    assert "send to pid 0" in failed.message and "before create_data" in failed.message
    assert finish(engine, right).result == (0,)
    assert finish(engine, asker).result == (1,)  # the right server's reply arrived


GROWN = """
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "seek_data" (func $seek (param i64)))
  (memory (export "memory") 1)
  ;; Touch the scratch calls first (memory cached at 1 page), grow by a page, then write from and
  ;; read into the new page: the C functions re-read the size instead of trapping.
  (func (export "main") (result i64)
    (call $create (i64.const 1) (i64.const 0))
    (drop (call $write (i32.const 0) (i32.const 8)))
    (drop (memory.grow (i32.const 1)))
    (i64.store (i32.const 70000) (i64.const 0x1122334455667788))
    (drop (call $write (i32.const 70000) (i32.const 8)))
    (call $seek (i64.const 8))
    (drop (call $read (i32.const 80000) (i32.const 8)))
    (i64.load (i32.const 80000))))
"""


def test_scratch_calls_reach_memory_the_guest_grew(run: Run, load: Load) -> None:
    """The C scratch calls cache the memory's size; a grown memory is re-read, not refused."""
    assert run(load(GROWN), "main").result == (0x1122334455667788,)


SENDER = """
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (memory (export "memory") 1)
  (func (export "main") (param $to i64) (result i32)
    (call $create (i64.const 5) (i64.const 0))
    (call $send (local.get $to))))
"""


@pytest.mark.parametrize(
    ("raised", "reason", "host_error"),
    [
        (GuestTrap("refused by the host"), "refused by the host", False),
        (RuntimeError("boom"), "host error in lunatic::message::send: RuntimeError('boom')", True),
    ],
)
def test_a_failing_delivery_traps_only_the_sender(raised: Exception, reason: str, host_error: bool) -> None:
    """The C send calls Engine.deliver for a pid that is no local process's: a GuestTrap it raises
    traps the sender with its text; any other exception is the host's fault, reported in
    Engine.host_errors, and traps it too."""
    with mock.patch.object(Engine, "deliver", side_effect=raised):
        engine = Engine(max_processes=4)
    try:
        process = start(engine, engine.load_module(SENDER), "main", 12345)
        finished = engine.run_until_finished(process, timeout=30)
        assert finished is not None and finished.outcome is Outcome.FAILED
        assert finished.message == reason
        assert engine.host_errors == ([raised] if host_error else [])
    finally:
        engine.host_errors.clear()
        engine.close()
