"""Requests waiting for their replies: one table for the engine's router and the supervisor alike.

A request gets an id that its reply frame carries back; the id finds the callback waiting for it.
When the worker asked is lost, every request to it is answered with None, so nobody waits for a
reply that cannot come.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class PendingRequests:
    """Callbacks waiting for replies, by request id, each with the worker that must answer.

    Not thread-safe: the supervisor calls it under its own lock.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[int, Callable[[Any], None]]] = {}
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._waiting)

    def new(self, worker: int, on_reply: Callable[[Any], None]) -> int:
        """A fresh request id whose reply, from ``worker``, goes to ``on_reply``."""
        request = next(self._ids)
        self._waiting[request] = (worker, on_reply)
        return request

    def complete(self, request: int, reply: Any, *, last: bool = True) -> None:
        """The reply to ``request`` came: hand it to whoever waits (a stray one is logged).
        A request answered in parts (a batch of jobs) goes on waiting until its ``last`` part."""
        entry = self._waiting.pop(request, None) if last else self._waiting.get(request)
        if entry is None:
            log.warning("reply to unknown request %d dropped", request)
            return
        entry[1](reply)

    def forget(self, on_reply: Callable[[Any], None]) -> None:
        """Stop waiting with ``on_reply`` (its caller gave up)."""
        for request, (_, waiting) in list(self._waiting.items()):
            if waiting is on_reply:
                del self._waiting[request]

    def worker_lost(self, worker: int) -> None:
        """Answer every request to ``worker`` with None: it is gone."""
        self.places_lost(lambda target: target == worker)

    def places_lost(self, lost: Callable[[int], bool]) -> None:
        """Answer every request to a worker or place that ``lost`` matches with None."""
        for request, (target, on_reply) in list(self._waiting.items()):
            if lost(target):
                del self._waiting[request]
                on_reply(None)

    def close(self) -> None:
        """Answer every request with None."""
        waiting, self._waiting = self._waiting, {}
        for _, on_reply in waiting.values():
            on_reply(None)


__all__ = ["PendingRequests"]
