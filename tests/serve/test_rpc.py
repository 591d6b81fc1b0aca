"""The control socket's wire format (lunatic_mp.serve.rpc): msgpack-RPC messages, bounded decoding."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lunatic_mp.errors import ProtocolError
from lunatic_mp.serve import rpc
from lunatic_mp.serve.rpc import Code, Decoder, Invalid, Notification, Request, Response


def test_messages_round_trip() -> None:
    """Requests, responses and notifications come out of the decoder as they went in."""
    data = (
        rpc.encode_request(7, "send", [1, b"hi", 0])
        + rpc.encode_response(7, None, {"pid": 5})
        + rpc.encode_response(8, rpc.error_object(Code.NOT_FOUND, "no such name"), None)
        + rpc.encode_notification("send", ["counter", "x"])
    )
    assert Decoder().feed(data) == [
        Request(7, "send", [1, b"hi", 0]),
        Response(7, None, {"pid": 5}),
        Response(8, {"code": "NotFound", "message": "no such name"}, None),
        Notification("send", ["counter", "x"]),
    ]


def test_the_format_is_the_msgpack_rpc_spec() -> None:
    """Plain msgpack arrays: [0, msgid, method, params], [1, msgid, error, result], [2, method,
    params]; bin stays bin, str stays str."""
    assert msgpack.unpackb(rpc.encode_request(1, "ping", [])) == [0, 1, "ping", []]
    assert msgpack.unpackb(rpc.encode_response(1, None, b"x")) == [1, 1, None, b"x"]
    assert msgpack.unpackb(rpc.encode_notification("n", ["s"])) == [2, "n", ["s"]]


@given(
    st.lists(
        st.tuples(
            st.integers(0, rpc.MAX_MSGID),
            st.text(max_size=12),
            st.lists(
                st.one_of(st.integers(-(2**63), 2**64 - 1), st.binary(max_size=40), st.text(max_size=8))
            ),
        ),
        max_size=8,
    ),
    st.integers(1, 17),
)
def test_any_split_of_a_stream_decodes_alike(
    requests: list[tuple[int, str, list[object]]], step: int
) -> None:
    """However the bytes arrive (one at a time, or in uneven chunks), the same messages come out."""
    data = b"".join(rpc.encode_request(msgid, method, params) for msgid, method, params in requests)
    decoder = Decoder()
    out: list[object] = []
    for start in range(0, len(data), step):
        out.extend(decoder.feed(data[start : start + step]))
    assert out == [Request(msgid, method, params) for msgid, method, params in requests]
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("obj", "msgid", "reason"),
    [
        ({"method": "ping"}, None, "non-empty array"),
        ([], None, "non-empty array"),
        ([0, 1, "ping"], 1, "got 3 elements"),
        ([0, -1, "ping", []], None, "32-bit unsigned"),
        ([0, 2**32, "ping", []], None, "32-bit unsigned"),
        ([0, 3, 5, []], 3, "method must be a string"),
        ([0, 3, "ping", {}], 3, "params must be an array"),
        ([0, 3, b"ping", []], 3, "method must be a string"),
        ([True, 3, "ping", []], None, "message's type"),
        ([1, "x", None, None], None, "a response"),
        ([2, "n"], None, "a notification"),
        ([7, 1, "x", []], None, "message's type"),
    ],
)
def test_msgpack_that_is_no_rpc_message_is_invalid(obj: object, msgid: int | None, reason: str) -> None:
    """Valid msgpack that is not msgpack-RPC is that message's problem: an Invalid item, with
    the msgid when one can be read, and the stream goes on."""
    decoder = Decoder()
    out = decoder.feed(msgpack.packb(obj) + rpc.encode_request(9, "ping", []))
    assert len(out) == 2
    invalid = out[0]
    assert isinstance(invalid, Invalid)
    assert invalid.msgid == msgid
    assert reason in invalid.reason
    assert out[1] == Request(9, "ping", [])


def test_bytes_that_are_not_msgpack_end_the_stream() -> None:
    """0xc1 is never used in msgpack: the stream cannot be read on, ProtocolError says why."""
    with pytest.raises(ProtocolError, match="not msgpack") as raised:
        Decoder().feed(b"\xc1garbage")
    assert raised.value.code == Code.MALFORMED


def test_a_message_over_the_limit_is_refused() -> None:
    """A message larger than max_frame_size is refused before it is buffered whole."""
    decoder = Decoder(max_frame_size=1024)
    big = rpc.encode_request(1, "send", [1, b"x" * 2000])
    with pytest.raises(ProtocolError, match="larger than the 1024-byte limit") as raised:
        decoder.feed(big)
    assert raised.value.code == Code.TOO_LARGE


def test_a_declared_length_over_the_limit_is_refused_at_once() -> None:
    """A bin header announcing 1 GiB is refused without waiting for (or allocating) the bytes."""
    decoder = Decoder(max_frame_size=1024)
    header = b"\x94\x00\x01\xa4send\x91\xc6" + (1 << 30).to_bytes(4, "big")
    with pytest.raises(ProtocolError, match="larger than") as raised:
        decoder.feed(header + b"x" * 2000)
    assert raised.value.code == Code.TOO_LARGE


def test_many_small_messages_may_exceed_the_limit_together() -> None:
    """The limit is per message: a burst of pipelined requests larger than it in total is fine."""
    decoder = Decoder(max_frame_size=1024)
    burst = b"".join(rpc.encode_request(i, "send", [1, b"y" * 100]) for i in range(100))
    assert len(burst) > 10 * 1024
    assert [m.msgid for m in decoder.feed(burst) if isinstance(m, Request)] == list(range(100))


def test_extension_types_stay_opaque() -> None:
    """An extension type (how other languages smuggle objects) decodes to an inert ExtType:
    nothing received is ever unpickled or run."""
    payload = msgpack.packb([0, 1, "send", [msgpack.ExtType(42, b"\x80\x04cos\nsystem\n")]])
    (request,) = Decoder().feed(payload)
    assert isinstance(request, Request)
    assert request.params == [msgpack.ExtType(42, b"\x80\x04cos\nsystem\n")]


def test_encoding_checks_what_it_cannot_send() -> None:
    with pytest.raises(ProtocolError, match="32-bit"):
        rpc.encode_request(2**32, "ping", [])
    with pytest.raises(ProtocolError, match="cannot encode"):
        rpc.encode_response(1, None, 2**70)
    with pytest.raises(ValueError, match="at least"):
        Decoder(max_frame_size=8)


def test_error_parts_reads_other_servers_errors_too() -> None:
    assert rpc.error_parts({"code": "NotFound", "message": "m"}) == ("NotFound", "m")
    assert rpc.error_parts("plain text") == (Code.FAILED, "plain text")
    assert rpc.error_parts([1, "x"]) == (Code.FAILED, "[1, 'x']")
