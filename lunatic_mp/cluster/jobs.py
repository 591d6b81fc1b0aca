"""Batches of jobs on a worker: a :class:`~lunatic_mp.cluster.frames.Jobs` frame starts many
processes at once, and their ends go back together.

Why: :class:`~lunatic_mp.api.executor.WasmExecutor` runs thousands of tiny jobs, one process
each. Spawned one at a time, a job cost two frames each way (the spawn and its reply, then the
monitor's notice of the end) and their handling on both sides, several times the job itself.
Here a batch is one frame in, and the jobs that ended during one turn of the worker's loop go out
in one :class:`~lunatic_mp.cluster.frames.JobsDone` per batch, with the pids of the jobs the
batch started in the first.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import msgpack

from lunatic_mp.cluster import frames
from lunatic_mp.errors import LunaticError
from lunatic_mp.vm.engine import Engine
from lunatic_mp.vm.finished import Finished, Outcome, to_wire
from lunatic_mp.vm.host.process import PARAM_KINDS
from lunatic_mp.vm.mailbox import Message
from lunatic_mp.vm.module import Module

MAX_TEXT = 4096
"""A job's message and backtrace are cut to this many characters in a report, so that a batch of
:data:`~lunatic_mp.cluster.frames.MAX_JOBS` failures fits in a frame."""


class _Batch:
    """One Jobs frame's jobs: what their next report says."""

    __slots__ = (
        "backtraces",
        "ended",
        "exit_codes",
        "messages",
        "news",
        "outcomes",
        "remaining",
        "reply_to",
        "reported",
        "request",
        "results",
        "started",
    )  # fmt: skip

    def __init__(self, request: int, reply_to: int, count: int, reported: list[_Batch]) -> None:
        self.request = request
        self.reply_to = reply_to
        self.remaining = count
        self.reported = reported  # the runner's list of batches with news: this one joins it
        self.started: list[int] = []
        self.ended: list[int] = []
        self.outcomes: list[int] = []
        self.results: list[list[Any]] = []
        self.messages: list[str] = []
        self.backtraces: list[str] = []
        self.exit_codes: list[int] = []
        self.news = True  # the pids it started, at least
        reported.append(self)

    def job_ended(self, index: int, finished: Finished) -> None:
        if not self.news:
            self.news = True
            self.reported.append(self)
        outcome, message, backtrace, exit_code = to_wire(finished)
        self.ended.append(index)
        self.outcomes.append(outcome)
        self.results.append(list(finished.result))
        self.messages.append(message[:MAX_TEXT])
        self.backtraces.append(backtrace[:MAX_TEXT])
        self.exit_codes.append(exit_code)
        self.remaining -= 1

    def report(self) -> frames.JobsDone:
        """The news since the last report, as a frame; forgotten here."""
        frame = frames.JobsDone(
            self.request,
            self.reply_to,
            tuple(self.started),
            tuple(self.ended),
            tuple(self.outcomes),
            msgpack.packb(self.results),
            tuple(self.messages),
            tuple(self.backtraces),
            tuple(self.exit_codes),
            self.remaining,
        )
        self.started = []
        self.news = False
        for field in (
            self.ended,
            self.outcomes,
            self.results,
            self.messages,
            self.backtraces,
            self.exit_codes,
        ):
            field.clear()
        return frame


class JobRunner:
    """Starts the jobs of Jobs frames on a worker's engine, and reports their ends (see the
    module docstring); :meth:`report` runs once a turn, before the worker's frames leave."""

    def __init__(
        self,
        engine: Engine,
        module: Callable[[bytes], Module],
        reply: Callable[[int, frames.Frame], None],
    ) -> None:
        self._engine = engine
        self._module = module
        self._reply = reply
        self._reported: list[_Batch] = []  # batches with news for their next report

    def start(self, frame: frames.Jobs) -> None:
        batch = _Batch(frame.request, frame.reply_to, frame.count, self._reported)
        try:
            module = self._module(frame.module)
            config = frames.decode_shared_config(frame.config)
            kinds = [PARAM_KINDS[kind] for kind in frame.param_kinds]
        except (LunaticError, KeyError, ValueError) as exc:
            for index in range(frame.count):
                self._not_started(batch, index, str(exc))
            return
        width, spawn, function = len(kinds), self._engine.spawn, frame.function
        params, inputs, tags = frame.params, frame.inputs, frame.tags
        for index in range(frame.count):
            args = list(zip(kinds, params[index * width : index * width + width], strict=True))
            try:
                child = spawn(module, function, args, config)
            except (LunaticError, KeyError, ValueError) as exc:
                self._not_started(batch, index, str(exc))
                continue
            batch.started.append(child.pid)
            if inputs:  # a bytes job: its input waits in its mailbox, from the host program
                self._engine.deliver(child.pid, Message(tags[index], inputs[index], pid=frame.reply_to))
            child.on_exit.append(functools.partial(batch.job_ended, index))

    @staticmethod
    def _not_started(batch: _Batch, index: int, why: str) -> None:
        batch.started.append(0)
        batch.job_ended(index, Finished(Outcome.FAILED, message=why))

    def report(self) -> None:
        """Send every batch's news (call before the worker's frames are flushed)."""
        if not self._reported:
            return
        reported = self._reported[:]
        self._reported.clear()  # in place: every batch holds this list
        for batch in reported:
            self._reply(batch.reply_to, batch.report())


__all__ = ["JobRunner"]
