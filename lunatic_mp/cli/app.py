"""The ``lunatic-mp`` command line."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lunatic_mp.cli.doctor import doctor
from lunatic_mp.cli.logconfig import configure_logging
from lunatic_mp.cli.serve import SERVE_COMMANDS, cluster_option
from lunatic_mp.config import DEFAULT_MAX_MAILBOX, EnvConfig
from lunatic_mp.errors import LunaticError
from lunatic_mp.vm.finished import Finished, Outcome

if TYPE_CHECKING:
    from lunatic_mp.api.runtime import Runtime
    from lunatic_mp.cluster.template import Template

# The engine, the runtime and test mode are imported by the commands that use them: a run on
# workers starts its template process first, which boots while this process imports them.

EXIT_FAILED = 1
EXIT_LOAD_ERROR = 2
EXIT_INTERRUPTED = 130
DEADLOCK = "the root process waits for a message that can never arrive"
TEMPLATE_STOP_S = 10.0
INTERRUPT_POLL_S = 0.25
"""How soon `run` on one engine notices Ctrl-C while its processes wait."""


@click.group()
@click.version_option(package_name="lunatic-mp")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="Log records at this level and above go to stderr (serve: default info).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="json: one JSON object a line.",
)
def main(log_level: str, log_format: str) -> None:
    """Run WebAssembly actors (lunatic's processes) on every core."""
    configure_logging(log_level, log_format)


for _command in SERVE_COMMANDS:
    main.add_command(_command)
main.add_command(doctor)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("module", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dir", "dirs", multiple=True, metavar="DIR", help="Preopen a host directory (repeatable).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; 1 runs everything in this process (and detects deadlocks).",
)
@click.option(
    "--max-mailbox",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_MAILBOX,
    show_default=True,
    help="Messages a mailbox holds before its senders wait for room; 0: no bound.",
)
@click.option(
    "--time-slice-ms",
    type=click.FloatRange(min=0.01, max=10_000),
    help="How long a guest runs before it yields to the others on its worker  [default: 1]",
)
@cluster_option
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(
    module: Path,
    dirs: tuple[str, ...],
    workers: int,
    max_mailbox: int,
    time_slice_ms: float | None,
    cluster: str | None,
    args: tuple[str, ...],
) -> None:
    """Run MODULE's `_start` as the root process, with every permission.

    Arguments after `--` reach the guest as WASI arguments; environment variables are
    inherited. The exit code is the guest's: 0 when `_start` returns, its `proc_exit` code,
    or 1 when it traps.

    A module exporting `#lunatic_test_*` functions (lunatic-rs's tests) runs in test mode
    instead, as `lunatic-mp test` does: ARGS are libtest's options.
    """
    template = _start_template() if workers > 1 else None  # first: it boots while the rest is imported
    try:
        time_slice_ns = None if time_slice_ms is None else round(time_slice_ms * 1e6)
        _run(module, dirs, workers, max_mailbox, time_slice_ns, cluster, args, template)
    finally:
        if template is not None:  # the runtime closed it, unless it never started
            template.close(TEMPLATE_STOP_S)


def _run(
    module: Path,
    dirs: tuple[str, ...],
    workers: int,
    max_mailbox: int,
    time_slice_ns: int | None,
    cluster: str | None,
    args: tuple[str, ...],
    template: Template | None,
) -> None:
    from lunatic_mp.vm.testmode import is_test_module

    if is_test_module(module):
        from lunatic_mp.cli import test as test_mode

        sys.exit(test_mode.main(module, list(args), dirs))
    config = EnvConfig.permissive(args=list(args), env=dict(os.environ), max_mailbox=max_mailbox)
    try:
        for directory in dirs:
            config.preopen(directory)
        if workers == 1 and cluster is None:
            finished = _run_here(module, config, time_slice_ns)
        else:
            finished = _run_on_workers(module, config, workers, time_slice_ns, template, cluster)
    except (LunaticError, OSError) as exc:
        click.echo(f"lunatic-mp: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    except KeyboardInterrupt:  # one engine here: the same as with workers (not click's "Aborted!", 1)
        click.echo("lunatic-mp: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if isinstance(finished, str):
        click.echo(f"lunatic-mp: {finished}", err=True)
        sys.exit(EXIT_FAILED)
    if finished.outcome is Outcome.NORMAL:
        sys.exit(0)
    if finished.exit_code is not None:
        sys.exit(finished.exit_code)
    click.echo(f"lunatic-mp: process {finished}", err=True)
    sys.exit(EXIT_FAILED)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("module", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def test(module: Path, args: tuple[str, ...]) -> None:
    """Run MODULE's tests (its `#lunatic_test_*` exports), each as its own root process.

    ARGS are libtest's: FILTER..., --exact, --skip FILTER, --ignored, --include-ignored,
    --nocapture, --show-output, --list [--format terse], -q, --dir DIR; arguments after `--`
    reach the tests as WASI arguments. Exit code 0: every test passed; 101: one failed (as
    libtest); 2: bad arguments or a module that does not load. See docs/guests.md.
    """
    from lunatic_mp.cli import test as test_mode

    sys.exit(test_mode.main(module, list(args)))


@main.command()
@click.argument("scenarios", nargs=-1, metavar="[SCENARIO]...")
@click.option("--quick", is_flag=True, help="A fraction of the work (under a minute): checks that all runs.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes  [default: one per CPU]")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the figures here."
)
@click.option(
    "--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path), help="Write PNG plots here."
)
def bench(
    scenarios: tuple[str, ...],
    quick: bool,
    workers: int | None,
    json_path: Path | None,
    plot_dir: Path | None,
) -> None:
    """Measure lunatic_mp against baselines run alongside: SCENARIO is spawn, pingpong, stream,
    ring, fanout, idle, serve, transport, echo, startup or cluster (all when none is named).

    Runs the scenarios of the source tree's benchmarks/ directory; see docs/benchmarks.md.
    """
    from lunatic_mp.bench import runner as harness

    command = " ".join(["lunatic-mp", *sys.argv[1:]])
    try:
        report = harness.run(
            scenarios, quick=quick, workers=workers, json_path=json_path, plot_dir=plot_dir, command=command
        )
    except LunaticError as exc:
        click.echo(f"lunatic-mp: {exc}", err=True)
        sys.exit(EXIT_LOAD_ERROR)
    sys.exit(0 if report.ok else EXIT_FAILED)


def _run_here(module: Path, config: EnvConfig, time_slice_ns: int | None) -> Finished | str:
    """One engine in this process: how the root ended, or what it waits for that can never come.

    Ctrl-C only sets a flag, which the loop checks at least every ``INTERRUPT_POLL_S``: a
    KeyboardInterrupt raised inside a host call, on a guest's fiber, would abort the interpreter
    or be taken for the guest's error.
    """
    from lunatic_mp.vm.engine import Engine
    from lunatic_mp.vm.preemption import DEFAULT_TIME_SLICE_NS

    engine = Engine(time_slice_ns=time_slice_ns or DEFAULT_TIME_SLICE_NS)
    interrupted = False

    def on_interrupt(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        root = engine.spawn(engine.load_module(module), "_start", (), config)
        while True:
            started = time.monotonic()
            if engine.scheduler.run(lambda: root.finished is not None or interrupted, INTERRUPT_POLL_S):
                break
            if time.monotonic() - started < INTERRUPT_POLL_S:  # returned early: nothing can happen
                break
        if interrupted:
            raise KeyboardInterrupt
        if root.finished is not None:
            return root.finished
        if root.blocked_on:
            return "the root process waits for room in a full mailbox (--max-mailbox) that can never come"
        return DEADLOCK
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.close()


def _start_template() -> Template | None:
    """The template process a runtime forks its workers from, started before anything heavy is
    imported here (it boots on the other core meanwhile); None where there is none."""
    from lunatic_mp.cluster import template

    if not template.available():
        return None
    return template.Template(logging.getLogger().getEffectiveLevel(), import_main=False)


def _run_on_workers(
    module: Path,
    config: EnvConfig,
    workers: int,
    time_slice_ns: int | None,
    template: Template | None,
    cluster: str | None = None,
) -> Finished | str:
    """A runtime of ``workers`` processes; SIGTERM and Ctrl-C stop it cleanly. The module compiles
    while the processes start (spawn waits for them)."""
    from lunatic_mp.api.runtime import Runtime  # not for a run on one engine
    from lunatic_mp.vm.preemption import DEFAULT_TIME_SLICE_NS

    signal.signal(signal.SIGTERM, _exit_on_signal)
    runtime: Runtime
    with Runtime(
        workers=workers,
        wait=False,
        import_main=False,
        template=template,
        cluster=cluster,
        time_slice_ns=time_slice_ns or DEFAULT_TIME_SLICE_NS,
    ) as runtime:
        root = runtime.spawn(runtime.load_module(module), "_start", (), config)
        # Ctrl-C sets a flag rather than raising KeyboardInterrupt, which Python drops when it
        # lands in a finalizer (a wasmtime object's __del__): the run then waited for ever.
        interrupted = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
        try:
            ended = runtime.finished_future(root)
            while not interrupted.is_set():
                try:
                    return ended.result(INTERRUPT_POLL_S)
                except TimeoutError:
                    continue
        finally:
            signal.signal(signal.SIGINT, previous)
        click.echo("lunatic-mp: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_INTERRUPTED)
