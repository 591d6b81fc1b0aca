"""Batch fan-out of Wasm jobs as a standard :class:`concurrent.futures.Executor`.

Why: most Python programs that want many cores for many small computations already speak
``concurrent.futures`` (``submit``, ``map``, ``wait``, ``as_completed``, ``asyncio.wrap_future``).
:class:`WasmExecutor` runs each job as one Wasm process of a :class:`~lunatic_mp.api.runtime.Runtime`,
so a job costs a process spawn (microseconds) instead of a pickled task sent to a pool process, a
trap or an exhausted fuel budget fails that job only, and a worker that dies costs only the jobs
it hosted, which are retried once. Jobs travel in batches: one frame to a worker starts many
(round robin over the workers; a slot freed on a worker goes to a queued job there), and the jobs
that end during one turn of its loop come back in one frame (:mod:`lunatic_mp.cluster.jobs`). A
``map`` keeps its results without a Future per item (:mod:`lunatic_mp.api.mapresults`).

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
import functools
import importlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import msgpack

from lunatic_mp.api.job_errors import JobCancelled, JobFailed, JobTimeout, WorkerLostError
from lunatic_mp.api.mapresults import MapItem, MapResults
from lunatic_mp.api.timers import Timers
from lunatic_mp.cluster import frames
from lunatic_mp.cluster.frames import MAX_JOBS
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import LunaticError, SpawnError, WorkerLost
from lunatic_mp.pids import FIRST_WORKER
from lunatic_mp.vm import wasm
from lunatic_mp.vm.engine import MAX_MESSAGE_SIZE
from lunatic_mp.vm.finished import Finished, Outcome, from_wire
from lunatic_mp.vm.module import Module
from lunatic_mp.vm.params import PARAM_TYPE_BYTES, typed_args

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
SUBMIT_CHUNK = 256
"""Jobs made and queued at a time by ``map``: the first run while the next are made."""


# --- jobs -----------------------------------------------------------------------------------------


_Outcome = Future[Any] | MapItem
"""Where a job's result goes: the Future of ``submit``, or an item of a map's results."""


@dataclasses.dataclass(eq=False, slots=True)
class _Job:
    future: _Outcome
    function: str
    args: tuple[Any, ...]
    data: bytes | None = None  # the input of a bytes job
    worker: int | None = None  # pinned (a chunk of map), else round robin
    values: tuple[int, ...] | None = None  # args, checked against the export's signature
    attempts: int = 0
    pid: int = 0
    tag: int = 0  # the reply tag of a bytes job's current attempt
    timer: list[Any] | None = None
    timed_out: bool = False
    cancelled: bool = False  # killed by shutdown(cancel_futures=True)


@dataclasses.dataclass(eq=False, slots=True)
class _Batch:
    jobs: list[_Job]  # sent to a worker in one frame
    done: list[bool]  # done[i]: job i has been reported ended


_KINDS = {"i": wasm.I32, "I": wasm.I64}
_JOB_PARAM_TYPES = frozenset(_KINDS.values())
_BYTES_LIKE = (bytes, bytearray, memoryview)
_SIGNED = {"i": (-(2**31), 2**31 - 1), "I": (-(2**63), 2**63 - 1)}
"""The values of i32 and i64 parameters that pass unchanged (others: see params.typed_args)."""


def _result_of(result: Sequence[Any]) -> Any:
    """A job's value: None for no result, the value for one, a tuple for several."""
    return (result[0] if len(result) == 1 else tuple(result)) if result else None


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
        self._placement = itertools.count()  # round robin over the workers
        self._ranges: dict[str, list[tuple[int, int]]] = {}  # by export: see _values
        self._timers = Timers()
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
        future: Future[Any] = Future()
        self._submit_many(function, [args], None, lambda: future)
        return future

    @staticmethod
    def _make_job(function: str, args: tuple[Any, ...], worker: int | None, outcome: _Outcome) -> _Job:
        if args and isinstance(args[0], _BYTES_LIKE):
            return _Job(outcome, function, args[1:], bytes(args[0]), worker)
        return _Job(outcome, function, args, None, worker)

    def _submit_many(
        self,
        function: str,
        arguments: Iterable[tuple[Any, ...]],
        worker: int | None,
        outcome: Callable[[], _Outcome],
    ) -> list[_Outcome]:
        """Queue jobs, and start those that fit in flight; in chunks, so that the first jobs run
        while the rest are made (a map of a million items would keep the workers idle for seconds)."""
        if function not in self.module.exports:
            raise SpawnError(f"{self.module.name} has no exported function `{function}`")
        items = list(arguments)
        for args in items:  # every input checked before any job is queued
            data = args[0] if args and isinstance(args[0], _BYTES_LIKE) else b""
            if len(data) > MAX_MESSAGE_SIZE:
                raise ValueError(f"a job's input of {len(data)} bytes exceeds {MAX_MESSAGE_SIZE} bytes")
        futures: list[_Outcome] = []
        make = self._make_job
        for first in range(0, len(items), SUBMIT_CHUNK):
            jobs = [make(function, args, worker, outcome()) for args in items[first : first + SUBMIT_CHUNK]]
            self._queue(jobs)
            futures += [job.future for job in jobs]
        return futures

    def _queue(self, jobs: list[_Job]) -> None:
        start: list[_Job] = []
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            room = min(max(self.max_in_flight - self._in_flight, 0), len(jobs)) if not self._pending else 0
            self._in_flight += room
            start = jobs[:room]
            self._pending.extend(jobs[room:])
            self._submitted += len(jobs)
            if self._bar is not None:
                self._bar.total = self._submitted
                self._bar.refresh()
        with self.runtime.batched_sends():
            self._launch(start)

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
        futures: list[_Outcome] = []
        item = MapResults().item
        if chunksize == 1:
            futures = self._submit_many(function, items, None, item)
        else:
            workers = self.runtime.worker_ids
            for index, start in enumerate(range(0, len(items), chunksize)):
                worker = workers[index % len(workers)] if workers else None
                futures += self._submit_many(function, items[start : start + chunksize], worker, item)

        def results() -> Iterator[Any]:
            try:
                futures.reverse()
                while futures:
                    future = futures.pop()
                    try:
                        value = future.result(None if end_time is None else end_time - time.monotonic())
                    except BaseException:
                        future.cancel()  # timed out: it need not start any more
                        raise
                    yield value
            finally:
                for future in futures:
                    future.cancel()

        return results()

    # --- running ----------------------------------------------------------------------------------

    def _launch(self, jobs: list[_Job], prefer: int | None = None) -> None:
        """Start jobs whose slots in flight are counted: a batch (one frame) per worker and export,
        pinned jobs on their worker, the others on ``prefer`` (the worker that just freed their
        slots) or round robin. A job that cannot start is resolved, and its slot goes to the next
        queued job, in a loop (never recursively)."""
        while jobs:
            freed = 0
            groups: dict[tuple[int, str, bool], list[_Job]] = {}
            workers = self.runtime.worker_ids
            for job in jobs:
                if not self._prepare(job):
                    freed += 1
                    continue
                if self.config.limits_environment:  # counted in at the registry one by one
                    if not self._try_start(job):
                        freed += 1
                    continue
                worker = job.worker if job.worker in workers else prefer
                if worker not in workers:
                    worker = workers[next(self._placement) % len(workers)] if workers else FIRST_WORKER
                groups.setdefault((worker, job.function, job.data is not None), []).append(job)
            for (worker, _, _), group in groups.items():
                for start in range(0, len(group), MAX_JOBS):
                    freed += self._send_batch(worker, group[start : start + MAX_JOBS])
            jobs = self._take_queued(freed)

    def _prepare(self, job: _Job) -> bool:
        """Ready the job for an attempt; False if it was resolved instead (cancelled, bad arguments)."""
        if job.attempts == 0 and not job.future.set_running_or_notify_cancel():
            return False
        if self._cancelling:
            self._resolve(job, JobCancelled("the job was cancelled by the executor's shutdown"))
            return False
        if job.values is None:
            try:
                job.values = self._values(job.function, job.args)
            except LunaticError as exc:
                self._resolve(job, exc)
                return False
        job.attempts += 1
        if job.data is not None:
            job.tag = next(self._tags)
        return True

    def _values(self, function: str, args: tuple[Any, ...]) -> tuple[int, ...]:
        """The job's arguments checked against the export's signature: ints in the signed range
        of their parameters pass as they are (the common case, without building typed pairs)."""
        ranges = self._ranges.get(function)
        if ranges is None:
            types = self.module.exports[function][0]
            ranges = self._ranges[function] = [_SIGNED.get(char, (1, 0)) for char in types]
        if len(args) == len(ranges):
            for value, (low, high) in zip(args, ranges, strict=True):
                if type(value) is not int or not low <= value <= high:
                    break
            else:
                return args
        typed = typed_args(self.module.name, function, self.module.exports[function][0], args)
        if any(kind not in _JOB_PARAM_TYPES for kind, _ in typed):
            raise SpawnError("only i32 and i64 parameters can be passed to a process on a worker")
        return tuple(value for _, value in typed)

    def _send_batch(self, worker: int, group: list[_Job]) -> int:
        """Send one batch; how many of its jobs were resolved at once (it could not be sent)."""
        first = group[0]
        kinds = bytes(PARAM_TYPE_BYTES[_KINDS[char]] for char in self.module.exports[first.function][0])
        batch = _Batch(group, [False] * len(group))
        bytes_jobs = first.data is not None
        try:
            self.runtime.send_jobs(
                worker,
                self.module,
                first.function,
                [job.values or () for job in group],
                kinds,
                self.config,
                [job.data or b"" for job in group] if bytes_jobs else [],
                [job.tag for job in group] if bytes_jobs else [],
                lambda report: self._reported(worker, batch, report),
            )
        except Exception as exc:  # noqa: BLE001 - the jobs' failure
            for job in group:
                self._resolve(job, exc)
            return len(group)
        return 0

    def _reported(self, worker: int, batch: _Batch, report: frames.JobsDone | LunaticError) -> None:
        """News of a batch (on the supervisor's thread): its jobs' pids, then the jobs that ended;
        or the error that ends it (its worker lost, the runtime closed)."""
        jobs, done = batch.jobs, batch.done
        if isinstance(report, LunaticError):
            freed = 0
            for index, job in enumerate(jobs):
                if not done[index]:
                    done[index] = True
                    with self._lock:
                        self._running.pop(job.pid, None)
                    if isinstance(report, WorkerLost):
                        freed += self._lost(job, str(report))
                    else:
                        self._resolve(job, report)
                        freed += 1
            self._refill(freed)
            return
        if report.started:
            self._started([(job, pid) for job, pid in zip(jobs, report.started, strict=False) if pid])
        results = msgpack.unpackb(report.results) if report.ended else []
        returned: list[tuple[_Job, list[Any]]] = []  # ended normally, no reply or timer to see to
        freed = 0
        for i, index in enumerate(report.ended):
            if not 0 <= index < len(jobs) or done[index] or i >= len(results):
                log.warning("worker %d reported job %d of a batch of %d: dropped", worker, index, len(jobs))
                continue
            done[index] = True
            job = jobs[index]
            if report.outcomes[i] == 0 and job.data is None and job.timer is None:
                returned.append((job, results[i]))
                continue
            finished = from_wire(
                report.outcomes[i], results[i], report.messages[i], report.backtraces[i], report.exit_codes[i]
            )
            if job.pid == 0 and finished.outcome is Outcome.FAILED:  # its spawn was refused
                self._resolve(job, SpawnError(finished.message))
                freed += 1
            else:
                freed += self._settle(job, job.pid, finished)
        if returned:
            with self._lock:
                for job, _ in returned:
                    self._running.pop(job.pid, None)
            for job, values in returned:
                self._resolve(job, None, _result_of(values))
        self._refill(freed + len(returned), prefer=worker)

    def _try_start(self, job: _Job) -> bool:
        """Spawn one job of an environment with limits (the registry counts it in first); False
        if it was resolved at once (the spawn refused)."""
        try:
            self.runtime.spawn_then(
                lambda outcome: self._spawned(job, outcome),
                self.module,
                job.function,
                job.args,
                self.config,
                worker=job.worker if job.worker in self.runtime.worker_ids else None,
            )
        except Exception as exc:  # noqa: BLE001 - the job's failure
            self._resolve(job, exc)
            return False
        return True

    def _spawned(self, job: _Job, outcome: int | BaseException) -> None:
        """The spawn of one job was answered (on the supervisor's thread, or the caller's)."""
        if isinstance(outcome, BaseException):
            if isinstance(outcome, WorkerLost):
                self._refill(self._lost(job, f"worker lost while starting the job: {outcome}"))
            else:
                self._end(job, outcome)
            return
        pid = outcome
        if not self._started([(job, pid)]) and job.data is not None:
            try:
                self.runtime.send(pid, job.data, tag=job.tag)
            except LunaticError as exc:
                self._end(job, exc)
                return
        self.runtime.on_finished(pid, lambda ended: self._finished(job, pid, ended))

    def _started(self, started: list[tuple[_Job, int]]) -> bool:
        """Jobs run as these pids: time them, or kill them if the executor is cancelling (True)."""
        with self._lock:
            for job, pid in started:
                job.pid = pid
                self._running[pid] = job
            cancelling = self._cancelling
        for job, pid in started if cancelling or self.timeout is not None else ():
            if cancelling:
                job.cancelled = True
                with contextlib.suppress(LunaticError):  # the runtime closed: the job hears of it
                    self.runtime.kill(pid, "cancelled by the executor's shutdown")
            else:
                job.timer = self._timers.call_at(
                    time.monotonic() + cast(float, self.timeout), functools.partial(self._expire, job, pid)
                )
        return cancelling

    def _expire(self, job: _Job, pid: int) -> None:
        with self._lock:
            running = self._running.get(pid) is job
        if running:
            job.timed_out = True
            with contextlib.suppress(LunaticError):  # the runtime closed: the job's future hears of it
                self.runtime.kill(pid, f"the job ran past its {self.timeout} s timeout")

    def _finished(self, job: _Job, pid: int, ended: Finished | BaseException) -> None:
        """One job of an environment with limits ended."""
        if isinstance(ended, BaseException):
            with self._lock:
                self._running.pop(pid, None)
            self._end(job, ended)
        else:
            self._refill(self._settle(job, pid, ended))

    def _settle(self, job: _Job, pid: int, finished: Finished) -> int:
        """Resolve a job that ended as ``finished``: 1 if its slot is free now, 0 if it runs again
        (lost with its worker, retried)."""
        with self._lock:
            self._running.pop(pid, None)
        if job.timer is not None:
            self._timers.cancel(job.timer)
            job.timer = None
        reply = self._take_reply(job)
        if finished.ok:
            if job.data is None:
                self._resolve(job, None, _result_of(finished.result))
            elif reply is None:
                error = JobFailed("the bytes job ended without replying", pid=pid, outcome=finished.outcome)
                self._resolve(job, error)
            else:
                self._resolve(job, None, reply)
            return 1
        if finished.outcome is Outcome.FAILED and "lost" in finished.message and not job.cancelled:
            return self._lost(job, finished.message)
        if job.timed_out:
            error = JobTimeout(f"the job ran past its {self.timeout} s timeout and was killed", pid=pid)
        elif job.cancelled:
            error = JobCancelled("the job was killed by the executor's shutdown", pid=pid)
        else:
            error = JobFailed(
                finished.message or str(finished),
                backtrace=finished.backtrace,
                pid=pid,
                outcome=finished.outcome,
            )
        self._resolve(job, error)
        return 1

    def _take_reply(self, job: _Job) -> bytes | None:
        """The reply of a bytes job (already in the host mailbox: it was sent before the job ended)."""
        if job.data is None:
            return None
        try:
            message = self.runtime.receive(tags=[job.tag], timeout=0)
        except LunaticError:
            return None
        return None if message is None else bytes(message.data)

    def _lost(self, job: _Job, why: str) -> int:
        """The job's worker died: start it again once, from the timer thread (the runtime is
        replacing the worker while this runs on its thread). 0: it keeps its slot; 1: it was
        resolved (lost twice, or the executor is stopping) and its slot is free."""
        with self._lock:
            retry = job.attempts < MAX_ATTEMPTS and not self._cancelling and not job.cancelled
        if retry:
            job.pid = 0
            job.worker = None
            if self._timers.call_at(0.0, lambda: self._launch([job])) is not None:
                return 0
        self._resolve(job, WorkerLostError(f"the job was lost with its worker {job.attempts} time(s): {why}"))
        return 1

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
        self._refill(1)

    def _refill(self, freed: int, prefer: int | None = None) -> None:
        """``freed`` slots in flight are free: they go to the next queued jobs, started together."""
        self._launch(self._take_queued(freed), prefer)

    def _take_queued(self, freed: int) -> list[_Job]:
        """Up to ``freed`` queued jobs, given the free slots; the slots left over are released."""
        if freed <= 0:
            return []
        with self._lock:
            jobs = [self._pending.popleft() for _ in range(min(freed, len(self._pending)))]
            for _ in range(freed - len(jobs)):
                self._free_slot()
        return jobs

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
