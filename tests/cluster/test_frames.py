"""Tests for the wire format of frames between the runtime's OS processes."""

from __future__ import annotations

import dataclasses
import threading
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.frames import (
    CLASS_OF,
    KIND_OF,
    MAX_FRAME_SIZE,
    PARAM_I32,
    PARAM_I64,
    Frame,
    FrameError,
    Jobs,
    JobsDone,
    Kill,
    Kind,
    LinkDied,
    Message,
    RegistryGet,
    Shutdown,
    Spawn,
    decode,
    decode_config,
    encode,
    encode_config,
    validate,
)
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import LunaticError

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# The field names and types each kind must have: the contract other modules build on.
EXPECTED_FIELDS: dict[str, list[tuple[str, Any]]] = {
    "Message": [("to", int), ("sender", int), ("tag", int), ("data", bytes), ("modules", tuple[bytes, ...])],
    "Kill": [("to", int), ("reason", str)],
    "Link": [("to", int), ("other", int), ("tag", int)],
    "Unlink": [("to", int), ("other", int)],
    "LinkDied": [("to", int), ("dead", int), ("tag", int), ("reason", int), ("cause", str)],
    "Monitor": [("to", int), ("watcher", int)],
    "StopMonitoring": [("to", int), ("watcher", int)],
    "ProcessDied": [("to", int), ("dead", int)],
    "Spawn": [
        ("request", int),
        ("reply_to", int),
        ("module", bytes),
        ("function", str),
        ("params", tuple[int, ...]),
        ("param_kinds", bytes),
        ("config", bytes),
        ("link_pid", int),
        ("link_tag", int),
    ],
    "SpawnReply": [("request", int), ("to", int), ("pid", int), ("error", str)],
    "Exists": [("request", int), ("reply_to", int), ("pid", int)],
    "ExistsReply": [("request", int), ("to", int), ("exists", bool)],
    "RegistryPut": [("request", int), ("reply_to", int), ("name", str), ("node", int), ("pid", int)],
    "RegistryGet": [("request", int), ("reply_to", int), ("name", str), ("lock", bool)],
    "RegistryRemove": [("request", int), ("reply_to", int), ("name", str)],
    "RegistryReply": [
        ("request", int),
        ("to", int),
        ("found", bool),
        ("node", int),
        ("pid", int),
        ("error", str),
    ],
    "RegistryWatch": [("to", int)],
    "ProcessGone": [("pid", int)],
    "WorkerStarted": [("worker", int), ("slot", int)],
    "WorkerLost": [("worker", int)],
    "Shutdown": [],
    "Stats": [("request", int), ("reply_to", int)],
    "StatsReply": [("request", int), ("to", int), ("payload", bytes)],
    "ProcessFinished": [
        ("to", int),
        ("pid", int),
        ("outcome", int),
        ("results", bytes),
        ("message", str),
        ("exit_code", int),
        ("backtrace", str),
    ],
    "SpawnNative": [
        ("request", int),
        ("reply_to", int),
        ("payload", bytes),
        ("config", bytes),
        ("link_pid", int),
        ("link_tag", int),
    ],
    "ListProcesses": [("request", int), ("reply_to", int), ("limit", int)],
    "MessageStreams": [
        ("to", int),
        ("sender", int),
        ("tag", int),
        ("data", bytes),
        ("modules", tuple[bytes, ...]),
        ("streams", tuple[int, ...]),
    ],
    "HttpRoutes": [("payload", bytes)],
    "MailboxFull": [("to", int), ("target", int), ("full", bool)],
    "EnvAcquire": [
        ("request", int),
        ("reply_to", int),
        ("environment", int),
        ("limit", int),
        ("worker", int),
        ("memory", int),
        ("memory_limit", int),
    ],
    "EnvRelease": [("environment", int), ("worker", int), ("memory", int)],
    "Forward": [("place", int), ("payload", bytes), ("modules", tuple[bytes, ...])],
    "NodeLost": [("node", int), ("worker", int), ("cause", str)],
    "NodeTable": [("names_at", int), ("payload", bytes)],
    "RegistryReplica": [("name", str), ("node", int), ("pid", int), ("present", bool)],
    "Jobs": [
        ("request", int),
        ("reply_to", int),
        ("module", bytes),
        ("function", str),
        ("count", int),
        ("params", tuple[int, ...]),
        ("param_kinds", bytes),
        ("config", bytes),
        ("inputs", tuple[bytes, ...]),
        ("tags", tuple[int, ...]),
    ],
    "JobsDone": [
        ("request", int),
        ("to", int),
        ("started", tuple[int, ...]),
        ("ended", tuple[int, ...]),
        ("outcomes", tuple[int, ...]),
        ("results", bytes),
        ("messages", tuple[str, ...]),
        ("backtraces", tuple[str, ...]),
        ("exit_codes", tuple[int, ...]),
        ("remaining", int),
    ],
}
FRAME_CLASSES: list[type[Frame]] = list(KIND_OF)


# -- strategies ---------------------------------------------------------------------------------

i64s = st.integers(I64_MIN, I64_MAX)
FIELD_STRATEGIES: dict[Any, st.SearchStrategy[Any]] = {
    int: i64s,
    bytes: st.binary(max_size=64),
    str: st.text(max_size=24),
    bool: st.booleans(),
    tuple[int, ...]: st.lists(i64s, max_size=6).map(tuple),
    tuple[bytes, ...]: st.lists(st.binary(min_size=0, max_size=32), max_size=4).map(tuple),
}


@st.composite
def spawn_frames(draw: st.DrawFn) -> Spawn:
    """Spawn frames whose params agree with their param kinds."""
    params = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just(PARAM_I32), st.integers(I32_MIN, I32_MAX)),
                st.tuples(st.just(PARAM_I64), i64s),
            ),
            max_size=6,
        )
    )
    return Spawn(
        request=draw(i64s),
        reply_to=draw(i64s),
        module=draw(st.binary(min_size=32, max_size=32)),
        function=draw(st.text(max_size=16)),
        params=tuple(value for _, value in params),
        param_kinds=bytes(kind for kind, _ in params),
        config=draw(st.binary(max_size=64)),
        link_pid=draw(i64s),
        link_tag=draw(i64s),
    )


@st.composite
def jobs_frames(draw: st.DrawFn) -> Jobs:
    """Jobs frames whose params, inputs and tags agree with their count and kinds."""
    kinds = draw(st.lists(st.sampled_from([PARAM_I32, PARAM_I64]), max_size=3))
    count = draw(st.integers(0, 4))
    params = [
        draw(st.integers(I32_MIN, I32_MAX) if kind == PARAM_I32 else i64s)
        for _ in range(count)
        for kind in kinds
    ]
    inputs = draw(st.lists(st.binary(max_size=8), min_size=count, max_size=count) | st.just([]))
    return Jobs(
        draw(i64s), draw(i64s), draw(st.binary(max_size=32)), draw(st.text(max_size=8)), count,
        tuple(params), bytes(kinds), draw(st.binary(max_size=16)), tuple(inputs), tuple(range(len(inputs))),
    )  # fmt: skip


@st.composite
def jobs_done_frames(draw: st.DrawFn) -> JobsDone:
    """JobsDone frames with an outcome, message, backtrace and exit code per ended job."""
    ended = draw(st.integers(0, 4))
    return JobsDone(
        draw(i64s), draw(i64s), tuple(draw(st.lists(i64s, max_size=4))), tuple(range(ended)),
        tuple(draw(st.lists(st.sampled_from([0, 1, 2]), min_size=ended, max_size=ended))),
        draw(st.binary(max_size=16)), ("",) * ended, ("",) * ended, (-1,) * ended,
        draw(st.integers(0, I64_MAX)),
    )  # fmt: skip


def frames_of(cls: type[Frame]) -> st.SearchStrategy[Frame]:
    """Valid frames of one class, every field drawn from its declared type."""
    if cls is Spawn:
        return spawn_frames()
    if cls is Jobs:
        return jobs_frames()
    if cls is JobsDone:
        return jobs_done_frames()
    strategies = {name: FIELD_STRATEGIES[tp] for name, tp in typing.get_type_hints(cls).items()}
    if cls is LinkDied:
        strategies["reason"] = st.sampled_from([0, 1, 2])
    return st.builds(cls, **strategies)


any_frame: st.SearchStrategy[Frame] = st.one_of([frames_of(cls) for cls in FRAME_CLASSES])

msgpack_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(I64_MIN, 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)
"""Arbitrary msgpack-encodable values."""

near_frames: st.SearchStrategy[list[Any]] = st.builds(
    lambda kind, fields: [kind, *fields],
    st.integers(0, 25) | st.booleans(),
    st.lists(
        st.integers(I64_MIN, 2**64 - 1)
        | st.booleans()
        | st.binary(max_size=4)
        | st.text(max_size=4)
        | st.lists(st.integers(-5, 5) | st.binary(max_size=2), max_size=3),
        max_size=10,
    ),
)
"""Arrays that look like frames: a plausible kind, then fields of plausible types."""


def assert_frame_or_frame_error(data: bytes) -> Frame | None:
    """Decoding ``data`` gives a valid frame or raises FrameError; nothing else."""
    try:
        frame = decode(data)
    except FrameError as exc:
        assert str(exc)
        return None
    assert type(frame) in KIND_OF
    assert validate(frame) is frame
    assert decode(encode(frame)) == frame
    return frame


def pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


# -- the contract -------------------------------------------------------------------------------


def test_kinds_and_classes_are_complete_and_inverse() -> None:
    assert set(CLASS_OF) == set(Kind)
    assert {KIND_OF[cls]: cls for cls in KIND_OF} == CLASS_OF
    assert len(set(CLASS_OF.values())) == len(Kind)
    assert all(0 < kind < 128 for kind in Kind)  # one byte on the wire (positive fixint)
    assert {cls.__name__ for cls in FRAME_CLASSES} == set(EXPECTED_FIELDS)
    assert set(typing.get_args(Frame)) == set(FRAME_CLASSES)


@pytest.mark.parametrize("cls", FRAME_CLASSES, ids=lambda cls: cls.__name__)
def test_field_names_and_types(cls: type[Frame]) -> None:
    assert list(typing.get_type_hints(cls).items()) == EXPECTED_FIELDS[cls.__name__]
    assert cls._fields == tuple(name for name, _ in EXPECTED_FIELDS[cls.__name__])


def test_frame_error_is_a_lunatic_error_and_value_error() -> None:
    assert issubclass(FrameError, LunaticError)
    assert issubclass(FrameError, ValueError)


def test_wire_layout() -> None:
    frame = Message(to=5, sender=6, tag=7, data=b"hi", modules=(b"h",))
    assert msgpack.unpackb(encode(frame), use_list=True) == [Kind.MESSAGE, 5, 6, 7, b"hi", [b"h"]]
    assert encode(Shutdown()) == bytes([0x91, Kind.SHUTDOWN])


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", FRAME_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=25, deadline=None, database=None)
@given(data=st.data())
def test_round_trip_each_kind(cls: type[Frame], data: st.DataObject) -> None:
    frame = data.draw(frames_of(cls))
    decoded = decode(encode(frame))
    assert type(decoded) is cls
    assert decoded == frame
    for name, value in zip(cls._fields, decoded, strict=True):
        assert type(value) is type(getattr(frame, name)), name


@SETTINGS
@given(frame=any_frame)
def test_round_trip_any_frame(frame: Frame) -> None:
    data = encode(frame)
    assert len(data) <= MAX_FRAME_SIZE
    assert decode(data) == frame
    assert decode(bytearray(data)) == frame
    assert decode(memoryview(data)) == frame


def test_round_trip_extremes() -> None:
    for value in (I64_MIN, -1, 0, 1, I64_MAX):
        frame = Message(value, value, value, b"", ())
        assert decode(encode(frame)) == frame
    spawn = Spawn(
        1,
        2,
        b"m" * 32,
        "main",
        (I32_MIN, I32_MAX, I64_MIN, I64_MAX),
        bytes([0x7F, 0x7F, 0x7E, 0x7E]),
        b"",
        0,
        0,
    )
    assert decode(encode(spawn)) == spawn


def test_decoded_bytes_do_not_alias_the_input() -> None:
    buffer = bytearray(encode(Message(1, 2, 3, b"abc", ())))
    frame = decode(memoryview(buffer))
    buffer[:] = bytes(len(buffer))
    assert isinstance(frame, Message)
    assert frame.data == b"abc"
    assert type(frame.data) is bytes


def test_largest_frame() -> None:
    overhead = len(encode(Message(0, 0, 0, b"x" * 70_000, ()))) - 70_000
    frame = Message(0, 0, 0, b"x" * (MAX_FRAME_SIZE - overhead), ())
    data = encode(frame)
    assert len(data) == MAX_FRAME_SIZE
    assert decode(data) == frame
    with pytest.raises(FrameError, match="exceeds"):
        encode(frame._replace(data=frame.data + b"x"))


JOBS = Jobs(1, 2, b"m" * 32, "square", 2, (3, 4), bytes([PARAM_I32]), b"", (), ())
DONE = JobsDone(1, 2, (5, 6), (0,), (0,), b"\x91\x91\x09", ("",), ("",), (-1,), 1)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (JOBS._replace(count=3), "Jobs has 2 params for 3 jobs of 1 params each"),
        (JOBS._replace(count=-1), "Jobs.count must be 0..4096, got -1"),
        (JOBS._replace(count=5000, params=(0,) * 5000), "Jobs.count must be 0..4096, got 5000"),
        (JOBS._replace(params=(3, 2**31)), "Jobs.params[1] = 2147483648 does not fit i32"),
        (JOBS._replace(param_kinds=b"\x01"), "Jobs.param_kinds[0] is 0x01"),
        (JOBS._replace(inputs=(b"a",), tags=(1,)), "Jobs has 1 inputs and 1 tags for 2 jobs"),
        (JOBS._replace(inputs=(b"a", b"b"), tags=(1,)), "Jobs has 2 inputs and 1 tags for 2 jobs"),
        (DONE._replace(outcomes=()), "an outcome, message, backtrace and exit code for each of its 1 jobs"),
        (DONE._replace(messages=("", "")), "for each of its 1 jobs"),
        (DONE._replace(outcomes=(3,)), "JobsDone.outcomes must be 0 (normal), 1 (killed) or 2 (failed)"),
        (DONE._replace(remaining=-1), "JobsDone.remaining must not be negative, got -1"),
    ],
)
def test_jobs_frames_must_agree_with_themselves(frame: Frame, message: str) -> None:
    """A batch's per-job fields must agree in length, its params with their kinds: a worker never
    reads job 3's arguments past the end, the host never pairs an outcome with the wrong job."""
    with pytest.raises(FrameError) as info:
        decode(encode(frame))
    assert message in str(info.value)
    assert decode(encode(JOBS)) == JOBS and decode(encode(DONE)) == DONE


# -- malformed frames ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (5, "must be a msgpack array, got int"),
        ("frame", "must be a msgpack array, got str"),
        (b"\x01\x02", "must be a msgpack array, got bytes"),
        (None, "must be a msgpack array, got nil"),
        ({"0": 1}, "must be a msgpack array, got map"),
        ({0: 1}, "must be a msgpack array, got map"),
        (1.5, "must be a msgpack array, got float"),
        (msgpack.ExtType(1, b"x"), "must be a msgpack array, got ExtType"),
        ([], "empty array"),
        ([0], "unknown frame kind 0"),
        ([99, 1], "unknown frame kind 99"),
        ([-1], "unknown frame kind -1"),
        ([2**64 - 1], "unknown frame kind"),
        ([True, 1, 2, 3, b"", []], "kind must be int, got bool"),
        ([1.0, 1, 2, 3, b"", []], "kind must be int, got float"),
        (["1", 1, 2, 3, b"", []], "kind must be int, got str"),
        ([[1], 1], "kind must be int, got array"),
        ([{"a": 1}], "kind must be int, got map"),
        ([Kind.MESSAGE, 1, 2, 3, b""], "Message takes 5 fields, got 4"),
        ([Kind.MESSAGE, 1, 2, 3, b"", [], 0], "Message takes 5 fields, got 6"),
        ([Kind.SHUTDOWN, 0], "Shutdown takes 0 fields, got 1"),
        ([Kind.MESSAGE, True, 2, 3, b"", []], "Message.to must be int, got bool"),
        ([Kind.MESSAGE, 1, 2, 3.0, b"", []], "Message.tag must be int, got float"),
        ([Kind.MESSAGE, 1, 2, 3, "text", []], "Message.data must be bytes, got str"),
        ([Kind.MESSAGE, 1, 2, 3, b"", b""], "Message.modules must be a tuple of bytes, got bytes"),
        ([Kind.MESSAGE, 1, 2, 3, b"", [b"a", "b"]], r"Message.modules\[1\] must be bytes, got str"),
        ([Kind.MESSAGE, 2**63, 2, 3, b"", []], "Message.to = 9223372036854775808 does not fit i64"),
        ([Kind.KILL, 1, b"why"], "Kill.reason must be str, got bytes"),
        ([Kind.EXISTS_REPLY, 1, 2, 1], "ExistsReply.exists must be bool, got int"),
        ([Kind.REGISTRY_GET, 1, 2, "name", None], "RegistryGet.lock must be bool, got nil"),
        ([Kind.LINK_DIED, 1, 2, 3, 3, ""], r"LinkDied.reason must be one of \[0, 1, 2\], got 3"),
        ([Kind.LINK_DIED, 1, 2, 3, -1, ""], "LinkDied.reason must be one of"),
        ([Kind.SPAWN, 1, 2, b"m", "f", [1, 2], b"\x7f", b"", 0, 0], "2 params but 1 param kinds"),
        ([Kind.SPAWN, 1, 2, b"m", "f", [1], b"\x7b", b"", 0, 0], r"param_kinds\[0\] is 0x7b"),
        (
            [Kind.SPAWN, 1, 2, b"m", "f", [2**31], b"\x7f", b"", 0, 0],
            r"params\[0\] = 2147483648 does not fit i32",
        ),
        (
            [Kind.SPAWN, 1, 2, b"m", "f", [1, True], b"\x7f\x7f", b"", 0, 0],
            r"params\[1\] must be int, got bool",
        ),
        ([Kind.SPAWN, 1, 2, b"m", "f", [2**63], b"\x7e", b"", 0, 0], r"params\[0\] = 9223372036854775808"),
    ],
)
def test_malformed_frame(obj: Any, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode(pack(obj))


@pytest.mark.parametrize("cls", FRAME_CLASSES, ids=lambda cls: cls.__name__)
def test_every_field_rejects_every_wrong_type(cls: type[Frame]) -> None:
    wrong_values: list[Any] = [None, True, 1, 2**63, 1.5, "s", b"b", [1, "x"], {"k": 1}]
    valid = encode_valid_example(cls)
    for index, (name, tp) in enumerate(typing.get_type_hints(cls).items(), start=1):
        for wrong in wrong_values:
            obj = list(valid)
            obj[index] = wrong
            data = pack(obj)
            if type(wrong) is tp and (tp is not int or wrong <= I64_MAX):
                continue  # a right value, not a wrong one
            with pytest.raises(FrameError, match=rf"{cls.__name__}\.{name}"):
                decode(data)


def encode_valid_example(cls: type[Frame]) -> list[Any]:
    """A valid frame of ``cls``, as the decoded msgpack array."""
    values: dict[Any, Any] = {
        int: 1,
        bytes: b"x",
        str: "x",
        bool: True,
        tuple[int, ...]: (),
        tuple[bytes, ...]: (),
        tuple[str, ...]: (),
    }
    frame = cls(*[values[tp] for tp in typing.get_type_hints(cls).values()])
    if isinstance(frame, Jobs):
        frame = frame._replace(count=0)  # no params: a batch of no jobs
    return list(msgpack.unpackb(encode(frame), use_list=False))


def test_bool_is_not_an_int_nor_the_reverse() -> None:
    with pytest.raises(FrameError, match=r"Message\.sender must be int, got bool"):
        decode(encode(Message(1, False, 3, b"", ())))  # type: ignore[arg-type,unused-ignore]
    with pytest.raises(FrameError, match=r"RegistryGet\.lock must be bool, got int"):
        decode(encode(RegistryGet(1, 2, "n", 1)))  # type: ignore[arg-type,unused-ignore]


def test_truncated_frames() -> None:
    data = encode(Spawn(1, 2, b"m" * 32, "main", (1, 2), b"\x7f\x7e", b"config", 3, 4))
    for end in range(len(data)):
        with pytest.raises(FrameError):
            decode(data[:end])


def test_trailing_garbage() -> None:
    data = encode(Kill(1, "why"))
    for extra in (b"\x00", b"\xc0", data):
        with pytest.raises(FrameError, match="malformed msgpack"):
            decode(data + extra)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # the one byte msgpack never uses
        b"\x92\x02\x01\xa1\xff",  # Kill with a reason that is not UTF-8
        b"\x91" * 100_000,  # nesting deeper than msgpack's stack
        b"\xdd\xff\xff\xff\xff",  # an array claiming 4 G elements
        b"\xc6\xff\xff\xff\xff",  # a bin claiming 4 GiB
        b"\x81\x81\x01\x02\x03",  # a map as a map key (unhashable)
        b"\x81\x91\x81\x01\x02\x03",  # an array holding a map, as a map key
        b"\xd6\xff\x00\x00\x00\x00",  # a timestamp
        b"\xc7\x01\xff\x00",  # a malformed timestamp
        b"\x92\xd6\xff\x00\x00\x00\x00\x01",  # a timestamp as the kind
    ],
)
def test_malformed_msgpack(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode(data)


def test_oversized_input_is_rejected_before_parsing() -> None:
    with pytest.raises(FrameError, match="exceeds"):
        decode(bytes(MAX_FRAME_SIZE + 1))
    with pytest.raises(FrameError, match="exceeds"):
        decode_config(bytes(MAX_FRAME_SIZE + 1))


# -- encoding errors and validate ---------------------------------------------------------------


def test_encode_rejects_what_is_not_a_frame() -> None:
    for obj in ((1, 2), [Kind.SHUTDOWN], object(), None):
        with pytest.raises(FrameError, match="not a frame"):
            encode(obj)  # type: ignore[arg-type]
    with pytest.raises(FrameError, match="not a frame"):
        validate((1, 2))  # type: ignore[arg-type]


def test_encode_errors_leave_the_packer_usable() -> None:
    with pytest.raises(FrameError, match="cannot encode Message"):
        encode(Message(1, 2, 3, object(), ()))  # type: ignore[arg-type]
    with pytest.raises(FrameError, match="cannot encode Message"):
        encode(Message(2**64, 2, 3, b"", ()))
    with pytest.raises(FrameError, match="cannot encode Kill"):
        encode(Kill(1, "\ud800"))  # a lone surrogate: not encodable as UTF-8
    frame = Message(1, 2, 3, b"ok", ())
    assert decode(encode(frame)) == frame


def test_validate() -> None:
    frame = Message(1, 2, 3, b"", ())
    assert validate(frame) is frame
    cases: list[tuple[Any, str]] = [
        (Message(True, 2, 3, b"", ()), r"Message\.to must be int, got bool"),
        (Message(-(2**63) - 1, 2, 3, b"", ()), "does not fit i64"),
        (Message(10**5000, 2, 3, b"", ()), "<16610-bit int> does not fit i64"),
        (Message(1, 2, 3, b"", [b"x"]), "must be a tuple of bytes, got list"),  # type: ignore[arg-type]
        (LinkDied(1, 2, 3, 7, ""), "LinkDied.reason"),
        (Spawn(1, 2, b"", "f", (1,), b"", b"", 0, 0), "1 params but 0 param kinds"),
    ]
    for bad, message in cases:
        with pytest.raises(FrameError, match=message):
            validate(bad)


def test_shared_packer_is_thread_safe() -> None:
    errors: list[str] = []

    def run(worker: int) -> None:
        for i in range(3000):
            frame = Message(worker, i, worker * i, bytes([worker]) * (i % 97), ())
            if decode(encode(frame)) != frame:
                errors.append(f"{worker}/{i}")

    threads = [threading.Thread(target=run, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


# -- fuzzing ------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    assert_frame_or_frame_error(data)


@SETTINGS
@given(obj=msgpack_values | near_frames)
def test_fuzz_msgpack_values(obj: Any) -> None:
    data = pack(obj)
    frame = assert_frame_or_frame_error(data)
    # The fast decoders and the explaining checker agree on every input.
    problem = frames._problem(msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=False))
    assert (frame is None) == (problem is not None)


@SETTINGS
@given(
    frame=any_frame,
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "set"]), st.integers(0, 10_000), st.integers(0, 255)
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_mutated_frames(frame: Frame, edits: list[tuple[str, int, int]]) -> None:
    data = bytearray(encode(frame))
    for op, position, byte in edits:
        at = position % (len(data) + 1)
        if op == "insert":
            data.insert(at, byte)
        elif data and at < len(data):
            if op == "flip":
                data[at] ^= 1 << (byte % 8)
            elif op == "delete":
                del data[at]
            else:
                data[at] = byte
    assert_frame_or_frame_error(bytes(data))


# -- configs ------------------------------------------------------------------------------------

strs = st.text(max_size=12)
configs = st.builds(
    EnvConfig,
    max_memory=st.integers(0, I64_MAX),
    max_fuel=st.integers(0, I64_MAX),
    can_compile_modules=st.booleans(),
    can_create_configs=st.booleans(),
    can_spawn_processes=st.booleans(),
    program_name=st.booleans(),
    allowed_namespaces=st.frozensets(strs, max_size=10),
    preopened_dirs=st.dictionaries(strs, strs, max_size=3),
    args=st.lists(strs, max_size=4),
    env=st.dictionaries(strs, strs, max_size=3),
)


@SETTINGS
@given(config=configs)
def test_config_round_trip(config: EnvConfig) -> None:
    decoded = decode_config(encode_config(config))
    assert decoded == config
    assert type(decoded.allowed_namespaces) is frozenset
    assert type(decoded.args) is list
    assert type(decoded.preopened_dirs) is dict


def test_config_defaults_round_trip_and_encoding_is_deterministic() -> None:
    for config in (EnvConfig(), EnvConfig.permissive(args=["a"], env={"K": "V"})):
        assert decode_config(encode_config(config)) == config
        assert encode_config(config) == encode_config(config.copy())


def test_config_covers_every_envconfig_field() -> None:
    encoded = msgpack.unpackb(encode_config(EnvConfig()))
    assert set(encoded) == {field.name for field in dataclasses.fields(EnvConfig)}


def config_dict(**changes: Any) -> dict[Any, Any]:
    """An encoded-config map, as msgpack would carry it, with ``changes`` applied."""
    obj = dict(msgpack.unpackb(encode_config(EnvConfig())))
    obj.update(changes)
    return obj


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([1, 2], "must be a msgpack map, got array"),
        ("config", "must be a msgpack map, got str"),
        ({k: v for k, v in config_dict().items() if k != "env"}, r"missing \['env'\]"),
        ({**config_dict(), "extra": 1}, "unknown \\['extra'\\]"),
        ({**config_dict(), 5: 1}, r"unknown \[5\]"),
        (config_dict(max_memory=True), "config.max_memory must be int, got bool"),
        (config_dict(max_fuel=-1), "config.max_fuel = -1 is not a non-negative i64"),
        (config_dict(max_fuel=2**64 - 1), "is not a non-negative i64"),
        (config_dict(max_memory="1"), "config.max_memory must be int, got str"),
        (config_dict(can_spawn_processes=1), "config.can_spawn_processes must be bool, got int"),
        (config_dict(allowed_namespaces=["process", 1]), "config.allowed_namespaces must be an array of str"),
        (config_dict(allowed_namespaces="process"), "config.allowed_namespaces must be an array of str"),
        (config_dict(args=[b"x"]), "config.args must be an array of str"),
        (config_dict(env={"K": 1}), "config.env must be a map of str to str"),
        (config_dict(env={1: "V"}), "config.env must be a map of str to str"),
        (config_dict(preopened_dirs=["/tmp"]), "config.preopened_dirs must be a map of str to str"),
    ],
)
def test_malformed_config(obj: Any, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        decode_config(pack(obj))


def test_malformed_config_msgpack() -> None:
    data = encode_config(EnvConfig())
    for bad in (b"", b"\xc1", data[:-1], data + b"\x00", b"\x81\x81\x01\x02\x03"):
        with pytest.raises(FrameError, match="malformed config msgpack"):
            decode_config(bad)


def test_encode_config_rejects_unencodable_values() -> None:
    with pytest.raises(FrameError, match="cannot encode config"):
        encode_config(EnvConfig(args=[object()]))  # type: ignore[list-item]
    with pytest.raises(FrameError, match="cannot encode config"):
        encode_config(EnvConfig(allowed_namespaces=frozenset({"a", 1})))  # type: ignore[arg-type]


@SETTINGS
@given(data=st.binary(max_size=200) | msgpack_values.map(pack))
def test_fuzz_config(data: bytes) -> None:
    try:
        config = decode_config(data)
    except FrameError:
        return
    assert decode_config(encode_config(config)) == config
