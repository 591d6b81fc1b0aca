"""lunatic's `cargo test` mode, end to end: `lunatic-mp test` and `lunatic-mp run` on a module
exporting `#lunatic_test_*` functions (tests/guests/cargo_tests.wat, shaped like a lunatic-rs test
binary), judged by libtest's report and exit codes."""

from __future__ import annotations

import re

import pytest
from test_cli import GUESTS, cli

GUEST = GUESTS / "cargo_tests.wat"
ALL = [
    "isolation::first",
    "isolation::second",
    "tests::deadlocks",
    "tests::does_not_panic",
    "tests::fails",
    "tests::ignored",
    "tests::passes",
    "tests::should_panic",
    "tests::traps_silently",
    "tests::wrong_panic",
]


def verdicts(stdout: str) -> dict[str, str]:
    """`test NAME[ - should panic] ... WORD` lines, as {name: word}."""
    return dict(re.findall(r"^test (\S+)(?: - should panic)? \.\.\. (\w+)$", stdout, re.M))


def summary(stdout: str) -> str:
    match = re.search(r"^test result: (.*); finished in [\d.]+s$", stdout, re.M)
    assert match is not None, stdout
    return match.group(1)


@pytest.mark.parametrize("command", ["run", "test"])
def test_every_test_runs_as_its_own_process(command: str) -> None:
    """`run` detects the tests as `test` does; each is judged as lunatic's runner judges it, and a
    failure makes the exit code libtest's 101."""
    result = cli(command, GUEST)
    assert result.returncode == 101, result.stderr
    assert result.stdout.startswith("\nrunning 10 tests\n")
    assert verdicts(result.stdout) == {
        "isolation::first": "ok",  # each test starts with an empty registry ...
        "isolation::second": "ok",  # ... and without the previous test's processes
        "tests::deadlocks": "FAILED",
        "tests::does_not_panic": "FAILED",
        "tests::fails": "FAILED",
        "tests::ignored": "ignored",
        "tests::passes": "ok",
        "tests::should_panic": "ok",  # the expected message is in the panic (Rust 1.73+ format)
        "tests::traps_silently": "ok",  # an empty expected message accepts any trap
        "tests::wrong_panic": "FAILED",  # the message differs (pre-1.73 format)
    }
    assert "test tests::should_panic - should panic ... ok" in result.stdout
    assert summary(result.stdout) == "FAILED. 5 passed; 4 failed; 1 ignored; 0 measured; 0 filtered out"
    failures = result.stdout.split("\nfailures:\n")
    assert len(failures) == 3
    assert "---- tests::fails stdout ----\nthread '<unnamed>' panicked at src/lib.rs:10:5:\n" in failures[1]
    assert "note: test did not panic as expected" in failures[1]
    assert "can never arrive (deadlock)" in failures[1]
    assert 'expected substring: `"expected #hash"`' in failures[1]  # `\#` unescaped
    assert failures[2].split("\n\n")[0].split() == [
        "tests::deadlocks", "tests::does_not_panic", "tests::fails", "tests::wrong_panic"
    ]  # fmt: skip
    assert "hello from passes" not in result.stdout  # a passing test's output stays captured
    assert result.stderr == ""


def test_filter_and_show_output() -> None:
    """A filter keeps the tests whose name contains it; --show-output prints a passing test's
    captured output; all passing: exit 0."""
    result = cli("test", GUEST, "passes", "--show-output")
    assert result.returncode == 0, result.stdout
    assert verdicts(result.stdout) == {"tests::passes": "ok"}
    assert "---- tests::passes stdout ----\nhello from passes\n" in result.stdout
    assert summary(result.stdout) == "ok. 1 passed; 0 failed; 0 ignored; 0 measured; 9 filtered out"


def test_nocapture_prints_as_the_test_runs() -> None:
    result = cli("run", GUEST, "tests::passes", "--nocapture")
    assert result.returncode == 0
    assert "hello from passes\ntest tests::passes ... ok\n" in result.stdout


def test_exact_and_skip() -> None:
    """--exact matches whole names only; --skip drops the tests that contain its pattern."""
    exact = cli("test", GUEST, "tests::pass", "--exact")
    assert verdicts(exact.stdout) == {} and exact.returncode == 0
    exact = cli("test", GUEST, "--exact", "tests::passes", "isolation::first")
    assert verdicts(exact.stdout) == {"tests::passes": "ok", "isolation::first": "ok"}
    skipped = cli("test", GUEST, "isolation", "--skip", "second")
    assert verdicts(skipped.stdout) == {"isolation::first": "ok"}


def test_ignored_runs_only_the_ignored_ones() -> None:
    result = cli("test", GUEST, "--ignored")
    assert result.returncode == 101
    assert verdicts(result.stdout) == {"tests::ignored": "FAILED"}
    assert "note: Process trapped or received kill signal" in result.stdout
    assert summary(result.stdout) == "FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 9 filtered out"


def test_list_terse_and_pretty() -> None:
    """--list --format terse is what cargo (and IDEs) read: `name: test` a line, nothing else."""
    terse = cli("run", GUEST, "--list", "--format", "terse")
    assert terse.returncode == 0
    assert terse.stdout.splitlines() == [f"{name}: test" for name in ALL]
    pretty = cli("test", GUEST, "--list", "isolation")
    assert pretty.stdout == "isolation::first: test\nisolation::second: test\n\n2 tests, 0 benchmarks\n"


def test_quiet_and_ignored_libtest_options() -> None:
    """-q prints a mark a test; options that do not apply (--test-threads) are accepted."""
    result = cli("test", GUEST, "isolation", "-q", "--test-threads", "1", "--color", "never")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2] == ".."


def test_unknown_option_is_a_usage_error() -> None:
    result = cli("test", GUEST, "--frobnicate")
    assert result.returncode == 2
    assert "unrecognized test option '--frobnicate'" in result.stderr


def test_a_module_without_tests_runs_its_start() -> None:
    """`run` keeps running `_start` of modules that export no test."""
    result = cli("run", GUESTS / "cli_exit.wat")
    assert "running" not in result.stdout
