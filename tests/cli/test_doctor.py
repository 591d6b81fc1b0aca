"""`lunatic-mp doctor`: the machine's facts, as text and as JSON, and a failing exit status."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from test_cli import cli

from lunatic_mp.cli import doctor as doctor_module
from lunatic_mp.cli.app import main
from lunatic_mp.cluster import hostenv, supervisor
from lunatic_mp.cluster.hostenv import ShmSpace
from lunatic_mp.vm import engine

NAMES = ["platform", "cpus", "/dev/shm", "capacity", "C toolchain"]


def test_the_constants_are_the_runtimes() -> None:
    assert doctor_module.DEFAULT_RING_BYTES == supervisor.DEFAULT_RING_CAPACITY
    assert doctor_module.DEFAULT_MAX_MEMORY == engine.DEFAULT_MAX_MEMORY
    assert doctor_module.DEFAULT_STACK_SIZE == engine.DEFAULT_STACK_SIZE


def test_doctor_reports_every_check_here() -> None:
    result = cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr  # this machine runs the test suite
    lines = result.stdout.splitlines()
    assert [line[6:].split("  ")[0] for line in lines] == NAMES
    assert lines[0].startswith("ok    platform") and "linux on x86_64" in lines[0]
    cpus = len(os.sched_getaffinity(0))
    assert f"{cpus} CPUs usable" in lines[1]


def test_doctor_json() -> None:
    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    checks = {check["name"]: check for check in report["checks"]}
    assert list(checks) == NAMES
    assert checks["cpus"]["facts"]["default_workers"] == hostenv.default_worker_count()
    assert checks["/dev/shm"]["facts"]["free"] > 0
    facts = checks["capacity"]["facts"]
    assert facts["processes_per_worker"] == engine.default_capacity(workers=hostenv.default_worker_count())
    assert facts["limit"] in ("address space", "RAM", "vm.max_map_count") and facts["reason"]
    assert checks["C toolchain"]["status"] in ("ok", "warn")


def test_a_small_dev_shm_and_another_platform_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_module, "shm_space", lambda: ShmSpace(64 << 20, 8 << 20))
    monkeypatch.setattr(doctor_module, "platform_problem", lambda: "the multi-worker runtime needs Linux")
    monkeypatch.setattr(doctor_module, "default_worker_count", lambda: 16)
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert "fail  platform     the multi-worker runtime needs Linux" in result.output
    assert "fail  /dev/shm     8 MiB free of 64 MiB; 16 workers' 306 rings need 306 MiB" in result.output
    assert "--shm-size" in result.output


def test_a_cgroup_quota_sets_the_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_module, "cpu_quota", lambda: 1.5)
    monkeypatch.setattr(doctor_module, "default_worker_count", lambda: 2)
    check = doctor_module.check_cpus()
    assert "a cgroup quota of 1.5 CPUs: 2 workers by default" in check.summary


def test_a_missing_compiler_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-cc-here")
    check = doctor_module.check_c_toolchain()
    assert check.status == "warn"
    assert "no-such-cc-here not found" in check.summary
