"""``lunatic-mp doctor``: what this machine offers lunatic_mp, checked before a server is started on it.

Each check says what it found and whether that is fine (``ok``), may surprise (``warn``: the
runtime works, with less than it could) or stops the multi-worker runtime (``fail``, exit status 1).
The facts are the ones the runtime itself acts on (:mod:`lunatic_mp.cluster.hostenv`,
:func:`lunatic_mp.vm.capacity.plan`), so what doctor says is what ``Runtime`` will do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from lunatic_mp.cluster.hostenv import (
    SHM_DIRECTORY,
    cpu_quota,
    default_worker_count,
    platform_problem,
    shm_space,
    usable_cpus,
)
from lunatic_mp.vm import capacity

OK, WARN, FAIL = "ok", "warn", "fail"
DEFAULT_RING_BYTES = 1 << 20  # lunatic_mp.cluster.supervisor.DEFAULT_RING_CAPACITY (not imported: slow)
DEFAULT_MAX_MEMORY = 256 << 20  # lunatic_mp.vm.engine.DEFAULT_MAX_MEMORY (not imported: slow)
DEFAULT_STACK_SIZE = 2 << 20  # lunatic_mp.vm.engine.DEFAULT_STACK_SIZE
_PROBE = '#include <stdio.h>\nint main(void) { return puts("") < 0; }\n'


@dataclass
class Check:
    """One line of the report: its ``name``, ``status`` (ok, warn, fail), what was found, and
    the facts behind it for ``--json``."""

    name: str
    status: str
    summary: str
    facts: dict[str, Any] = field(default_factory=dict)


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def check_platform() -> Check:
    facts = {"system": sys.platform, "machine": platform.machine(), "python": platform.python_version()}
    problem = platform_problem()
    summary = f"{sys.platform} on {facts['machine']}, Python {facts['python']}"
    return Check("platform", FAIL if problem else OK, problem or summary, facts)


def check_cpus() -> Check:
    cpus = usable_cpus()
    quota = cpu_quota()
    workers = default_worker_count()
    facts = {"cpus": cpus, "cgroup_quota": quota, "default_workers": workers}
    limit = "no cgroup CPU quota" if quota is None else f"a cgroup quota of {quota:g} CPUs"
    return Check("cpus", OK, f"{cpus} CPUs usable, {limit}: {workers} workers by default", facts)


def check_shm(workers: int) -> Check:
    space = shm_space()
    if space is None:
        return Check(SHM_DIRECTORY, FAIL, f"{SHM_DIRECTORY} does not exist: the runtime's rings live there")
    rings = (workers + 2) * (workers + 1)  # every ordered pair of supervisor, registry, workers
    needed = rings * DEFAULT_RING_BYTES
    facts = {"total": space.total, "free": space.free, "needed_by_default_runtime": needed}
    summary = f"{_mib(space.free)} free of {_mib(space.total)}; "
    summary += f"{workers} workers' {rings} rings need {_mib(needed)}"
    if needed > space.free:
        return Check(SHM_DIRECTORY, FAIL, f"{summary}: too small (Docker: --shm-size=1g)", facts)
    if needed * 4 > space.free:
        return Check(SHM_DIRECTORY, WARN, f"{summary}: little room for larger rings or replacements", facts)
    return Check(SHM_DIRECTORY, OK, summary, facts)


def check_capacity(workers: int) -> Check:
    """How many live processes each worker holds, and what bounds it (:mod:`lunatic_mp.vm.capacity`)."""
    plan = capacity.plan(DEFAULT_MAX_MEMORY, DEFAULT_STACK_SIZE, workers)
    guard = "MADV_GUARD_INSTALL" if capacity.guard_madvise_available() else "mprotect"
    ram, _ = capacity.memory_bytes()
    facts = {
        "processes_per_worker": plan.processes,
        "limit": plan.limit,
        "reason": plan.reason,
        "address_space_bytes": capacity.address_space_bytes(),
        "memory_bytes": ram,
        "stack_guard": guard,
    }
    summary = f"{plan.processes:,} live Wasm processes per worker, bounded by {plan.reason}"
    if plan.processes < 10_000:
        return Check("capacity", WARN, summary, facts)
    return Check("capacity", OK, summary, facts)


def check_c_toolchain() -> Check:
    """Whether C guests can be built (workers/build.sh): clang that links a WASI program."""
    cc = os.environ.get("CC", "clang")
    facts: dict[str, Any] = {"cc": cc, "path": shutil.which(cc), "ziglang": _has("ziglang")}
    if facts["path"] is None:
        hint = "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32"
        return Check("C toolchain", WARN, f"{cc} not found: C guests cannot be built ({hint})", facts)
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(
            [cc, "--target=wasm32-wasi", "-x", "c", "-", "-o", str(Path(scratch) / "probe.wasm")],
            input=_PROBE,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    facts["wasi"] = result.returncode == 0
    if not facts["wasi"]:
        error = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("C toolchain", WARN, f"{cc} cannot build a WASI program: {error}", facts)
    return Check("C toolchain", OK, f"{cc} builds WASI programs ({facts['path']})", facts)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_checks() -> list[Check]:
    """Every check, in the order the report gives them."""
    cpus = check_cpus()
    return [
        check_platform(),
        cpus,
        check_shm(cpus.facts["default_workers"]),
        check_capacity(cpus.facts["default_workers"]),
        check_c_toolchain(),
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: every check with its facts.")
def doctor(as_json: bool) -> None:
    """Check this machine for lunatic_mp: platform, CPUs and their cgroup quota, /dev/shm,
    how many live processes a worker holds and why, the C toolchain for guests. Exit status 1
    when the multi-worker runtime cannot run here."""
    checks = run_checks()
    failed = any(check.status == FAIL for check in checks)
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [asdict(check) for check in checks]}, indent=2))
    else:
        width = max(len(check.name) for check in checks)
        for check in checks:
            click.echo(f"{check.status:4}  {check.name:{width}}  {check.summary}")
    sys.exit(1 if failed else 0)
