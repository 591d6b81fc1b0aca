"""Messages and the per-process mailbox: FIFO, with selective receive by tag (C types)."""

from __future__ import annotations

import enum
import itertools
from typing import TYPE_CHECKING

from lunatic_mp.vm.extension import _core

if TYPE_CHECKING:
    from lunatic_mp.vm._core import Mailbox, Message

__all__ = ["REQUEST_TAG_BASE", "DeathReason", "Kind", "Mailbox", "Message", "fresh_tag"]


class DeathReason(enum.IntEnum):
    """Why a linked process died, as carried by a LinkDied message."""

    NORMAL = 0
    FAILURE = 1
    NO_PROCESS = 2


class Kind(enum.IntEnum):
    """What ``receive`` reports, with the ABI's codes."""

    DATA = 0
    LINK_DIED = 1
    PROCESS_DIED = 2


if not TYPE_CHECKING:
    Message, Mailbox = _core.mailbox_types(tuple(Kind), tuple(DeathReason))
"""``Message(tag, data=b"", kind=Kind.DATA, pid=0, reason=DeathReason.NORMAL, modules=None,
streams=None)``: data with a tag and attached resources (``modules``, ``streams``), or a death notice
(``pid``: the process that died, and for LinkDied the link's tag and ``reason``; empty data). For
data messages ``pid`` is the sender. ``cursor`` is where ``read_data`` reads next.

A message without resources and with at most 64 KiB of data holds its bytes inline, in the same
allocation (``inline``): 48 bytes for an 8-byte message, which is what a slow receiver's backlog is
made of. Its ``data`` (bytes) cannot change, and ``extensible()`` gives a copy that can take
resources. Other messages keep ``data`` as an object: a bytearray while a guest writes it, bytes
once sent.

``Mailbox()``: messages in arrival order; ``take(tags, start)`` removes the oldest one whose tag is
wanted. ``on_take``, while set, is called after each ``take`` that removed a message: the engine sets
it while senders wait for room in a bounded mailbox (``EnvConfig.max_mailbox``, which ``bound``
holds). A suspended receive's wanted tags are recorded by ``wait(tags, start)``; ``wants(message)``
says whether a message wakes it.

Both are C types (lunatic_mp/vm/mailbox.c): the C host functions of ``lunatic::message`` read and
write messages and take from mailboxes without calling Python.
"""


REQUEST_TAG_BASE = 1 << 62
"""Request tags are drawn upward from here, far from the small tags programs pick by hand."""

_request_tags = itertools.count(REQUEST_TAG_BASE)


def fresh_tag() -> int:
    """A tag no other call of this function in this Python process returns (thread-safe)."""
    return next(_request_tags)
