"""Batch fan-out of Wasm jobs as a standard :class:`concurrent.futures.Executor`.

Why: most Python programs that want many cores for many small computations already speak
``concurrent.futures`` (``submit``, ``map``, ``wait``, ``as_completed``, ``asyncio.wrap_future``).
:class:`WasmExecutor` runs each job as one Wasm process of a :class:`~lunatic_mp.api.runtime.Runtime`
(spawned round robin over its workers), so a job costs a process spawn (tens of microseconds)
instead of a pickled task sent to a pool process, a trap or an exhausted fuel budget fails that
job only, and a worker that dies costs only the jobs it hosted, which are retried once.

::

    with Runtime(workers=2) as runtime:
        module = runtime.load_module("square.wat")
        with WasmExecutor(runtime, module, max_fuel=10, timeout=5.0) as executor:
            squares = list(executor.map("square", range(10_000)))

Jobs
    ``submit("f", 1, 2)`` runs the export ``f(1, 2)`` (i32/i64 parameters). Its future resolves
    with the export's result: ``None`` when it returns nothing, the value when it returns one, a
    tuple when it returns several.

Bytes jobs
    ``submit("f", data, *ints)`` with ``data`` a bytes-like first argument runs ``f(*ints)`` and
    sends it ``data`` as its **first message**; that message's tag is a fresh *reply tag* chosen by
    the executor. The job answers by sending **one message** with that same tag to the message's
    sender (``lunatic::message::get_tag`` and ``get_process_id`` give both); the future resolves
    with that reply's bytes. A job that ends normally without replying fails with
    :class:`JobFailed`. This is lunatic's usual request/reply pattern, so a guest needs nothing
    executor-specific (see ``lunatic_mp/examples/exe_jobs.wat``, ``reverse``).

Failures
    A trap (or running out of fuel, or a ``proc_exit``) raises :class:`JobFailed` from that job's
    future, carrying the trap message, the guest backtrace and the pid. A job still running
    ``timeout`` seconds after it started is killed and raises :class:`JobTimeout`. A job whose
    worker died is started again once on a live worker; lost twice, it raises
    :class:`WorkerLostError` (a :class:`concurrent.futures.BrokenExecutor`). Other jobs are never
    affected, and the executor stays usable: the runtime replaces lost workers.

Interrupting
    Leaving a ``with`` executor block waits for every job; when it is left by Ctrl-C
    (KeyboardInterrupt), the queued jobs are cancelled and the running ones killed first (their
    futures raise :class:`JobCancelled`), and a warning on the ``lunatic_mp.api.executor`` logger
    says how many.

Flow control
    At most ``max_in_flight`` jobs exist as processes at once (by default 256 per worker, never more
    than half the workers' capacity); the others wait in a queue, in submission order, and start
    as running jobs end. Mapping millions of items therefore never exhausts a worker; only the
    futures themselves use memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import importlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import LunaticError, SpawnError, WorkerLost
from lunatic_mp.vm.engine import MAX_MESSAGE_SIZE
from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.module import Module

if TYPE_CHECKING:
    from lunatic_mp.api.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_IN_FLIGHT_PER_WORKER = 256
"""Jobs started but not ended per worker, by default: enough to keep a worker busy with tiny jobs."""
REPLY_TAG_BASE = 0x6C6D_7065_0000_0000
"""Reply tags of bytes jobs are this plus a counter (``lmpe`` in the high bytes): a tag range
nobody else is likely to use in the host program's mailbox."""
MAX_ATTEMPTS = 2
"""A job lost with its worker runs at most this many times in all."""


# --- errors ---------------------------------------------------------------------------------------


class JobFailed(LunaticError):
    """A job did not end normally: it trapped, ran out of fuel, exited, or was killed.

    ``message`` is why (the trap message, e.g. ``"out of fuel"``), ``backtrace`` the guest's
    backtrace (one frame a line, may be empty), ``pid`` the process that ran the job (0 if it never
    started) and ``outcome`` how it ended (None if it never started).
    """

    def __init__(
        self,
        message: str,
        *,
        backtrace: tuple[str, ...] = (),
        pid: int = 0,
        outcome: Outcome | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backtrace = backtrace
        self.pid = pid
        self.outcome = outcome

    def __str__(self) -> str:
        text = self.message or "the job failed"
        if self.backtrace:
            text += "\nguest backtrace:\n  " + "\n  ".join(self.backtrace)
        return text


class JobTimeout(JobFailed, TimeoutError):
    """A job was still running ``timeout`` seconds after it started, and was killed."""


class WorkerLostError(JobFailed, BrokenExecutor):
    """A job was lost with its worker twice (it was retried once); the executor itself goes on."""


class JobCancelled(JobFailed, CancelledError):
    """A running job was killed by ``shutdown(cancel_futures=True)``."""


# --- timers ---------------------------------------------------------------------------------------


class _Timers:
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


# --- jobs -----------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False, slots=True)
class _Job:
    future: Future[Any]
    function: str
    args: tuple[int, ...]
    data: bytes | None = None  # the input of a bytes job
    worker: int | None = None  # pinned (a chunk of map), else round robin
    attempts: int = 0
    pid: int = 0
    tag: int = 0  # the reply tag of a bytes job's current attempt
    timer: list[Any] | None = None
    timed_out: bool = False
    cancelled: bool = False  # killed by shutdown(cancel_futures=True)


def _result_of(finished: Finished) -> Any:
    result = finished.result
    if not result:
        return None
    return result[0] if len(result) == 1 else tuple(result)


class WasmExecutor(Executor):
    """Runs exports of one module as jobs (one Wasm process each) on a runtime's workers.

    ``config`` is the environment of every job (default: a plain :class:`EnvConfig`, no spawning
    or compiling); ``max_fuel`` (in units of :data:`~lunatic_mp.config.FUEL_UNIT` instructions) and
    ``max_memory`` (bytes) override its limits per job. ``timeout`` (seconds) bounds each job's run
    time from its start. ``max_in_flight`` bounds the jobs started and not ended (see the module
    docstring). ``progress=True`` shows a ``tqdm`` progress bar of ended jobs over submitted ones.

    Futures resolve on the runtime's supervisor thread: their callbacks must not block on the
    runtime (no ``result()`` of another job, no ``runtime.join``). ``submit`` and ``map`` are safe
    to call from several threads. The executor does not own the runtime: shutting it down leaves
    the runtime open.
    """

    def __init__(
        self,
        runtime: Runtime,
        module: Module,
        *,
        config: EnvConfig | None = None,
        max_fuel: int | None = None,
        max_memory: int | None = None,
        timeout: float | None = None,
        max_in_flight: int | None = None,
        progress: bool = False,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        self.runtime = runtime
        self.module = module
        job_config = config.copy() if config is not None else EnvConfig()
        if max_fuel is not None:
            job_config.max_fuel = max_fuel
        if max_memory is not None:
            job_config.max_memory = max_memory
        self.config = job_config
        self.timeout = timeout
        if max_in_flight is None:
            capacity = runtime.max_processes_per_worker
            per_worker = min(DEFAULT_IN_FLIGHT_PER_WORKER, max(capacity // 2, 1))
            max_in_flight = per_worker * runtime.worker_count
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._lock = threading.Condition(threading.Lock())
        self._pending: deque[_Job] = deque()
        self._in_flight = 0
        self._running: dict[int, _Job] = {}  # pid -> job
        self._shutdown = False
        self._cancelling = False
        self._tags = itertools.count(REPLY_TAG_BASE)
        self._timers = _Timers()
        self._bar: Any = None
        self._submitted = 0
        if progress:
            tqdm = importlib.import_module("tqdm.auto").tqdm  # loaded on request only

            self._bar = tqdm(total=0, unit="job", desc=f"{module.name}", dynamic_ncols=True)

    @property
    def in_flight(self) -> int:
        """Jobs started (or being started) and not ended yet; at most :attr:`max_in_flight`."""
        with self._lock:
            return self._in_flight

    @property
    def queued(self) -> int:
        """Jobs submitted and waiting for a slot in flight."""
        with self._lock:
            return len(self._pending)

    # --- submitting -------------------------------------------------------------------------------

    def submit(self, function: str, /, *args: Any, **kwargs: Any) -> Future[Any]:  # type: ignore[override]
        """Run export ``function(*args)`` as a job; the future of its result.

        With a bytes-like first argument the job is a bytes job (see the module docstring): the
        future resolves with the bytes the job replies. Raises :class:`RuntimeError` after
        :meth:`shutdown`, :class:`~lunatic_mp.errors.SpawnError` for an export the module lacks.
        """
        if kwargs:
            raise TypeError("Wasm exports take positional arguments only")
        return self._submit_many(function, [args], None)[0]

    def _make_job(self, function: str, args: tuple[Any, ...], worker: int | None) -> _Job:
        data: bytes | None = None
        if args and isinstance(args[0], bytes | bytearray | memoryview):
            data = bytes(args[0])
            args = args[1:]
            if len(data) > MAX_MESSAGE_SIZE:
                raise ValueError(f"a job's input of {len(data)} bytes exceeds {MAX_MESSAGE_SIZE} bytes")
        return _Job(Future(), function, args, data, worker)

    def _submit_many(
        self, function: str, arguments: Iterable[tuple[Any, ...]], worker: int | None
    ) -> list[Future[Any]]:
        if function not in self.module.exports:
            raise SpawnError(f"{self.module.name} has no exported function `{function}`")
        jobs = [self._make_job(function, args, worker) for args in arguments]
        start: list[_Job] = []
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            for job in jobs:
                if self._in_flight < self.max_in_flight:
                    self._in_flight += 1
                    start.append(job)
                else:
                    self._pending.append(job)
            self._submitted += len(jobs)
            if self._bar is not None:
                self._bar.total = self._submitted
                self._bar.refresh()
        with self.runtime.batched_sends():
            for job in start:
                self._start(job, first=True)
        return [job.future for job in jobs]

    def map(  # type: ignore[override]
        self,
        function: str,
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """Results of ``function(*items)`` for the items of ``iterables`` taken in parallel, in order.

        Like :meth:`concurrent.futures.Executor.map`: every job is submitted at once (queued beyond
        ``max_in_flight``); iterating raises a job's exception at that job's position, and
        ``TimeoutError`` if a result is not ready ``timeout`` seconds after the call. Closing the
        iterator early cancels the jobs not started yet.

        ``chunksize`` > 1 submits the items in groups of ``chunksize``: each group is queued under
        one lock acquisition and all its jobs run on the same worker (groups go round robin).
        Each item is still its own job with its own limits, result and failure, so results are
        the same for every chunksize; only placement and submission cost change.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1")
        end_time = None if timeout is None else time.monotonic() + timeout
        items = list(zip(*iterables, strict=False))
        futures: list[Future[Any]] = []
        if chunksize == 1:
            futures = self._submit_many(function, items, None)
        else:
            workers = self.runtime.worker_ids
            for index, start in enumerate(range(0, len(items), chunksize)):
                worker = workers[index % len(workers)] if workers else None
                futures += self._submit_many(function, items[start : start + chunksize], worker)

        def results() -> Iterator[Any]:
            try:
                futures.reverse()
                while futures:
                    future = futures.pop()
                    try:
                        if end_time is None:
                            yield future.result()
                        else:
                            yield future.result(end_time - time.monotonic())
                    finally:
                        future.cancel()
            finally:
                for future in futures:
                    future.cancel()

        return results()

    # --- running ----------------------------------------------------------------------------------

    def _start(self, job: _Job, *, first: bool) -> None:
        """Spawn the job's process (its slot in flight is already counted); when it cannot start,
        resolve it and go on with the next queued job, in a loop (never recursively)."""
        while not self._try_start(job, first=first):
            with self._lock:
                if not self._pending:
                    self._free_slot()
                    return
                job = self._pending.popleft()
            first = True

    def _try_start(self, job: _Job, *, first: bool) -> bool:
        """Spawn the job; False if it was resolved at once (cancelled, or the spawn refused)."""
        if first and not job.future.set_running_or_notify_cancel():
            return False
        if self._cancelling:
            self._resolve(job, JobCancelled("the job was cancelled by the executor's shutdown"))
            return False
        job.attempts += 1
        if job.data is not None:
            job.tag = next(self._tags)
        worker = job.worker
        if worker is not None and worker not in self.runtime.worker_ids:
            worker = None  # its worker was lost: any will do
        try:
            self.runtime.spawn_then(
                lambda outcome: self._spawned(job, outcome),
                self.module,
                job.function,
                job.args,
                self.config,
                worker=worker,
            )
        except Exception as exc:  # noqa: BLE001 - the job's failure
            self._resolve(job, exc)
            return False
        return True

    def _spawned(self, job: _Job, outcome: int | BaseException) -> None:
        """The spawn was answered (on the supervisor's thread, or the caller's)."""
        if isinstance(outcome, BaseException):
            if isinstance(outcome, WorkerLost):
                self._lost(job, f"worker lost while starting the job: {outcome}")
            else:
                self._end(job, outcome)
            return
        pid = outcome
        job.pid = pid
        with self._lock:
            self._running[pid] = job
            cancelling = self._cancelling
        if cancelling:
            job.cancelled = True
            self.runtime.kill(pid, "cancelled by the executor's shutdown")
        elif job.data is not None:
            try:
                self.runtime.send(pid, job.data, tag=job.tag)
            except LunaticError as exc:
                self._end(job, exc)
                return
        if self.timeout is not None and not cancelling:
            job.timer = self._timers.call_at(time.monotonic() + self.timeout, lambda: self._expire(job, pid))
        self.runtime.on_finished(pid, lambda ended: self._finished(job, pid, ended))

    def _expire(self, job: _Job, pid: int) -> None:
        with self._lock:
            running = self._running.get(pid) is job
        if running:
            job.timed_out = True
            with contextlib.suppress(LunaticError):  # the runtime closed: the job's future hears of it
                self.runtime.kill(pid, f"the job ran past its {self.timeout} s timeout")

    def _finished(self, job: _Job, pid: int, ended: Finished | BaseException) -> None:
        with self._lock:
            self._running.pop(pid, None)
        if job.timer is not None:
            self._timers.cancel(job.timer)
            job.timer = None
        if isinstance(ended, BaseException):
            self._end(job, ended)
            return
        finished = ended
        reply = self._take_reply(job)
        if finished.ok:
            if job.data is None:
                self._end(job, None, _result_of(finished))
            elif reply is None:
                self._end(
                    job, JobFailed("the bytes job ended without replying", pid=pid, outcome=finished.outcome)
                )
            else:
                self._end(job, None, reply)
            return
        error: JobFailed
        if job.timed_out:
            error = JobTimeout(f"the job ran past its {self.timeout} s timeout and was killed", pid=pid)
        elif job.cancelled:
            error = JobCancelled("the job was killed by the executor's shutdown", pid=pid)
        elif finished.outcome is Outcome.FAILED and "lost" in finished.message:
            self._lost(job, finished.message)
            return
        else:
            error = JobFailed(
                finished.message or str(finished),
                backtrace=finished.backtrace,
                pid=pid,
                outcome=finished.outcome,
            )
        self._end(job, error)

    def _take_reply(self, job: _Job) -> bytes | None:
        """The reply of a bytes job (already in the host mailbox: it was sent before the job ended)."""
        if job.data is None:
            return None
        try:
            message = self.runtime.receive(tags=[job.tag], timeout=0)
        except LunaticError:
            return None
        return None if message is None else bytes(message.data)

    def _lost(self, job: _Job, why: str) -> None:
        """The job's worker died: start it again once, from the timer thread (the runtime is
        replacing the worker while this runs on its thread)."""
        with self._lock:
            retry = job.attempts < MAX_ATTEMPTS and not self._cancelling and not job.cancelled
        if not retry:
            self._end(job, WorkerLostError(f"the job was lost with its worker {job.attempts} time(s): {why}"))
            return
        job.pid = 0
        job.worker = None
        if self._timers.call_at(0.0, lambda: self._start(job, first=False)) is None:  # shut down
            self._end(job, WorkerLostError(f"the job was lost with its worker: {why}"))

    def _resolve(self, job: _Job, error: BaseException | None, result: Any = None) -> None:
        """Resolve the job's future (its slot is not freed here)."""
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)
        if self._bar is not None:
            self._bar.update(1)

    def _end(self, job: _Job, error: BaseException | None, result: Any = None) -> None:
        """Resolve the job's future, and give its slot to the next queued job."""
        self._resolve(job, error, result)
        with self._lock:
            if not self._pending:
                self._free_slot()
                return
            job = self._pending.popleft()
        self._start(job, first=True)

    def _free_slot(self) -> None:
        """One job fewer in flight (called under the lock)."""
        self._in_flight -= 1
        if self._in_flight == 0 and not self._pending:
            self._lock.notify_all()
            if self._shutdown:
                self._timers.stop(join=False)

    # --- stopping ---------------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new jobs; with ``wait``, return once every job has ended.

        ``cancel_futures=True`` cancels the queued jobs (their futures are cancelled) and kills
        the running ones: their futures raise :class:`JobCancelled` (a
        :class:`concurrent.futures.CancelledError`), unless they end first. The runtime stays open.
        """
        with self._lock:
            self._shutdown = True
            if self._in_flight == 0 and not self._pending:
                self._timers.stop(join=False)
            queued: list[_Job] = []
            running: list[int] = []
            if cancel_futures:
                self._cancelling = True
                queued = list(self._pending)
                self._pending.clear()
                running = list(self._running)
                for job in self._running.values():
                    job.cancelled = True
        for job in queued:
            job.future.cancel()
        for pid in running:
            try:
                self.runtime.kill(pid, "cancelled by the executor's shutdown")
            except LunaticError:
                break  # the runtime is closed: every job has ended
        if wait:
            with self._lock:
                while self._in_flight or self._pending:
                    self._lock.wait()
            self._timers.stop(join=True)
            if self._bar is not None:
                self._bar.close()

    def __enter__(self) -> WasmExecutor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Leaving the ``with`` block waits for every job, as :class:`concurrent.futures.Executor`
        does; but on Ctrl-C (KeyboardInterrupt) the queued jobs are cancelled and the running
        ones killed first, and a warning says how many: a user who interrupts means stop, not
        wait for all the queued work (forever, if a job loops)."""
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            with self._lock:
                queued, running = len(self._pending), self._in_flight
            log.warning(
                "interrupted: the executor cancels its %d queued job(s) and kills its %d running one(s)",
                queued,
                running,
            )
            self.shutdown(wait=True, cancel_futures=True)
        else:
            self.shutdown(wait=True)


__all__ = ["JobCancelled", "JobFailed", "JobTimeout", "WasmExecutor", "WorkerLostError"]
