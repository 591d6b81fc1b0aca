"""Every host function fed hostile arguments (property-based, with hypothesis).

For each function the engine's linker registers (every ``lunatic::*`` namespace, found by
recording the linker's definitions, so a function added later is fuzzed too) and for the WASI
functions guests call most, a tiny guest imports it and calls it with drawn arguments:
out-of-bounds and wrapping pointers, huge lengths, garbage and barely valid resource ids, NaN
and infinite floats. Whatever the arguments, the call returns or traps the calling process with
a clear reason; no Python exception escapes a host function (``Engine.host_errors`` stays empty,
no trap says "host error"), and the engine stays usable: a fresh process still runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, NamedTuple
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lunatic_mp import Engine, EnvConfig, Finished, Module, Outcome
from lunatic_mp.vm import wasm
from lunatic_mp.vm.process import BaseProcess, Process

FUZZ = settings(
    derandomize=True,
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

WASM_TYPE = {"i": "i32", "I": "i64", "f": "f32", "F": "f64"}

PAGE = 65536
SCRATCH = 4096
"""Where out-parameters of the baseline calls go: in bounds, clear of the text below."""


def _layout(*pieces: bytes) -> tuple[bytes, list[tuple[int, int]]]:
    """The pieces laid out one after another (NUL between), and each one's (offset, length)."""
    data, spans = b"", []
    for piece in pieces:
        spans.append((len(data), len(piece)))
        data += piece + b"\x00"
    return data, spans


TEXT, (NAME, OK_EXPORT, METRIC, BAD_UTF8, DIR, KEY, VALUE, EMPTY_MODULE) = _layout(
    b"name@1.0.0",
    b"ok",
    b"counter.requests",
    b"\xff\xfe not UTF-8",
    b"/tmp",
    b"KEY",
    b"value",
    b"\x00asm\x01\x00\x00\x00",
)
"""The start of every fuzz guest's memory: names, text that is no UTF-8, and an empty module,
for pointers (and the baselines) to land on."""


class Signature(NamedTuple):
    namespace: str
    name: str
    params: str
    results: str

    def __str__(self) -> str:
        return f"{self.namespace}::{self.name}"


def lunatic_signatures() -> list[Signature]:
    """Every host function an engine defines, as its linker saw them: in Python, and in C (the
    scratch-buffer calls of lunatic::message, lunatic_mp/vm/message.c)."""
    seen: list[Signature] = []
    define = wasm.Linker._define

    def record(
        self: wasm.Linker, namespace: str, name: str, params: str, results: str, *a: Any, **k: Any
    ) -> None:
        seen.append(Signature(namespace, name, params, results))
        define(self, namespace, name, params, results, *a, **k)

    with mock.patch.object(wasm.Linker, "_define", record):
        engine = Engine(max_processes=1)
    seen += [Signature(*signature) for signature in engine.linker.native_signatures]
    engine.close()
    assert any(sig.name == "write_data" for sig in seen), "the C host functions were not recorded"
    return seen


# wasi_snapshot_preview1 comes from wasmtime itself; these are the calls that take pointers into
# guest memory (poll_oneoff is left out: a drawn clock subscription may ask it to sleep).
WASI = "wasi_snapshot_preview1"
WASI_SIGNATURES = [
    Signature(WASI, "args_sizes_get", "ii", "i"),
    Signature(WASI, "args_get", "ii", "i"),
    Signature(WASI, "environ_sizes_get", "ii", "i"),
    Signature(WASI, "environ_get", "ii", "i"),
    Signature(WASI, "clock_time_get", "iIi", "i"),
    Signature(WASI, "random_get", "ii", "i"),
    Signature(WASI, "fd_write", "iiii", "i"),
    Signature(WASI, "fd_read", "iiii", "i"),
    Signature(WASI, "fd_seek", "iIii", "i"),
    Signature(WASI, "fd_fdstat_get", "ii", "i"),
    Signature(WASI, "fd_prestat_get", "ii", "i"),
    Signature(WASI, "fd_prestat_dir_name", "iii", "i"),
    Signature(WASI, "path_open", "iiiiiIIii", "i"),
    Signature(WASI, "proc_exit", "i", ""),
]

SIGNATURES = lunatic_signatures() + WASI_SIGNATURES

# -- the arguments ------------------------------------------------------------------------------

I32_EDGES = [
    0,
    1,
    2,
    8,
    11,
    14,
    17,
    32,
    64,
    4096,
    PAGE - 8,
    PAGE - 1,
    PAGE,
    PAGE + 1,
    2**31 - 1,
    -1,
    -8,
    -(2**31),
]
I64_EDGES = [0, 1, 2, 3, 4, 5, -1, -2, 100, 2**32, 2**32 + 1, 2**48 + 1, 2**62, 2**63 - 1, -(2**63)]
"""Resource ids 1-5 are often valid (the guest creates a config first), -1 means "this
process's own" for configs and modules, the rest are out of bounds or garbage."""


def argument(kind: str) -> st.SearchStrategy[Any]:
    if kind == "i":
        return st.one_of(st.sampled_from(I32_EDGES), st.integers(-(2**31), 2**31 - 1))
    if kind == "I":
        return st.one_of(st.sampled_from(I64_EDGES), st.integers(-(2**63), 2**63 - 1))
    edges = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e-308]
    return st.one_of(st.sampled_from(edges), st.floats(allow_nan=True, allow_infinity=True))


BASELINES: dict[str, tuple[Any, ...]] = {
    "lunatic::process::compile_module": (*EMPTY_MODULE, SCRATCH),
    "lunatic::process::config_set_max_memory": (1, 1 << 20),
    "lunatic::process::config_set_max_fuel": (1, 10),
    "lunatic::process::spawn": (0, -1, -1, *OK_EXPORT, 0, 0, SCRATCH),
    "lunatic::process::get_or_spawn": (*NAME, 0, -1, -1, *OK_EXPORT, 0, 0, SCRATCH, SCRATCH + 8),
    "lunatic::message::write_data": (0, 32),
    "lunatic::message::read_data": (SCRATCH, 32),
    "lunatic::message::receive": (SCRATCH, 0, 0),
    "lunatic::registry::put": (*NAME, 0, 1),
    "lunatic::registry::get": (*NAME, SCRATCH, SCRATCH + 8),
    "lunatic::registry::remove": NAME,
    "lunatic::wasi::config_add_environment_variable": (1, *KEY, *VALUE),
    "lunatic::wasi::config_add_command_line_argument": (1, *VALUE),
    "lunatic::wasi::config_preopen_dir": (1, *DIR),
    "lunatic::metrics::counter": (*METRIC, 1),
    "lunatic::metrics::increment_counter": METRIC,
    "lunatic::metrics::gauge": (*METRIC, 1.5),
    "lunatic::metrics::histogram": (*METRIC, 1.5),
    "wasi_snapshot_preview1::random_get": (SCRATCH, 64),
    "wasi_snapshot_preview1::args_sizes_get": (SCRATCH, SCRATCH + 4),
}
"""A valid call of the functions whose deeper paths random arguments would rarely reach (a
spawn needs a dozen arguments right at once); examples mutate one or two of its arguments."""


@st.composite
def mutated(draw: st.DrawFn, baseline: tuple[Any, ...], kinds: str) -> tuple[Any, ...]:
    values = list(baseline)
    for index in draw(st.sets(st.integers(0, len(values) - 1), max_size=2)):
        values[index] = draw(argument(kinds[index]))
    return tuple(values)


def arguments(sig: Signature) -> st.SearchStrategy[tuple[Any, ...]]:
    anything = st.tuples(*(argument(kind) for kind in sig.params))
    baseline = BASELINES.get(str(sig))
    return anything if baseline is None else st.one_of(anything, mutated(baseline, sig.params))


def guest_source(sig: Signature) -> str:
    """A guest whose export ``call(prep, *args)`` prepares some state, then calls ``sig``.

    ``prep`` bit 0 makes a scratch message holding 32 bytes (so the message calls get past
    "no message"), bit 1 creates a config (id 1 or 2, depending on bit 0), bit 2 compiles no
    module but sends a message to itself first, so a receive finds one.
    """
    params = " ".join(WASM_TYPE[c] for c in sig.params)
    results = " ".join(WASM_TYPE[c] for c in sig.results)
    arg_decls = " ".join(f"(param {WASM_TYPE[c]})" for c in sig.params)
    gets = " ".join(f"(local.get {i + 1})" for i in range(len(sig.params)))
    drop = "(drop)" if sig.results else ""
    escaped = "".join(f"\\{b:02x}" for b in TEXT)
    return f"""
(module
  (import "{sig.namespace}" "{sig.name}" (func $target (param {params}) (result {results})))
  (import "lunatic::message" "create_data" (func $create_data (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write_data (param i32 i32) (result i32)))
  (import "lunatic::message" "send" (func $send (param i64) (result i32)))
  (import "lunatic::process" "create_config" (func $create_config (result i64)))
  (import "lunatic::process" "process_id" (func $process_id (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{escaped}")
  (func (export "ok") (result i32) (i32.const 42))
  (func (export "_lunatic_catch_trap") (param i32 i32) (result i32) (local.get 1))
  (func (export "call") (param i32) {arg_decls}
    (if (i32.and (local.get 0) (i32.const 4))
      (then
        (call $create_data (i64.const 5) (i64.const 0))
        (drop (call $write_data (i32.const 0) (i32.const 8)))
        (drop (call $send (call $process_id)))))
    (if (i32.and (local.get 0) (i32.const 1))
      (then
        (call $create_data (i64.const 7) (i64.const 0))
        (drop (call $write_data (i32.const 0) (i32.const 32)))))
    (if (i32.and (local.get 0) (i32.const 2))
      (then (drop (call $create_config))))
    (call $target {gets}) {drop}))
"""


BYSTANDER = '(module (memory (export "memory") 1) (func (export "ok") (result i32) (i32.const 42)))'


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """One engine for the whole file: it must survive everything the tests throw at it."""
    engine = Engine(max_processes=256)
    yield engine
    engine.close()


def settle(engine: Engine, process: BaseProcess) -> Finished:
    """Run until ``process`` ends, or suspends (a receive or sleep that waits): then kill it,
    which must end it at once."""
    engine.scheduler.run(until=lambda: process.finished is not None or process.waiting, timeout=30)
    if process.finished is None:
        assert process.waiting, f"{process} neither finished nor suspended"
        assert engine.kill(process.pid, "fuzz: done waiting")
    assert process.finished is not None
    return process.finished


def check_alive(engine: Engine, bystander: Module) -> None:
    process = engine.spawn(bystander, "ok", (), EnvConfig())
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None and finished.ok and finished.result == (42,), finished


@pytest.mark.parametrize("sig", SIGNATURES, ids=str)
def test_hostile_arguments_return_or_trap_cleanly(engine: Engine, sig: Signature) -> None:
    module = engine.load_module(guest_source(sig))
    bystander = engine.load_module(BYSTANDER)
    outcomes: set[Outcome] = set()

    @FUZZ
    @given(prep=st.integers(0, 7), args=arguments(sig))
    def call(prep: int, args: tuple[Any, ...]) -> None:
        process = engine.spawn(module, "call", (prep, *args), EnvConfig.permissive())
        finished = settle(engine, process)
        outcomes.add(finished.outcome)
        if finished.outcome is Outcome.FAILED:
            assert finished.message.strip(), "a trap must say why"
            assert "host error" not in finished.message, finished.message
        assert not engine.host_errors, engine.host_errors
        # whatever the call did, every process it left behind can be killed and the engine runs on
        for pid in [pid for pid in engine.processes if pid != process.pid]:
            engine.kill(pid, "fuzz: clean up")
        check_alive(engine, bystander)

    call()
    assert outcomes, "no example ran"
    assert not engine.host_errors, engine.host_errors
    assert not engine.processes, f"left behind: {engine.processes}"


def test_every_lunatic_namespace_is_fuzzed() -> None:
    """The recording sees the whole ABI (a namespace lost here would go unfuzzed silently)."""
    namespaces = {sig.namespace for sig in SIGNATURES}
    for expected in (
        "process",
        "message",
        "timer",
        "registry",
        "error",
        "version",
        "trap",
        "wasi",
        "metrics",
    ):
        assert f"lunatic::{expected}" in namespaces
    assert WASI in namespaces
    names = {str(sig) for sig in SIGNATURES}
    assert {"lunatic::process::spawn", "lunatic::message::receive", "lunatic::registry::get"} <= names


def test_the_baselines_match_their_functions() -> None:
    """Each baseline names a fuzzed function and has one value per parameter."""
    params = {str(sig): sig.params for sig in SIGNATURES}
    for name, baseline in BASELINES.items():
        assert name in params, name
        assert len(baseline) == len(params[name]), name


SPAWN_WITH = f"""
(module
  (import "lunatic::process" "create_config" (func $create_config (result i64)))
  (import "lunatic::process" "config_set_max_memory" (func $set_memory (param i64 i64)))
  (import "lunatic::process" "config_set_max_fuel" (func $set_fuel (param i64 i64)))
  (import "lunatic::process" "config_set_can_spawn_processes" (func $set_spawn (param i64 i32)))
  (import "lunatic::process" "config_set_can_compile_modules" (func $set_compile (param i64 i32)))
  (import "lunatic::process" "config_set_can_create_configs" (func $set_configs (param i64 i32)))
  (import "lunatic::process" "spawn"
    (func $spawn (param i64 i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const {OK_EXPORT[0]}) "ok")
  (func (export "ok") (result i32) (i32.const 42))
  (func (export "spawn_with") (param $memory i64) (param $fuel i64) (param $flags i32) (param $link i64)
    (result i32)
    (local $config i64)
    (local.set $config (call $create_config))
    (call $set_memory (local.get $config) (local.get $memory))
    (call $set_fuel (local.get $config) (local.get $fuel))
    (call $set_spawn (local.get $config) (i32.and (local.get $flags) (i32.const 1)))
    (call $set_compile (local.get $config) (i32.and (local.get $flags) (i32.const 2)))
    (call $set_configs (local.get $config) (i32.and (local.get $flags) (i32.const 4)))
    (call $spawn (local.get $link) (local.get $config) (i64.const -1)
      (i32.const {OK_EXPORT[0]}) (i32.const {OK_EXPORT[1]}) (i32.const 0) (i32.const 0)
      (i32.const {SCRATCH}))))
"""


def test_children_of_hostile_configs_start_or_fail_cleanly(engine: Engine) -> None:
    """A config with any max_memory and max_fuel (zero, tiny, past what the pool holds, past
    i64) makes a child that runs or fails with a reason (too little memory to start, out of
    fuel), or a spawn that fails with an error id; never a crash."""
    module = engine.load_module(SPAWN_WITH)
    bystander = engine.load_module(BYSTANDER)
    children: set[Outcome] = set()
    ends: list[str] = []  # how each child ended, for the message should the last assertion fail
    spawned: list[BaseProcess] = []  # every process the engine made, the guests' children included
    spawn_and_record = engine.spawn

    def recorded(*args: Any, **kwargs: Any) -> Process:
        process = spawn_and_record(*args, **kwargs)
        spawned.append(process)
        return process

    # A child may run and end in the round its parent ends in (the runner goes on through the
    # processes a round woke): the test looks at every one made, not at those still live.
    engine.spawn = recorded  # type: ignore[method-assign]

    @FUZZ
    @example(memory=1, fuel=0, flags=0, link=0)  # too little memory for the child to start: it fails
    @example(memory=0, fuel=0, flags=0, link=0)  # the defaults: it runs
    @given(
        memory=argument("I"),
        fuel=st.one_of(st.sampled_from([0, 1, 2**54, 2**63 - 1, -1]), argument("I")),
        flags=st.integers(0, 7),
        link=st.sampled_from([0, 1, -1]),
    )
    def spawn(memory: int, fuel: int, flags: int, link: int) -> None:
        spawned.clear()
        parent = engine.spawn(module, "spawn_with", (memory, fuel, flags, link), EnvConfig.permissive())
        finished = settle(engine, parent)
        assert finished.ok, finished
        (result,) = finished.result
        assert result in (0, 1), result  # OK, or ERROR with an error id
        for child in [process for process in spawned if process is not parent]:
            ended = settle(engine, child)
            children.add(ended.outcome)
            ends.append(str(ended))
            assert ended.ok or ended.message.strip(), ended
            assert "host error" not in ended.message, ended
        assert not engine.host_errors, engine.host_errors
        check_alive(engine, bystander)

    spawn()
    assert {Outcome.NORMAL, Outcome.FAILED} <= children, (children, ends)
