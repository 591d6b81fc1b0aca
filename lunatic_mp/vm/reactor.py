"""File descriptors that processes wait on: sockets for ``lunatic::networking``, listeners.

A process blocked on I/O is suspended like one blocked on its mailbox; the reactor wakes it when
its descriptor is ready. The reactor is one :mod:`selectors` selector per engine. A bare engine's
scheduler sleeps in :meth:`Reactor.dispatch`; a worker's event loop watches :meth:`Reactor.fileno`
(an epoll descriptor is itself pollable) and dispatches when it turns readable. Either way no
waiting socket ever blocks other processes.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
from collections import deque
from collections.abc import Callable

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE

Callback = Callable[[int], None]
"""Called with the ready events (a mask of READ and WRITE)."""


class Waiter:
    """One process waiting, once, for one descriptor to be ready (:meth:`Reactor.wait`)."""

    __slots__ = ("callback", "events", "fd")

    def __init__(self, fd: int, events: int, callback: Callable[[], None]) -> None:
        self.fd = fd
        self.events = events
        self.callback: Callable[[], None] | None = callback


class _Waiters:
    """The one-shot waiters of one descriptor: several processes may share a socket (a cloned
    stream), one reading while another writes."""

    __slots__ = ("fd", "mask", "reactor", "waiters")

    def __init__(self, reactor: Reactor, fd: int) -> None:
        self.reactor = reactor
        self.fd = fd
        self.mask = 0
        self.waiters: list[Waiter] = []

    def __call__(self, events: int) -> None:
        fire = [w for w in self.waiters if w.events & events]
        self.waiters = [w for w in self.waiters if not w.events & events]
        self.reactor._rearm(self)
        for waiter in fire:
            callback, waiter.callback = waiter.callback, None
            if callback is not None:
                callback()


class Reactor:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._registered = self._selector.get_map()  # a live view: checked every scheduler round
        self._waiting: dict[int, _Waiters] = {}
        self._calls: deque[Callable[[], None]] = deque()  # from other threads
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread_jobs = 0

    def fileno(self) -> int:
        """Readable whenever some watched descriptor is ready."""
        return self._selector.fileno()  # type: ignore[attr-defined, no-any-return]

    @property
    def watching(self) -> bool:
        return bool(self._registered)

    def watch(self, fd: int, events: int, callback: Callback) -> None:
        """Call ``callback`` whenever ``fd`` is ready for ``events``, until :meth:`unwatch`."""
        try:
            self._selector.modify(fd, events, callback)
        except KeyError:
            self._selector.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)
        self._waiting.pop(fd, None)

    def wait(self, fd: int, events: int, callback: Callable[[], None]) -> Waiter:
        """Call ``callback`` once, the next time ``fd`` is ready for ``events``; :meth:`cancel`
        the returned waiter to stop waiting. A descriptor is either watched or waited on."""
        group = self._waiting.get(fd)
        if group is None:
            group = self._waiting[fd] = _Waiters(self, fd)
        waiter = Waiter(fd, events, callback)
        group.waiters.append(waiter)
        self._rearm(group)
        return waiter

    def cancel(self, waiter: Waiter) -> None:
        """Stop a wait (the process timed out, or died); a no-op once it has fired."""
        if waiter.callback is None:
            return
        waiter.callback = None
        group = self._waiting.get(waiter.fd)
        if group is not None and waiter in group.waiters:
            group.waiters.remove(waiter)
            self._rearm(group)

    def forget(self, fd: int) -> None:
        """``fd`` is about to be closed: drop its registration (its waiters never fire)."""
        group = self._waiting.pop(fd, None)
        if group is not None:
            for waiter in group.waiters:
                waiter.callback = None
            group.waiters = []
            if group.mask:
                group.mask = 0
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(fd)

    def _rearm(self, group: _Waiters) -> None:
        """Register the union of what ``group``'s waiters want (nothing: unregister)."""
        mask = 0
        for waiter in group.waiters:
            mask |= waiter.events
        if mask == group.mask:
            return
        if not mask:
            self._selector.unregister(group.fd)
            del self._waiting[group.fd]
        elif group.mask:
            self._selector.modify(group.fd, mask, group)
        else:
            self._selector.register(group.fd, mask, group)
        group.mask = mask

    def dispatch(self, timeout: float | None = 0.0) -> int:
        """Run the callbacks of ready descriptors, waiting up to ``timeout`` seconds (None: until
        one is ready) for the first; how many were ready."""
        if timeout is not None and timeout <= 0 and not self._selector.get_map():
            return 0
        ready = self._selector.select(timeout)
        for key, events in ready:
            key.data(events)
        return len(ready)

    # --- work done on other threads (DNS lookups) -------------------------------------------------

    def thread_job_started(self) -> None:
        """A thread will :meth:`call_soon_threadsafe`: keep the wake-up socket watched until it
        has (a reactor with nothing to wait for lets a bare engine see that it is idle)."""
        if self._wake is None:
            self._wake = socket.socketpair()
            for end in self._wake:
                end.setblocking(False)
        if self._thread_jobs == 0:
            self._selector.register(self._wake[0].fileno(), READ, self._run_calls)
        self._thread_jobs += 1

    def thread_job_done(self) -> None:
        """Called on the reactor's thread when a job's result has been handled."""
        self._thread_jobs -= 1
        if self._thread_jobs == 0 and self._wake is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._wake[0].fileno())

    def call_soon_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the reactor's thread, at its next dispatch (any thread may call)."""
        self._calls.append(callback)
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                wake[1].send(b"\0")

    def _run_calls(self, _events: int) -> None:
        assert self._wake is not None
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake[0].recv(4096):
                pass
        while self._calls:
            self._calls.popleft()()

    def close(self) -> None:
        self._selector.close()
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None
