"""Mailbox, the C type (lunatic_mp/vm/mailbox.c) Python code and the C host functions share."""

from __future__ import annotations

import gc
import weakref

import pytest

from lunatic_mp.vm.mailbox import Mailbox, Message


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
