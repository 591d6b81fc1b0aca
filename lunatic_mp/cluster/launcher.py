"""The one thread that starts a runtime's child processes.

``PR_SET_PDEATHSIG`` (which kills a worker at once when its supervisor dies, even when the
worker's own thread is stuck in a native process and never looks at the supervisor's sentinel)
fires when the *thread* that started the child ends, not the process. Children started from
whatever thread happened to ask (the host program's, the pump thread replacing a lost worker)
would die with that thread, or, without the signal, outlive a killed supervisor. So every child
is started from this thread, which lives exactly as long as the runtime: every child, first or
replacement, gets the signal.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future


class Launcher:
    """Runs ``start`` callables (``multiprocessing.Process.start``) on its own thread."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue[tuple[Callable[[], None], Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="lunatic-mp-launcher", daemon=True)
        self._thread.start()

    def run(self, start: Callable[[], None]) -> None:
        """Call ``start`` on the launcher's thread and wait for it; its exception, if any."""
        if threading.current_thread() is self._thread:
            start()
            return
        done: Future[None] = Future()
        self._requests.put((start, done))
        done.result()

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            start, done = request
            try:
                start()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
                done.set_exception(exc)
            else:
                done.set_result(None)

    def close(self) -> None:
        """End the thread: call only once every child it started has exited (it kills them)."""
        self._requests.put(None)
        self._thread.join()
