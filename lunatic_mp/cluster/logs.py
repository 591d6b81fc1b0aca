"""Log records from worker and registry processes, delivered to the supervisor's loggers.

Each child gets the writing end of its own pipe; the supervisor's log thread reads them all and
hands each record to the logger of the same name, so handlers, levels and filters configured in
the host program apply. A pipe, not a ``multiprocessing.Queue``: a queue's semaphore would start
multiprocessing's resource tracker, one more process to outlive the runtime.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import threading
from multiprocessing.connection import Connection, wait
from typing import Any


class _PipeQueue:
    """The one method QueueHandler needs, over a pipe."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def put_nowait(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone; this process is about to be
            self._connection.send(record)


def send_logs_to(connection: Connection, level: int) -> None:
    """In a child process: every log record goes to the supervisor."""
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(_PipeQueue(connection))]  # type: ignore[arg-type]
    root.setLevel(level)


class LogReceiver:
    """In the supervisor: a thread that reads the children's pipes until they close."""

    def __init__(self) -> None:
        self._readers: list[Connection] = []
        self._lock = threading.Lock()
        self._wake_reader, self._wake_writer = _pipe()
        self._thread = threading.Thread(target=self._run, name="lunatic-mp-logs", daemon=True)
        self._thread.start()

    def add(self, reader: Connection) -> None:
        with self._lock:
            self._readers.append(reader)
        self._wake_writer.send(None)

    def _run(self) -> None:
        while True:
            with self._lock:
                readers = [*self._readers, self._wake_reader]
            for ready in wait(readers):
                connection: Any = ready
                try:
                    item = connection.recv()
                except (EOFError, OSError):
                    if connection is self._wake_reader:
                        return
                    with self._lock:
                        self._readers.remove(connection)
                    connection.close()
                    continue
                if isinstance(item, logging.LogRecord):
                    logging.getLogger(item.name).handle(item)
                elif item == "stop" and connection is self._wake_reader:
                    return

    def close(self) -> None:
        self._wake_writer.send("stop")
        self._thread.join(5)
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
        self._wake_reader.close()
        self._wake_writer.close()


def _pipe() -> tuple[Connection, Connection]:
    from multiprocessing import Pipe

    reader, writer = Pipe(duplex=False)
    return reader, writer
