"""Python host functions behind C trampolines (lunatic_mp/vm/pyhost.c): arguments and results of
every kind, traps, host errors, suspension, and the checks on a definition."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from lunatic_mp.vm import core, wasm
from lunatic_mp.vm.engine import Engine
from lunatic_mp.vm.wasm import PENDING, GuestTrap


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()


def run(engine: Engine, wat: str, *params: Any) -> Any:
    module = engine.load_module(
        wat.replace(' (func (export "main")', ' (memory (export "memory") 1) (func (export "main")', 1)
    )
    finished = engine.run_until_finished(engine.spawn(module, "main", params), timeout=30)
    assert finished is not None
    return finished


def test_arguments_arrive_as_the_guest_passed_them_and_results_wrap_like_wasm(engine: Engine) -> None:
    seen: list[tuple[Any, ...]] = []

    def take(a: int, b: int, c: float, d: float) -> int:
        seen.append((a, b, c, d))
        return 2**32 + 2**31 + 5  # i32: the low 32 bits, as a signed value

    engine.linker.define("test", "take", "iIfF", "i", take)
    engine.linker.define("test", "wide", "", "I", lambda: -(2**63) - 3)  # wraps to 2**63 - 3
    engine.linker.define("test", "half", "F", "f", lambda x: x / 2)
    finished = run(
        engine,
        '(module (import "test" "take" (func $take (param i32 i64 f32 f64) (result i32)))'
        ' (import "test" "wide" (func $wide (result i64)))'
        ' (import "test" "half" (func $half (param f64) (result f32)))'
        ' (func (export "main") (result i32 i64 f32)'
        " (call $take (i32.const -7) (i64.const -9223372036854775808) (f32.const 1.5) (f64.const -2.25))"
        " (call $wide) (call $half (f64.const 5))))",
    )
    assert finished.ok, finished
    assert seen == [(-7, -(2**63), 1.5, -2.25)]
    assert finished.result == (-(2**31) + 5, 2**63 - 3, 2.5)


def test_a_guest_trap_ends_the_guest_with_its_text_and_a_host_error_is_reported(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(code: int) -> None:
        if code == 1:
            raise GuestTrap("refused: code 1")
        raise ValueError(f"broken by {code}")

    engine.linker.define("test", "refuse", "i", "", refuse)
    wat = (
        '(module (import "test" "refuse" (func $refuse (param i32)))'
        ' (func (export "main") (param i32) (call $refuse (local.get 0))))'
    )
    trapped = run(engine, wat, 1)
    assert not trapped.ok and trapped.message is not None and "refused: code 1" in trapped.message
    assert engine.host_errors == []
    with caplog.at_level(logging.CRITICAL, logger="lunatic_mp"):
        broken = run(engine, wat, 2)
    assert (
        broken.message is not None
        and "host error in test::refuse: ValueError('broken by 2')" in broken.message
    )
    assert [str(error) for error in engine.host_errors] == ["broken by 2"]


def test_a_result_that_is_not_a_number_is_a_host_error(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    engine.linker.define("test", "answer", "", "i", lambda: "forty-two")
    engine.linker.define_async("test", "later", "", "I", lambda: None)
    for name, kind in (("answer", "i32"), ("later", "i64")):
        with caplog.at_level(logging.CRITICAL, logger="lunatic_mp"):
            finished = run(
                engine,
                f'(module (import "test" "{name}" (func $f (result {kind})))'
                f' (func (export "main") (drop (call $f))))',
            )
        assert finished.message is not None and f"host error in test::{name}: TypeError" in finished.message
    assert len(engine.host_errors) == 2


def test_an_async_function_suspends_its_caller_and_resumes_it_with_a_value(engine: Engine) -> None:
    callers: list[int] = []

    def later(wait_ms: int) -> object:
        process = engine.current
        assert process is not None
        callers.append(core.caller())
        engine.wait(process, wait_ms, on_timeout=wait_ms + 1)
        return PENDING

    engine.linker.define_async("test", "later", "i", "i", later)
    engine.linker.define_async("test", "now", "i", "i", lambda x: x * 3)
    finished = run(
        engine,
        '(module (import "test" "later" (func $later (param i32) (result i32)))'
        ' (import "test" "now" (func $now (param i32) (result i32)))'
        ' (func (export "main") (result i32 i32) (call $later (i32.const 1)) (call $now (i32.const 14))))',
    )
    assert finished.ok, finished
    assert finished.result == (2, 42)
    assert callers and callers[0] != 0
    assert core.caller() == 0  # only inside a host call


def test_definitions_are_checked(engine: Engine) -> None:
    refs = (print, GuestTrap, print, PENDING, wasm.Nested, print, print)
    pointer = engine.linker.linker.ptr()
    with pytest.raises(
        ValueError, match=r"test::bad's params must be at most 16 of 'i', 'I', 'f', 'F', got 'ix'"
    ):
        core.define_python(pointer, "test", "bad", "ix", "", refs, False, False)
    with pytest.raises(ValueError, match="results"):
        core.define_python(pointer, "test", "bad", "i", "ii", refs, False, False)
    with pytest.raises(TypeError, match="refs must be"):
        core.define_python(pointer, "test", "bad", "i", "", (print,), False, False)
    with pytest.raises(ValueError, match="kind 7"):
        core.write_result(1, 7, 0)
    core.write_result(0, -1, 0)  # a function without results: nothing is written


@pytest.mark.parametrize(
    ("error", "reason", "host_errors"),
    [
        (GuestTrap("stopped on resume"), "stopped on resume", []),  # the engine's own way to trap it
        (KeyError("lost on the way back"), "host error in test::stall: KeyError", ["lost on the way back"]),
    ],
)
def test_an_error_as_a_suspended_call_resumes_traps_its_guest(
    engine: Engine, caplog: pytest.LogCaptureFixture, error: Exception, reason: str, host_errors: list[str]
) -> None:
    """A GuestTrap from what runs in the fiber before it goes on traps the guest with its text; any
    other error is the host's, reported, and traps the guest too (it has no result to go on with)."""

    def stall() -> object:
        process = engine.current
        assert process is not None

        def fail() -> None:
            raise error

        engine.scheduler.call_later(0, lambda: engine.resume(process, 0, on_resume=fail))
        return PENDING

    engine.linker.define_async("test", "stall", "", "i", stall)
    with caplog.at_level(logging.CRITICAL, logger="lunatic_mp"):
        finished = run(
            engine,
            '(module (import "test" "stall" (func $stall (result i32)))'
            ' (func (export "main") (drop (call $stall))))',
        )
    assert finished.message is not None and reason in finished.message
    assert [error.args[0] for error in engine.host_errors] == host_errors
