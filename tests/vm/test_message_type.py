"""Message, the C type (lunatic_mp/vm/message_type.c) Python code and the C host functions share:
its fields, and the inline layout that keeps a queued message small."""

from __future__ import annotations

import sys

import pytest

from lunatic_mp.vm.mailbox import DeathReason, Kind, Message

HEADER = 40
"""The bytes of a message before its inline data (message_type.c: lmp_message)."""
INLINE_MAX = 64 * 1024


def test_a_message_keeps_what_python_gives_it() -> None:
    message = Message(7, b"abc", pid=42, modules=["m"])
    assert (message.tag, message.data, message.pid, message.modules) == (7, b"abc", 42, ["m"])
    assert message.kind is Kind.DATA and message.reason is DeathReason.NORMAL
    assert message.cursor == 0 and message.streams is None
    message.cursor = 2
    message.streams = ["s"]
    message.data = bytearray(b"xy")
    assert (message.cursor, message.streams, message.data) == (2, ["s"], bytearray(b"xy"))
    assert repr(message) == "Message(tag=7, kind=DATA, pid=42, 2 bytes)"


def test_death_notices() -> None:
    died = Message.link_died(5, 9, DeathReason.FAILURE)
    assert (died.kind, died.pid, died.tag, died.reason) == (Kind.LINK_DIED, 5, 9, DeathReason.FAILURE)
    assert died.data == b""
    gone = Message.process_died(6)
    assert (gone.kind, gone.pid, gone.tag) == (Kind.PROCESS_DIED, 6, 0)


def test_tags_are_64_bits_either_way() -> None:
    """An ABI tag is an i64: a u64 from elsewhere (a frame) is taken as its bits."""
    assert Message(2**64 - 1).tag == -1
    assert Message(-(2**63)).tag == -(2**63)
    with pytest.raises(OverflowError, match="tag"):
        Message(2**64)
    with pytest.raises(TypeError, match="tag must be an int"):
        Message("7")  # type: ignore[arg-type]


def test_bad_fields_are_refused_with_their_name() -> None:
    with pytest.raises(ValueError, match="kind: 3 is not a valid code"):
        Message(1, kind=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="modules must be a list"):
        Message(1, modules=("m",))  # type: ignore[arg-type]
    message = Message(1, bytearray())
    with pytest.raises(AttributeError, match="cannot delete"):
        del message.tag
    message.data = memoryview(b"copied")  # type: ignore[assignment]  # any bytes-like: a copy
    assert message.data == b"copied"


def test_small_data_is_held_inline_in_one_allocation() -> None:
    """A queued 8-byte message is one 48-byte object (a header object and a bytes object made
    128): what a slow receiver's backlog is made of."""
    message = Message(3, b"8 bytes!", pid=5)
    assert message.inline and message.data == b"8 bytes!" and (message.tag, message.pid) == (3, 5)
    assert sys.getsizeof(message) == HEADER + 8
    assert sys.getsizeof(Message.link_died(5, 9, DeathReason.FAILURE)) == HEADER


def test_inline_up_to_64_kib_and_large_data_shared_not_copied() -> None:
    assert Message(1, b"x" * INLINE_MAX).inline
    big = b"y" * (INLINE_MAX + 1)
    message = Message(1, big)
    assert not message.inline and message.data is big


@pytest.mark.parametrize(
    "make",
    [
        lambda: Message(1, bytearray(b"draft")),
        lambda: Message(1, b"m", modules=[]),
        lambda: Message(1, b"s", streams=[]),
    ],
    ids=["bytearray", "modules", "streams"],
)
def test_what_holds_python_objects_is_not_inline(make: object) -> None:
    message = make()  # type: ignore[operator]
    assert not message.inline and message.extensible() is message


def test_an_inline_message_is_fixed_and_says_how_to_change_it() -> None:
    message = Message(4, b"fixed", pid=2)
    with pytest.raises(AttributeError, match=r"inline .* extensible\(\)"):
        message.data = b"other"
    with pytest.raises(TypeError, match=r"cannot attach Message\.modules: .* extensible\(\)"):
        message.modules = ["m"]
    with pytest.raises(TypeError, match=r"cannot attach Message\.streams"):
        message.streams = ["s"]
    message.modules = []  # nothing attached: what it already holds
    message.streams = None
    assert message.modules == [] and message.streams is None and message.data == b"fixed"


def test_extensible_copies_every_field_and_takes_resources() -> None:
    message = Message.link_died(5, 9, DeathReason.FAILURE)
    message.cursor = 3
    copy = message.extensible()
    assert copy is not message and not copy.inline
    fields = ("tag", "pid", "kind", "reason", "cursor", "data")
    assert [getattr(copy, f) for f in fields] == [getattr(message, f) for f in fields]
    copy.modules.append("m")
    copy.data = b"more"
    assert (copy.modules, copy.data, message.data) == (["m"], b"more", b"")
