"""A supervisor program for tests of how a runtime ends: it starts ``Runtime(workers=2)``, keeps
its workers busy, prints what the test needs to find its processes and files, then blocks.

It installs no signal handlers of its own unless ``--sigterm-exits`` is given, which converts
SIGTERM into ``SystemExit`` (so that ``with Runtime(...)`` closes the runtime on the way out).

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
from pathlib import Path

import psutil

from lunatic_mp import EnvConfig
from lunatic_mp.runtime import Runtime

GUEST = Path(__file__).resolve().parent.parent / "guests" / "fail_load.wat"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sigterm-exits", action="store_true", help="SIGTERM raises SystemExit(0)")
    args = parser.parse_args()
    if args.sigterm_exits:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with Runtime(workers=2) as runtime:
        module = runtime.load_module(GUEST)
        for worker in runtime.worker_ids:  # something running and something waiting on each
            runtime.spawn(module, "spin", config=EnvConfig(), worker=worker)
            receiver = runtime.spawn(module, "receive_forever", config=EnvConfig(), worker=worker)
            runtime.spawn(module, "send_forever", [receiver], EnvConfig(), worker=worker)
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
