"""What every child of the supervisor does first, worker or registry process alike."""

from __future__ import annotations

import ctypes
import os
import signal


def die_with_parent(parent_pid: int, *, deathsig: bool) -> None:
    """Exit when the supervisor dies, even by SIGKILL: no orphan outlives it.

    ``PR_SET_PDEATHSIG`` kills this process at once, even when its thread is stuck in a native
    process; it follows the *thread* that started the child, so a runtime starts every child
    from one thread that lives as long as it does (:mod:`lunatic_mp.cluster.launcher`). Every child
    also watches the supervisor's sentinel pipe in its loop (:meth:`Hub.orphaned`).
    """
    if deathsig:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os._exit(1)


def ignore_stop_signals() -> None:
    """Ctrl-C and SIGTERM reach the whole process group; stopping is the supervisor's to do
    (it sends Shutdown, or its sentinel closes when it dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
