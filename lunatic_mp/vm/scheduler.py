"""The scheduler: which process runs next, and when timers fire.

One engine, one thread. Processes are fibers: polling one runs its guest until it finishes,
suspends in a host call (``receive``, ``sleep_ms``...), or uses up its time slice and yields
(epoch interruption, about 1 ms: :mod:`lunatic_mp.vm.preemption`).
The loop, top to bottom:

1. fire the timers that are due (sleeps, receive timeouts, ``send_after``), and wake the
   processes whose sockets are ready (in a worker, its event loop does this between rounds);
2. run each process that was ready when the round began, once, in FIFO order: round robin, so a
   spinning process gets one time slice per round and cannot starve the others; then, for up to
   :data:`CHAIN_BUDGET_NS`, the processes those made ready, still in FIFO order (this phase is C,
   lunatic_mp/vm/runner.c, calling back into the engine only when a call returns or a kill waits);
3. return when the caller's condition holds;
4. otherwise, with nothing ready, sleep until the next timer is due or a descriptor that a
   process waits on is ready (:mod:`lunatic_mp.vm.reactor`); with neither, nothing can ever happen
   again, and the loop returns. Before it sleeps, a hibernation sweep that is due goes on, a
   slice at a time (:meth:`Scheduler.hibernate`: processes long idle in ``receive`` give their
   pages back).

Phases 1 and 2 are :meth:`Scheduler.run_round`, which a worker process calls from its own loop
(between draining and flushing its queues) instead of :meth:`Scheduler.run`; it calls
:meth:`Scheduler.hibernate` after each turn.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import greenlet

from lunatic_mp.vm import core
from lunatic_mp.vm.process import Phase

if TYPE_CHECKING:
    from lunatic_mp.vm.engine import Engine
    from lunatic_mp.vm.process import BaseProcess


log = logging.getLogger(__name__)

CHAIN_BUDGET_NS = 100_000
"""How long a round goes on running the processes that the round's own processes made ready (a
message chain between local processes) before it returns to the caller's loop: a worker's loop
turn (frames in, frames out, the event loop) is then paid once per burst, not once per hop. Short
enough that timers, sockets and frames from other workers wait at most about this long more
(plus the slice running when it expires)."""

DEFAULT_HIBERNATE_AFTER_S = 1.0
"""How long a process waits in ``receive`` before its memory's pages go back to the kernel
(:meth:`Scheduler.hibernate`): long enough that a process in a busy exchange never pays for it."""

SWEEP_SLICE_NS = CHAIN_BUDGET_NS
"""How long a hibernation sweep runs before it lets the caller's loop go on (timers, sockets,
frames): a worker holding 150,000 idle processes takes about 2 s of CPU to hibernate them all, and
what else it does waits at most about this long more per turn meanwhile, as for a chain."""

MAX_PAUSE_S = 3600.0
"""The longest single sleep: guests may ask for timeouts past what ``time.sleep`` accepts."""


def earliest(wait: float | None, other: float | None) -> float | None:
    """The shorter of two waits in seconds, where None is forever."""
    if wait is None:
        return other
    return wait if other is None else min(wait, other)


def _as_ns(monotonic_s: float) -> int:
    """A time.monotonic() reading in CLOCK_MONOTONIC nanoseconds, for C (at most 2**63 - 1)."""
    return int(monotonic_s * 1e9) if monotonic_s < 9e9 else 2**63 - 1  # inf too


class Timer:
    """A callback due at a monotonic time; cancelling leaves it in the heap, inert."""

    __slots__ = ("_scheduler", "callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None], scheduler: Scheduler | None) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self._scheduler = scheduler

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            if self._scheduler is not None:
                self._scheduler.timer_cancelled()


def check_hibernate_after(seconds: float | None) -> float | None:
    """``seconds`` (None: never), or a ValueError naming ``hibernate_after``."""
    if seconds is None:
        return None
    number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if not number or not 0.001 <= seconds <= MAX_PAUSE_S:
        raise ValueError(
            f"hibernate_after must be None or between 0.001 and {MAX_PAUSE_S:g} seconds, got {seconds!r}"
        )
    return float(seconds)


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        hibernate_after: float | None = DEFAULT_HIBERNATE_AFTER_S,
        long_slice_ns: int = 0,
    ) -> None:
        self.engine = engine
        self.long_slice_ns = long_slice_ns
        """How long a CPU-bound guest may run on while only such guests wait (0: never;
        :data:`~lunatic_mp.vm.preemption.DEFAULT_LONG_SLICE_NS`); :meth:`run` gives it to each
        round, a worker only to rounds in which its doorbell rings for it."""
        self.hibernate_after = check_hibernate_after(hibernate_after)
        """Seconds between two sweeps of :meth:`hibernate` (None: no hibernation)."""
        self._next_sweep = time.monotonic() + self.hibernate_after if self.hibernate_after else float("inf")
        self._waits_seen = -1
        self._marked = 0  # processes the current (or last) sweep marked
        self._sweep_at = -1  # where the sweep under way goes on from; -1: none is
        self.run_queue = core.RunQueue()
        """The ready processes, FIFO (C: the resume loop and a send that wakes a receiver queue
        onto it without Python)."""
        self.make_ready: Callable[[BaseProcess], bool] = self.run_queue.make_ready
        """Queue a process at the back unless it is queued already (its ``queued`` flag)."""
        self._timers: list[tuple[float, int, Timer]] = []
        self._cancelled = 0
        self._sequence = itertools.count()
        self._reaping: list[Any] = []  # greenlets of native processes killed while suspended
        self.polls_sockets = True
        """Whether each round polls the reactor; a worker's event loop does it instead."""
        self.runner = core.Runner(
            self.run_queue, engine, engine.on_call_done, engine.kill, Phase.RUNNING, engine.preemption.ticker
        )
        """Phase 2 in C (lunatic_mp/vm/runner.c): polls each Wasm process for a slice (its
        ``current`` is the process polled: Engine.current); starts a process's export when its
        instantiation finishes; calls ``on_call_done`` when its call returns, ``kill`` when it was
        killed while it ran, and a native process's ``run_slice``."""

    def close(self) -> None:
        """Forget every process and timer (the engine is closing)."""
        self._unwind()
        self.run_queue.clear()
        self._timers.clear()
        self._cancelled = 0

    def reap(self, glet: Any) -> None:
        self._reaping.append(glet)

    def _unwind(self) -> None:
        """Unwind the Python stacks of native processes killed while they were suspended: their
        ``finally`` blocks run here, on the scheduler's stack, where greenlets may switch."""
        while self._reaping:
            glet = self._reaping.pop()
            try:
                glet.throw(greenlet.GreenletExit)
            except greenlet.GreenletExit:
                pass
            except Exception:
                log.exception("a killed native process failed while unwinding")

    def call_later(self, delay_s: float | None, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` after ``delay_s`` seconds; None makes a timer that never fires."""
        if delay_s is None:
            return Timer(float("inf"), callback, None)
        timer = Timer(time.monotonic() + max(delay_s, 0.0), callback, self)
        heapq.heappush(self._timers, (timer.deadline, next(self._sequence), timer))
        at_ns = _as_ns(timer.deadline)  # a long chain under way ends by then (runner.c)
        if not 0 < self.runner.next_timer_ns <= at_ns:
            self.runner.next_timer_ns = at_ns
        return timer

    def timer_cancelled(self) -> None:
        """Drop cancelled timers once they are most of the heap, so that memory stays bounded
        when receives with long timeouts are usually answered in time."""
        self._cancelled += 1
        if self._cancelled > 1024 and self._cancelled * 2 > len(self._timers):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled = 0

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Run processes until ``until()`` holds (True) or nothing more can happen (False).

        With ``timeout`` (seconds) it also returns False once that much time has passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # 1-2. Fire due timers and run every ready process once.
            wait = self.run_round(self.long_slice_ns)

            # 3. Stop when the caller's condition holds.
            if until is not None and until():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

            # 4. Idle until the next timer or I/O; with neither, nothing can ever happen. A
            #    hibernation sweep that is due, or under way, goes on first.
            reactor = self.engine.reactor
            if wait is None and not reactor.watching:
                return False
            now = time.monotonic()
            self.hibernate(now)
            wait = earliest(wait, self.sweep_due_in(now))
            if deadline is not None:
                wait = earliest(wait, deadline - time.monotonic())
            if wait is None or wait > 0:
                pause = MAX_PAUSE_S if wait is None else min(wait, MAX_PAUSE_S)
                if reactor.watching:
                    reactor.dispatch(pause)
                else:
                    time.sleep(pause)

    def hibernate(self, now: float) -> bool:
        """Give back the memory pages of processes idle in ``receive`` for a while: every
        ``hibernate_after`` seconds, a sweep marks each process it finds waiting in a receive, and
        hibernates each one that the sweep before marked in the same wait (C: hibernate.c); its
        pages come back before it next runs. The caller's loop calls this with the time; a sweep
        runs :data:`SWEEP_SLICE_NS` at a time (a hibernation costs about 13 µs), and this says
        whether one is under way: the caller comes back soon rather than sleeping."""
        if self._sweep_at < 0:
            if now < self._next_sweep or self.hibernate_after is None:
                return False
            self._next_sweep = now + self.hibernate_after
            waits = core.waits_begun()
            if waits == self._waits_seen and not self._marked:
                return False  # no wait began, and none is pending a second look
            self._waits_seen = waits
            self._marked = 0
            self._sweep_at = 0
        self._sweep_at, _, marked = core.hibernate_idle(self.engine.processes, self._sweep_at, SWEEP_SLICE_NS)
        self._marked += marked
        return self._sweep_at >= 0

    def sweep_due_in(self, now: float) -> float | None:
        """Seconds until :meth:`hibernate` has work (0: a sweep is under way), or None while it
        has none until a process begins a wait: how long a sleeping loop may wait before it must
        look again, so that an idle engine with nothing to hibernate never wakes for it."""
        if self._sweep_at >= 0:
            return 0.0
        if self.hibernate_after is None or (core.waits_begun() == self._waits_seen and not self._marked):
            return None
        return max(self._next_sweep - now, 0.0)

    def run_round(self, long_slice_ns: int = 0) -> float | None:
        """One round: fire due timers, then run each process ready at the start, once.

        Returns how long nothing will happen unless something arrives from outside: 0 when
        processes are ready, the time to the next timer, or None with no timer at all. A worker
        loop calls this between draining and flushing its queues. With ``long_slice_ns``, a
        process that ran to its slice's end runs on up to that long (not past the next timer)
        while every process waiting is such a one (runner.c; the engine's ticker watches its
        reactor, so a socket that turns ready ends it); and where the runner has a ``listen``
        (a worker), a chain of local messages that outlasts :data:`CHAIN_BUDGET_NS` runs on as
        long, until something arrives from outside.
        """
        # 0. Unwind native processes killed while suspended (greenlets switch only from here).
        if self._reaping:
            self._unwind()

        # 1. Fire due timers; wake processes whose sockets are ready.
        timers = self._timers
        if timers:
            now = time.monotonic()
            while timers and timers[0][0] <= now:
                timer = heapq.heappop(timers)[2]
                if timer.cancelled:
                    self._cancelled -= 1
                else:
                    timer.cancelled = True  # fired: a later cancel() is a no-op
                    timer.callback()
        if self.polls_sockets:
            reactor = self.engine.reactor
            if reactor.watching:
                reactor.dispatch(0.0)

        # 2. Run every process that is ready now, once each (round robin): a Wasm process until
        #    it finishes, suspends in a host call, or its slice ends; one that finishes
        #    instantiating goes straight on into its export; one killed while its own code ran (a
        #    link's death it caused) dies when its slice ends. In C: runner.c.
        queue = self.run_queue
        self._drop_cancelled_head()
        self.runner.next_timer_ns = _as_ns(self._timers[0][0]) if self._timers else 0
        self.runner.run(len(queue), CHAIN_BUDGET_NS, long_slice_ns)

        if queue or self._reaping:
            return 0.0
        self._drop_cancelled_head()
        timers = self._timers  # timer_cancelled may have rebuilt the heap meanwhile
        return max(timers[0][0] - time.monotonic(), 0.0) if timers else None

    def _drop_cancelled_head(self) -> None:
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
            self._cancelled -= 1
