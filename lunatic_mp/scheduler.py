"""The scheduler: which process runs next, and when timers fire.

One engine, one thread. Processes are fibers: polling one runs its guest until it finishes,
suspends in a host call (``receive``, ``sleep_ms``...), or uses up its fuel slice and yields.
The loop, top to bottom:

1. fire the timers that are due (sleeps, receive timeouts, ``send_after``);
2. run each process that was ready when the round began, once, in FIFO order: round robin, so a
   spinning process gets one fuel slice per round and cannot starve the others;
3. return when the caller's condition holds;
4. otherwise, with nothing ready, sleep until the next timer is due; with no timer either,
   nothing can ever happen again, and the loop returns.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from lunatic_mp import wasm

if TYPE_CHECKING:
    from lunatic_mp.engine import Engine
    from lunatic_mp.process import Process


class Timer:
    """A callback due at a monotonic time; cancelling leaves it in the heap, inert."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.run_queue: deque[Process] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()

    def make_ready(self, process: Process) -> None:
        if not process.queued:
            process.queued = True
            self.run_queue.append(process)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(delay_s, 0.0), callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._sequence), timer))
        return timer

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Run processes until ``until()`` holds (True) or nothing more can happen (False).

        With ``timeout`` (seconds) it also returns False once that much time has passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        queue, timers = self.run_queue, self._timers
        while True:
            # 1. Fire due timers.
            if timers:
                now = time.monotonic()
                while timers and timers[0][0] <= now:
                    timer = heapq.heappop(timers)[2]
                    if not timer.cancelled:
                        timer.callback()

            # 2. Run every process that is ready now, once each.
            for _ in range(len(queue)):
                process = queue.popleft()
                process.queued = False
                if process.alive:
                    self._run_slice(process)

            # 3. Stop when the caller's condition holds.
            if until is not None and until():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

            # 4. Idle until the next timer; nothing ready and no timer means nothing can happen.
            if queue:
                continue
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if not timers:
                return False
            wake_at = timers[0][0] if deadline is None else min(timers[0][0], deadline)
            pause = wake_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    def _run_slice(self, process: Process) -> None:
        """Poll one process until it finishes, suspends in a host call, or yields on fuel.

        A process that finishes instantiating goes straight on into its export.
        """
        engine = self.engine
        while True:
            engine.current = process
            try:
                done = wasm.poll(process.call)  # type: ignore[arg-type]
            finally:
                engine.current = None
            if not done:
                if not process.waiting:
                    self.make_ready(process)  # yielded on fuel: back of the queue
                return
            if not engine.on_call_done(process):
                return
