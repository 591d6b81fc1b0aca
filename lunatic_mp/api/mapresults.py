"""The results of one :meth:`~lunatic_mp.api.executor.WasmExecutor.map`, without a Future per item.

Why: a :class:`concurrent.futures.Future` brings a condition, a reentrant lock and two lists. For
a map of tiny jobs, making them and collecting them as garbage cost the host program more than the
jobs cost the workers. The items of one map share one lock instead, and the reader is woken only
by the item it waits for. Each item answers the part of the Future interface the executor uses.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError
from typing import Any

_PENDING, _RUNNING, _CANCELLED, _DONE, _FAILED = range(5)


class MapResults:
    """The shared state of one map's items: the lock, and which item the reader waits for."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # taken as itself where nobody waits: a Condition's own
        self.ready = threading.Condition(self.lock)  # methods are Python, the lock's are C
        self.awaited: MapItem | None = None

    def item(self) -> MapItem:
        return MapItem(self)


class MapItem:
    """One job's result in a map (see the module docstring)."""

    __slots__ = ("_results", "_state", "_value")

    def __init__(self, results: MapResults) -> None:
        self._results = results
        self._state = _PENDING
        self._value: Any = None

    def set_running_or_notify_cancel(self) -> bool:
        """False if cancelled before it started (the job is skipped), else it is running."""
        with self._results.lock:
            if self._state == _CANCELLED:
                return False
            self._state = _RUNNING
            return True

    def cancel(self) -> bool:
        """Cancel the job if it has not started; True if it is cancelled."""
        with self._results.lock:
            if self._state == _PENDING:
                self._settle(_CANCELLED, None)
            return self._state == _CANCELLED

    def set_result(self, value: Any) -> None:
        with self._results.lock:
            self._settle(_DONE, value)

    def set_exception(self, error: BaseException) -> None:
        with self._results.lock:
            self._settle(_FAILED, error)

    def _settle(self, state: int, value: Any) -> None:
        self._state, self._value = state, value
        if self._results.awaited is self:
            self._results.ready.notify_all()

    def result(self, timeout: float | None = None) -> Any:
        """The job's result; its error raised; TimeoutError if not ready within ``timeout`` s."""
        results = self._results
        with results.lock:
            if self._state < _CANCELLED:
                deadline = None if timeout is None else time.monotonic() + timeout
                results.awaited = self
                try:
                    while self._state < _CANCELLED:
                        left = None if deadline is None else deadline - time.monotonic()
                        if left is not None and left <= 0:
                            raise TimeoutError("the job's result was not ready in time")
                        results.ready.wait(left)
                finally:
                    results.awaited = None
            if self._state == _CANCELLED:
                raise CancelledError
            if self._state == _FAILED:
                raise self._value
            return self._value


__all__ = ["MapItem", "MapResults"]
