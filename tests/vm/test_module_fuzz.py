"""Malformed Wasm modules: truncated, bit-flipped, with a wrong magic or version, or valid but
with imports the host does not have or without the exports guests need.

Whatever the bytes, loading gives a :class:`~lunatic_mp.errors.ModuleError` with a message that
names the module and says what is wrong, or a module whose export signatures (read by
lunatic_mp.vm.binary, not by wasmtime) agree with wasmtime's: through :meth:`Engine.load_module`,
through a guest's ``lunatic::process::compile_module`` (an error id whose text is the same
message; the guest goes on), and through :meth:`Runtime.load_module`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunatic_mp import Engine, EnvConfig, Module, Outcome, Runtime
from lunatic_mp.errors import LunaticError, ModuleError, SpawnError

GUESTS = Path(__file__).parents[1] / "guests"
FUZZ = settings(
    derandomize=True,
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

BASES = [
    bytes(wasmtime.wat2wasm((GUESTS / name).read_text()))
    for name in (
        "rt_basic.wat",
        "spawn_compile.wat",
        "spawn_v128.wat",
        "abi_all_imports.wat",
        "wasi_guest.wat",
    )
]
"""Valid guests to mutate: between them every section kind lunatic_mp.vm.binary reads, v128
signatures, WASI and every lunatic import."""


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = Engine(max_processes=64)
    yield engine
    engine.close()
    assert not engine.host_errors, engine.host_errors


@st.composite
def mutated_modules(draw: st.DrawFn) -> bytes:
    """A valid guest with a few bytes flipped, set, inserted or deleted, or cut short."""
    data = bytearray(draw(st.sampled_from(BASES)))
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x60, 0x7B, 0x0B]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[at : at + draw(st.integers(1, 4))]
    return bytes(data)


def loads_or_module_error(engine: Engine, data: bytes) -> Module | None:
    """Load ``data``: a module whose signatures match wasmtime's exports, or a ModuleError
    naming it; anything else fails the test."""
    try:
        module = engine.load_module(data, name="fuzzed")
    except ModuleError as exc:
        assert str(exc).startswith("fuzzed "), exc
        assert len(str(exc)) > len("fuzzed is not a valid Wasm module: "), exc
        return None
    functions = {
        export.name for export in module.compiled.exports if isinstance(export.type, wasmtime.FuncType)
    }
    assert set(module.exports) == functions
    return module


@FUZZ
@given(data=mutated_modules())
def test_mutated_modules_load_or_raise_module_error(engine: Engine, data: bytes) -> None:
    loads_or_module_error(engine, data)


@FUZZ
@given(
    base=st.sampled_from(BASES),
    header=st.binary(min_size=8, max_size=8).filter(lambda head: head != b"\x00asm\x01\x00\x00\x00"),
)
def test_a_wrong_magic_or_version_is_a_module_error(engine: Engine, base: bytes, header: bytes) -> None:
    with pytest.raises(ModuleError, match=r"^fuzzed is not a valid Wasm module: "):
        engine.load_module(header + base[8:], name="fuzzed")


@FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_are_a_module_error(engine: Engine, data: bytes) -> None:
    """Random bytes (taken for WAT text unless they start with the magic) never load."""
    with pytest.raises(ModuleError, match=r"^fuzzed is not a valid Wasm module: "):
        engine.load_module(data, name="fuzzed")


def test_every_truncation_of_a_guest(engine: Engine) -> None:
    """Cut anywhere, a guest is a ModuleError (or, cut between sections, still a module)."""
    base = BASES[0]
    errors = sum(loads_or_module_error(engine, base[:end]) is None for end in range(len(base)))
    assert errors >= len(base) - 4  # at most a few cuts fall between sections


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (
            b"\x00asm\x01\x00\x00\x00\x01",
            "failed to parse WebAssembly module: unexpected end-of-file (at offset 0x9)",
        ),
        (b"\x00asm\x02\x00\x00\x00", "unknown binary version: 0x2 (at offset 0x4)"),
        (
            "(module (func (result i32)))",
            "failed to compile: wasm[0]::function[0]: WebAssembly translation error: ",
        ),
        ("(module (func (result i32)))", "type mismatch: expected i32 but nothing on stack"),
        ("(module (fnuc))", "expected valid module field (at <anon>:1:10)"),
    ],
)
def test_the_message_says_what_is_wrong_and_where(engine: Engine, source: str | bytes, reason: str) -> None:
    """wasmtime's causes and WAT positions make it into the one-line message."""
    with pytest.raises(ModuleError) as caught:
        engine.load_module(source, name="broken")
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


# -- valid modules the host cannot run ----------------------------------------------------------

MEMORY = '(memory (export "memory") 1)'
BAD_IMPORTS = [
    ('(import "lunatic::process" "no_such_function" (func))', "lunatic::process::no_such_function"),
    ('(import "lunatic::process" "process_id" (func (result i32)))', "lunatic::process::process_id"),
    ('(import "lunatic::message" "send" (func (param i32) (result i32)))', "lunatic::message::send"),
    ('(import "env" "memcpy" (func (param i32 i32 i32)))', "env::memcpy"),
    ('(import "lunatic::process" "spawn" (global i32))', "lunatic::process::spawn"),
    ('(import "lunatic::process" "memory" (memory 1))', "lunatic::process::memory"),
    ('(import "wasi_snapshot_preview1" "fd_write" (func (param i64)))', "wasi_snapshot_preview1::fd_write"),
]


def guest_with(imports: str, exports: str = MEMORY) -> str:
    return f'(module {imports} {exports} (func (export "main")))'


@pytest.mark.parametrize(("imports", "name"), BAD_IMPORTS, ids=[name for _, name in BAD_IMPORTS])
def test_an_import_the_host_lacks_is_a_module_error_naming_it(
    engine: Engine, imports: str, name: str
) -> None:
    with pytest.raises(ModuleError, match=r"^bad cannot be linked: ") as caught:
        engine.load_module(guest_with(imports), name="bad")
    assert name in str(caught.value).replace("`", "")


def test_missing_exports(engine: Engine) -> None:
    """No memory export: ModuleError at load; no such function: SpawnError at spawn, naming it."""
    with pytest.raises(ModuleError, match="does not export a memory named `memory`"):
        engine.load_module(guest_with("", exports=""), name="bare")
    module = engine.load_module(guest_with(""), name="plain")
    with pytest.raises(SpawnError, match="plain has no exported function `nope`"):
        engine.spawn(module, "nope", (), EnvConfig.permissive())


# -- through a guest's compile_module -----------------------------------------------------------

COMPILER = """
(module
  (import "lunatic::process" "compile_module" (func $compile (param i32 i32 i32) (result i32)))
  (import "lunatic::process" "drop_module" (func $drop_module (param i64)))
  (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
  (import "lunatic::message" "read_data" (func $read (param i32 i32) (result i32)))
  (import "lunatic::message" "data_size" (func $data_size (result i64)))
  (import "lunatic::error" "string_size" (func $error_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $error_text (param i64 i32)))
  (import "lunatic::error" "drop" (func $drop_error (param i64)))
  (import "lunatic::metrics" "increment_counter" (func $counter (param i32 i32)))
  (memory (export "memory") 8)
  ;; 0: module or error id, 1024: error text, 65536: the received bytes
  ;; Compiles each message's data until an empty message comes; each error's text becomes a
  ;; metrics counter (so the host can read it); returns how many compiled.
  (func (export "compile_each") (result i32)
    (local $size i32) (local $id i64) (local $compiled i32)
    (loop $next
      (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))
      (local.set $size (i32.wrap_i64 (call $data_size)))
      (if (i32.eqz (local.get $size)) (then (return (local.get $compiled))))
      (drop (call $read (i32.const 65536) (local.get $size)))
      (if (call $compile (i32.const 65536) (local.get $size) (i32.const 0))
        (then
          (local.set $id (i64.load (i32.const 0)))
          (call $error_text (local.get $id) (i32.const 1024))
          (call $counter (i32.const 1024) (call $error_size (local.get $id)))
          (call $drop_error (local.get $id)))
        (else
          (call $drop_module (i64.load (i32.const 0)))
          (local.set $compiled (i32.add (local.get $compiled) (i32.const 1)))))
      (br $next))
    (unreachable))
)
"""


@FUZZ
@given(
    modules=st.lists(mutated_modules().filter(lambda data: 0 < len(data) < 400_000), min_size=1, max_size=4)
)
def test_a_guest_compiling_malformed_modules_gets_error_ids_and_goes_on(
    engine: Engine, modules: list[bytes]
) -> None:
    """compile_module of each mutated module answers as Engine.load_module does: a module, or
    an error id whose text is the same ModuleError message; the guest runs on to the end."""
    compiler = engine.load_module(COMPILER)
    expected_errors: dict[str, int] = {}
    expected_compiled = 0
    for data in modules:
        try:
            engine.load_module(data, name="probe")
            expected_compiled += 1
        except ModuleError as exc:
            text = str(exc).split(": ", 1)[1]
            expected_errors[text] = expected_errors.get(text, 0) + 1
    engine.metrics.counters.clear()
    process = engine.spawn(compiler, "compile_each", (), EnvConfig.permissive())
    for data in [*modules, b""]:
        engine.send(process.pid, data)
    finished = engine.run_until_finished(process, timeout=60)
    assert finished is not None and finished.ok, finished
    assert finished.result == (expected_compiled,)
    reported = {name.split(": ", 1)[1]: count for name, count in engine.metrics.counters.items()}
    assert reported == expected_errors
    assert all(name.startswith("module compiled by ") for name in engine.metrics.counters)


def test_a_guest_compiling_a_module_with_bad_imports_gets_the_link_error(engine: Engine) -> None:
    compiler = engine.load_module(COMPILER)
    engine.metrics.counters.clear()
    process = engine.spawn(compiler, "compile_each", (), EnvConfig.permissive())
    engine.send(process.pid, bytes(wasmtime.wat2wasm(guest_with(BAD_IMPORTS[0][0]))))
    engine.send(process.pid, b"")
    finished = engine.run_until_finished(process, timeout=60)
    assert finished is not None and finished.ok and finished.result == (0,), finished
    (text,) = engine.metrics.counters
    assert "cannot be linked" in text and "no_such_function" in text, text


# -- through a runtime --------------------------------------------------------------------------


def test_a_runtime_refuses_malformed_modules_and_goes_on() -> None:
    """Runtime.load_module: malformed bytes are a ModuleError at once; a module that imports
    what the host lacks is refused at its first spawn (plugins are per environment, so only a
    spawn knows the imports it must satisfy) with a SpawnError naming the import; a guest on a
    worker compiling garbage gets error ids; the runtime serves the next spawn."""
    truncated = BASES[0][: len(BASES[0]) // 2]
    flipped = bytearray(BASES[1])
    flipped[len(flipped) // 3] ^= 0x40
    with Runtime(workers=1) as runtime:
        for data in (b"", b"\x00asm\x02\x00\x00\x00", truncated, b"\x7fELF" + bytes(60)):
            with pytest.raises(ModuleError, match=r"^garbage is not a valid Wasm module: "):
                runtime.load_module(data, name="garbage")
        unlinkable = runtime.load_module(guest_with(BAD_IMPORTS[0][0]), name="unlinkable")
        with pytest.raises(SpawnError, match=r"unlinkable cannot be linked: .*no_such_function"):
            runtime.spawn(unlinkable, "main", config=EnvConfig.permissive())
        compiler = runtime.load_module(COMPILER, name="compiler")
        pid = runtime.spawn(compiler, "compile_each", config=EnvConfig.permissive())
        for data in (truncated, bytes(flipped), BASES[0], b""):
            runtime.send(pid, data)
        finished = runtime.join(pid, 60)
        assert finished is not None and finished.outcome is Outcome.NORMAL, finished
        assert finished.result[0] == 1 + (loads(bytes(flipped)))
        good = runtime.load_module(GUESTS / "rt_basic.wat")
        added = runtime.join(runtime.spawn(good, "add", [40, 2]), 60)
        assert added is not None and added.result == (42,), added


def loads(data: bytes) -> int:
    """1 if ``data`` loads into a fresh engine, else 0."""
    engine = Engine(max_processes=1)
    try:
        engine.load_module(data)
        return 1
    except LunaticError:
        return 0
    finally:
        engine.close()
