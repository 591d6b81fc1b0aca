"""Message and Mailbox, the C types (lunatic_mp/vm/mailbox.c) Python code and the C host functions share."""

from __future__ import annotations

import gc
import weakref

import pytest

from lunatic_mp.vm.mailbox import DeathReason, Kind, Mailbox, Message


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
    message = Message(1)
    with pytest.raises(AttributeError, match="cannot delete"):
        del message.tag
    message.data = memoryview(b"copied")  # type: ignore[assignment]  # any bytes-like: a copy
    assert message.data == b"copied"


def test_take_is_fifo_and_selective() -> None:
    box = Mailbox()
    for tag in (1, 2, 3, 2):
        box.put(Message(tag, bytes([tag])))
    assert len(box) == 4
    taken = box.take((2,))
    assert taken is not None and taken.tag == 2
    assert [m.tag for m in box] == [1, 3, 2]
    assert box.take((9,)) is None
    skipped = box.take(None, 1)
    assert skipped is not None and skipped.tag == 3
    first = box.take()
    assert first is not None and first.tag == 1
    assert [m.tag for m in box] == [2]


def test_selective_receive_over_a_long_mailbox() -> None:
    """The ring grows past its first slots and keeps order across wrap-arounds."""
    box = Mailbox()
    for round_ in range(3):
        for i in range(10_000):
            box.put(Message(i % 7, i.to_bytes(4, "little")))
        sixes = []
        while (message := box.take((6,))) is not None:
            sixes.append(int.from_bytes(message.data, "little"))
        assert sixes == [i for i in range(10_000) if i % 7 == 6], round_
        rest = []
        while (message := box.take(None)) is not None:
            rest.append(int.from_bytes(message.data, "little"))
        assert rest == [i for i in range(10_000) if i % 7 != 6]
        assert len(box) == 0


def test_put_takes_only_messages() -> None:
    with pytest.raises(TypeError, match=r"Mailbox\.put takes a Message, got int"):
        Mailbox().put(3)  # type: ignore[arg-type]


def test_on_take_runs_after_each_removal() -> None:
    box = Mailbox()
    calls: list[int] = []
    box.on_take = lambda: calls.append(len(box))
    box.put(Message(1))
    assert box.take((2,)) is None and calls == []
    assert box.take() is not None and calls == [0]
    box.on_take = None
    assert box.on_take is None


def test_an_on_take_error_reaches_the_caller() -> None:
    box = Mailbox()
    box.on_take = lambda: 1 / 0
    box.put(Message(1))
    with pytest.raises(ZeroDivisionError):
        box.take()
    assert len(box) == 0


def test_a_waiting_receive_wants_only_its_tags() -> None:
    box = Mailbox()
    assert box.receive_start == -1 and not box.wants(Message(1))
    box.wait((1, 2), 0)
    assert box.receive_start == 0 and box.wants(Message(2)) and not box.wants(Message(3))
    box.wait(None, 3)
    assert box.receive_start == 3 and box.wants(Message(3))
    box.stop_waiting()
    assert box.receive_start == -1 and not box.wants(Message(3))


def test_a_mailbox_in_a_cycle_is_collected() -> None:
    """on_take refers back to the process that owns the mailbox: the collector breaks that cycle."""

    class Owner:
        def __init__(self) -> None:
            self.box = Mailbox()
            self.box.on_take = self.poke
            self.box.put(Message(1))

        def poke(self) -> None:
            pass

    owner = Owner()
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None


def test_a_bound_is_a_count() -> None:
    box = Mailbox()
    box.bound = 10
    assert box.bound == 10
    with pytest.raises(ValueError, match="bound must be an int >= 0"):
        box.bound = -1
