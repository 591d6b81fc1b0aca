"""lunatic::process from a guest: permissions, configs, compile_module, and spawn's parameters."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from lunatic_mp import Engine, EnvConfig, Finished, Module, Outcome, Process

GUESTS = Path(__file__).parents[2] / "guests"
PAGE = 65536
SUM_CHILD = "sum_child"


@pytest.fixture
def spawned(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[Process]:
    """Every process the engine spawns (from Python or from guests), in order."""
    record: list[Process] = []
    original = engine.spawn

    def spawn(*args: Any, **kwargs: Any) -> Process:
        process = original(*args, **kwargs)
        record.append(process)
        return process

    monkeypatch.setattr(engine, "spawn", spawn)
    return record


def reported(engine: Engine) -> str:
    """The error texts guests reported as metrics counter names, joined."""
    return " | ".join(engine.metrics.counters)


# --- permissions ---------------------------------------------------------------------------------


def test_spawn_without_permission_traps(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """Without can_spawn_processes, spawn kills the caller with a clear message."""
    finished = run(load("spawn_perms.wat"), "try_spawn", can_spawn_processes=False)
    assert finished.outcome is Outcome.FAILED
    assert "not allowed to spawn" in finished.message, finished.message


def test_spawn_with_permission_works(
    load: Callable[[str], Module], run: Callable[..., Finished], spawned: list[Process]
) -> None:
    """With can_spawn_processes, the same call returns 0 and the child runs."""
    finished = run(load("spawn_perms.wat"), "try_spawn")
    assert finished.result == (0,)
    assert [p.function for p in spawned] == ["try_spawn", "child"]


def test_compile_module_without_permission_returns_minus_one(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """Without can_compile_modules, compile_module returns -1 and the guest goes on."""
    finished = run(load("spawn_perms.wat"), "try_compile", can_compile_modules=False)
    assert finished.ok, finished
    assert finished.result == (-1,)


def test_create_config_without_permission_returns_minus_one(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """Without can_create_configs, create_config returns -1; with it, a positive id."""
    module = load("spawn_perms.wat")
    assert run(module, "try_create_config", can_create_configs=False).result == (-1,)
    assert run(module, "try_create_config").result[0] > 0


def test_new_config_denies_everything(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """A config a guest creates has no limits set and every can_* flag off."""
    finished = run(load("spawn_perms.wat"), "new_config_settings")
    assert finished.result == (0, 0, 0, 0, 0)


def test_config_setters_and_getters_round_trip(
    load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """max_memory, max_fuel and each can_* flag read back what was set, then cleared."""
    finished = run(load("spawn_perms.wat"), "round_trip", (3 * PAGE, 42))
    assert finished.ok, finished
    assert finished.result == (3 * PAGE, 42, 1, 1, 1, 0, 0, 0)


def test_child_with_guest_created_config_cannot_spawn(
    load: Callable[[str], Module], run: Callable[..., Finished], spawned: list[Process]
) -> None:
    """A child spawned with a fresh config traps on spawn; its linked parent gets LinkDied (tag 5)."""
    finished = run(load("spawn_perms.wat"), "spawn_denied_child")
    assert finished.result == (0, 1, 5)
    child = spawned[1]
    assert child.function == "try_spawn"
    assert child.finished is not None
    assert child.finished.outcome is Outcome.FAILED
    assert "not allowed to spawn" in child.finished.message


def test_guest_created_config_applies_max_fuel(
    load: Callable[[str], Module], run: Callable[..., Finished], spawned: list[Process]
) -> None:
    """config_set_max_fuel on a created config limits the child spawned with it."""
    finished = run(load("spawn_perms.wat"), "spawn_fuel_limited_child")
    assert finished.result == (0, 1, 5)
    child = spawned[1].finished
    assert child is not None
    assert (child.outcome, child.message) == (Outcome.FAILED, "out of fuel")


def test_guest_created_config_applies_max_memory(
    load: Callable[[str], Module], run: Callable[..., Finished], spawned: list[Process]
) -> None:
    """config_set_max_memory on a created config makes the child's memory.grow return -1."""
    finished = run(load("spawn_perms.wat"), "spawn_memory_limited_child")
    assert finished.result[:2] == (0, 2)  # a normal death: only the monitor's ProcessDied arrives
    child = spawned[1].finished
    assert child is not None
    assert child.ok, child
    assert child.result == (-1,)


def test_guest_cannot_grant_itself_permissions(
    engine: Engine, load: Callable[[str], Module], spawned: list[Process]
) -> None:
    """Setting can_spawn_processes / max_fuel on its own config (id -1) gives a guest nothing:
    it dies (a setter or spawn traps), spawns no child, and the host's EnvConfig is untouched."""
    config = EnvConfig(max_fuel=5)
    process = engine.spawn(load("spawn_perms.wat"), "escalate", (), config)
    finished = engine.run_until_finished(process, timeout=10)
    assert finished is not None
    assert finished.outcome is Outcome.FAILED, finished
    assert len(spawned) == 1
    assert config == EnvConfig(max_fuel=5)


# --- compile_module ------------------------------------------------------------------------------

ANSWER_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "answer") (result i64) (i64.const 42)))
"""


def test_compile_module_then_spawn_it(
    engine: Engine, load: Callable[[str], Module], spawned: list[Process]
) -> None:
    """Wasm bytes sent to a guest compile to a module id; spawning its export runs that module."""
    compiler = engine.spawn(load("spawn_compile.wat"), "compile_and_spawn", (), EnvConfig.permissive())
    engine.send(compiler.pid, wasmtime.wat2wasm(ANSWER_WAT))
    finished = engine.run_until_finished(compiler, timeout=10)
    assert finished is not None
    assert finished.result == (0, 0)
    child = spawned[1]
    assert child.function == "answer"
    assert child.module is not compiler.module
    assert engine.run_until_finished(child, timeout=10) == Finished(Outcome.NORMAL, result=(42,))


def test_compile_garbage_returns_error_id(engine: Engine, load: Callable[[str], Module]) -> None:
    """Bytes that are not Wasm: compile_module returns 1 and the error text says why."""
    compiler = engine.spawn(load("spawn_compile.wat"), "compile_and_spawn", (), EnvConfig.permissive())
    engine.send(compiler.pid, b"\x00asm\x01\x00\x00\x00 this is not a module")
    finished = engine.run_until_finished(compiler, timeout=10)
    assert finished is not None
    assert finished.result == (1, -1)
    assert "not a valid Wasm module" in reported(engine)


def test_compile_module_that_cannot_link_returns_error(engine: Engine, load: Callable[[str], Module]) -> None:
    """A valid module importing an unknown host function is an error too, naming the import."""
    bad = '(module (import "lunatic::process" "teleport" (func)) (memory (export "memory") 1))'
    compiler = engine.spawn(load("spawn_compile.wat"), "compile_and_spawn", (), EnvConfig.permissive())
    engine.send(compiler.pid, wasmtime.wat2wasm(bad))
    finished = engine.run_until_finished(compiler, timeout=10)
    assert finished is not None
    assert finished.result == (1, -1)
    assert "teleport" in reported(engine)


def test_dropped_module_id_is_unknown(engine: Engine, load: Callable[[str], Module]) -> None:
    """After drop_module, spawning by that id traps: the id no longer names a module."""
    compiler = engine.spawn(load("spawn_compile.wat"), "spawn_dropped", (), EnvConfig.permissive())
    engine.send(compiler.pid, wasmtime.wat2wasm(ANSWER_WAT))
    finished = engine.run_until_finished(compiler, timeout=10)
    assert finished is not None
    assert finished.outcome is Outcome.FAILED
    assert "unknown module id" in finished.message, finished.message


# --- spawn parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [(7, 1 << 32), (-5, 3), (2**31 - 1, 2**62), (0, -(2**40))],
)
def test_i32_and_i64_params_reach_the_child(
    load: Callable[[str], Module], run: Callable[..., Finished], spawned: list[Process], a: int, b: int
) -> None:
    """The child gets (i32 a, i64 b, i64 parent pid) from 17-byte records and sends a + b back."""
    finished = run(load("spawn_params.wat"), "main", (a, b))
    assert finished.ok, finished
    assert finished.result == (0, a + b)
    child = spawned[1]
    assert child.function == SUM_CHILD
    assert child.finished is not None
    assert child.finished.result == (a + b,)


# Asking wasmtime's C API for a v128 value type's kind aborts the whole interpreter (a Rust
# panic), which a regression would turn into a crash of the test run: these tests run in a child
# interpreter and check how it ended.
V128_SPAWN = """
from lunatic_mp import Engine, EnvConfig
engine = Engine()
spawned = []
original = engine.spawn
engine.spawn = lambda *a, **k: spawned.append(original(*a, **k)) or spawned[-1]
parent = engine.spawn(engine.load_module(GUESTS / "spawn_v128.wat"), "main", (40, 2), EnvConfig.permissive())
assert engine.run_until_finished(parent, timeout=10).result == (0,), parent.finished
child = engine.run_until_finished(spawned[1], timeout=10)
assert child.result == (42,), child
print("OK")
"""

V128_COMPILE = """
import wasmtime
from lunatic_mp import Engine, EnvConfig
engine = Engine()
compiler = engine.spawn(
    engine.load_module(GUESTS / "spawn_compile.wat"), "compile_and_spawn", (), EnvConfig.permissive()
)
engine.send(compiler.pid, wasmtime.wat2wasm(WAT))
finished = engine.run_until_finished(compiler, timeout=10)
assert finished.result == (0, 0), finished
print("OK")
"""

V128_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "answer") (result i64) (i64.const 42))
  (func (export "takes_v128") (param v128)))
"""


def run_isolated(script: str, **values: object) -> subprocess.CompletedProcess[str]:
    prelude = "".join(f"{name} = {value!r}\n" for name, value in values.items())
    prelude += f"from pathlib import Path\nGUESTS = Path({str(GUESTS)!r})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + script], capture_output=True, text=True, timeout=60, check=False
    )


def test_v128_param_reaches_the_child() -> None:
    """A 0x7B record passes all 16 bytes: the child sees both i64 lanes and returns their sum."""
    result = run_isolated(V128_SPAWN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "OK"


def test_guest_compiling_a_v128_module_does_not_crash_the_host() -> None:
    """Guest input must never crash the host: a module with a v128 export compiles and spawns."""
    result = run_isolated(V128_COMPILE, WAT=V128_WAT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "OK"


@pytest.mark.parametrize(
    ("export", "reason"),
    [("bad_type", "unknown spawn parameter type 0x7d"), ("bad_length", "17-byte records")],
)
def test_malformed_params_trap(
    load: Callable[[str], Module],
    run: Callable[..., Finished],
    spawned: list[Process],
    export: str,
    reason: str,
) -> None:
    """An unknown type byte, or a length not a multiple of 17, traps the spawner; no child starts."""
    finished = run(load("spawn_params.wat"), export)
    assert finished.outcome is Outcome.FAILED
    assert reason in finished.message, finished.message
    assert len(spawned) == 1


def test_spawn_missing_export_returns_error(
    engine: Engine, load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """Spawning an export that does not exist returns 1; the error text names it."""
    finished = run(load("spawn_params.wat"), "missing_export")
    assert finished.ok, finished
    assert finished.result == (1,)
    assert "no_such_export" in reported(engine)


def test_spawn_wrong_param_count_returns_error(
    engine: Engine, load: Callable[[str], Module], run: Callable[..., Finished]
) -> None:
    """Too few parameters for the export returns 1 with a signature error, not a trap."""
    finished = run(load("spawn_params.wat"), "wrong_arity")
    assert finished.result == (1,)
    assert "takes 3 parameter(s)" in reported(engine)


def test_spawn_in_start_function_traps(
    load: Callable[[str], Module], run: Callable[..., Finished], spawned: list[Process]
) -> None:
    """Spawning while the module initializes traps: the process fails, saying so, and spawns nothing."""
    finished = run(load("spawn_start.wat"), "main")
    assert finished.outcome is Outcome.FAILED
    assert "initializing" in finished.message, finished.message
    assert len(spawned) == 1
