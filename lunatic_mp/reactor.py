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
from collections.abc import Callable

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE

Callback = Callable[[int], None]
"""Called with the ready events (a mask of READ and WRITE)."""


class Reactor:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def fileno(self) -> int:
        """Readable whenever some watched descriptor is ready."""
        return self._selector.fileno()  # type: ignore[attr-defined, no-any-return]

    @property
    def watching(self) -> bool:
        return bool(self._selector.get_map())

    def watch(self, fd: int, events: int, callback: Callback) -> None:
        """Call ``callback`` whenever ``fd`` is ready for ``events``, until :meth:`unwatch`."""
        try:
            self._selector.modify(fd, events, callback)
        except KeyError:
            self._selector.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def dispatch(self, timeout: float | None = 0.0) -> int:
        """Run the callbacks of ready descriptors, waiting up to ``timeout`` seconds (None: until
        one is ready) for the first; how many were ready."""
        if timeout is not None and timeout <= 0 and not self._selector.get_map():
            return 0
        ready = self._selector.select(timeout)
        for key, events in ready:
            key.data(events)
        return len(ready)

    def close(self) -> None:
        self._selector.close()
