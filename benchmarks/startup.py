"""startup: how long it takes to import, to start a runtime, to run a trivial module, to replace a
lost worker.

Each figure is wall time in a fresh interpreter (a subprocess), best of three (one with
--quick): ``import lunatic_mp``; ``lunatic-mp run`` of a module whose ``_start`` returns at once,
on one engine and on two workers (the whole command, interpreter included); ``Runtime(workers=2)``
from the call until it is ready, and until it is closed (the import not counted). A worker
killed with SIGKILL in an idle runtime of two workers: until a replacement is serving, median of
ten. Beside them: the Erlang VM starting and halting (``erl -noshell -eval 'halt().'``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from lunatic_mp.bench.runner import Context, at_most

TITLE = "start-up: import, a trivial run, a runtime ready and closed, a worker replaced"
TIMEOUT_S = 120
REPLACEMENTS = 10

IMPORT = """
import time
started = time.perf_counter()
import lunatic_mp
print(time.perf_counter() - started)
"""

RUNTIME = """
import time
from lunatic_mp.api.runtime import Runtime

if __name__ == "__main__":
    started = time.perf_counter()
    runtime = Runtime(workers=2)
    ready = time.perf_counter()
    runtime.close()
    print(ready - started, time.perf_counter() - started)
"""

REPLACE = """
import os, signal, statistics, sys, time
from lunatic_mp.api.runtime import Runtime

if __name__ == "__main__":
    times = []
    with Runtime(workers=2) as runtime:
        for _ in range(int(sys.argv[1])):
            template = getattr(runtime, "_template", None)  # none: children are spawned
            if template is not None:
                template.wait_spare(60)  # a loss comes when the runtime is settled
            losses = runtime.workers_lost
            victim = runtime.worker_pids()[runtime.worker_ids[0]]
            started = time.perf_counter()
            os.kill(victim, signal.SIGKILL)
            assert runtime.wait_for_workers(60, losses=losses + 1)
            times.append(time.perf_counter() - started)
    print(statistics.median(times), max(times))
"""


def lunatic_mp_command() -> list[str]:
    script = Path(sys.executable).parent / "lunatic-mp"
    if script.exists():
        return [str(script)]
    found = shutil.which("lunatic-mp")
    return [found] if found else [sys.executable, "-c", "from lunatic_mp.cli.app import main; main()"]


def wall(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, timeout=TIMEOUT_S)
    return time.perf_counter() - started


def printed(command: list[str], cwd: Path) -> list[float]:
    """The numbers a script prints."""
    completed = subprocess.run(
        command, cwd=cwd, check=True, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    return [float(word) for word in completed.stdout.split()]


def run(ctx: Context) -> None:
    tries = ctx.pick(3, 1)
    with tempfile.TemporaryDirectory(prefix="lunatic-mp-startup-") as name:
        here = Path(name)
        (here / "import_it.py").write_text(textwrap.dedent(IMPORT))
        (here / "runtime.py").write_text(textwrap.dedent(RUNTIME))
        (here / "replace.py").write_text(textwrap.dedent(REPLACE))
        trivial = str(ctx.guest("trivial.wat"))
        cli = lunatic_mp_command()

        ctx.step("import lunatic_mp")
        imports = [printed([sys.executable, "import_it.py"], here)[0] for _ in range(tries)]
        ctx.record("import_s", min(imports), target=at_most(0.1))

        ctx.step("lunatic-mp run on one engine")
        one = [wall([*cli, "run", trivial], here) for _ in range(tries)]
        ctx.record("run_one_engine_s", min(one), target=at_most(0.3))

        ctx.step("Runtime(workers=2) ready and closed")
        runtimes = [printed([sys.executable, "runtime.py"], here) for _ in range(tries)]
        ctx.record("runtime_2_workers_ready_s", min(r[0] for r in runtimes))
        ctx.record("runtime_2_workers_ready_and_closed_s", min(r[1] for r in runtimes), target=at_most(0.4))

        ctx.step("lunatic-mp run --workers 2")
        two = [wall([*cli, "run", "--workers", "2", trivial], here) for _ in range(tries)]
        ctx.record("run_2_workers_s", min(two), target=at_most(0.5))

        ctx.step("a lost worker replaced")
        median, worst = printed([sys.executable, "replace.py", str(ctx.pick(REPLACEMENTS, 3))], here)
        ctx.record("worker_replaced_median_s", median, target=at_most(0.1))
        ctx.record("worker_replaced_max_s", worst)

        erl = shutil.which("erl")
        if erl is None:
            ctx.note("Erlang baseline skipped: erl (Erlang/OTP) is not installed")
        else:
            ctx.step("Erlang: erl -noshell -eval 'halt().'")
            erlang = [wall([erl, "-noshell", "-eval", "halt()."], here) for _ in range(tries)]
            ctx.record("erlang_start_and_halt_s", min(erlang))
            ctx.record("run_2_workers_vs_erlang_x", min(two) / min(erlang))
