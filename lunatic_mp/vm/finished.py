"""How a process ended: a small module of its own, so that programs that only read outcomes (the
server's client, for one) need not import the engine or wasmtime."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final


class Outcome(enum.Enum):
    NORMAL = "normal"
    KILLED = "killed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Finished:
    """Why a process ended: normally (with its result), killed, or failed (trap, error, exit)."""

    outcome: Outcome
    result: tuple[Any, ...] = ()  # a Wasm export's results; a native function's return value
    message: str = ""
    backtrace: tuple[str, ...] = ()
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.NORMAL

    def __str__(self) -> str:
        if self.outcome is Outcome.NORMAL:
            return "finished normally" + (f" with {self.result}" if self.result else "")
        return f"{self.outcome.value}: {self.message}" if self.message else self.outcome.value


OUTCOMES: Final = (Outcome.NORMAL, Outcome.KILLED, Outcome.FAILED)
"""How frames write an outcome (ProcessFinished, JobsDone): its index here."""
OUTCOME_CODES: Final = {outcome: code for code, outcome in enumerate(OUTCOMES)}


def to_wire(finished: Finished) -> tuple[int, str, str, int]:
    """A Finished's outcome code, message, backtrace (a frame a line) and exit code (-1: none),
    as frames carry them (its results travel as msgpack beside them)."""
    exit_code = -1 if finished.exit_code is None else finished.exit_code
    return OUTCOME_CODES[finished.outcome], finished.message, "\n".join(finished.backtrace), exit_code


def from_wire(code: int, results: Any, message: str, backtrace: str, exit_code: int) -> Finished:
    """The Finished that :func:`to_wire` (and the results beside it) describe."""
    exit = None if exit_code < 0 else exit_code
    return Finished(OUTCOMES[code], tuple(results), message, tuple(backtrace.splitlines()), exit)


RETURNED: Final = Finished(Outcome.NORMAL)
"""A normal end with no results, shared (a Finished is immutable; a frozen dataclass's
``__init__`` costs about a microsecond of a spawn and exit)."""
EXITED: Final = Finished(Outcome.NORMAL, exit_code=0)
"""A normal end by WASI ``proc_exit(0)``, shared."""


__all__ = ["EXITED", "RETURNED", "Finished", "Outcome"]
