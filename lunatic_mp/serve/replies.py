"""Replies to the control socket's ``request`` calls: the host program's mailbox, drained by one
thread into the server's loop, where each reply finds its request by tag.

Messages nobody waits for (a reply after its request timed out, a guest writing to the host) are
counted and dropped, so a long-lived server's mailbox cannot grow without bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from typing import Any

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.errors import LunaticError
from lunatic_mp.serve.control import CallError
from lunatic_mp.serve.rpc import Code
from lunatic_mp.vm.mailbox import Message

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often the mailbox thread looks up from an empty mailbox to see whether it should stop."""
BATCH = 1024
"""Replies the mailbox thread hands to the loop at once, at most."""
TICK = 0.05
"""The granularity of request timeouts, in seconds."""


class _Pending:
    """A request waiting for its reply."""

    __slots__ = ("answer", "pid", "tick", "timeout")

    def __init__(self, answer: asyncio.Future[dict[str, Any]], pid: int, timeout: float, tick: int) -> None:
        self.answer = answer
        self.pid = pid
        self.timeout = timeout
        self.tick = tick


class Replies:
    """The host program's mailbox, moved onto the event loop: each reply goes to the request
    waiting for its tag.

    Requests time out in ticks of :data:`TICK` seconds: one timer sweeps the requests whose
    tick has come, rather than a timer per request (at tens of thousands of requests a second
    the timers would cost more than the rest of a request's path in the server).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.waiting: dict[int, _Pending] = {}
        self.ticks: dict[int, set[int]] = {}  # tick -> tags of the requests that expire then
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="lunatic-mp-serve-mailbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._sweeper is not None:
            self._sweeper.cancel()

    def expect(self, tag: int, pid: int, timeout: float) -> asyncio.Future[dict[str, Any]]:
        """The future of the reply tagged ``tag`` (a Timeout CallError after ``timeout`` s)."""
        loop = self._loop
        assert loop is not None
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        tick = math.ceil((loop.time() + timeout) / TICK)
        self.waiting[tag] = _Pending(answer, pid, timeout, tick)
        tags = self.ticks.get(tick)
        if tags is None:
            tags = self.ticks[tick] = set()
        tags.add(tag)
        if self._sweeper is None:
            self._sweeper = loop.call_later(TICK, self._sweep)
        return answer

    def forget(self, tag: int) -> None:
        pending = self.waiting.pop(tag, None)
        if pending is not None:
            self._untick(tag, pending.tick)

    def _untick(self, tag: int, tick: int) -> None:
        tags = self.ticks.get(tick)
        if tags is not None:
            tags.discard(tag)
            if not tags:
                del self.ticks[tick]

    def _sweep(self) -> None:
        loop = self._loop
        assert loop is not None
        self._sweeper = None
        now = loop.time() / TICK
        for tick in sorted(t for t in self.ticks if t <= now):
            for tag in self.ticks.pop(tick):
                pending = self.waiting.pop(tag)
                if not pending.answer.done():  # else cancelled: its connection went
                    message = f"process {pending.pid:#x} did not reply within {pending.timeout:g} s"
                    pending.answer.set_exception(CallError(Code.TIMEOUT, message))
        if self.waiting:
            self._sweeper = loop.call_later(TICK, self._sweep)

    def _run(self) -> None:
        receive, loop = self.runtime.receive, self._loop
        assert loop is not None
        while not self._stop.is_set():
            try:
                first = receive(None, POLL_S)
            except LunaticError:
                return
            if first is None:
                continue
            batch = [first]
            while len(batch) < BATCH and (message := receive(None, 0)) is not None:
                batch.append(message)
            try:
                loop.call_soon_threadsafe(self._dispatch, batch)
            except RuntimeError:  # the loop is closed
                return

    def _dispatch(self, batch: list[Message]) -> None:
        waiting = self.waiting
        for message in batch:
            pending = waiting.pop(message.tag, None)
            if pending is None:
                self.dropped += 1
                log.debug("dropped a message for the host program nobody waits for: %r", message)
                continue
            self._untick(message.tag, pending.tick)
            if not pending.answer.done():
                pending.answer.set_result({"data": message.data, "tag": message.tag, "pid": message.pid})
