"""What the scenarios compare lunatic_mp against, measured in the same run.

* plain wasmtime: the same Wasm function called in a loop in this one process, with no runtime
  around it: the per-core ceiling.
* ``concurrent.futures.ProcessPoolExecutor`` (spawn start method, wasmtime in each pool process)
  running the same Wasm jobs: what Python offers for fan-out without lunatic_mp.
* ``multiprocessing.Pipe`` between two Python processes (in ``benchmarks.transport``).
* Erlang (``escript`` on PATH) and Ray (``import ray``), where installed; otherwise the scenario
  notes that they were skipped.

Plain-wasmtime modules are linked with every import defined as a trap: the measured functions
call none of them.
"""

from __future__ import annotations

import gc
import importlib.util
import multiprocessing
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import wasmtime

ERLANG_SCRIPT = Path(__file__).parent / "erlang" / "bench.escript"
ERLANG_TIMEOUT_S = 600


class PlainWasm:
    """One module under plain wasmtime: fresh instances, or calls on one instance."""

    def __init__(self, path: Path | str) -> None:
        self.engine = wasmtime.Engine()
        self.module = wasmtime.Module.from_file(self.engine, str(path))
        linker = wasmtime.Linker(self.engine)
        linker.define_unknown_imports_as_traps(self.module)
        self.pre = linker.instantiate_pre(self.module)

    def instance(self) -> tuple[wasmtime.Store, wasmtime.Instance]:
        store = wasmtime.Store(self.engine)
        return store, self.pre.instantiate(store)

    def function(self, name: str) -> Callable[..., Any]:
        """``name`` bound to a fresh instance: calling it calls the export."""
        store, instance = self.instance()
        export = instance.exports(store)[name]
        assert isinstance(export, wasmtime.Func)
        return lambda *args: export(store, *args)

    def call_fresh(self, name: str, *args: int) -> Any:
        """A fresh store and instance for one call: what a job or a spawned process gets."""
        store, instance = self.instance()
        export = instance.exports(store)[name]
        assert isinstance(export, wasmtime.Func)
        return export(store, *args)


def instances_per_s(path: Path, function: str, count: int) -> float:
    """Fresh instances created and ``function`` run to return, per second, in this process."""
    plain = PlainWasm(path)
    for _ in range(100):
        plain.call_fresh(function)
    start = time.perf_counter()
    for _ in range(count):
        plain.call_fresh(function)
    return count / (time.perf_counter() - start)


def call_us(path: Path, function: str, args: Iterable[int]) -> float:
    """Microseconds per call of ``function`` on one instance (best of three passes)."""
    call = PlainWasm(path).function(function)
    items = list(args)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for item in items:
            call(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items) * 1e6


def jobs_s(path: Path, function: str, args: list[int]) -> float:
    """Seconds to run ``function(arg)`` for each arg, one after another, each on a fresh instance."""
    plain = PlainWasm(path)
    start = time.perf_counter()
    for arg in args:
        plain.call_fresh(function, arg)
    return time.perf_counter() - start


def rss_per_instance_kib(path: Path, count: int) -> float:
    """RSS in KiB that each live instance (its store and memory) adds to a fresh process (in this
    one, memory freed by earlier scenarios would be reused and hide the cost)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, context) as pool:
        return float(pool.submit(_rss_per_instance_kib, str(path), count).result())


def _rss_per_instance_kib(path: str, count: int) -> float:
    plain = PlainWasm(path)
    plain.instance()
    gc.collect()
    before: int = psutil.Process().memory_info().rss
    alive = [plain.instance() for _ in range(count)]
    after: int = psutil.Process().memory_info().rss
    del alive
    return (after - before) / count / 1024


# --- ProcessPoolExecutor ----------------------------------------------------------------------

_pool: dict[str, PlainWasm] = {}


def _pool_init(path: str) -> None:
    _pool["wasm"] = PlainWasm(path)


def _pool_job(function: str, arg: int) -> Any:
    """One job in a pool process: a fresh store and instance, as a lunatic_mp job gets."""
    return _pool["wasm"].call_fresh(function, arg)


class WasmPool:
    """A ProcessPoolExecutor whose processes each compiled the module once, in their initializer."""

    def __init__(self, path: Path, processes: int) -> None:
        context = multiprocessing.get_context("spawn")  # never fork after Wasm was compiled
        self.pool = ProcessPoolExecutor(processes, context, initializer=_pool_init, initargs=(str(path),))
        self.processes = processes
        list(self.pool.map(_pool_job, ["square"] * 4 * processes, range(4 * processes)))  # all started

    def run(self, function: str, args: list[int], chunksize: int = 1) -> tuple[float, list[Any]]:
        """Seconds for ``pool.map`` of ``function`` over ``args``, and the results."""
        start = time.perf_counter()
        results = list(self.pool.map(_pool_job, [function] * len(args), args, chunksize=chunksize))
        return time.perf_counter() - start, results

    def close(self) -> None:
        self.pool.shutdown()

    def __enter__(self) -> WasmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Erlang and Ray, where installed --------------------------------------------------------------


def erlang_missing() -> str | None:
    """Why the Erlang baseline cannot run here, or None when it can."""
    if shutil.which("escript") is None:
        return "Erlang baseline skipped: escript (Erlang/OTP) is not installed"
    return None


def erlang(benchmark: str, *args: int) -> dict[str, float]:
    """Run one benchmark of benchmarks/erlang/bench.escript; its figures by name.

    The script prints ``name value`` lines; the Erlang VM gets one scheduler per usable CPU.
    """
    completed = subprocess.run(
        ["escript", str(ERLANG_SCRIPT), benchmark, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=ERLANG_TIMEOUT_S,
        check=False,
        env={**os.environ, "ERL_FLAGS": f"+S {len(os.sched_getaffinity(0))}"},
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the Erlang {benchmark} benchmark failed: {completed.stderr.strip()}")
    figures = {}
    for line in completed.stdout.splitlines():
        name, value = line.split()
        figures[name] = float(value)
    return figures


def ray_missing() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "Ray baseline skipped: ray is not installed"
    return None


def _ray_job(path: str, function: str, arg: int) -> Any:
    """A job in a Ray worker: the module compiled once per worker process, a fresh instance per job."""
    wasm = _pool.get(path)
    if wasm is None:
        wasm = _pool[path] = PlainWasm(path)
    return wasm.call_fresh(function, arg)


def ray_jobs_s(path: Path, workloads: dict[str, tuple[str, list[int]]], processes: int) -> dict[str, float]:
    """Seconds for Ray tasks (on ``processes`` CPUs) to run each workload: name -> (function, args),
    ``function(arg)`` for each arg, all submitted at once."""
    ray = importlib.import_module("ray")
    # Ray's workers import this module by name: the source tree goes on their path, wherever the
    # bench was started from
    source_tree = str(Path(__file__).resolve().parents[1])
    runtime_env = {"env_vars": {"PYTHONPATH": source_tree}}
    ray.init(num_cpus=processes, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    try:
        job = ray.remote(_ray_job)
        ray.get([job.remote(str(path), "square", 1) for _ in range(4 * processes)])  # workers warm
        seconds = {}
        for name, (function, args) in workloads.items():
            start = time.perf_counter()
            ray.get([job.remote(str(path), function, arg) for arg in args])
            seconds[name] = time.perf_counter() - start
        return seconds
    finally:
        ray.shutdown()
