"""A runtime's life at the edges of the interpreter: its start in a re-imported main module, and
its end when the program exits without closing it.

Worker processes come from a fresh interpreter that imports the main module again (as
``__mp_main__``): the template process they are forked from (:mod:`.template`), or each child with
the ``spawn`` method where there is no template. A script that starts a
:class:`~lunatic_mp.api.runtime.Runtime` at module level, without an ``if __name__ ==
"__main__":`` guard, would start one there too; multiprocessing then fails deep inside the child.
Here the child (or template) notices, exits quietly with
:data:`UNGUARDED_MAIN_EXIT`, and the supervisor raises one :class:`UnguardedMainError` that says
what to do.

A runtime left open at exit used to hang the interpreter (multiprocessing's exit handler waits for
the workers, which wait for the supervisor). Every open runtime is closed at exit, with a
:class:`ResourceWarning`, like an unclosed file.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util  # registers its exit handler first: ours, registered later, runs before it
import sys
import warnings
import weakref
from typing import Any, Protocol

from lunatic_mp.errors import UnguardedMainError

CHILD_PREFIX = "lunatic-mp-"
"""The names of a runtime's child processes start with this."""

UNGUARDED_MAIN_EXIT = 78
"""The exit code of a runtime's child that found the main module starting a runtime at import."""


def _main_file() -> str:
    main = sys.modules.get("__main__")
    return str(getattr(main, "__file__", None) or "the main module")


def unguarded_main_message() -> str:
    return (
        f"{_main_file()} starts a Runtime when it is imported: worker processes start from a "
        "fresh interpreter that imports the main module again, as the 'spawn' method does. Put "
        'the code that starts the Runtime under  if __name__ == "__main__":  (see the Python '
        'multiprocessing docs, "Safe importing of main module")'
    )


def check_not_bootstrapping() -> None:
    """Refuse to start a runtime while this process is a spawned child importing the main module.

    A runtime's own child exits quietly with :data:`UNGUARDED_MAIN_EXIT` (its supervisor raises
    the error, once); any other spawned child raises :class:`UnguardedMainError`.
    """
    current = multiprocessing.current_process()
    if not getattr(current, "_inheriting", False):  # set while a spawned child imports __main__
        return
    if current.name.startswith(CHILD_PREFIX):
        raise SystemExit(UNGUARDED_MAIN_EXIT)
    raise UnguardedMainError(unguarded_main_message())


def start_failure(exitcode: int | None) -> UnguardedMainError | None:
    """The error for a child that exited while starting because the main module is unguarded."""
    if exitcode == UNGUARDED_MAIN_EXIT:
        return UnguardedMainError(unguarded_main_message())
    return None


class Closable(Protocol):
    def close(self) -> None: ...


_open: weakref.WeakSet[Any] = weakref.WeakSet()


def opened(runtime: Closable) -> None:
    """Remember an open runtime, to close it at exit if its program does not."""
    _open.add(runtime)


def closed(runtime: Closable) -> None:
    _open.discard(runtime)


def close_open_runtimes() -> None:
    """Close every runtime still open, warning for each (a ``ResourceWarning``, like a file)."""
    for runtime in list(_open):
        warnings.warn(
            f"unclosed {runtime!r}: closing it at exit; use `with Runtime() as runtime:` or call "
            "runtime.close()",
            ResourceWarning,
            stacklevel=1,
            source=runtime,
        )
        runtime.close()
        _open.discard(runtime)


atexit.register(close_open_runtimes)
