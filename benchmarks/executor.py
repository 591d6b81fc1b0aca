"""The batch fan-out executor: overhead per tiny job, and CPU-bound fan-out efficiency.

    python benchmarks/executor.py [--quick] [--json FILE]

Targets (issue 4, on a 2-core machine): executor overhead per tiny Wasm job <= 30 us (a
ProcessPoolExecutor task costs about 100 us here); CPU-bound fan-out over 2 workers >= 90% of the
ideal 2x speed-up over one.

* overhead: ``map`` of N tiny jobs (``square``) over 2 workers, wall time per job; against
  ``concurrent.futures.ProcessPoolExecutor`` (2 processes) running the same Wasm export with plain
  wasmtime in each pool process (module compiled once per process, in its initializer; one fresh
  store and instance per task, as the executor gives each job its own process).
* fan-out: M CPU-bound jobs (``spin``) on ``Runtime(workers=1)`` then ``Runtime(workers=2)``;
  efficiency = t1 / (2 * t2).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import wasmtime

from lunatic_mp.executor import WasmExecutor
from lunatic_mp.runtime import Runtime

GUEST = Path(__file__).parent.parent / "tests" / "guests" / "exe_jobs.wat"

_pool_state: dict[str, Any] = {}


def _pool_init(path: str) -> None:
    engine = wasmtime.Engine()
    _pool_state["engine"] = engine
    _pool_state["module"] = wasmtime.Module.from_file(engine, path)


def _pool_square(x: int) -> int:
    """The same job in a pool process: a fresh store and instance of the (stub-linked) module."""
    engine, module = _pool_state["engine"], _pool_state["module"]
    store = wasmtime.Store(engine)
    linker = _pool_state.get("linker")
    if linker is None:
        linker = wasmtime.Linker(engine)
        linker.allow_shadowing = True
        linker.define_unknown_imports_as_traps(module)
        _pool_state["linker"] = linker
    instance = linker.instantiate(store, module)
    square = instance.exports(store)["square"]
    assert isinstance(square, wasmtime.Func)
    return int(square(store, x))


def overhead(count: int) -> dict[str, float]:
    with Runtime(workers=2) as runtime:
        module = runtime.load_module(GUEST)
        with WasmExecutor(runtime, module) as executor:
            list(executor.map("square", range(1000)))  # warm up
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                results = list(executor.map("square", range(count)))
                best = min(best, time.perf_counter() - start)
                assert results[-1] == (count - 1) ** 2
    spawn = multiprocessing.get_context("spawn")  # never fork after Wasm was compiled (DESIGN.md)
    with ProcessPoolExecutor(2, spawn, initializer=_pool_init, initargs=(str(GUEST),)) as pool:
        list(pool.map(_pool_square, range(1000)))
        pool_best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            pool_results = list(pool.map(_pool_square, range(count)))
            pool_best = min(pool_best, time.perf_counter() - start)
            assert pool_results[-1] == (count - 1) ** 2
    return {
        "jobs": count,
        "executor_us_per_job": round(best / count * 1e6, 1),
        "process_pool_us_per_job": round(pool_best / count * 1e6, 1),
    }


def fan_out(jobs: int, spins: int) -> dict[str, float]:
    times = {}
    for workers in (1, 2):
        with Runtime(workers=workers) as runtime:
            module = runtime.load_module(GUEST)
            with WasmExecutor(runtime, module) as executor:
                executor.submit("spin", 1000).result()
                start = time.perf_counter()
                assert list(executor.map("spin", [spins] * jobs)) == [spins] * jobs
                times[workers] = time.perf_counter() - start
    return {
        "jobs": jobs,
        "spins_per_job": spins,
        "one_worker_s": round(times[1], 3),
        "two_workers_s": round(times[2], 3),
        "efficiency": round(times[1] / (2 * times[2]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (for tests)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    options = parser.parse_args()
    count = 2000 if options.quick else 20_000
    jobs, spins = (8, 100_000_000) if options.quick else (16, 1_000_000_000)
    figures = {"overhead": overhead(count), "fan_out": fan_out(jobs, spins)}
    print(json.dumps(figures, indent=2))
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
