"""lunatic's test names and verdicts (lunatic_mp.vm.testmode), as src/mode/cargo_test.rs reads them."""

from __future__ import annotations

from lunatic_mp.vm.finished import Finished, Outcome
from lunatic_mp.vm.testmode import (
    Options,
    Status,
    TestCase,
    discover,
    judge,
    panic_message,
    parse_export,
    select,
)

TRAPPED = Finished(Outcome.FAILED, message="wasm trap: unreachable")


def test_export_names() -> None:
    assert parse_export("_start") is None
    assert parse_export("#lunatic_test_a::b") == TestCase("#lunatic_test_a::b", "a::b")
    assert parse_export("#lunatic_test_#ignore_a") == TestCase("#lunatic_test_#ignore_a", "a", None, True)
    escaped = "#lunatic_test_#ignore_#panic_x \\# y#m::t"
    assert parse_export(escaped) == TestCase(escaped, "m::t", "x # y", True)
    assert parse_export("#lunatic_test_#panic_#m::t") == TestCase("#lunatic_test_#panic_#m::t", "m::t", "")
    odd = "#lunatic_test_#panic_no end"  # no closing `#`: the rest is the name
    assert parse_export(odd) == TestCase(odd, "#panic_no end")


def test_discover_sorts_by_name() -> None:
    names = [t.name for t in discover(["#lunatic_test_b", "memory", "#lunatic_test_#ignore_a"])]
    assert names == ["a", "b"]


def test_panic_messages_of_both_rust_formats() -> None:
    old = "noise\nthread 'main' panicked at 'it broke, badly', src/lib.rs:3:5\nmore"
    assert panic_message(old) == "it broke, badly"
    new = "thread '<unnamed>' panicked at src/lib.rs:3:5:\nline one\nline two\nnote: run with ..."
    assert panic_message(new) == "line one\nline two"
    assert panic_message("thread 'x' panicked at a.rs:1:1:\nlast") == "last"
    assert panic_message("no panic here") is None


def test_selection() -> None:
    tests = discover(["#lunatic_test_a::one", "#lunatic_test_#ignore_a::two", "#lunatic_test_b"])
    chosen, out = select(tests, Options(filters=["a::"]))
    assert [(t.name, t.ignored) for t in chosen] == [("a::one", False), ("a::two", True)] and out == 1
    chosen, out = select(tests, Options(ignored=True))
    assert [(t.name, t.ignored) for t in chosen] == [("a::two", False)] and out == 2
    chosen, _ = select(tests, Options(include_ignored=True))
    assert not any(t.ignored for t in chosen)
    chosen, _ = select(tests, Options(filters=["a::one", "b"], exact=True))
    assert [t.name for t in chosen] == ["a::one", "b"]
    chosen, _ = select(tests, Options(skip=["a::"]))
    assert [t.name for t in chosen] == ["b"]


def test_verdicts() -> None:
    plain, panics, silent = TestCase("e", "t"), TestCase("e", "t", "boom"), TestCase("e", "t", "")
    ok = Finished(Outcome.NORMAL)
    panic_output = "thread 'a' panicked at 'boom!', x.rs:1:1\n"
    assert judge(plain, ok, "", captured=True) == (Status.OK, "")
    assert judge(panics, ok, "", captured=True)[0] is Status.PANIC_FAILED
    assert judge(plain, TRAPPED, "", captured=True)[0] is Status.FAILED
    assert judge(plain, None, "", captured=True)[0] is Status.FAILED  # deadlock
    assert judge(panics, TRAPPED, panic_output, captured=True)[0] is Status.PANIC_OK
    assert judge(panics, TRAPPED, "", captured=True)[0] is Status.PANIC_FAILED
    assert judge(silent, TRAPPED, "", captured=True)[0] is Status.PANIC_OK
    status, text = judge(TestCase("e", "t", "other"), TRAPPED, panic_output, captured=True)
    assert status is Status.PANIC_FAILED and 'panic message: `"boom!"`' in text
