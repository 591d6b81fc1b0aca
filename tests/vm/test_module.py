"""Loading modules: from a path, bytes or WAT text, and the clear errors for bad ones."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from lunatic_mp import (
    Engine,
    EnvConfig,
    Finished,
    Module,
    ModuleError,
    Outcome,
    PermissionDenied,
    SignatureError,
    SpawnError,
)
from lunatic_mp.vm.module import ModuleCache

ANSWER = """
;; A minimal guest: `answer(x)` returns x + 1.
(module
  (memory (export "memory") 1)
  (func (export "answer") (param $x i64) (result i64)
    (i64.add (local.get $x) (i64.const 1))))
"""

METRICS_USER = """
(module
  (import "lunatic::metrics" "increment_counter" (func $counter (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hits")
  (func (export "main") (call $counter (i32.const 0) (i32.const 4))))
"""

WASI_USER = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "main") (call $exit (i32.const 0))))
"""


def answer_of(engine: Engine, module: Module, x: int = 41) -> Finished:
    process = engine.spawn(module, "answer", (x,), EnvConfig.permissive())
    finished = engine.run_until_finished(process, timeout=10)
    assert finished is not None
    return finished


# --- sources -------------------------------------------------------------------------------------


def test_load_from_wat_text(engine: Engine) -> None:
    """WAT text compiles; the module knows its exports' signatures and runs."""
    module = engine.load_module(ANSWER)
    assert module.exports["answer"] == ("I", "I")
    assert module.namespaces == frozenset()
    assert answer_of(engine, module) == Finished(Outcome.NORMAL, result=(42,))


def test_load_from_bytes(engine: Engine) -> None:
    """Wasm binary bytes compile the same way, under the given name."""
    module = engine.load_module(wasmtime.wat2wasm(ANSWER), name="answer-bytes")
    assert module.name == "answer-bytes"
    assert answer_of(engine, module, 1).result == (2,)


@pytest.mark.parametrize("suffix", [".wasm", ".wat"])
@pytest.mark.parametrize("as_text", [False, True], ids=["Path", "str"])
def test_load_from_path(engine: Engine, tmp_path: Path, suffix: str, as_text: bool) -> None:
    """A .wasm or .wat file loads from a Path or a path string; the module is named after it."""
    path = tmp_path / f"answer{suffix}"
    if suffix == ".wasm":
        path.write_bytes(wasmtime.wat2wasm(ANSWER))
    else:
        path.write_text(ANSWER)
    module = engine.load_module(str(path) if as_text else path)
    assert module.name == path.name
    assert answer_of(engine, module).result == (42,)


def test_load_guest_fixture(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """The load fixture's two forms (file name, inline WAT) give working modules."""
    without_comment = ANSWER.strip().split("\n", 1)[1]  # the fixture takes text starting with "("
    assert run(load(without_comment), "answer", (1,)).result == (2,)
    assert run(load("ping_pong.wat"), "main", (2,)).result == (2,)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"hello, not wasm", b"\x00asm\x01\x00\x00\x00\xff\xff", b"\x00asm\x63\x00\x00\x00"],
    ids=["empty", "text", "bad-section", "bad-version"],
)
def test_malformed_bytes(engine: Engine, data: bytes) -> None:
    """Bytes that are not a Wasm module raise ModuleError saying so, naming the module."""
    with pytest.raises(ModuleError, match=r"garbage is not a valid Wasm module: \S"):
        engine.load_module(data, name="garbage")


def test_malformed_wat(engine: Engine) -> None:
    """WAT text that does not parse raises ModuleError, not a wasmtime exception."""
    with pytest.raises(ModuleError, match="not a valid Wasm module"):
        engine.load_module('(module (func (export "f") (i32.add)')


def test_invalid_module_fails_validation(engine: Engine) -> None:
    """A module that parses but does not validate (type mismatch) is a ModuleError too."""
    with pytest.raises(ModuleError, match="not a valid Wasm module"):
        engine.load_module('(module (memory (export "memory") 1) (func (result i32) (i64.const 1)))')


@pytest.mark.parametrize(
    "wat",
    [
        '(module (func (export "main")))',
        '(module (memory (export "mem") 1) (func (export "main")))',
        '(module (memory 1) (func (export "memory")))',
    ],
    ids=["no-memory", "memory-misnamed", "memory-is-a-function"],
)
def test_module_without_memory_export(engine: Engine, wat: str) -> None:
    """Guests must export their memory as `memory`; otherwise ModuleError says so."""
    with pytest.raises(ModuleError, match="does not export a memory named `memory`"):
        engine.load_module(wat)


def test_unknown_host_function(engine: Engine) -> None:
    """Importing a function the host does not have is a ModuleError naming that import."""
    wat = '(module (import "lunatic::process" "teleport" (func (param i64))) (memory (export "memory") 1))'
    with pytest.raises(ModuleError, match="teleport") as info:
        engine.load_module(wat, name="teleporter")
    assert "teleporter cannot be linked" in str(info.value)
    assert "lunatic::process" in str(info.value)


def test_host_function_with_wrong_signature(engine: Engine) -> None:
    """Importing a real host function with the wrong type is a ModuleError naming it."""
    wat = '(module (import "lunatic::process" "process_id" (func (result i32))) (memory (export "memory") 1))'
    with pytest.raises(ModuleError, match="process_id"):
        engine.load_module(wat)


def test_unknown_namespace(engine: Engine) -> None:
    """A lunatic:: namespace that does not exist cannot be linked either."""
    wat = '(module (import "lunatic::teleport" "go" (func)) (memory (export "memory") 1))'
    with pytest.raises(ModuleError, match="lunatic::teleport"):
        engine.load_module(wat)


@pytest.mark.parametrize("as_text", [False, True], ids=["Path", "str"])
def test_missing_file(engine: Engine, tmp_path: Path, as_text: bool) -> None:
    """A path that does not exist raises ModuleError naming the file with its directory (as
    given), not FileNotFoundError."""
    path = tmp_path / "missing.wasm"
    with pytest.raises(ModuleError, match=f"cannot read module {re.escape(str(path))}: No such file"):
        engine.load_module(str(path) if as_text else path)


def test_directory_instead_of_file(engine: Engine, tmp_path: Path) -> None:
    """A directory is not a module file: ModuleError as well."""
    with pytest.raises(ModuleError, match="cannot read module"):
        engine.load_module(tmp_path)


def test_garbage_file(engine: Engine, tmp_path: Path) -> None:
    """A file of garbage raises ModuleError naming the file."""
    path = tmp_path / "junk.wasm"
    path.write_bytes(b"\x7fELF not wasm at all")
    with pytest.raises(ModuleError, match=r"junk\.wasm is not a valid Wasm module"):
        engine.load_module(path)


# --- namespaces and spawning ---------------------------------------------------------------------


def test_imported_namespaces_are_recorded(engine: Engine) -> None:
    """Module.namespaces lists the lunatic:: namespaces it imports; WASI counts as `wasi`."""
    assert engine.load_module(METRICS_USER).namespaces == frozenset({"metrics"})
    wasi = engine.load_module(WASI_USER)
    assert wasi.namespaces == frozenset({"wasi"})
    assert wasi.uses_wasi


def test_denied_namespace_is_refused_at_spawn(engine: Engine) -> None:
    """Spawning a module that imports a namespace the config does not allow raises PermissionDenied."""
    module = engine.load_module(METRICS_USER, name="counter")
    config = EnvConfig.permissive(allowed_namespaces=frozenset({"process", "message"}))
    with pytest.raises(PermissionDenied, match="metrics") as info:
        engine.spawn(module, "main", (), config)
    assert "counter" in str(info.value)
    assert not engine.processes


def test_denied_wasi_is_refused_at_spawn(engine: Engine) -> None:
    """WASI imports need `wasi` in allowed_namespaces."""
    module = engine.load_module(WASI_USER)
    with pytest.raises(PermissionDenied, match="wasi"):
        engine.spawn(module, "main", (), EnvConfig.permissive(allowed_namespaces=frozenset({"metrics"})))
    assert not engine.processes


def test_allowed_namespace_spawns(engine: Engine) -> None:
    """The same module spawns and runs when its namespace is allowed."""
    module = engine.load_module(METRICS_USER)
    config = EnvConfig.permissive(allowed_namespaces=frozenset({"metrics"}))
    finished = engine.run_until_finished(engine.spawn(module, "main", (), config), timeout=10)
    assert finished is not None
    assert finished.ok
    assert engine.metrics.counters == {"hits": 1}


def test_spawn_missing_export_from_python(engine: Engine) -> None:
    """Spawning an export the module lacks raises SpawnError naming it; nothing is left behind."""
    module = engine.load_module(ANSWER, name="answer")
    with pytest.raises(SpawnError, match="answer has no exported function `nope`"):
        engine.spawn(module, "nope", (), EnvConfig.permissive())
    assert not engine.processes


@pytest.mark.parametrize(("params", "match"), [((), "takes 1 parameter"), ((1.5,), "i64"), ((2**64,), "fit")])
def test_spawn_with_wrong_params_from_python(engine: Engine, params: tuple[object, ...], match: str) -> None:
    """Parameters that do not match the export's signature raise SignatureError."""
    module = engine.load_module(ANSWER)
    with pytest.raises(SignatureError, match=match):
        engine.spawn(module, "answer", params, EnvConfig.permissive())
    assert not engine.processes


SIGNATURES = """
(module
  (import "lunatic::process" "process_id" (func $pid (result i64)))
  (import "lunatic::version" "major" (func $major (result i32)))
  (memory (export "memory") 1)
  (type $unused (func (param f32 f64)))
  (func (export "many") (param i32 i64 f32 f64) (result i64 i32) (i64.const 1) (i32.const 2))
  (func (export "vector") (param v128) (result v128) (local.get 0))
  (func (export "reference") (param externref))
  (export "pid" (func $pid))
  (export "major" (func $major)))
"""


def test_export_signatures(engine: Engine) -> None:
    """Signatures of exports (own functions, re-exported imports, v128 and references) are read right."""
    module = engine.load_module(SIGNATURES)
    assert module.exports == {
        "many": ("iIfF", "Ii"),
        "vector": ("v", "v"),
        "reference": ("r", ""),
        "pid": ("", "I"),
        "major": ("", "i"),
    }


def test_reexported_host_function_can_be_spawned(engine: Engine) -> None:
    """An export that is an imported host function itself runs: `pid` returns the process id."""
    module = engine.load_module(SIGNATURES)
    process = engine.spawn(module, "pid", (), EnvConfig.permissive())
    finished = engine.run_until_finished(process, timeout=10)
    assert finished == Finished(Outcome.NORMAL, result=(process.pid,))


def test_reference_parameter_cannot_be_passed(engine: Engine) -> None:
    """An export taking a reference type cannot be spawned: SignatureError, not a crash."""
    module = engine.load_module(SIGNATURES)
    with pytest.raises(SignatureError):
        engine.spawn(module, "reference", (0,), EnvConfig.permissive())


def test_v128_result_keeps_its_place(engine: Engine) -> None:
    """An export returning (v128, i32) reports two results, the i32 second, not just (7,)."""
    module = engine.load_module(
        '(module (memory (export "memory") 1)'
        ' (func (export "v") (param v128) (result v128 i32) (local.get 0) (i32.const 7)))'
    )
    process = engine.spawn(module, "v", (bytes(range(16)),), EnvConfig.permissive())
    finished = engine.run_until_finished(process, timeout=10)
    assert finished is not None
    assert finished.ok
    assert len(finished.result) == 2
    assert finished.result[1] == 7


def test_module_cache_keeps_the_name_a_module_was_loaded_under(tmp_path: Path) -> None:
    """Another worker loads a module by digest; it reports it under its original name."""
    engine = Engine(max_processes=2)
    try:
        module = engine.load_module(ANSWER, name="answer.wat")
        cache = ModuleCache(tmp_path)
        digest = cache.store(module)
        loaded = cache.load(engine.wasm_engine, digest)
        assert loaded.name == "answer.wat"
        assert loaded.digest == module.digest
        assert cache.load(engine.wasm_engine, digest, "renamed").name == "renamed"
        with pytest.raises(ModuleError, match="not in the runtime's module cache"):
            cache.load(engine.wasm_engine, b"\0" * len(digest))
    finally:
        engine.close()
