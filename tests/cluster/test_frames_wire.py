"""The msgspec codec writes exactly the bytes msgpack writes for ``[kind, *fields]``: the wire
format did not change when frames became msgspec Structs."""

from __future__ import annotations

import msgpack
from hypothesis import given
from test_frames import SETTINGS, any_frame

from lunatic_mp.cluster.frames import KIND_OF, Frame, decode, encode


@SETTINGS
@given(frame=any_frame)
def test_encode_writes_msgpacks_bytes(frame: Frame) -> None:
    reference: bytes = msgpack.packb((int(KIND_OF[type(frame)]), *frame), use_bin_type=True)
    assert encode(frame) == reference
    assert decode(reference) == frame
