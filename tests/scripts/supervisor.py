"""A supervisor program for tests of how a runtime ends: it starts ``Runtime(workers=2)``, keeps
its workers busy, prints what the test needs to find its processes and files, then blocks.

It installs no signal handlers of its own unless ``--sigterm-exits`` is given, which converts
SIGTERM into ``SystemExit`` (so that ``with Runtime(...)`` closes the runtime on the way out).
With ``--replace-one`` it first kills one of its workers (SIGKILL) and waits until the runtime
has replaced it, so that one worker was started after a loss. With ``--block-workers`` a native
process on every worker blocks the worker's thread (``time.sleep``), so that the worker never
looks at the supervisor's sentinel: only ``PR_SET_PDEATHSIG`` can end it.

Printed on stdout, as one JSON line: ``pid`` (this process), ``children`` (the OS pids of every
descendant: workers, the registry process, multiprocessing's helpers), ``workers`` (worker id ->
OS pid), ``run_id`` and ``run_dir``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import psutil

from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime

GUEST = Path(__file__).resolve().parent.parent / "guests" / "fail_load.wat"


def replace_a_worker(runtime: Runtime) -> None:
    lost, pid = next(iter(runtime.worker_pids().items()))
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while lost in runtime.worker_ids or len(runtime.worker_ids) < runtime.worker_count:
        if time.monotonic() > deadline:
            sys.exit(f"worker {lost} was not replaced within 30 s")
        time.sleep(0.01)


def block(context: object, marker: str) -> None:
    """A native process that holds its worker's thread (native processes are not preempted);
    it makes ``marker`` first, so that the script knows the thread is held."""
    Path(marker).touch()
    time.sleep(3600)


def block_workers(runtime: Runtime) -> None:
    """Hold every worker's thread; return once each is held."""
    with tempfile.TemporaryDirectory() as directory:
        markers = [os.path.join(directory, str(worker)) for worker in runtime.worker_ids]
        for worker, marker in zip(runtime.worker_ids, markers, strict=True):
            runtime.spawn_native_future(block, (marker,), worker=worker)  # never answered: held
        deadline = time.monotonic() + 30
        while not all(os.path.exists(marker) for marker in markers):
            if time.monotonic() > deadline:
                sys.exit("the workers' threads were not held within 30 s")
            time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sigterm-exits", action="store_true", help="SIGTERM raises SystemExit(0)")
    parser.add_argument("--replace-one", action="store_true", help="have one worker replaced first")
    parser.add_argument("--block-workers", action="store_true", help="block every worker's thread")
    args = parser.parse_args()
    if args.sigterm_exits:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Runtime(workers=2) as runtime:
        if args.replace_one:
            replace_a_worker(runtime)
        module = runtime.load_module(GUEST)
        for worker in runtime.worker_ids:  # something running and something waiting on each
            runtime.spawn(module, "spin", config=EnvConfig(), worker=worker)
            receiver = runtime.spawn(module, "receive_forever", config=EnvConfig(), worker=worker)
            runtime.spawn(module, "send_forever", [receiver], EnvConfig(), worker=worker)
        if args.block_workers:
            block_workers(runtime)
        report = {
            "pid": os.getpid(),
            "children": [child.pid for child in psutil.Process().children(recursive=True)],
            "workers": runtime.worker_pids(),
            "run_id": runtime.run_id,
            "run_dir": str(runtime.run_dir),
        }
        print(json.dumps(report), flush=True)
        while True:
            signal.pause()


if __name__ == "__main__":
    main()
