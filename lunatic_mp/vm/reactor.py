"""File descriptors that processes wait on: sockets for ``lunatic::networking``, listeners.

A process blocked on I/O is suspended like one blocked on its mailbox; the reactor wakes it when
its descriptor is ready. The reactor is one epoll instance per engine. A bare engine's scheduler
sleeps in :meth:`Reactor.dispatch`; a worker's event loop watches :meth:`Reactor.fileno` (an epoll
descriptor is itself pollable) and dispatches when it turns readable. Either way no waiting
socket ever blocks other processes.

Two kinds of registration:

- :meth:`Reactor.watch`: level-triggered, a callback for every dispatch while the descriptor is
  ready, until :meth:`Reactor.unwatch`.
- :meth:`Reactor.wait`: one-shot waiters on a descriptor that stays registered, edge-triggered,
  from its first wait until :meth:`Reactor.forget` (just before it is closed). A wait costs no
  system call: a socket that a process reads, writes and waits on again and again is registered
  once (a register and an unregister per wait used to cost a third of an echo's round trip).
  Edge-triggered, a descriptor reports only what becomes ready after it was registered or last
  reported, so a waiter must only wait after its own attempt would have blocked (EAGAIN): what
  arrives after that attempt is an edge, and wakes it. Edges that come while nobody waits are
  dropped; a waiter may be woken when its attempt still would block (another process sharing
  the socket took the data first, or the edge was for the other direction) and must then try
  again and wait again.
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections import deque
from collections.abc import Callable

READ = 1  # as selectors.EVENT_READ
WRITE = 2  # as selectors.EVENT_WRITE

Callback = Callable[[int], None]
"""Called with the ready events (a mask of READ and WRITE)."""

_EDGE = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
_NOT_READ = select.EPOLLOUT  # any other event (data, a hang-up, an error) wakes readers
_NOT_WRITE = select.EPOLLIN | select.EPOLLRDHUP  # any other event (room, an error) wakes writers


def _mask(events: int) -> int:
    """An epoll event set as READ | WRITE (as :mod:`selectors` reads it)."""
    return (READ if events & ~_NOT_READ else 0) | (WRITE if events & ~_NOT_WRITE else 0)


def _epoll_events(mask: int) -> int:
    return (select.EPOLLIN if mask & READ else 0) | (select.EPOLLOUT if mask & WRITE else 0)


class Waiter:
    """One process waiting, once, for one descriptor to be ready (:meth:`Reactor.wait`)."""

    __slots__ = ("callback", "events", "fd")

    def __init__(self, fd: int, events: int, callback: Callable[[], None]) -> None:
        self.fd = fd
        self.events = events
        self.callback: Callable[[], None] | None = callback


class Reactor:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._watched: dict[int, Callback] = {}  # level-triggered: watch()
        self._waiters: dict[int, list[Waiter]] = {}  # edge-triggered, registered until forget()
        self.c_waits: dict[int, object] = {}
        """Processes whose socket call waits in C, by descriptor (lunatic_mp/vm/net.c): also
        edge-triggered, on a descriptor registered for Python's waits first."""
        self.c_ready: Callable[[list[tuple[int, int]]], list[tuple[int, int]]] | None = None
        """Hands what epoll reported to those waits first; what is left is Python's (set by the
        networking host functions: core.net_ready)."""
        self._waiting = 0  # waiters not yet fired or cancelled
        self._calls: deque[Callable[[], None]] = deque()  # from other threads
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._thread_jobs = 0

    def fileno(self) -> int:
        """Readable whenever some registered descriptor is ready."""
        return self._epoll.fileno()

    @property
    def watching(self) -> bool:
        """Whether a callback may still come: a descriptor is watched, or a waiter waits (a
        descriptor that merely stays registered, with nobody waiting, does not count)."""
        return self._waiting > 0 or bool(self._watched) or bool(self.c_waits)

    @property
    def waiters(self) -> dict[int, list[Waiter]]:
        """Python's waiters by descriptor: every descriptor registered for waits is a key (the C
        waits look here: they need the registration, and leave a descriptor others wait on to
        Python)."""
        return self._waiters

    @property
    def registered(self) -> int:
        """How many descriptors epoll holds (watched, or kept for waits)."""
        return len(self._watched) + len(self._waiters)

    def watch(self, fd: int, events: int, callback: Callback) -> None:
        """Call ``callback`` whenever ``fd`` is ready for ``events``, until :meth:`unwatch`."""
        if fd in self._watched:
            self._epoll.modify(fd, _epoll_events(events))
        else:
            self._epoll.register(fd, _epoll_events(events))
        self._watched[fd] = callback

    def unwatch(self, fd: int) -> None:
        if self._watched.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def wait(self, fd: int, events: int, callback: Callable[[], None]) -> Waiter:
        """Call ``callback`` once, when ``fd`` turns ready for ``events`` (see the module's
        docstring: only after an attempt that would block); :meth:`cancel` the returned waiter
        to stop waiting. A descriptor is either watched or waited on."""
        waiters = self._waiters.get(fd)
        if waiters is None:
            self._epoll.register(fd, _EDGE)  # reports what is ready already, too
            waiters = self._waiters[fd] = []
        waiter = Waiter(fd, events, callback)
        waiters.append(waiter)
        self._waiting += 1
        return waiter

    def cancel(self, waiter: Waiter) -> None:
        """Stop a wait (the process timed out, or died); a no-op once it has fired. The
        descriptor stays registered (until :meth:`forget`)."""
        if waiter.callback is None:
            return
        waiter.callback = None
        self._waiting -= 1
        waiters = self._waiters.get(waiter.fd)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)

    def forget(self, fd: int) -> None:
        """``fd`` is about to be closed: drop its registration (its waiters never fire)."""
        self.c_waits.pop(fd, None)
        waiters = self._waiters.pop(fd, None)
        if waiters is not None:
            for waiter in waiters:
                if waiter.callback is not None:
                    waiter.callback = None
                    self._waiting -= 1
            with contextlib.suppress(OSError):
                self._epoll.unregister(fd)

    def cancel_c_wait(self, fd: int, process: object) -> None:
        """``process`` (gone) no longer waits in C on ``fd``, if it did."""
        if self.c_waits.get(fd) is process:
            del self.c_waits[fd]

    def _fire(self, waiters: list[Waiter], mask: int) -> None:
        if len(waiters) == 1:  # the usual case: one process waits on its socket
            waiter = waiters[0]
            if waiter.events & mask:
                waiters.clear()
                callback, waiter.callback = waiter.callback, None
                if callback is not None:
                    self._waiting -= 1
                    callback()
            return
        fire = [w for w in waiters if w.events & mask]
        if len(fire) == len(waiters):
            waiters.clear()
        else:
            waiters[:] = [w for w in waiters if not w.events & mask]
        for waiter in fire:
            callback, waiter.callback = waiter.callback, None
            if callback is not None:
                self._waiting -= 1
                callback()

    def dispatch(self, timeout: float | None = 0.0) -> int:
        """Run the callbacks of ready descriptors, waiting up to ``timeout`` seconds (None: until
        one is ready) for the first; how many were ready."""
        if timeout is not None and timeout <= 0 and not (self._waiters or self._watched):
            return 0
        ready = self._epoll.poll(-1 if timeout is None else timeout)
        count = len(ready)
        if self.c_waits and ready and self.c_ready is not None:
            ready = self.c_ready(ready)
        for fd, events in ready:
            waiters = self._waiters.get(fd)
            if waiters:
                self._fire(waiters, _mask(events))
            elif waiters is None:
                callback = self._watched.get(fd)
                if callback is not None:
                    callback(_mask(events))
        return count

    # --- work done on other threads (DNS lookups) -------------------------------------------------

    def thread_job_started(self) -> None:
        """A thread will :meth:`call_soon_threadsafe`: keep the wake-up socket watched until it
        has (a reactor with nothing to wait for lets a bare engine see that it is idle)."""
        if self._wake is None:
            self._wake = socket.socketpair()
            for end in self._wake:
                end.setblocking(False)
        if self._thread_jobs == 0:
            self.watch(self._wake[0].fileno(), READ, self._run_calls)
        self._thread_jobs += 1

    def thread_job_done(self) -> None:
        """Called on the reactor's thread when a job's result has been handled."""
        self._thread_jobs -= 1
        if self._thread_jobs == 0 and self._wake is not None:
            self.unwatch(self._wake[0].fileno())

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
        self._epoll.close()
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None
