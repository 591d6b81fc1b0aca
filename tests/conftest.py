"""Shared fixtures: a fresh engine per test, guest loading, and a check for leaked children."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from lunatic_mp import Engine, EnvConfig, Finished, Module, Process, examples

GUESTS = Path(__file__).parent / "guests"
EXAMPLES = examples.DIRECTORY  # the guests the docs use too, shipped in the package
WORKERS = Path(__file__).parent.parent / "workers"


def _resource_tracker(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker: started once by the first spawned child, it stays
    for the life of the test process and exits with it, so it is no leak."""
    try:
        return any("multiprocessing.resource_tracker" in part for part in process.cmdline())
    except psutil.Error:
        return False


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    """Every child process a test starts must be gone when it ends."""
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 10
    while True:
        leaked = [c for c in me.children(recursive=True) if c.pid not in before and c.is_running()]
        leaked = [c for c in leaked if c.status() != psutil.STATUS_ZOMBIE and not _resource_tracker(c)]
        if not leaked or time.monotonic() > deadline:
            break
        psutil.wait_procs(leaked, timeout=0.5)
    assert not leaked, f"leaked child processes: {leaked}"


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()
    assert not engine.host_errors, f"host functions raised: {engine.host_errors}"


@pytest.fixture
def load(engine: Engine) -> Callable[[str], Module]:
    """Load a guest from tests/guests (or lunatic_mp/examples) by file name, or WAT text."""

    def load(name_or_wat: str) -> Module:
        if name_or_wat.lstrip().startswith(("(", ";;")):
            return engine.load_module(name_or_wat)
        path = GUESTS / name_or_wat
        return engine.load_module(path if path.exists() else EXAMPLES / name_or_wat)

    return load


@pytest.fixture
def run(engine: Engine) -> Callable[..., Finished]:
    """Spawn an export with every permission and run the engine until it finishes."""

    def run(
        module: Module, function: str = "_start", params: tuple[object, ...] = (), **config: object
    ) -> Finished:
        process = spawn(engine, module, function, params, **config)
        finished = engine.run_until_finished(process, timeout=30)
        assert finished is not None, f"{function} did not finish"
        return finished

    return run


def spawn(
    engine: Engine, module: Module, function: str, params: tuple[object, ...] = (), **config: object
) -> Process:
    return engine.spawn(module, function, params, EnvConfig.permissive(**config))


def start(engine: Engine, module: Module, function: str, *params: object, **config: object) -> Process:
    """Spawn ``module.function(*params)`` with every permission (``config`` overrides some)."""
    return engine.spawn(module, function, params, EnvConfig.permissive(**config))


def sweep(engine: Engine) -> None:
    """One whole hibernation sweep of the engine, as if its interval had passed
    (lunatic_mp/vm/hibernate.c): the first marks the processes idle in receive, the next
    hibernates those still in the same wait."""
    while engine.scheduler.hibernate(float("inf")):
        pass
    engine.scheduler._next_sweep = 0.0  # the next call sweeps again


def finish(engine: Engine, process: Process) -> Finished:
    """Run the engine until ``process`` ends, however it ends."""
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None, f"{process} did not finish"
    return finished


def finish_ok(engine: Engine, process: Process) -> Finished:
    """Run the engine until ``process`` ends; it must end normally."""
    finished = finish(engine, process)
    assert finished.ok, finished
    return finished


def ticker_threads() -> int:
    """Ticker threads of this process (named by the C core), as /proc lists them."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            count += (task / "comm").read_text().strip() == "lunatic-ticker"
        except OSError:  # a thread that has just ended
            continue
    return count


def ticker_threads_settle(expected: int, timeout: float = 10.0) -> int:
    """The ticker threads once they number ``expected``, or when ``timeout`` s have passed: a
    joined thread can stay listed in /proc for a moment after pthread_join returned (the kernel
    wakes the joiner before it has reaped the thread), and nothing signals when it goes."""
    deadline = time.monotonic() + timeout
    while (count := ticker_threads()) != expected and time.monotonic() < deadline:
        time.sleep(0.001)
    return count
