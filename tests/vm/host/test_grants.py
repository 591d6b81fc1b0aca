"""A config may only grant what its creator holds (lunatic_mp.grants, issue 20): a guest that
may create configs and spawn cannot give its child a directory, a network rule, a limit or a
permission it does not have itself."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import spawn

from lunatic_mp import Engine, EnvConfig, Finished, Module
from lunatic_mp.grants import excess

SECRET = "the shadow file\n"
PAGE = 65536

# A parent that builds a config (max_memory, can_compile_modules as given) and spawns `idle`
# under it; returns spawn's status (0 spawned, 1 refused).
LIMITS_GUEST = """
(module
  (import "lunatic::process" "create_config" (func $create_config (result i64)))
  (import "lunatic::process" "config_set_max_memory" (func $set_max_memory (param i64 i64)))
  (import "lunatic::process" "config_set_can_compile_modules" (func $set_can_compile (param i64 i32)))
  (import "lunatic::process" "spawn"
    (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "idle")
  (func (export "idle"))
  (func (export "try") (param $memory i64) (param $compile i32) (result i32)
    (local $config i64)
    (local.set $config (call $create_config))
    (call $set_max_memory (local.get $config) (local.get $memory))
    (call $set_can_compile (local.get $config) (local.get $compile))
    (call $spawn (i64.const 0) (local.get $config) (i64.const -1)
                 (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 8))))
"""


@pytest.fixture
def guest(load: Callable[[str], Module]) -> Module:
    return load("wasi_guest.wat")


def preopening(engine: Engine, guest: Module, directory: str | Path, **config: object) -> Finished:
    """A parent with ``config`` spawns a child that preopens ``directory`` and prints its
    input.txt; how the parent ended (result 0: spawned, 1: refused)."""
    parent = spawn(engine, guest, "spawn_preopening", **config)
    assert engine.send(parent.pid, str(directory).encode())
    finished = engine.run_until_finished(parent, timeout=30)
    assert finished is not None and finished.ok, finished
    return finished


def test_a_parent_without_directories_cannot_give_its_child_one(
    engine: Engine, guest: Module, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The attack: a guest with no preopened directory (but allowed to create configs and
    spawn) preopens a directory for its child, which would read a file there (before the fix it
    printed it). Spawn fails with an error saying why; no child runs."""
    (tmp_path / "input.txt").write_text(SECRET)
    for directory in (tmp_path, "/"):
        assert preopening(engine, guest, directory).result == (1,)
    out = capfd.readouterr().out
    assert SECRET.strip() not in out
    assert "grants more than its creator holds" in out and "is not inside a directory its creator has" in out
    assert engine.processes == {}


def test_a_child_may_get_a_directory_inside_its_parents(
    engine: Engine, guest: Module, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    inner = tmp_path / "public" / "inner"
    inner.mkdir(parents=True)
    (inner / "input.txt").write_text("shared\n")
    assert preopening(engine, guest, inner, preopened_dirs={"/data": str(tmp_path / "public")}).result == (0,)
    assert "shared" in capfd.readouterr().out


def test_dot_dot_and_symlinks_out_of_the_parents_directory_are_refused(
    engine: Engine, guest: Module, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """``..`` and a symlink inside the parent's directory that points outside it are resolved
    before the check: both are refused."""
    public = tmp_path / "public"
    public.mkdir()
    (tmp_path / "input.txt").write_text(SECRET)
    os.symlink(tmp_path, public / "up")
    mine = {"/data": str(public)}
    assert preopening(engine, guest, public / "..", preopened_dirs=mine).result == (1,)
    assert preopening(engine, guest, public / "up", preopened_dirs=mine).result == (1,)
    assert SECRET.strip() not in capfd.readouterr().out


def test_limits_and_permissions_no_looser_than_the_parents(
    engine: Engine, load: Callable[[str], Module]
) -> None:
    """A parent with max_memory = 4 pages may give its child 1 page, not unlimited (0) memory;
    a parent that may not compile modules cannot let its child."""
    module = load(LIMITS_GUEST)

    def attempt(memory: int, compile_: int, **config: object) -> int:
        process = spawn(engine, module, "try", (memory, compile_), **config)
        finished = engine.run_until_finished(process, timeout=30)
        assert finished is not None and finished.ok, finished
        engine.run(timeout=0.5)  # let a spawned child end
        return int(finished.result[0])

    assert attempt(PAGE, 0, max_memory=4 * PAGE) == 0
    assert attempt(0, 0, max_memory=4 * PAGE) == 1
    assert attempt(8 * PAGE, 0, max_memory=4 * PAGE) == 1
    assert attempt(PAGE, 1, max_memory=4 * PAGE) == 0  # permissive: may compile
    assert attempt(PAGE, 1, max_memory=4 * PAGE, can_compile_modules=False) == 1


@pytest.mark.parametrize(
    ("child", "parent", "reason"),
    [
        (EnvConfig(can_spawn_processes=True), EnvConfig(), "can_spawn_processes"),
        (EnvConfig(max_fuel=0), EnvConfig(max_fuel=10), "max_fuel unlimited is looser than its creator's 10"),
        (EnvConfig(max_mailbox=200), EnvConfig(max_mailbox=100), "max_mailbox 200"),
        (EnvConfig(max_processes=0), EnvConfig(max_processes=5), "max_processes unlimited"),
        (
            EnvConfig(allowed_namespaces=frozenset({"wasi"})),
            EnvConfig(allowed_namespaces=frozenset()),
            "wasi",
        ),
        (EnvConfig(net_connect=("*",)), EnvConfig(net_connect=("127.0.0.1:80",)), "net_connect rule '*'"),
        (EnvConfig(net_connect=("10.0.0.0/8",)), EnvConfig(net_connect=("10.1.0.0/16",)), "10.0.0.0/8"),
        (
            EnvConfig(net_bind=("127.0.0.1:8000-9000",)),
            EnvConfig(net_bind=("localhost:8000-8099",)),
            "net_bind",
        ),
        (EnvConfig(preopened_dirs={"/": "/"}), EnvConfig(preopened_dirs={"/tmp": "/tmp"}), "directory '/'"),
    ],
)
def test_what_a_config_grants_beyond_its_creator_is_named(
    child: EnvConfig, parent: EnvConfig, reason: str
) -> None:
    refusal = excess(child, parent)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (EnvConfig(max_fuel=5), EnvConfig(max_fuel=10)),
        (EnvConfig(max_memory=PAGE), EnvConfig()),
        (EnvConfig(net_connect=("10.1.2.0/24:80",)), EnvConfig(net_connect=("10.0.0.0/8",))),
        (EnvConfig(net_bind=("127.0.0.1:8000-8010",)), EnvConfig(net_bind=("localhost:8000-8099",))),
        (EnvConfig(net_connect=("[::1]:443",)), EnvConfig(net_connect=("*",))),
        (EnvConfig(preopened_dirs={"/t": "/tmp/../tmp"}), EnvConfig(preopened_dirs={"/": "/"})),
        (EnvConfig.permissive(), EnvConfig.permissive()),
    ],
)
def test_what_a_creator_holds_may_be_granted(child: EnvConfig, parent: EnvConfig) -> None:
    assert excess(child, parent) is None
