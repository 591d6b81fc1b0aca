"""The engine's Python API: spawning errors, signatures, sending, killing, closing, Finished."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import start

from lunatic_mp import (
    CapacityError,
    Engine,
    EngineClosed,
    EnvConfig,
    Finished,
    Module,
    Outcome,
    PermissionDenied,
    SignatureError,
    SpawnError,
)
from lunatic_mp.errors import LunaticError
from lunatic_mp.vm.wasm import I32, I64

GUESTS = Path(__file__).parents[1] / "guests"
GUEST = "sig_exit.wat"


@pytest.fixture
def ends(load: Callable[[str], Module]) -> Module:
    return load(GUEST)


# --- spawning -------------------------------------------------------------------------------------


def test_spawn_missing_export(engine: Engine, ends: Module) -> None:
    """Spawning a function the module does not export raises SpawnError naming it."""
    with pytest.raises(SpawnError, match="no_such_function"):
        start(engine, ends, "no_such_function")
    assert not engine.processes


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ((), "takes 2 parameter"),
        ((1,), "takes 2 parameter"),
        ((1, 2, 3), "takes 2 parameter"),
        ((1.5, 2), "parameter 0 is i64"),
        ((1, 2.0), "parameter 1 is i32"),
        ((True, 2), "parameter 0 is i64"),
        (("1", 2), "parameter 0 is i64"),
        ((1, 2**32), "does not fit in i32"),
        ((2**64, 1), "does not fit in i64"),
        (((I32, 1), 2), "parameter 0 is i64, got i32"),
    ],
)
def test_spawn_wrong_signature(engine: Engine, ends: Module, params: tuple[object, ...], match: str) -> None:
    """Parameters that do not match the export's (i64, i32) signature raise SignatureError,
    a SpawnError, and leave no process behind."""
    with pytest.raises(SignatureError, match=match) as raised:
        start(engine, ends, "pair", *params)
    assert isinstance(raised.value, SpawnError)
    assert not engine.processes


@pytest.mark.parametrize(
    ("params", "result"),
    [
        ((5, 6), (6, 5)),
        ((-1, -1), (-1, -1)),
        ((2**64 - 1, 2**32 - 1), (-1, -1)),  # unsigned values of the parameter's width wrap
        (((I64, 9), (I32, 8)), (8, 9)),  # (kind, value) pairs as decoded from the ABI
    ],
)
def test_spawn_matching_signature(
    engine: Engine, ends: Module, params: tuple[object, ...], result: tuple[int, int]
) -> None:
    """Parameters of the right count and types reach the export."""
    process = start(engine, ends, "pair", *params)
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None
    assert finished.result == result


def test_spawn_at_capacity() -> None:
    """An engine at max_processes refuses to spawn with CapacityError, and accepts again once a
    process has ended."""
    engine = Engine(max_processes=1)
    try:
        module = engine.load_module(GUESTS / GUEST)
        parked = start(engine, module, "park")
        with pytest.raises(CapacityError, match="capacity"):
            start(engine, module, "answer")
        assert list(engine.processes) == [parked.pid]
        engine.kill(parked.pid)
        process = start(engine, module, "answer")
        assert engine.run_until_finished(process, timeout=30) is not None
    finally:
        engine.close()


def test_spawn_denied_namespace(engine: Engine, ends: Module) -> None:
    """A config that denies a host namespace the module imports refuses to spawn it."""
    config = EnvConfig(allowed_namespaces=frozenset({"wasi"}))
    with pytest.raises(PermissionDenied, match="message"):
        engine.spawn(ends, "answer", (), config)
    assert not engine.processes


def test_host_errors_share_a_root(engine: Engine, ends: Module) -> None:
    """Every error of the engine API can be caught as LunaticError."""
    for function, params in [("no_such_function", ()), ("pair", (1,))]:
        with pytest.raises(LunaticError):
            start(engine, ends, function, *params)


# --- sending and killing --------------------------------------------------------------------------


def test_send_to_unknown_pid(engine: Engine) -> None:
    """engine.send to a pid with no process returns False."""
    assert engine.send(engine.pid_base | 12345, b"hello", 1) is False


def test_send_to_live_and_dead_process(engine: Engine, ends: Module) -> None:
    """engine.send delivers data and tag to a live process (True), and returns False once it
    has ended."""
    process = start(engine, ends, "receive_one")
    engine.run(timeout=30)  # it is now waiting in receive
    assert engine.send(process.pid, b"abc", 5) is True
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None
    assert finished.result == (0, 5, 3)  # data message, tag 5, 3 bytes
    assert engine.send(process.pid, b"late") is False


def test_send_before_the_process_runs(engine: Engine, ends: Module) -> None:
    """A message sent before the process first runs waits in its mailbox."""
    process = start(engine, ends, "receive_one")
    assert engine.send(process.pid, b"early", 9)
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None and finished.result == (0, 9, 5)


def test_kill_unknown_pid(engine: Engine) -> None:
    """engine.kill of a pid with no process returns False."""
    assert engine.kill(engine.pid_base | 12345) is False


def test_kill_before_the_process_runs(engine: Engine, ends: Module) -> None:
    """A process killed before it ever ran ends KILLED and never runs."""
    process = start(engine, ends, "answer")
    assert engine.kill(process.pid)
    engine.run(timeout=30)
    assert process.finished is not None
    assert process.finished.outcome is Outcome.KILLED
    assert process.finished.result == ()


def test_run_until_finished_returns_none_when_stuck(engine: Engine, ends: Module) -> None:
    """run_until_finished returns None (at once, not after the timeout) for a process that waits
    for a message nobody can send."""
    process = start(engine, ends, "park")
    assert engine.run_until_finished(process, timeout=30) is None
    assert process.alive


# --- closing --------------------------------------------------------------------------------------


def test_close_kills_everything(engine: Engine, ends: Module) -> None:
    """close() kills every process, waiting or not yet started, and refuses new ones."""
    waiting = [start(engine, ends, "park") for _ in range(3)]
    engine.run(timeout=30)
    never_ran = start(engine, ends, "answer")
    engine.close()
    assert not engine.processes
    for process in [*waiting, never_ran]:
        assert process.finished is not None
        assert process.finished.outcome is Outcome.KILLED
        assert process.finished.message == "engine closed"
    with pytest.raises(EngineClosed):
        start(engine, ends, "answer")
    assert engine.send(waiting[0].pid, b"x") is False


def test_close_with_links(engine: Engine, ends: Module) -> None:
    """close() also ends processes linked to each other (the cascade must not trip over ones
    already dead)."""
    parent = start(engine, ends, "park")
    children = [
        engine.spawn(ends, "park", (), EnvConfig.permissive(), link=(parent, i + 1)) for i in range(3)
    ]
    engine.run(timeout=30)
    engine.close()
    assert not engine.processes
    assert all(not p.alive for p in [parent, *children])


def test_a_process_makes_its_containers_only_when_it_uses_them(engine: Engine, ends: Module) -> None:
    """An idle process holds no empty dicts, sets or lists (issue 17: each is 56-216 bytes, and a
    container the garbage collector counts); a link makes its links, a death reads without making."""
    parent = start(engine, ends, "park")
    engine.run(timeout=30)
    unused = ("_links", "_timers", "_on_exit", "_frames", "_monitoring", "_monitored_by", "_blocked_on")
    assert [name for name in unused if getattr(parent, name) is not None] == []
    child = engine.spawn(ends, "park", (), EnvConfig.permissive(), link=(parent, 7))
    assert parent.links == {child.pid: 7} and child.links == {parent.pid: 7}
    engine.kill(parent.pid)
    engine.run(timeout=30)
    assert not parent.alive and not child.alive
    assert parent._timers is None and parent._on_exit is None


def test_closed_engine_releases_its_capacity() -> None:
    """A closed and dropped engine gives its memory mappings back at once: the next engine gets
    (about) the same default capacity."""
    gc.collect()  # start from a clean slate: no engines of earlier tests waiting to be collected
    first = Engine()
    capacity = first.capacity
    first.close()
    del first
    second = Engine()
    try:
        assert second.capacity >= capacity * 9 // 10
    finally:
        second.close()


# --- Finished -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finished", "text"),
    [
        (Finished(Outcome.NORMAL), "finished normally"),
        (Finished(Outcome.NORMAL, result=(42, 7)), "finished normally with (42, 7)"),
        (Finished(Outcome.KILLED, message="killed by process 3"), "killed: killed by process 3"),
        (Finished(Outcome.FAILED, message="exited with code 3", exit_code=3), "failed: exited with code 3"),
        (Finished(Outcome.KILLED), "killed"),
        (Finished(Outcome.FAILED), "failed"),
    ],
)
def test_finished_str(finished: Finished, text: str) -> None:
    """str(Finished) is a short readable sentence: the outcome, then the result or reason."""
    assert str(finished) == text


def test_finished_str_of_a_real_trap(engine: Engine, ends: Module) -> None:
    """str() of a trapped process's Finished says it failed and why, on one line."""
    process = start(engine, ends, "trap")
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None
    text = str(finished)
    assert text.startswith("failed: ")
    assert "unreachable" in text
    assert "\n" not in text


def test_host_memory_access_follows_a_grown_memory() -> None:
    """A host function's view of the guest's memory (wasm.Memory) is re-read when an access falls
    past the size it last saw: the guest may have grown; past the size it traps the guest."""
    from lunatic_mp.vm.host._common import current, memory_of
    from lunatic_mp.vm.wasm import GuestTrap

    engine = Engine()
    seen: list[tuple[bytes, int, str]] = []

    def probe(ptr: int) -> None:
        memory = memory_of(current(engine), engine)  # type: ignore[arg-type]
        memory.write_u64(ptr, 0x1122334455667788)
        memory.write_u32(ptr + 8, 7)
        memory.write(ptr + 12, b"abc")
        assert memory.read_into(ptr + 15, b"xyz", 1, 5) == 2
        try:
            memory.read(memory.size - 4, 8)
        except GuestTrap as trap:
            seen.append((memory.read(ptr, 17), memory.size, str(trap)))

    engine.linker.define("test", "probe", "i", "", probe)
    module = engine.load_module(
        '(module (import "test" "probe" (func $probe (param i32))) (memory (export "memory") 1)'
        ' (func (export "main") (call $probe (i32.const 100)) (drop (memory.grow (i32.const 1)))'
        " (call $probe (i32.const 65540))))"
    )
    try:
        finished = engine.run_until_finished(engine.spawn(module, "main"))
        assert finished is not None and finished.ok, finished
        data = bytes.fromhex("8877665544332211") + b"\x07\0\0\0abcyz"
        assert [(d, s) for d, s, _ in seen] == [(data, 65536), (data, 131072)]
        assert "exceeds memory size 131072" in seen[1][2]
    finally:
        engine.close()
