"""The frame decoder and a hub's inbox under hostile input (hypothesis, derandomized).

tests/cluster/test_frames.py fuzzes :func:`lunatic_mp.cluster.frames.decode` with random bytes, random msgpack
values and byte-level mutations of valid frames. This file adds what those miss: fields that
announce huge lengths (at every position of a frame), frames carrying another kind's number,
wrong field counts, frames spliced together; and, one level up, a :class:`~lunatic_mp.cluster.hub.Hub`
whose ring brings garbage between good frames: it counts every record it cannot use, logs it,
and delivers every good frame, in order.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hub_pair import RECEIVER, Pair, pair_fixture  # noqa: F401 (the pair fixture)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_frames import any_frame, assert_frame_or_frame_error, near_frames, pack

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.frames import CLASS_OF, Frame, FrameError, Kill, Kind, Message, decode, encode
from lunatic_mp.pids import make_pid

FUZZ = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# msgpack headers whose length field follows them: (first byte, bytes of length)
LENGTH_HEADERS = [
    (0xDC, 2), (0xDD, 4),  # array 16 / 32
    (0xDE, 2), (0xDF, 4),  # map 16 / 32
    (0xC5, 2), (0xC6, 4),  # bin 16 / 32
    (0xDA, 2), (0xDB, 4),  # str 16 / 32
    (0xC8, 2), (0xC9, 4),  # ext 16 / 32
]  # fmt: skip


@st.composite
def huge_headers(draw: st.DrawFn) -> bytes:
    """A msgpack header announcing far more than follows it (at least 60,000 items or bytes)."""
    first, width = draw(st.sampled_from(LENGTH_HEADERS))
    length = draw(st.integers(60_000, 2 ** (8 * width) - 1))
    extension = b"\x01" if first in (0xC8, 0xC9) else b""  # an ext header has a type byte
    return bytes([first]) + length.to_bytes(width, "big") + extension + draw(st.binary(max_size=16))


def array_of(items: list[bytes]) -> bytes:
    """A msgpack array of already packed items (frames have at most 15 elements: fixarray)."""
    assert len(items) < 16
    return bytes([0x90 | len(items)]) + b"".join(items)


# -- the decoder --------------------------------------------------------------------------------


@FUZZ
@given(frame=any_frame, position=st.integers(0, 15), header=huge_headers())
def test_a_field_announcing_a_huge_length_is_a_frame_error(
    frame: Frame, position: int, header: bytes
) -> None:
    """Whichever element claims 60,000+ items or bytes that are not there, decoding fails with
    FrameError (and allocates nothing of that size: msgpack bounds lengths by the input)."""
    items = [pack(value) for value in (int(frames.KIND_OF[type(frame)]), *frame)]
    items[position % len(items)] = header
    with pytest.raises(FrameError, match="malformed msgpack"):
        decode(array_of(items))


@FUZZ
@given(header=huge_headers())
def test_a_frame_that_is_only_a_huge_header_is_a_frame_error(header: bytes) -> None:
    with pytest.raises(FrameError):
        decode(header)


@FUZZ
@given(frame=any_frame, kind=st.sampled_from(list(Kind)) | st.integers(-(2**63), 2**64 - 1))
def test_another_kinds_number_is_a_frame_error_unless_the_fields_fit(frame: Frame, kind: int) -> None:
    """A frame's fields under another kind's number decode only as that kind, when its fields
    happen to have the same count and types; otherwise FrameError."""
    decoded = assert_frame_or_frame_error(pack([kind, *frame]))
    if decoded is not None:
        assert type(decoded) is CLASS_OF[Kind(kind)]
        assert tuple(decoded) == tuple(frame)


@FUZZ
@given(
    frame=any_frame,
    cut=st.integers(0, 12),
    extra=st.lists(st.integers(0, 5) | st.binary(max_size=3), max_size=3),
)
def test_a_wrong_field_count_is_a_frame_error(frame: Frame, cut: int, extra: list[Any]) -> None:
    fields = list(frame)
    kept = fields[: max(len(fields) - cut, 0)] + extra
    if len(kept) == len(fields):
        kept.append(0)
    kind = frames.KIND_OF[type(frame)]
    with pytest.raises(
        FrameError, match=rf"{type(frame).__name__} takes {len(fields)} fields, got {len(kept)}"
    ):
        decode(pack([int(kind), *kept]))


@FUZZ
@given(first=any_frame, second=any_frame, i=st.integers(0, 10_000), j=st.integers(0, 10_000))
def test_spliced_frames(first: Frame, second: Frame, i: int, j: int) -> None:
    """The head of one frame joined to the tail of another, or two whole frames in one record:
    a valid frame or FrameError, never anything else."""
    a, b = encode(first), encode(second)
    assert_frame_or_frame_error(a[: i % (len(a) + 1)] + b[j % (len(b) + 1) :])
    with pytest.raises(FrameError, match="malformed msgpack"):
        decode(a + b)  # trailing data


@FUZZ
@given(obj=near_frames, depth=st.integers(1, 3))
def test_frames_nested_in_arrays_and_maps_are_frame_errors(obj: list[Any], depth: int) -> None:
    wrapped: Any = obj
    for level in range(depth):
        wrapped = [wrapped] if level % 2 == 0 else {0: wrapped}
    with pytest.raises(FrameError):
        decode(pack(wrapped))


# -- a hub receiving garbage --------------------------------------------------------------------

garbage: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=64),
    near_frames.map(pack),
    huge_headers(),
    any_frame.map(encode).map(lambda data: data[: len(data) // 2]),  # truncated
    st.builds(encode, st.builds(Kill, st.integers(0, 2**40), st.text(max_size=8))),
)
"""Records a worker might find in its ring from a buggy or dying peer; some happen to be
valid frames (a Kill, say), which a worker's hub here has no handler for."""

good = st.builds(
    Message,
    to=st.just(make_pid(0, RECEIVER, 1)),
    sender=st.integers(0, 2**40),
    tag=st.integers(-(2**63), 2**63 - 1),
    data=st.binary(max_size=300),
    modules=st.just(()),
)


def usable(record: bytes) -> Message | None:
    """The Message a record decodes to, if it is one (what the hub must deliver)."""
    try:
        frame = decode(record)
    except FrameError:
        return None
    return frame if type(frame) is Message else None


@FUZZ
@given(records=st.lists(st.one_of(garbage, good.map(encode)), min_size=1, max_size=40))
def test_a_hub_counts_garbage_and_delivers_every_good_frame_in_order(
    pair: Pair, records: list[bytes]
) -> None:
    before_count, before_delivered = pair.receiver.malformed_frames, len(pair.delivered)
    pair.exchange(records)
    expected = [message for message in map(usable, records) if message is not None]
    assert pair.delivered[before_delivered:] == expected
    assert pair.receiver.malformed_frames - before_count == len(records) - len(expected)


def test_garbage_is_logged_with_its_reason_and_the_hub_goes_on(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lunatic_mp.cluster.hub")
    message = Message(make_pid(0, RECEIVER, 1), 7, 8, b"after the garbage", ())
    pair.exchange([b"\xc1", msgpack.packb([Kind.MESSAGE, "to"]), encode(Kill(5, "x")), encode(message)])
    assert pair.delivered == [message]
    assert pair.receiver.malformed_frames == 3
    warnings = [record.getMessage() for record in caplog.records]
    assert any("malformed frame from 0 dropped: malformed msgpack" in text for text in warnings), warnings
    assert any("Message takes 5 fields, got 1" in text for text in warnings), warnings
    assert any("unexpected Kill frame from 0 dropped" in text for text in warnings), warnings


def test_the_rings_are_removed(tmp_path: Path) -> None:
    """The pair cleans up after itself (no shared memory left in /dev/shm)."""
    pair = Pair(tmp_path)
    names = [ring.name for ring in pair.rings]
    assert all(os.path.exists(f"/dev/shm/{name}") for name in names)
    pair.close()
    for name in names:
        assert not os.path.exists(f"/dev/shm/{name}")
