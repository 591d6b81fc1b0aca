"""Tests of :mod:`lunatic_mp.cluster.jobs`: a batch of jobs on one engine, as a worker runs it.

The reports are the frames a worker would send the host program; here they are collected, one
list per turn (the worker reports once a turn, before its frames leave).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from lunatic_mp.cluster import frames
from lunatic_mp.cluster.frames import PARAM_I64, Jobs, JobsDone
from lunatic_mp.cluster.jobs import MAX_TEXT, JobRunner
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import LunaticError
from lunatic_mp.vm.engine import Engine
from lunatic_mp.vm.module import Module

GUEST = Path(__file__).parents[2] / "lunatic_mp" / "examples" / "exe_jobs.wat"
HOST = 77  # the pid the reports go to, and the bytes jobs' inputs come from


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(max_processes=8)
    yield engine
    engine.close()


@pytest.fixture
def module(engine: Engine) -> Module:
    return engine.load_module(GUEST)


def batch(
    function: str, *params: int, count: int, kinds: bytes = b"", inputs: tuple[bytes, ...] = ()
) -> Jobs:
    config = frames.encode_config(EnvConfig())
    tags = tuple(range(100, 100 + len(inputs)))
    return Jobs(7, HOST, b"digest", function, count, params, kinds, config, inputs, tags)


def run(engine: Engine, module: Module, frame: Jobs) -> list[JobsDone]:
    """Start the batch, report (the first turn), run every job, report again."""
    sent: list[tuple[int, frames.Frame]] = []
    runner = JobRunner(engine, lambda digest: module, lambda to, frame: sent.append((to, frame)))
    runner.start(frame)
    runner.report()
    engine.run(timeout=30)
    runner.report()
    runner.report()  # no news: nothing sent
    assert all(to == HOST for to, _ in sent)
    reports = [frame for _, frame in sent]
    assert all(isinstance(report, JobsDone) and report.request == 7 for report in reports)
    for report in reports:
        assert frames.decode(frames.encode(report)) == report
    return reports  # type: ignore[return-value]


def test_a_batch_starts_every_job_and_reports_their_ends_together(engine: Engine, module: Module) -> None:
    first, second = run(engine, module, batch("square", 3, -4, 5, count=3, kinds=bytes([PARAM_I64])))
    assert len(set(first.started)) == 3 and all(first.started)
    assert (first.ended, first.remaining) == ((), 3)  # nothing ran yet
    assert second.started == ()
    assert sorted(second.ended) == [0, 1, 2] and second.remaining == 0
    results = dict(zip(second.ended, msgpack.unpackb(second.results), strict=True))
    assert results == {0: [9], 1: [16], 2: [25]}
    assert second.outcomes == (0, 0, 0) and second.exit_codes == (-1, -1, -1)
    assert not engine.processes


def test_a_trapping_job_reports_its_trap_and_backtrace(engine: Engine, module: Module) -> None:
    _, done = run(engine, module, batch("fail", count=2))
    assert done.outcomes == (2, 2)
    assert all("unreachable" in message for message in done.messages)
    assert all("outer" in backtrace for backtrace in done.backtraces)
    assert all(len(text) <= MAX_TEXT for text in (*done.messages, *done.backtraces))


def test_bytes_jobs_find_their_input_from_the_host_program(engine: Engine, module: Module) -> None:
    _, done = run(engine, module, batch("reverse", count=2, inputs=(b"abc", b"hello")))
    results = dict(zip(done.ended, msgpack.unpackb(done.results), strict=True))
    assert results == {0: [3], 1: [5]}  # the size each one read: its own input


def test_a_job_past_capacity_fails_alone(engine: Engine, module: Module) -> None:
    """Eight processes fit: of ten jobs, the last two fail at once with the capacity error."""
    first, second = run(engine, module, batch("nothing", count=10))
    assert first.started[8:] == (0, 0) and all(first.started[:8])
    assert first.ended == (8, 9) and first.outcomes == (2, 2)
    assert all("capacity" in message for message in first.messages)
    assert sorted(second.ended) == list(range(8)) and second.remaining == 0


def test_a_batch_that_cannot_start_fails_every_job(engine: Engine) -> None:
    def missing(digest: bytes) -> Module:
        raise LunaticError(f"no module {digest!r} here")

    sent: list[frames.Frame] = []
    runner = JobRunner(engine, missing, lambda to, frame: sent.append(frame))
    runner.start(batch("square", 1, 2, count=2, kinds=bytes([PARAM_I64])))
    runner.report()
    (done,) = sent
    assert isinstance(done, JobsDone)
    assert done.started == (0, 0) and done.ended == (0, 1) and done.remaining == 0
    assert all("no module" in message for message in done.messages)
