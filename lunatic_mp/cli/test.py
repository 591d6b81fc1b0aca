"""``lunatic-mp test`` (and ``lunatic-mp run`` on a module with tests): lunatic's ``cargo test``.

With ``runner = "lunatic-mp run"`` in ``.cargo/config.toml``, cargo runs a guest's test binary
as ``lunatic-mp run TARGET.wasm [libtest options]``; the tests are run by
:mod:`lunatic_mp.vm.testmode` and reported here in libtest's format, with its exit codes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from lunatic_mp.errors import LunaticError
from lunatic_mp.vm.engine import Engine
from lunatic_mp.vm.testmode import (
    Options,
    Status,
    TestResult,
    discover,
    module_exports,
    run_tests,
    select,
)

EXIT_TESTS_FAILED = 101
"""libtest's exit code when a test failed (cargo reports it as `test failed`)."""
EXIT_USAGE = 2
_GREEN, _RED, _YELLOW, _RESET = "\x1b[92m", "\x1b[91m", "\x1b[93m", "\x1b[0m"
_IGNORED_OPTIONS = {
    "--test-threads",
    "--color",
    "--format",
    "-Z",
    "--report-time",
    "--ensure-time",
    "--shuffle",
}
"""libtest options taken and ignored (tests run one at a time; the format is libtest's pretty
one, or terse for ``--list``)."""


class _Arguments:
    """libtest's command line, as far as lunatic's runner understands it."""

    def __init__(self, argv: list[str]) -> None:
        self.options = Options()
        self.list = False
        self.terse = False
        self.quiet = False
        self.show_output = False
        self.color: str = "auto"
        items = iter(argv)
        for item in items:
            if item == "--":
                self.options.args.extend(items)
                break
            name, equals, value = item.partition("=")
            if name in ("--skip", "--dir", "--test-threads", "--color", "--format", "-Z"):
                if not equals:
                    value = next(items, "")
                    if not value:
                        raise click.UsageError(f"{name} needs a value")
                self._valued(name, value)
            elif item.startswith("-") and item != "-":
                self._flag(item)
            else:
                self.options.filters.append(item)

    def _valued(self, name: str, value: str) -> None:
        if name == "--skip":
            self.options.skip.append(value)
        elif name == "--dir":
            self.options.dirs.append(value)
        elif name == "--format":
            self.terse = value == "terse"
        elif name == "--color":
            self.color = value

    def _flag(self, flag: str) -> None:
        flags = {
            "--exact": lambda: setattr(self.options, "exact", True),
            "--ignored": lambda: setattr(self.options, "ignored", True),
            "--include-ignored": lambda: setattr(self.options, "include_ignored", True),
            "--nocapture": lambda: setattr(self.options, "nocapture", True),
            "--no-capture": lambda: setattr(self.options, "nocapture", True),
            "--show-output": lambda: setattr(self, "show_output", True),
            "--list": lambda: setattr(self, "list", True),
            "-q": lambda: setattr(self, "quiet", True),
            "--quiet": lambda: setattr(self, "quiet", True),
        }
        action = flags.get(flag)
        if action is not None:
            action()
        elif flag.partition("=")[0] not in _IGNORED_OPTIONS:
            raise click.UsageError(f"unrecognized test option {flag!r}")


def main(module: Path, argv: list[str], dirs: tuple[str, ...] = ()) -> int:
    """Run (or list) the tests of ``module``; the exit code: 0, 101 (a test failed) or 2."""
    try:
        arguments = _Arguments(argv)
    except click.UsageError as exc:
        click.echo(f"lunatic-mp: {exc.message}", err=True)
        return EXIT_USAGE
    arguments.options.dirs[:0] = dirs
    try:
        tests = discover(module_exports(module))
    except OSError as exc:
        click.echo(f"lunatic-mp: cannot read {module}: {exc.strerror or exc}", err=True)
        return EXIT_USAGE
    chosen, filtered_out = select(tests, arguments.options)
    if arguments.list:
        for test in chosen:
            click.echo(f"{test.name}: test")
        if not arguments.terse:
            click.echo(f"\n{len(chosen)} {'test' if len(chosen) == 1 else 'tests'}, 0 benchmarks")
        return 0
    color = arguments.color == "always" or (arguments.color == "auto" and sys.stdout.isatty())
    report = _Report(color=color, quiet=arguments.quiet)
    started = time.monotonic()
    click.echo(f"\nrunning {len(chosen)} {'test' if len(chosen) == 1 else 'tests'}")
    engine = Engine()
    try:
        results = run_tests(engine, module, chosen, arguments.options, report.line)
    except (LunaticError, OSError) as exc:
        click.echo(f"lunatic-mp: {exc}", err=True)
        return EXIT_USAGE
    finally:
        engine.close()
    report.summary(results, filtered_out, time.monotonic() - started, show_output=arguments.show_output)
    return EXIT_TESTS_FAILED if any(result.status.failed for result in results) else 0


class _Report:
    """libtest's pretty (or, with ``-q``, terse) report."""

    def __init__(self, *, color: bool, quiet: bool) -> None:
        self.color, self.quiet, self.column = color, quiet, 0

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.color else text

    def line(self, result: TestResult) -> None:
        status = result.status
        if self.quiet:
            mark = {Status.IGNORED: self.paint("i", _YELLOW)}.get(status)
            mark = mark or (self.paint(".", _GREEN) if status.passed else self.paint("F", _RED))
            click.echo(mark, nl=False)
            self.column += 1
            if self.column % 88 == 0:
                click.echo()
            return
        word = (
            self.paint("ignored", _YELLOW)
            if status is Status.IGNORED
            else self.paint("ok", _GREEN)
            if status.passed
            else self.paint("FAILED", _RED)
        )
        panics = " - should panic" if result.test.panic is not None and status is not Status.IGNORED else ""
        click.echo(f"test {result.test.name}{panics} ... {word}")

    def summary(
        self, results: list[TestResult], filtered_out: int, seconds: float, *, show_output: bool
    ) -> None:
        if self.quiet and self.column % 88:
            click.echo()
        passed = [r for r in results if r.status.passed]
        failed = [r for r in results if r.status.failed]
        ignored = sum(r.status is Status.IGNORED for r in results)
        if show_output and passed:
            click.echo("\nsuccesses:")
            for result in passed:
                if result.output:
                    click.echo(f"\n---- {result.test.name} stdout ----\n{_ended(result.output)}", nl=False)
            click.echo("\nsuccesses:")
            for result in passed:
                click.echo(f"    {result.test.name}")
        if failed:
            click.echo("\nfailures:")
            for result in failed:
                if result.output:
                    click.echo(f"\n---- {result.test.name} stdout ----\n{_ended(result.output)}", nl=False)
            click.echo("\nfailures:")
            for result in failed:
                click.echo(f"    {result.test.name}")
        verdict = self.paint("FAILED", _RED) if failed else self.paint("ok", _GREEN)
        click.echo(
            f"\ntest result: {verdict}. {len(passed)} passed; {len(failed)} failed; {ignored} ignored; "
            f"0 measured; {filtered_out} filtered out; finished in {seconds:.2f}s\n"
        )


def _ended(output: str) -> str:
    """Captured output as a block of whole lines (a test may stop mid-line)."""
    return output if output.endswith("\n") else output + "\n"
