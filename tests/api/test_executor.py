"""End-to-end tests of :class:`lunatic_mp.api.executor.WasmExecutor` on a real two-worker runtime.

Jobs are exports of ``lunatic_mp/examples/exe_jobs.wat``. Most tests share one runtime (module-scoped)
and a fresh executor each; the tests that kill workers start their own runtime. Jobs that must
be running at a given moment (``checkin_park``) tell the test so with a message, and end when the
test sends them one: nothing waits on a clock, except the timeout test, whose point is a clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, BrokenExecutor, CancelledError, as_completed, wait
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig, LunaticError, Module, Outcome
from lunatic_mp.api.executor import JobCancelled, JobFailed, JobTimeout, WasmExecutor, WorkerLostError
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.errors import SpawnError
from lunatic_mp.pids import worker_of

GUEST = Path(__file__).parents[2] / "lunatic_mp" / "examples" / "exe_jobs.wat"
TIMEOUT = 30.0
CHECKIN = 42  # the tag of checkin_park's "I am running" message
STOP = 9  # the tag that lets checkin_park return


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as runtime:
        yield runtime


@pytest.fixture(scope="module")
def jobs(runtime: Runtime) -> Module:
    return runtime.load_module(GUEST)


@pytest.fixture
def executor(runtime: Runtime, jobs: Module) -> Iterator[WasmExecutor]:
    with WasmExecutor(runtime, jobs) as executor:
        yield executor


def checkin(runtime: Runtime) -> int:
    """Wait for the next checkin_park job to report that it runs; its pid."""
    message = runtime.receive(tags=[CHECKIN], timeout=TIMEOUT)
    assert message is not None, "no job checked in"
    return message.pid


def release(runtime: Runtime, pid: int, value: int) -> None:
    """Let the checkin_park job ``pid`` return ``value``."""
    runtime.send(pid, struct.pack("<q", value), tag=STOP)


# --- results --------------------------------------------------------------------------------------


def test_submit_resolves_with_the_exports_results(executor: WasmExecutor) -> None:
    """One result is the value, several a tuple, none None."""
    assert executor.submit("square", 12).result(TIMEOUT) == 144
    assert executor.submit("divmod", 17, 5).result(TIMEOUT) == (3, 2)
    assert executor.submit("nothing").result(TIMEOUT) is None


def test_submit_refuses_an_unknown_export_at_once(executor: WasmExecutor) -> None:
    with pytest.raises(LunaticError, match="no exported function `nope`"):
        executor.submit("nope")


def test_a_bad_signature_fails_the_jobs_future(executor: WasmExecutor) -> None:
    with pytest.raises(LunaticError, match="parameter"):
        executor.submit("square", 1, 2).result(TIMEOUT)


@pytest.mark.parametrize("chunksize", [1, 97])
def test_map_over_ten_thousand_jobs_keeps_the_order(executor: WasmExecutor, chunksize: int) -> None:
    """10,000 jobs, far more than may be in flight: every result, in submission order."""
    count = 10_000
    assert executor.max_in_flight < count
    assert list(executor.map("square", range(count), chunksize=chunksize)) == [i * i for i in range(count)]
    assert executor.in_flight == 0 and executor.queued == 0


def test_map_raises_at_the_failing_item(executor: WasmExecutor) -> None:
    """Like the standard executors: results before the failing item, then its exception."""
    results = executor.map("divmod", [10, 10, 10], [3, 0, 5])
    assert next(results) == (3, 1)
    with pytest.raises(JobFailed, match=r"divide by zero|division"):
        next(results)


def test_wait_and_as_completed(executor: WasmExecutor) -> None:
    futures = [executor.submit("square", i) for i in range(50)]
    done, not_done = wait(futures, timeout=TIMEOUT)
    assert not not_done and {f.result() for f in done} == {i * i for i in range(50)}
    futures = [executor.submit("square", i) for i in range(50)]
    assert sorted(f.result() for f in as_completed(futures, timeout=TIMEOUT)) == [i * i for i in range(50)]
    failing = [executor.submit("square", 2), executor.submit("fail")]
    done, _ = wait(failing, timeout=TIMEOUT, return_when=FIRST_EXCEPTION)
    assert any(isinstance(f.exception(), JobFailed) for f in done)


def test_asyncio_wrap_future(executor: WasmExecutor) -> None:
    async def main() -> list[int]:
        return list(
            await asyncio.gather(*(asyncio.wrap_future(executor.submit("square", i)) for i in range(20)))
        )

    assert asyncio.run(main()) == [i * i for i in range(20)]


def test_submit_from_several_threads(executor: WasmExecutor) -> None:
    results: dict[int, list[int]] = {}

    def submit_all(thread: int) -> None:
        futures = [executor.submit("square", thread * 1000 + i) for i in range(300)]
        results[thread] = [f.result(TIMEOUT) for f in futures]

    threads = [threading.Thread(target=submit_all, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {t: [(t * 1000 + i) ** 2 for i in range(300)] for t in range(4)}


# --- failures and limits --------------------------------------------------------------------------


def test_a_trapping_job_fails_alone_with_its_trap_and_backtrace(executor: WasmExecutor) -> None:
    futures = [executor.submit("square", i) for i in range(10)]
    failing = executor.submit("fail")
    futures += [executor.submit("square", i) for i in range(10, 20)]
    with pytest.raises(JobFailed) as info:
        failing.result(TIMEOUT)
    error = info.value
    assert "unreachable" in error.message
    assert any("inner" in frame for frame in error.backtrace)
    assert any("outer" in frame for frame in error.backtrace)
    assert error.pid != 0 and error.outcome is Outcome.FAILED
    assert "inner" in str(error)  # the backtrace is part of the message shown
    assert [f.result(TIMEOUT) for f in futures] == [i * i for i in range(20)]


def test_fuel_limit_per_job(runtime: Runtime, jobs: Module) -> None:
    """max_fuel=1 (100,000 instructions) per job: a long loop runs out, a short one does not."""
    with WasmExecutor(runtime, jobs, max_fuel=1) as executor:
        long, short = executor.submit("spin", 10_000_000), executor.submit("spin", 1000)
        with pytest.raises(JobFailed, match="out of fuel"):
            long.result(TIMEOUT)
        assert short.result(TIMEOUT) == 1000


def test_timeout_kills_a_job_that_runs_too_long(runtime: Runtime, jobs: Module) -> None:
    with WasmExecutor(runtime, jobs, timeout=0.2) as executor:
        stuck = executor.submit("checkin_park", runtime.pid)
        quick = executor.submit("square", 4)
        checkin(runtime)
        with pytest.raises(JobTimeout) as info:
            stuck.result(TIMEOUT)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, LunaticError)
        assert quick.result(TIMEOUT) == 16


# --- bytes jobs -----------------------------------------------------------------------------------


def test_bytes_jobs_receive_their_input_and_reply(executor: WasmExecutor) -> None:
    inputs = [b"", b"a", b"hello", bytes(range(256)) * 100]
    assert list(executor.map("reverse", inputs)) == [data[::-1] for data in inputs]
    assert executor.submit("reverse", bytearray(b"abc")).result(TIMEOUT) == b"cba"
    assert executor.submit("fill", b"", 100_000).result(TIMEOUT) == b"\x07" * 100_000


def test_a_bytes_job_that_does_not_reply_fails(executor: WasmExecutor, runtime: Runtime) -> None:
    with pytest.raises(JobFailed, match="without replying"):
        executor.submit("no_reply", b"data").result(TIMEOUT)
    with pytest.raises(JobFailed, match="unreachable"):  # too big for the guest: it traps
        executor.submit("reverse", bytes(200_000)).result(TIMEOUT)
    assert runtime.receive(timeout=0) is None  # no reply left behind in the host's mailbox


# --- flow control and shutdown --------------------------------------------------------------------


def test_jobs_beyond_max_in_flight_wait_in_a_queue(runtime: Runtime, jobs: Module) -> None:
    with WasmExecutor(runtime, jobs, max_in_flight=3) as executor:
        futures = [executor.submit("checkin_park", runtime.pid) for _ in range(10)]
        running = [checkin(runtime) for _ in range(3)]
        assert (executor.in_flight, executor.queued) == (3, 7)
        for value in range(10):
            release(runtime, running.pop(0), value)
            if value < 7:
                running.append(checkin(runtime))  # a queued job took the free slot
        assert sorted(f.result(TIMEOUT) for f in futures) == list(range(10))  # started in any order


def test_closing_a_map_early_cancels_the_jobs_not_started(runtime: Runtime, jobs: Module) -> None:
    with WasmExecutor(runtime, jobs, max_in_flight=1) as executor:
        results = executor.map("checkin_park", [runtime.pid] * 5)
        release(runtime, checkin(runtime), 10)
        assert next(results) == 10
        second = checkin(runtime)  # the first's slot went to the second
        results.close()  # the other three are still queued: cancelled
        release(runtime, second, 11)
    assert executor.queued == 0 and executor.in_flight == 0
    assert runtime.receive(tags=[CHECKIN], timeout=0) is None


def test_a_job_its_worker_refuses_fails_with_spawn_error(runtime: Runtime, jobs: Module) -> None:
    denied = EnvConfig(allowed_namespaces=frozenset({"process"}))  # the jobs import lunatic::message
    with WasmExecutor(runtime, jobs, config=denied) as executor:
        futures = [executor.submit("square", i) for i in range(3)]
        for future in futures:
            with pytest.raises(SpawnError, match="denies"):
                future.result(TIMEOUT)


def test_jobs_of_an_environment_with_a_process_limit(runtime: Runtime, jobs: Module) -> None:
    """Each is counted in at the registry process before it starts (one spawn at a time, not a
    batch); all run, never more than the limit at once."""
    limited = EnvConfig(max_processes=3)
    with WasmExecutor(runtime, jobs, config=limited, max_in_flight=3) as executor:
        assert list(executor.map("square", range(30))) == [i * i for i in range(30)]


def test_shutdown_cancel_futures(runtime: Runtime, jobs: Module) -> None:
    """Queued jobs are cancelled, running ones killed (JobCancelled); later submits are refused."""
    executor = WasmExecutor(runtime, jobs, max_in_flight=2)
    running = [executor.submit("checkin_park", runtime.pid) for _ in range(2)]
    queued = [executor.submit("square", i) for i in range(5)]
    checkin(runtime), checkin(runtime)
    executor.shutdown(wait=True, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    for future in running:
        with pytest.raises(JobCancelled):
            future.result(TIMEOUT)
        assert isinstance(future.exception(), CancelledError)
    with pytest.raises(RuntimeError):
        executor.submit("square", 1)


def test_shutdown_waits_for_queued_jobs(runtime: Runtime, jobs: Module) -> None:
    executor = WasmExecutor(runtime, jobs, max_in_flight=2)
    futures = [executor.submit("square", i) for i in range(100)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures) and [f.result() for f in futures] == [i * i for i in range(100)]


def test_progress_bar(runtime: Runtime, jobs: Module, capsys: pytest.CaptureFixture[str]) -> None:
    with WasmExecutor(runtime, jobs, progress=True) as executor:
        assert sum(executor.map("square", range(100))) == sum(i * i for i in range(100))
    assert "100/100" in capsys.readouterr().err


# --- lost workers ---------------------------------------------------------------------------------


def test_a_job_lost_with_its_worker_is_retried_once() -> None:
    """SIGKILL of the worker running a job: the job runs again on a live worker. Lost a second
    time, its future raises WorkerLostError (a BrokenExecutor); the executor goes on."""
    with Runtime(workers=2) as runtime:
        executor = WasmExecutor(runtime, runtime.load_module(GUEST))
        retried = executor.submit("checkin_park", runtime.pid)
        first = checkin(runtime)
        os.kill(runtime.worker_pids()[worker_of(first)], signal.SIGKILL)
        second = checkin(runtime)
        assert worker_of(second) != worker_of(first)
        release(runtime, second, 5)
        assert retried.result(TIMEOUT) == 5

        doomed = executor.submit("checkin_park", runtime.pid)
        for _ in range(2):
            pid = checkin(runtime)  # before worker_pids(): the retry may run on a fresh worker
            os.kill(runtime.worker_pids()[worker_of(pid)], signal.SIGKILL)
        with pytest.raises(WorkerLostError) as info:
            doomed.result(TIMEOUT)
        assert isinstance(info.value, BrokenExecutor) and isinstance(info.value, LunaticError)
        assert "lost" in info.value.message

        assert list(executor.map("square", range(100))) == [i * i for i in range(100)]
        executor.shutdown()


def test_ctrl_c_in_the_with_block_cancels_the_queued_jobs(
    runtime: Runtime, jobs: Module, caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C inside `with executor:` with jobs that loop for ages, queued and running: the
    block is left at once (it used to wait for every queued job, for ever here), the queued
    jobs cancelled, the running ones killed, and a warning says so."""
    forever = 2**62  # iterations of spin: years
    with (
        caplog.at_level(logging.WARNING, "lunatic_mp.api.executor"),
        pytest.raises(KeyboardInterrupt),
        WasmExecutor(runtime, jobs, max_in_flight=2) as executor,
    ):
        futures = [executor.submit("spin", forever) for _ in range(7)]
        assert (executor.in_flight, executor.queued) == (2, 5)
        signal.raise_signal(signal.SIGINT)
    assert sum(f.cancelled() for f in futures) == 5
    for future in futures[:2]:
        with pytest.raises(JobCancelled):
            future.result(TIMEOUT)
    said = "interrupted: the executor cancels its 5 queued job(s) and kills its 2 running one(s)"
    assert said in caplog.text
    killed = [error.pid for f in futures[:2] if isinstance(error := f.exception(), JobFailed)]
    assert len(killed) == 2 and not any(runtime.exists(pid) for pid in killed)
