"""Plain Message frames from other workers, delivered in C (lunatic_mp/vm/inbox.c): the C parser
and lunatic_mp.cluster.frames agree on every encoding, and anything else is left to Python."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest

from lunatic_mp import Engine, EnvConfig, Module
from lunatic_mp.cluster import frames
from lunatic_mp.cluster.wire import frame_record
from lunatic_mp.vm import core
from lunatic_mp.vm.process import Process

INTS = [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**31 - 1, 2**31, 2**32, 2**63 - 1]
INTS += [-1, -32, -33, -128, -129, -32_768, -32_769, -(2**31), -(2**31) - 1, -(2**63)]
SIZES = [0, 1, 255, 256, 65_535, 65_536, 200_000]  # bin8, bin16 and bin32


@pytest.fixture
def idle(engine: Engine, load: Callable[[str], Module]) -> Process:
    """A process spawned and not run yet: what arrives for it stays in its mailbox."""
    return engine.spawn(load("msg_fifo.wat"), "check_seq", [1], EnvConfig())


def _frame(
    to: int, sender: int = 7, tag: int = 3, data: bytes = b"hi", modules: tuple[bytes, ...] = ()
) -> bytes:
    return frames.encode(frames.Message(to, sender, tag, data, modules))


def test_every_integer_and_size_decodes_as_python_decodes_it(engine: Engine, idle: Process) -> None:
    sent = [_frame(idle.pid, sender=value, tag=~value) for value in INTS]
    sent += [_frame(idle.pid, data=bytes(range(256)) * (size // 256) + b"x" * (size % 256)) for size in SIZES]
    assert core.deliver_messages(engine.message_hooks, sent, 0) == len(sent)
    arrived = [idle.mailbox.take(None) for _ in sent]
    for data, message in zip(sent, arrived, strict=True):
        frame = frames.decode(data)
        assert isinstance(frame, frames.Message)
        assert message is not None
        assert (message.tag, message.pid, bytes(message.data)) == (frame.tag, frame.sender, frame.data)
        assert message.modules == []


def test_it_stops_at_the_first_frame_that_is_not_a_plain_message(engine: Engine, idle: Process) -> None:
    """A frame of another kind, one with a module attached, a malformed or truncated one, a
    bytearray, or an integer past i64 (hand-made: msgspec never writes one) is left to Python."""
    plain = _frame(idle.pid)
    past_i64 = b"\x96\x01\xcf" + (2**63).to_bytes(8, "big") + b"\x07\x03\xc4\x02hi\x90"
    with pytest.raises(frames.FrameError):
        frames.decode(past_i64)  # Python refuses it too
    largest = b"\x96\x01\xcf" + (2**63 - 1).to_bytes(8, "big") + b"\x07\x03\xc4\x02hi\x90"
    assert frames.decode(largest) == frames.Message(2**63 - 1, 7, 3, b"hi", ())
    assert core.deliver_messages(engine.message_hooks, [largest], 0) == 1  # C takes it too
    others = [
        frames.encode(frames.Kill(idle.pid, "stop")),
        _frame(idle.pid, modules=(b"\x01" * 32,)),
        plain[:-1],
        plain + b"\x00",
        b"",
        b"\x96",
        bytearray(plain),
        past_i64,
    ]
    for other in others:
        assert core.deliver_messages(engine.message_hooks, [plain, other, plain], 0) == 1
        assert core.deliver_messages(engine.message_hooks, [plain, other, plain], 2) == 3
    assert len(idle.mailbox) == 2 * len(others)


def test_a_message_for_no_local_process_goes_to_engine_deliver(engine: Engine, idle: Process) -> None:
    """Engine.deliver takes what C leaves: a pid nobody has here is dropped, as in Python."""
    assert core.deliver_messages(engine.message_hooks, [_frame(idle.pid + 1000), _frame(idle.pid)], 0) == 2
    assert len(idle.mailbox) == 1


def test_bad_arguments_are_refused(engine: Engine) -> None:
    with pytest.raises(TypeError, match="hooks must be a tuple"):
        core.deliver_messages((), [], 0)
    with pytest.raises(TypeError, match="frames: list"):
        core.deliver_messages(engine.message_hooks, (), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start must be >= 0"):
        core.deliver_messages(engine.message_hooks, [], -1)
    assert core.deliver_messages(engine.message_hooks, [], 5) == 5


def test_mutated_frames_get_the_same_verdict_from_c_and_python(engine: Engine, idle: Process) -> None:
    """Random byte flips, cuts and insertions (a fixed seed) of valid frames: C delivers exactly
    those that Python decodes as a plain Message to a pid, and never crashes on the rest."""
    rng = random.Random(15)
    seeds = [_frame(idle.pid, sender=s, tag=t, data=bytes(n)) for s, t, n in ((1, 2, 0), (-5, 2**40, 300))]
    verdicts = {True: 0, False: 0}
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(data) + 1)
            action = rng.randrange(3)
            if action == 0 and where < len(data):
                data[where] = rng.randrange(256)
            elif action == 1:
                del data[where:]
            else:
                data.insert(where, rng.randrange(256))
        frame = bytes(data)
        try:
            decoded = frames.decode(frame)
        except frames.FrameError:
            decoded = None
        plain = isinstance(decoded, frames.Message) and not decoded.modules
        before = len(idle.mailbox)
        delivered = core.deliver_messages(engine.message_hooks, [frame], 0) == 1
        assert delivered == plain, frame
        verdicts[delivered] += 1
        if delivered and decoded is not None and decoded.to == idle.pid:
            assert len(idle.mailbox) == before + 1
    assert min(verdicts.values()) > 100, verdicts  # both kinds of verdict, many times


def test_a_message_frame_encoded_in_c_is_the_one_frames_encode_makes() -> None:
    """The sending side: core.encode_message writes msgpack's smallest forms, as msgspec does."""
    for value in INTS:
        for size in SIZES:
            data = bytes(size)
            expected = frames.encode(frames.Message(value, ~value, value, data, ()))
            assert core.encode_message(value, ~value, value, data) == expected
    with pytest.raises(TypeError, match="data: bytes"):
        core.encode_message(1, 2, 3, bytearray(b"x"))  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        core.encode_message(2**63, 2, 3, b"")


# --- a cluster link's records (lunatic_mp.cluster.gateway), split in C ------------------------


def test_link_records_split_into_frames_for_this_node() -> None:
    records = frame_record((7 << 16) | 3, b"one") + frame_record((7 << 16) | 0xFFFF, b"") + b"\x05\x00"
    frames_, end, module_next = core.split_link_records(bytearray(records), 0, 7, 1 << 20)
    assert frames_ == {3: [b"one"]} and not module_next  # a frame for any worker comes alone, next
    assert core.split_link_records(records, end, 7, 1 << 20) == ({0xFFFF: [b""]}, len(records) - 2, False)
    # ... and a partial header waits for the rest


def test_link_records_are_grouped_by_worker_in_order_up_to_one_for_the_supervisor() -> None:
    """Each worker's frames in the order they came; one for the supervisor (handled as it comes)
    ends a group and comes alone, so that it stays in order with the frames around it."""
    places = [3, 4, 3, 3, 4, 0, 3, 0, 0]
    records = b"".join(frame_record((9 << 16) | w, bytes([i])) for i, w in enumerate(places))
    groups = []
    start = 0
    while start < len(records):
        frames_, start, _ = core.split_link_records(records, start, 9, 100)
        groups.append(frames_)
    expected = [{3: [b"\0", b"\2", b"\3"], 4: [b"\1", b"\4"]}, {0: [b"\5"]}, {3: [b"\6"]}, {0: [b"\7"]}]
    assert groups == [*expected, {0: [b"\x08"]}]


def test_link_records_stop_at_a_module_and_at_a_partial_record() -> None:
    module = struct.pack("<IB", 5, 2) + b"abcd"
    first = frame_record((1 << 16) | 2, b"x")
    records = first + module + frame_record((1 << 16) | 2, b"y")
    assert core.split_link_records(records, 0, 1, 100) == ({2: [b"x"]}, len(first), True)
    whole = frame_record((1 << 16) | 2, b"z" * 50)
    assert core.split_link_records(whole[:-1], 0, 1, 100) == ({}, 0, False)


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (b"\x0a\x00\x00\x00\x09" + bytes(9), "unknown record type 9"),
        (b"\x02\x00\x00\x00\x01" + bytes(1), "out of bounds"),
        (b"\xff\xff\xff\x7f\x01" + bytes(8), "out of bounds"),
    ],
)
def test_bad_link_records_are_refused(record: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        core.split_link_records(record, 0, 1, 1 << 20)


def test_a_link_record_for_another_node_is_refused() -> None:
    with pytest.raises(ValueError, match="a frame for node 2 arrived at node 1"):
        core.split_link_records(frame_record(2 << 16, b""), 0, 1, 100)
    with pytest.raises(ValueError, match="outside the buffer"):
        core.split_link_records(b"", 1, 1, 100)


def test_random_link_bytes_never_crash_the_splitter() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        try:
            frames_, end, _ = core.split_link_records(data, 0, rng.randrange(3), 64)
        except ValueError:
            continue
        assert 0 <= end <= len(data) and all(len(p) <= 64 for payloads in frames_.values() for p in payloads)


# --- the outbound side: a guest's send to another node, batched in C -------------------------


def _records(batch: bytes | bytearray, node: int) -> list[tuple[int, bytes]]:
    split, end, module_next = core.split_link_records(batch, 0, node, 1 << 20)
    assert end == len(batch) and not module_next
    return [(worker, frame) for worker, frames_ in split.items() for frame in frames_]


def test_a_message_for_another_node_is_batched_as_its_python_path_records_it(engine: Engine) -> None:
    """The record C appends is the one frame_record(place, frames.encode(...)) makes; without a
    batch for the node (none offered, or not a cluster) it is left to Python."""
    hooks = engine.message_hooks
    to = (5 << 48) | (3 << 32) | 9
    assert not core.batch_message(hooks, to, 1, 2, b"x")  # nothing offered: Python's path
    batch = engine.link_batches[5] = bytearray(b"before")
    for value in INTS:
        for size in SIZES:
            data = bytes(size)
            del batch[6:]
            if size > 1 << 16:
                assert not core.batch_message(hooks, to, value, value, data)  # large: Python's
                continue
            assert core.batch_message(hooks, to, value, ~value, data)
            expected = frame_record(to >> 32, frames.encode(frames.Message(to, value, ~value, data, ())))
            assert batch == b"before" + expected
    del batch[:]
    assert core.batch_message(hooks, to, 1, 2, b"a") and core.batch_message(hooks, to, 1, 2, b"b")
    assert [(worker, frames.decode(frame).data) for worker, frame in _records(batch, 5)] == [
        (3, b"a"),
        (3, b"b"),
    ]
    assert not core.batch_message(hooks, (6 << 48) | 1, 1, 2, b"x")  # no batch for node 6
    assert not core.batch_message(hooks, -1, 1, 2, b"x")
    engine.link_batches[5] = bytearray(1 << 20)
    assert not core.batch_message(hooks, to, 1, 2, b"x")  # full: Python's path, which may pause


SENDER = """
(module
  (import "lunatic::message" "create_data" (func $create (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (memory (export "memory") 1)
  (func (export "produce") (param $peer i64) (param $count i64)
    (block $done (loop $next
      (br_if $done (i64.eqz (local.get $count)))
      (i64.store (i32.const 0) (local.get $count))
      (call $create (local.get $count) (i64.const 8))
      (drop (call $write (i32.const 0) (i32.const 8)))
      (drop (call $send (local.get $peer)))
      (local.set $count (i64.sub (local.get $count) (i64.const 1)))
      (br $next)))))
"""


@pytest.mark.parametrize(
    ("batches", "key", "to", "node", "elsewhere"),
    [
        ("link_batches", 7, (7 << 48) | (2 << 32) | 1, 7, (8 << 48) | 1),  # a node's, by node
        ("worker_batches", 3, (3 << 32) | 1, 0, (4 << 32) | 1),  # another worker's of this node, by place
    ],
)
def test_a_guests_sends_are_batched_in_order(
    engine: Engine, load: Callable[[str], Module], batches: str, key: int, to: int, node: int, elsewhere: int
) -> None:
    """A guest's send to a pid on a node, or on a worker of this node, with a batch offered lands
    there, in the order sent, as the records the node's batches hold; one to a pid with no batch
    offered is left to Python (here: dropped, as to any pid no process has)."""
    batch = getattr(engine, batches)[key] = bytearray()
    process = engine.spawn(load(SENDER), "produce", [to, 300], EnvConfig())
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None and finished.ok, finished
    arrived = [frames.decode(frame) for _, frame in _records(batch, node)]
    expected = [frames.Message(to, process.pid, n, n.to_bytes(8, "little"), ()) for n in range(300, 0, -1)]
    assert arrived == expected
    other = engine.spawn(load(SENDER), "produce", [elsewhere, 5], EnvConfig())
    finished = engine.run_until_finished(other, timeout=30)
    assert finished is not None and finished.ok and len(_records(batch, node)) == 300


# --- a ring's batch record, split in C (lunatic_mp.cluster.transport.Inbox) --------------------


def test_a_batch_record_splits_into_its_frames() -> None:
    batch = [b"", b"a", bytes(range(256)) * 3, b"xyz"]
    body = struct.pack(f"={len(batch)}I", *map(len, batch))
    span = b"head" + body + b"".join(batch) + b"tail"
    assert core.split_batch(span, 4, len(batch), len(span) - 4) == batch
    assert core.split_batch(span, 4, 0, 4) == []


@pytest.mark.parametrize(
    ("body", "count", "end"), [(4, 3, 10), (4, 1, 7), (-1, 1, 20), (4, 1, 99), (4, -1, 20)]
)
def test_a_batch_record_out_of_bounds_is_refused(body: int, count: int, end: int) -> None:
    span = b"head" + struct.pack("=2I", 8, 100) + bytes(8)  # the second frame would pass the end
    with pytest.raises(ValueError, match=r"out of bounds|past its batch record"):
        core.split_batch(span, body, count, end)
    with pytest.raises(ValueError, match="past its batch record"):
        core.split_batch(span, 4, 2, len(span))


# --- another worker of this node: a batch of records in a Forward frame ----------------------


def _peer_batch(to: int, payloads: list[bytes], sender: int = 7) -> bytes:
    """The frame a worker makes of what its guests sent to ``to``'s worker: the records C appends
    to the batch offered for that place (the form frame_record makes), in a Forward frame."""
    place = to >> 32
    records = [frame_record(place, _frame(to, sender, n, data)) for n, data in enumerate(payloads)]
    return frames.encode(frames.Forward(place, b"".join(records), ()))


def test_a_peer_workers_batch_is_delivered_in_order(engine: Engine, idle: Process) -> None:
    payloads = [b"", b"a", bytes(300), bytes(65_536)]
    batch = _peer_batch(idle.pid, payloads)
    plain = _frame(idle.pid, tag=99, data=b"after")
    assert core.deliver_messages(engine.message_hooks, [batch, plain, batch], 0) == 3
    arrived = [idle.mailbox.take(None) for _ in range(2 * len(payloads) + 1)]
    got = [(m.tag, bytes(m.data)) for m in arrived if m is not None]
    expected = list(enumerate(payloads))
    assert got == [*expected, (99, b"after"), *expected]
    assert all(m is not None and m.pid == 7 for m in arrived)


def test_a_malformed_peer_batch_is_left_to_python_whole(engine: Engine, idle: Process) -> None:
    """A batch that is not all plain message records for its place delivers nothing in C."""
    place = idle.pid >> 32
    good = frame_record(place, _frame(idle.pid))
    bad_payloads = [
        frame_record(place + 1, _frame(idle.pid)),  # a record for another place
        frame_record(place, _frame(idle.pid, modules=(b"\x01" * 32,))),  # a module attached
        frame_record(place, frames.encode(frames.Kill(idle.pid, "stop"))),  # not a message
        frame_record(place, _frame(idle.pid))[:-1],  # truncated
        b"\x09\x00\x00\x00\x02" + bytes(8),  # a module record
        b"\x05\x00\x00\x00\x01",  # too short for its place
    ]
    for bad in bad_payloads:
        for payload in (bad, good + bad):
            frame = frames.encode(frames.Forward(place, payload, ()))
            assert core.deliver_messages(engine.message_hooks, [frame], 0) == 0, payload
    with_modules = frames.encode(frames.Forward(place, good, (b"\x01" * 32,)))
    assert core.deliver_messages(engine.message_hooks, [with_modules], 0) == 0
    assert len(idle.mailbox) == 0
