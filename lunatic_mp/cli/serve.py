"""``lunatic-mp serve`` and the commands that talk to a running server: ``ps``, ``send``,
``request`` and ``stop``. :mod:`lunatic_mp.cli.app` adds them to the ``lunatic-mp`` group.

The server's modules (asyncio, aiohttp, prometheus-client) are imported when a command runs,
so that ``lunatic-mp run`` does not pay for them.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lunatic_mp.serve.config import CONNECT_ENV, TOKEN_ENV

if TYPE_CHECKING:
    from lunatic_mp.serve.client import Client

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, status: int = EXIT_FAILED) -> None:
    click.echo(f"lunatic-mp: {message}", err=True)
    sys.exit(status)


def _announce(line: str) -> None:
    click.echo(f"lunatic-mp: {line}")


# -- the token ----------------------------------------------------------------------------------

_TOKEN_FROM_FILE = "lunatic_mp.token_file"  # noqa: S105 - a key of click's ctx.meta, not a token
TOKEN_ON_COMMAND_LINE = (
    "warning: --token on the command line can be read by every user of this machine (ps, "
    f"/proc/PID/cmdline); prefer --token-file or ${TOKEN_ENV}"
)


def _token_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """--token-file: read before --token (eager), which takes the file's token."""
    from lunatic_mp.errors import ServeConfigError
    from lunatic_mp.serve.config import read_token_file

    if value is None:
        return
    try:
        ctx.meta[_TOKEN_FROM_FILE] = read_token_file(value)
    except ServeConfigError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    if value.stat().st_mode & 0o077:
        click.echo(
            f"lunatic-mp: warning: other users may read the token file {value}: chmod 600 it", err=True
        )


def _token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The token: --token-file's, else --token's or the environment's; a token given on the
    command line is visible to other users, which a warning says."""
    from_file: str | None = ctx.meta.get(_TOKEN_FROM_FILE)
    if value is not None and ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE:
        if from_file is not None:
            raise click.UsageError("give --token or --token-file, not both", ctx)
        click.echo(f"lunatic-mp: {TOKEN_ON_COMMAND_LINE}", err=True)
    return from_file if from_file is not None else value


def token_options(what: str) -> Callable[[F], F]:
    """--token-file and --token (``what``: what the token is, for --help)."""

    def add(command: F) -> F:
        command = click.option(
            "--token", envvar=TOKEN_ENV, callback=_token,
            help=f"{what} (or ${TOKEN_ENV}). Other users see it in ps: prefer --token-file or ${TOKEN_ENV}.",
        )(command)  # fmt: skip
        return click.option(
            "--token-file", type=click.Path(path_type=Path, dir_okay=False), is_eager=True,
            expose_value=False, callback=_token_file, help=f"A file holding the {what.lower()}.",
        )(command)  # fmt: skip

    return add


def _log_announce(line: str) -> None:
    """A server's start-up and state lines, through logging (``--log-format json``)."""
    logging.getLogger("lunatic_mp.serve").info(line)


cluster_option = click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Span a Ray cluster: its address, or auto for the one `ray start` joined here (docs/cluster.md).",
)
"""``--cluster``, of ``run`` and ``serve``."""


# -- serve --------------------------------------------------------------------------------------


@click.command()
@click.argument("config_file", metavar="[CONFIG.toml]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--workers", type=click.IntRange(min=1), help="Worker processes (default: the config's, or one per CPU)."
)
@cluster_option
@click.option(
    "--control",
    metavar="ADDRESS",
    help="Control socket: a path (unix:PATH), or tcp:HOST:PORT (then a token is required).",
)
@token_options("Token clients must send")
@click.option(
    "--metrics", metavar="HOST:PORT|off", help="Where /metrics and /healthz listen (default 127.0.0.1:9464)."
)
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT|off",
    help="Where the HTTP routes are served (default 127.0.0.1:8080).",
)
@click.option("--schema", is_flag=True, help="Print the config file's JSON Schema (for editors) and exit.")
@click.option(
    "--log-level",
    "serve_log_level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="The server's log level (default: the config's, or info); also accepted before `serve`.",
)
@click.option(
    "--log-format",
    "serve_log_format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    help="text, or json: one JSON object a line, the start-up lines too; also accepted before `serve`.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    config_file: Path | None,
    workers: int | None,
    cluster: str | None,
    control: str | None,
    token: str | None,
    metrics: str | None,
    http: str | None,
    schema: bool,
    serve_log_level: str | None,
    serve_log_format: str | None,
) -> None:
    """Serve CONFIG.toml until SIGTERM or Ctrl-C; SIGHUP reloads the modules.

    Without a config it serves a built-in example: a counter actor registered as `counter`,
    and HTTP routes: GET /hello/{name}, handled by a fresh Wasm process per request, and
    GET /greeter/{name}, by a long-lived one registered as `greeter`.
    From another terminal: `curl localhost:8080/hello/you`, `lunatic-mp request counter 5`,
    `lunatic-mp ps`, `lunatic-mp stop`.
    The config format is in docs/serve.md. Command-line options win over the config.
    """
    from lunatic_mp.cli.logconfig import configure_logging
    from lunatic_mp.errors import LunaticError, ServeConfigError
    from lunatic_mp.serve.config import (
        example_config,
        http_address,
        load_config,
        metrics_address,
        parse_address,
    )
    from lunatic_mp.serve.preflight import check_addresses
    from lunatic_mp.serve.server import run_server

    if schema:
        from lunatic_mp.serve.config import config_schema

        click.echo(json.dumps(config_schema(), indent=2))
        return
    try:
        config = load_config(config_file) if config_file is not None else example_config()
        if workers is not None:
            config.workers = workers
        config.cluster = cluster
        if control is not None:
            config.control.address = parse_address(control)
        if token is not None:
            config.control.token = token
        if metrics is not None:
            config.metrics_address = metrics_address(metrics)
            config.metrics_any_port_if_taken = False  # an address asked for is that one
        if http is not None:
            http_address(config, http)
        config.check()
    except ServeConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    level, fmt = _log_settings(ctx, config.log_level, config.log_format)
    level, fmt = (serve_log_level or level).lower(), (serve_log_format or fmt).lower()
    configure_logging(level, fmt)
    if config_file is None:
        (_announce if fmt == "text" else _log_announce)(
            "no config given: serving the built-in example (a counter registered as `counter`, "
            "and HTTP routes GET /hello/{name} and /greeter/{name})"
        )
    announce = _announce if fmt == "text" else _log_announce  # json: every line a log record
    try:
        check_addresses(config, announce)  # all at once, before the workers start
    except ServeConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)  # until the server handles it
    signal.signal(signal.SIGHUP, _ignore_reload_while_starting)
    try:
        status = run_server(config, announce)
    except KeyboardInterrupt:
        _fail("interrupted while starting", EXIT_INTERRUPTED)
    except (LunaticError, OSError) as exc:
        _fail(str(exc), EXIT_USAGE)
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(status)


def _log_settings(ctx: click.Context, level: str | None, fmt: str | None) -> tuple[str, str]:
    """The group's --log-level and --log-format when given on the command line, else the
    config's, else info and text (a server says what it does)."""
    group = ctx.parent
    params: dict[str, Any] = group.params if group is not None else {}

    def given(name: str) -> bool:
        if group is None:
            return False
        source = group.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    chosen_level = params["log_level"] if given("log_level") else level or "info"
    chosen_format = params["log_format"] if given("log_format") else fmt or "text"
    return str(chosen_level).lower(), str(chosen_format).lower()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_INTERRUPTED)


def _ignore_reload_while_starting(signum: int, frame: object) -> None:
    click.echo("lunatic-mp: SIGHUP while starting: ignored (the modules are being compiled)", err=True)


# -- client commands ----------------------------------------------------------------------------


def client_options(command: F) -> F:
    """--connect, --token (or --token-file) and --timeout, shared by the commands that talk to a server."""
    command = click.option(
        "--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
        help="Seconds to wait for the server.",
    )(command)  # fmt: skip
    command = token_options("The server's token")(command)
    return click.option(
        "--connect", "address", envvar=CONNECT_ENV, metavar="ADDRESS",
        help=f"The server's control socket (or ${CONNECT_ENV}; default: the default socket).",
    )(command)  # fmt: skip


def _client(address: str | None, token: str | None, timeout: float) -> Client:
    from lunatic_mp.errors import LunaticError
    from lunatic_mp.serve.client import connect

    try:
        return connect(address, token, timeout=timeout)
    except (ConnectionError, OSError) as exc:
        _fail(f"{exc} (is `lunatic-mp serve` running? --connect says where)", EXIT_USAGE)
    except LunaticError as exc:
        _fail(str(exc), EXIT_USAGE)
    raise AssertionError("unreachable")


def _target(text: str) -> int | str:
    """A pid (decimal or 0x hex, as `ps` shows it) or a registry name."""
    try:
        return int(text, 0)
    except ValueError:
        return text


def _call(action: Callable[[], Any]) -> Any:
    """Run a client call; its errors as a message and exit status 1."""
    from lunatic_mp.errors import LunaticError

    try:
        return action()
    except (LunaticError, TimeoutError, ConnectionError, ValueError) as exc:
        _fail(str(exc))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per process, one a line.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=10_000, show_default=True, help="Processes per worker."
)
@client_options
def ps(as_json: bool, limit: int, address: str | None, token: str | None, timeout: float) -> None:
    """List the live processes of a running server, and how many its workers may hold."""
    with _client(address, token, timeout) as client:
        total, processes = _call(lambda: client.processes(limit))
        workers = _call(client.stats)["workers"] if not as_json else []
    if as_json:
        for info in processes:
            click.echo(json.dumps({**info.__dict__, "names": list(info.names)}))
        return
    rows = [("PID", "WORKER", "KIND", "MODULE", "FUNCTION", "STATE", "MAILBOX", "NAMES")]
    for info in processes:
        state = f"{info.phase}{' (waiting)' if info.waiting else ''}"
        module = info.module or "-"
        rows.append(
            (f"{info.pid:#x}", str(info.worker), info.kind, module, info.function, state, str(info.mailbox),
             ", ".join(info.names) or "-")
        )  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    shown = f" (showing {len(processes)})" if len(processes) < total else ""
    click.echo(f"{total} process{'' if total == 1 else 'es'}{shown}")
    if workers:  # what bounds each worker: lunatic_mp.vm.capacity
        capacity = sum(worker.get("capacity", 0) for worker in workers)
        bound = workers[0].get("capacity_limit", "")
        plural = "" if len(workers) == 1 else "s"
        click.echo(f"capacity {capacity:,} on {len(workers)} worker{plural}: {bound}")


def _data(data: str | None, file: Path | None) -> bytes:
    if data is not None and file is not None:
        _fail("give DATA or --file, not both", EXIT_USAGE)
    if file is not None:
        return sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    return (data or "").encode()


@click.command()
@click.argument("target")
@click.argument("data", required=False)
@click.option(
    "--file", type=click.Path(dir_okay=False, path_type=Path), help="Send this file's bytes ('-': stdin)."
)
@click.option("--tag", type=int, default=0, show_default=True, help="The message's tag.")
@client_options
def send(
    target: str,
    data: str | None,
    file: Path | None,
    tag: int,
    address: str | None,
    token: str | None,
    timeout: float,
) -> None:
    """Send DATA (text; or --file) to TARGET, a pid or a registry name (name@requirement)."""
    payload = _data(data, file)
    with _client(address, token, timeout) as client:
        _call(lambda: client.send(_target(target), payload, tag))


@click.command()
@click.argument("target")
@click.argument("data", required=False)
@click.option(
    "--file", type=click.Path(dir_okay=False, path_type=Path), help="Send this file's bytes ('-': stdin)."
)
@click.option("--raw", is_flag=True, help="Write the reply's bytes only, without a newline after them.")
@client_options
def request(
    target: str,
    data: str | None,
    file: Path | None,
    raw: bool,
    address: str | None,
    token: str | None,
    timeout: float,
) -> None:
    """Send DATA to TARGET and print its reply (the guest answers the sender with the
    request's tag); fails after --timeout seconds without one."""
    payload = _data(data, file)
    with _client(address, token, timeout) as client:
        reply = _call(lambda: client.request(_target(target), payload, timeout=timeout))
    sys.stdout.buffer.write(bytes(reply.data) + (b"" if raw else b"\n"))
    sys.stdout.flush()


@click.command()
@click.argument("targets", nargs=-1)
@click.option(
    "--no-wait", is_flag=True, help="Return once the server has the order, not when it has stopped."
)
@client_options
def stop(
    targets: tuple[str, ...], no_wait: bool, address: str | None, token: str | None, timeout: float
) -> None:
    """Stop the server, or kill the processes TARGETS (pids or registry names).

    The server answers what it is handling (new requests are refused), stops its workers and
    exits; this waits for that unless --no-wait.
    """
    with _client(address, token, timeout) as client:
        if targets:
            for target in targets:  # a pid or name that is not there is an error, not "killed"
                if not _call(partial(client.exists, _target(target))):
                    _fail(f"no process {target} (a pid as `lunatic-mp ps` shows it, or a registry name)")
                _call(partial(client.kill, _target(target)))
                click.echo(f"killed {target}")
            return
        click.echo(f"stopping the server at {client.address}...", err=True)
        _call(lambda: client.stop_server(wait=not no_wait, timeout=timeout))
        click.echo("stopped" if not no_wait else "stopping", err=True)


SERVE_COMMANDS = (serve, ps, send, request, stop)
"""The commands :mod:`lunatic_mp.cli.app` adds to its group."""

__all__ = ["SERVE_COMMANDS"]
