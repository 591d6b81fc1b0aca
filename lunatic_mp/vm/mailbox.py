"""Messages and the per-process mailbox: FIFO, with selective receive by tag."""

from __future__ import annotations

import enum
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any


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


class Message:
    """A message: data with a tag and attached resources, or a death notice.

    Death notices carry the dead process in ``pid`` (and, for LinkDied, the link's tag and the
    reason); their data is empty. For data messages ``pid`` is the sender. A plain class with
    slots: one is made per message, so its constructor is on the hot path.
    """

    __slots__ = ("cursor", "data", "kind", "modules", "pid", "reason", "streams", "tag")

    def __init__(
        self,
        tag: int,
        data: bytearray | bytes = b"",
        kind: Kind = Kind.DATA,
        pid: int = 0,
        reason: DeathReason = DeathReason.NORMAL,
        modules: list[Any] | None = None,
    ) -> None:
        self.tag = tag
        self.data: bytearray | bytes = data  # bytes once sent
        self.kind = kind
        self.pid = pid
        self.reason = reason
        self.modules: list[Any] = modules if modules is not None else []
        self.streams: list[Any] | None = None  # TCP streams attached (lunatic::networking)
        self.cursor = 0

    @classmethod
    def link_died(cls, pid: int, tag: int, reason: DeathReason) -> Message:
        return cls(tag, kind=Kind.LINK_DIED, pid=pid, reason=reason)

    @classmethod
    def process_died(cls, pid: int) -> Message:
        return cls(0, kind=Kind.PROCESS_DIED, pid=pid)

    def __repr__(self) -> str:
        return f"Message(tag={self.tag}, kind={self.kind.name}, pid={self.pid}, {len(self.data)} bytes)"


class Mailbox:
    """Messages in arrival order; ``take`` removes the oldest one whose tag is wanted.

    ``on_take``, while set, is called after each ``take`` that removed a message: the engine
    sets it while senders wait for room in a bounded mailbox (``EnvConfig.max_mailbox``).
    """

    __slots__ = ("_queue", "on_take")

    def __init__(self) -> None:
        self._queue: deque[Message] = deque()
        self.on_take: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterable[Message]:
        return iter(self._queue)

    def put(self, message: Message) -> None:
        self._queue.append(message)

    def take(self, tags: tuple[int, ...] | None, start: int = 0) -> Message | None:
        """The oldest message at index >= ``start`` whose tag is in ``tags`` (any if None)."""
        if self.on_take is not None:
            message = self._take(tags, start)
            if message is not None:
                self.on_take()
            return message
        return self._take(tags, start)

    def _take(self, tags: tuple[int, ...] | None, start: int) -> Message | None:
        queue = self._queue
        if tags is None:
            if start == 0:
                return queue.popleft() if queue else None
            if start < len(queue):
                message = queue[start]
                del queue[start]
                return message
            return None
        for index in range(start, len(queue)):
            message = queue[index]
            if message.tag in tags:
                del queue[index]
                return message
        return None

    @staticmethod
    def matches(message: Message, tags: tuple[int, ...] | None) -> bool:
        return tags is None or message.tag in tags


REQUEST_TAG_BASE = 1 << 62
"""Request tags are drawn upward from here, far from the small tags programs pick by hand."""

_request_tags = itertools.count(REQUEST_TAG_BASE)


def fresh_tag() -> int:
    """A tag no other call of this function in this Python process returns (thread-safe)."""
    return next(_request_tags)
