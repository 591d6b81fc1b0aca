"""A thread of deadlines for :class:`~lunatic_mp.api.executor.WasmExecutor`: its jobs' timeouts
and retries run here, never on the runtime's pump thread, so they may wait for the runtime."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any


class Timers:
    """One thread that runs callables at deadlines (``time.monotonic``): job timeouts, retries."""

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []  # [deadline, sequence, callable or None when cancelled]
        self._cancelled = 0
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_at(self, deadline: float, action: Callable[[], None]) -> list[Any] | None:
        """Run ``action`` (on the timer thread) at ``deadline``; a handle for :meth:`cancel`, or
        None if the timers are stopped (the action will not run)."""
        entry = [deadline, next(self._sequence), action]
        with self._condition:
            if self._stopped:
                return None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lunatic-mp-executor", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._condition.notify()
        return entry

    def cancel(self, entry: list[Any]) -> None:
        with self._condition:
            if entry[2] is not None:
                entry[2] = None
                self._cancelled += 1
                if self._cancelled > 1024 and self._cancelled * 2 > len(self._heap):
                    self._heap = [e for e in self._heap if e[2] is not None]
                    heapq.heapify(self._heap)
                    self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._stopped:
                        return
                    if self._heap and self._heap[0][2] is None:
                        heapq.heappop(self._heap)
                        self._cancelled -= 1
                        continue
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        entry = heapq.heappop(self._heap)
                        action, entry[2] = entry[2], None
                        break
                    self._condition.wait(self._heap[0][0] - now if self._heap else None)
            action()

    def stop(self, *, join: bool) -> None:
        """Stop the thread; ``join``: wait for it (never from a runtime callback: an action may be
        waiting for the runtime's lock that the caller holds)."""
        with self._condition:
            self._stopped = True
            self._heap.clear()
            self._condition.notify()
        thread = self._thread
        if join and thread is not None and thread is not threading.current_thread():
            thread.join()


__all__ = ["Timers"]
