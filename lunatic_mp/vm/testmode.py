"""lunatic's ``cargo test`` mode: each ``#lunatic_test_*`` export runs as its own root process.

lunatic-rs's ``#[lunatic::test]`` compiles a test into an export named
``#lunatic_test_[#ignore_][#panic_<expected message>#]<path::to::test>``; lunatic's runner
(``src/mode/cargo_test.rs``) finds them, runs each, and judges it by how its process ended and by
the panic message Rust printed. This module does the same on one engine: tests run one after the
other, each with the engine's registry emptied and the previous test's processes gone, and with
their output (WASI stdout and stderr, the whole process tree's) captured unless asked not to.
Reporting in libtest's format is the command line's job (:mod:`lunatic_mp.cli.test`).
"""

from __future__ import annotations

import enum
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from lunatic_mp.config import EnvConfig
from lunatic_mp.vm.binary import export_signatures
from lunatic_mp.vm.engine import Engine
from lunatic_mp.vm.finished import Finished

PREFIX = "#lunatic_test_"
IGNORE = "#ignore_"
PANIC = "#panic_"
WASM_MAGIC = b"\0asm"

# Rust before 1.73: thread 'main' panicked at 'message', src/lib.rs:3:5
_OLD_PANIC = re.compile(r"(?ms)^thread '[^'\n]*' panicked at '(.*?)', [^\n]*:\d+:\d+$")
# Rust 1.73 and later: thread 'main' panicked at src/lib.rs:3:5:\nmessage\nnote: ...
_NEW_PANIC = re.compile(r"(?ms)^thread '[^'\n]*' panicked at [^\n]*:\d+:\d+:\n(.*?)(?:\n(?=note: )|\n?\Z)")


class Status(enum.Enum):
    OK = "ok"
    FAILED = "FAILED"
    PANIC_OK = "panic ok"
    PANIC_FAILED = "panic FAILED"
    IGNORED = "ignored"

    @property
    def passed(self) -> bool:
        return self in (Status.OK, Status.PANIC_OK)

    @property
    def failed(self) -> bool:
        return self in (Status.FAILED, Status.PANIC_FAILED)


@dataclass(frozen=True)
class TestCase:
    """One test: its export, the name libtest shows, its expected panic, whether it is ignored."""

    __test__ = False  # not a pytest test class

    export: str
    name: str
    panic: str | None = None
    ignored: bool = False


@dataclass
class Options:
    """What to run: libtest's selection and output options, as lunatic's runner takes them."""

    filters: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    exact: bool = False
    ignored: bool = False
    include_ignored: bool = False
    nocapture: bool = False
    dirs: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)

    def selects(self, name: str) -> bool:
        """Whether a test of this name passes the filters (libtest: any filter; none: all)."""

        def matches(pattern: str) -> bool:
            return name == pattern if self.exact else pattern in name

        if any(matches(pattern) for pattern in self.skip):
            return False
        return not self.filters or any(matches(pattern) for pattern in self.filters)


@dataclass(frozen=True)
class TestResult:
    """How one test ended, with its captured output (notes appended)."""

    __test__ = False
    test: TestCase
    status: Status
    output: str
    seconds: float


def parse_export(export: str) -> TestCase | None:
    """``#lunatic_test_#ignore_#panic_boom \\# here#path::name`` -> its test; None for other exports.

    The expected panic message runs to the first ``#`` not escaped as ``\\#``.
    """
    if not export.startswith(PREFIX):
        return None
    name = export[len(PREFIX) :]
    ignored = name.startswith(IGNORE)
    if ignored:
        name = name[len(IGNORE) :]
    panic = None
    if name.startswith(PANIC):
        rest = name[len(PANIC) :]
        end = _unescaped_hash(rest)
        if end < 0:
            return TestCase(export, name, None, ignored)  # no closing `#`: a plain (odd) name
        panic, name = rest[:end].replace("\\#", "#"), rest[end + 1 :]
    return TestCase(export, name, panic, ignored)


def _unescaped_hash(text: str) -> int:
    previous = ""
    for index, char in enumerate(text):
        if char == "#" and previous != "\\":
            return index
        previous = char
    return -1


def discover(exports: Iterable[str]) -> list[TestCase]:
    """The tests among a module's exports, sorted by name as libtest lists them."""
    tests = [test for test in map(parse_export, exports) if test is not None]
    return sorted(tests, key=lambda test: test.name)


def module_exports(path: Path) -> list[str]:
    """A module file's function exports, read without compiling it (WAT text is translated)."""
    data = path.read_bytes()
    try:
        binary = data if data.startswith(WASM_MAGIC) else bytes(wasmtime.wat2wasm(data.decode()))
        return list(export_signatures(binary))
    except (ValueError, IndexError, UnicodeDecodeError, wasmtime.WasmtimeError):
        return []  # not a module: loading it says why


def is_test_module(path: Path) -> bool:
    """Whether ``lunatic-mp run`` should run ``path`` in test mode (it exports tests)."""
    try:
        return any(export.startswith(PREFIX) for export in module_exports(path))
    except OSError:
        return False


def select(tests: list[TestCase], options: Options) -> tuple[list[TestCase], int]:
    """The tests to report (ignored ones included, marked) and how many were filtered out."""
    chosen: list[TestCase] = []
    for test in tests:
        if options.ignored and not test.ignored:
            continue
        if not options.selects(test.name):
            continue
        ignored = test.ignored and not (options.ignored or options.include_ignored)
        chosen.append(TestCase(test.export, test.name, test.panic, ignored))
    return chosen, len(tests) - len(chosen)


def panic_message(output: str) -> str | None:
    """The message of the first Rust panic printed in ``output``, in either of Rust's formats."""
    found = [m for m in (_OLD_PANIC.search(output), _NEW_PANIC.search(output)) if m is not None]
    if not found:
        return None
    return min(found, key=lambda m: m.start()).group(1)


def judge(test: TestCase, finished: Finished | None, output: str, *, captured: bool) -> tuple[Status, str]:
    """A test's status from how its root process ended; notes are appended to its output."""
    if finished is not None and finished.ok:
        if test.panic is None:
            return Status.OK, output
        return Status.PANIC_FAILED, output + "note: test did not panic as expected\n"
    if finished is None:
        note = "note: the test's process waits for a message that can never arrive (deadlock)\n"
        return (Status.FAILED if test.panic is None else Status.PANIC_FAILED), output + note
    message = panic_message(output)
    if test.panic is None:
        if message is None and captured:
            output += f"note: Process trapped or received kill signal ({finished})\n"
        return Status.FAILED, output
    if message is None:
        if test.panic == "":
            return Status.PANIC_OK, output
        note = f"note: Process received kill signal, but expected a panic that contains `{test.panic}`\n"
        return Status.PANIC_FAILED, output + note
    if test.panic in message:
        return Status.PANIC_OK, output
    note = (
        "note: panic did not contain expected string\n"
        f'      panic message: `"{message}"`,\n expected substring: `"{test.panic}"`\n'
    )
    return Status.PANIC_FAILED, output + note


@contextmanager
def capture_output(enabled: bool) -> Iterator[Callable[[], str]]:
    """Redirect this process's stdout and stderr (file descriptors 1 and 2, where guests write)
    into a file while the block runs; the callable gives what was written, once it ended."""
    if not enabled:
        yield lambda: ""
        return
    sys.stdout.flush()
    sys.stderr.flush()
    text: list[str] = []
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(1), os.dup(2)
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: "".join(text)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


def test_config(options: Options) -> EnvConfig:
    """What each test's root process gets, as lunatic's runner gives it: every permission, the
    host's environment, the arguments as they are, the current directory and ``--dir``s."""
    config = EnvConfig.permissive(args=list(options.args), env=dict(os.environ), program_name=False)
    config.preopen(".")
    for directory in options.dirs:
        config.preopen(directory)
    return config


def run_tests(
    engine: Engine,
    path: Path,
    tests: list[TestCase],
    options: Options,
    on_result: Callable[[TestResult], None],
) -> list[TestResult]:
    """Run ``tests`` (as :func:`select` gives them) of the module at ``path`` one by one."""
    module = engine.load_module(path)
    config = test_config(options)
    results: list[TestResult] = []
    for test in tests:
        started = time.monotonic()
        if test.ignored:
            result = TestResult(test, Status.IGNORED, "", 0.0)
        else:
            with capture_output(not options.nocapture) as output:
                root = engine.spawn(module, test.export, (), config.copy())
                finished = engine.run_until_finished(root)
            status, text = judge(test, finished, output(), captured=not options.nocapture)
            result = TestResult(test, status, text, time.monotonic() - started)
            _reset(engine)
        results.append(result)
        on_result(result)
    return results


def _reset(engine: Engine) -> None:
    """What a test leaves behind goes before the next starts: its processes and its names."""
    for pid in list(engine.processes):
        engine.kill(pid, "the test ended")
    for _, _, _, pid in engine.registry.names():
        engine.registry.remove_process(pid)
