"""The supervisor's way out to its children: requests whose reply comes back to a callback or a
future, and frames held back to leave together. A base of
:class:`~lunatic_mp.cluster.supervisor.Supervisor`, which owns the state it uses."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.hub import Hub
from lunatic_mp.cluster.requests import PendingRequests
from lunatic_mp.errors import EngineClosed, LunaticError, WorkerLost


class Outbound:
    """Sending to the children, for the supervisor (see the module docstring)."""

    _lock: threading.RLock
    _hub: Hub
    _requests: PendingRequests
    _closed: bool
    _check_open: Callable[[], None]  # the supervisor's: raises once closed, waits for the start
    _wake: Callable[[], None]  # the supervisor's: its pump looks again
    _pump_thread: threading.Thread | None

    def __init__(self) -> None:
        self._batching = threading.local()  # depth: this thread's sends wait for the batch's end

    def _flush(self) -> None:
        if not getattr(self._batching, "depth", 0):
            self._flush_now()

    def _flush_now(self) -> None:
        """Write what is queued. Frames left over for a full ring wake the pump (unless this is
        the pump): asleep, it would try again only at its safety timeout (Hub.sleep_timeout)."""
        if not self._hub.flush() and not self._closed and threading.current_thread() is not self._pump_thread:
            self._wake()

    @contextlib.contextmanager
    def batched_sends(self) -> Iterator[None]:
        """Hold the frames this thread sends until the block ends, then write them together: one
        write and one wake-up per worker for a burst of spawns or messages, instead of one per
        frame. Other threads' frames go as usual (and take these along if they flush first)."""
        local = self._batching
        local.depth = getattr(local, "depth", 0) + 1
        try:
            yield
        finally:
            local.depth -= 1
            if not local.depth:
                with self._lock:
                    self._flush_now()

    def _request_future(self, worker_id: int, make: Callable[[int], frames.Frame]) -> Future[Any]:
        """Send a request; the future of its reply frame (WorkerLost if the worker dies first,
        EngineClosed if the runtime closes first)."""
        return self._send_request(worker_id, make)[0]

    def _request(self, worker_id: int, make: Callable[[int], frames.Frame], timeout: float | None) -> Any:
        future, on_reply = self._send_request(worker_id, make)
        try:
            return future.result(timeout)
        finally:
            if not future.done():
                with self._lock:
                    self._requests.forget(on_reply)

    def _send_request(
        self, worker_id: int, make: Callable[[int], frames.Frame]
    ) -> tuple[Future[Any], Callable[[Any], None]]:
        future: Future[Any] = Future()

        def on_reply(reply: Any) -> None:
            if reply is not None:
                future.set_result(reply)
            else:
                future.set_exception(self._request_lost(worker_id))

        self._request_then(worker_id, make, on_reply)
        return future, on_reply

    def _request_then(
        self, worker_id: int, make: Callable[[int], frames.Frame], on_reply: Callable[[Any], None]
    ) -> None:
        """Send a request; ``on_reply(reply frame)`` on the pump thread, or ``on_reply(None)`` if
        the worker dies or the runtime closes first (:meth:`_request_lost` says which)."""
        self._check_open()  # waits for the start, outside the lock
        with self._lock:
            self._check_open()
            self._hub.send(worker_id, make(self._requests.new(worker_id, on_reply)))
            self._flush()

    def _request_lost(self, worker_id: int) -> LunaticError:
        """Why a request got no reply."""
        if self._closed:
            return EngineClosed("the runtime was closed")
        return WorkerLost(f"worker {worker_id} was lost before it answered")
