"""The errors of :class:`~lunatic_mp.api.executor.WasmExecutor`'s jobs, each also the standard
``concurrent.futures`` error a caller of an executor already catches where there is one."""

from __future__ import annotations

from concurrent.futures import BrokenExecutor, CancelledError

from lunatic_mp.errors import LunaticError
from lunatic_mp.vm.finished import Outcome


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


__all__ = ["JobCancelled", "JobFailed", "JobTimeout", "WorkerLostError"]
