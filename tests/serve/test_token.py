"""The control token is not shown to other users of the machine: `--token-file` and
`$LUNATIC_MP_TOKEN` keep it out of /proc/PID/cmdline, and `--token` (which does not) warns.
Other users are played by `nobody` (runuser), so these tests need root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_serve import TOKEN, ServeProcess, cli, environment, start

from lunatic_mp.cli.serve import TOKEN_ON_COMMAND_LINE

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser to be another user"
)


@pytest.fixture
def servers() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for server in started:
        server.kill()


TCP = ("--workers", "1", "--control", "tcp:127.0.0.1:0", "--metrics", "off", "--http", "off")


def as_nobody(path: str) -> subprocess.CompletedProcess[bytes]:
    """`cat path` as another user."""
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", path], capture_output=True, timeout=30, check=False
    )


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def test_a_token_file_or_the_environment_keeps_the_token_from_other_users(
    tmp_path: Path, servers: list[ServeProcess]
) -> None:
    """A server given its token by $LUNATIC_MP_TOKEN and a client given it by --token-file:
    another user reads both command lines and finds no token, and cannot read the server's
    environment; neither warns."""
    env = environment(tmp_path)
    server = start(servers, *TCP, env=environment(tmp_path, LUNATIC_MP_TOKEN=TOKEN))
    address = server.ready()["control"]
    pid = server.process.pid
    seen = as_nobody(f"/proc/{pid}/cmdline")
    assert seen.returncode == 0 and b"--control" in seen.stdout and TOKEN.encode() not in seen.stdout
    environ = as_nobody(f"/proc/{pid}/environ")
    assert environ.returncode != 0 and TOKEN.encode() not in environ.stdout
    listed = cli("ps", "--connect", address, "--token-file", token_file(tmp_path), env=env)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert "counter@1.0.0" in listed.stdout
    assert not any("warning" in line for line in server.stderr)
    assert cli("stop", "--connect", address, "--token-file", token_file(tmp_path), env=env).returncode == 0
    assert server.finish() == 0


def test_a_token_on_the_command_line_is_seen_by_other_users_and_warned_of(
    tmp_path: Path, servers: list[ServeProcess]
) -> None:
    """`serve --token` works, but the token is in its command line for anyone to read (the
    attack), so the server says so on stderr, naming what to use instead."""
    server = start(servers, *TCP, "--token", TOKEN, env=environment(tmp_path))
    address = server.ready()["control"]
    assert TOKEN.encode() in as_nobody(f"/proc/{server.process.pid}/cmdline").stdout
    assert f"lunatic-mp: {TOKEN_ON_COMMAND_LINE}" in server.stderr
    assert "--token-file" in TOKEN_ON_COMMAND_LINE and "$LUNATIC_MP_TOKEN" in TOKEN_ON_COMMAND_LINE
    stopped = cli("stop", "--connect", address, env=environment(tmp_path, LUNATIC_MP_TOKEN=TOKEN))
    assert stopped.returncode == 0 and "warning" not in stopped.stderr, stopped.stderr
    assert server.finish() == 0


def test_token_file_mistakes_are_usage_errors(tmp_path: Path) -> None:
    """Both ways at once, an empty or missing file: exit 2; a file others may read: a warning."""
    env = environment(tmp_path)
    shared = token_file(tmp_path)
    shared.chmod(0o644)
    warned = cli("ps", "--connect", "tcp:127.0.0.1:1", "--token-file", shared, "--timeout", "5", env=env)
    assert f"warning: other users may read the token file {shared}: chmod 600 it" in warned.stderr
    both = cli("ps", "--token", TOKEN, "--token-file", token_file(tmp_path), env=env)
    assert both.returncode == 2 and "give --token or --token-file, not both" in both.stderr
    (tmp_path / "empty").write_text("\n")
    empty = cli("serve", *TCP, "--token-file", tmp_path / "empty", env=env)
    assert empty.returncode == 2 and "is empty" in empty.stderr
    missing = cli("ps", "--token-file", tmp_path / "missing", env=env)
    assert missing.returncode == 2 and "cannot read the token file" in missing.stderr
