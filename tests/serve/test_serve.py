"""`lunatic-mp serve` and the client commands end to end: real server processes, signals
(SIGTERM drains, SIGHUP reloads, Ctrl-C), the command line, a TCP socket with a token, logs."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lunatic_mp
from lunatic_mp.errors import RemoteError
from lunatic_mp.serve import rpc
from lunatic_mp.serve.rpc import Response

ROOT = Path(__file__).parents[2]
GUESTS = Path(__file__).parents[1] / "guests"
WAIT = 90.0
TOKEN = "a-token-for-the-tests-0123456789"


def lunatic_mp_script() -> str:
    beside_python = Path(sys.executable).parent / "lunatic-mp"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lunatic-mp")
    if found is None:
        pytest.skip("the lunatic-mp script is not installed")
    return found


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a server and its clients: the default socket lives under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUNATIC_MP_")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    env.update(extra)
    return env


def cli(*args: str | Path, env: dict[str, str], timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lunatic_mp_script(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


class ServeProcess:
    """A `lunatic-mp serve` subprocess whose output lines the test can wait for."""

    def __init__(self, *args: str | Path, env: dict[str, str], before: tuple[str, ...] = ()) -> None:
        self.process = subprocess.Popen(
            [lunatic_mp_script(), *before, "serve", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self.records: queue.Queue[str | None] = queue.Queue()  # stderr's lines, to wait for

        def on_stderr(line: str | None) -> None:
            if line is not None:
                self.stderr.append(line)
            self.records.put(line)

        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, on_stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream: Any, put: Any) -> None:
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first stdout line from here on that matches ``pattern``."""
        while True:
            try:
                line = self.stdout.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; stderr: {self.stderr}") from None
            if line is None:
                raise AssertionError(
                    f"the server ended before {pattern!r}: {self.lines}, stderr: {self.stderr}"
                )
            self.lines.append(line)
            if (match := re.search(pattern, line)) is not None:
                return match

    def ready(self) -> dict[str, str]:
        """Wait until it serves; where: {"control": address, "metrics": url or absent}."""
        where = {}
        while True:
            line = self.wait_for(r"^lunatic-mp: (control socket|metrics|ready)")[0]
            if "control socket" in line:
                where["control"] = self.lines[-1].split("control socket ", 1)[1]
            elif "metrics" in line:
                where["metrics"] = self.lines[-1].split("metrics ", 1)[1]
            else:
                return where

    def finish(self) -> int:
        """Wait for it to exit; its exit status, with the rest of its output read."""
        status = self.process.wait(WAIT)
        for reader in self._readers:
            reader.join(WAIT)
        while not self.stdout.empty():
            if (line := self.stdout.get_nowait()) is not None:
                self.lines.append(line)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


@pytest.fixture
def servers() -> Iterator[list[ServeProcess]]:
    """Servers a test starts; any still running at its end are killed."""
    started: list[ServeProcess] = []
    yield started
    for server in started:
        server.kill()


def start(
    servers: list[ServeProcess], *args: str | Path, env: dict[str, str], **options: Any
) -> ServeProcess:
    server = ServeProcess(*args, env=env, **options)
    servers.append(server)
    return server


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    return path


def test_the_example_app_and_the_client_commands(tmp_path: Path, servers: list[ServeProcess]) -> None:
    """No config: the built-in counter, on the default socket; every client command works on
    it, and `stop` stops the server (exit status 0)."""
    env = environment(tmp_path)
    server = start(servers, "--workers", "1", "--metrics", "127.0.0.1:0", env=env)
    where = server.ready()
    assert where["control"] == f"unix:{tmp_path / 'lunatic-mp.sock'}"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", where["metrics"])
    assert any("serving the built-in example" in line for line in server.lines)
    assert any("registered as counter@1.0.0" in line for line in server.lines)

    assert cli("request", "counter", "5", env=env).stdout == "5\n"
    sent = cli("send", "counter", "--", "-2", env=env)
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "", "")
    assert cli("request", "counter", env=env).stdout == "3\n"
    assert cli("request", "counter@^1", "--raw", env=env).stdout == "3"
    bad = cli("request", "counter", "many", env=env)
    assert (bad.returncode, bad.stdout) == (0, "error: send a whole number, like 5 or -2\n")

    ps = cli("ps", env=env)
    assert ps.returncode == 0, ps.stderr
    header, row, greeter, summary, capacity = ps.stdout.splitlines()
    assert header.split() == ["PID", "WORKER", "KIND", "MODULE", "FUNCTION", "STATE", "MAILBOX", "NAMES"]
    assert row.split() == [
        "0x200000001",
        "2",
        "wasm",
        "counter",
        "counter",
        "running",
        "(waiting)",
        "0",
        "counter@1.0.0",
    ]
    assert greeter.split()[3:5] == ["hello", "serve"] and greeter.split()[-1] == "greeter@1.0.0"
    assert summary == "2 processes"
    assert capacity.startswith("capacity ") and " on 1 worker: " in capacity  # and what bounds it
    listed, _ = [json.loads(line) for line in cli("ps", "--json", env=env).stdout.splitlines()]
    assert listed["pid"] == 0x200000001
    assert listed["names"] == ["counter@1.0.0"]

    missing = cli("request", "ghost", env=env)
    assert missing.returncode == 1
    assert missing.stderr == "lunatic-mp: NotFound: no process is registered as 'ghost'\n"
    second = cli("serve", "--workers", "1", "--metrics", "off", env=env)
    assert second.returncode == 2
    assert "another server is listening" in second.stderr

    stopped = cli("stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr.splitlines()[-1] == "stopped"
    assert server.finish() == 0
    assert server.lines[-1] == "lunatic-mp: stopped"
    assert not (tmp_path / "lunatic-mp.sock").exists()
    gone = cli("ps", env=env)
    assert gone.returncode == 2
    assert "no lunatic-mp server at" in gone.stderr


def test_stop_kills_named_processes(tmp_path: Path, servers: list[ServeProcess]) -> None:
    env = environment(tmp_path)
    server = start(servers, "--workers", "1", "--metrics", "off", env=env)
    server.ready()
    killed = cli("stop", "counter", env=env)
    assert (killed.returncode, killed.stdout) == (0, "killed counter\n")
    ghost = cli("stop", "0x999", env=env)  # it used to say "killed 0x999"
    assert (ghost.returncode, ghost.stdout) == (1, "")
    assert ghost.stderr.startswith("lunatic-mp: no process 0x999 ")
    again = cli("stop", "counter", env=env)  # its name is gone with it
    assert again.returncode == 1 and "no process counter" in again.stderr
    with lunatic_mp.connect(tmp_path / "lunatic-mp.sock") as client:
        _, rows = client.processes()
        assert [tuple(row.names) for row in rows] == [("greeter@1.0.0",)]  # the example's other one
        assert client.registry_get("counter") is None  # its name went with it
        client.stop_server()
    assert server.finish() == 0


def test_sigterm_drains_requests_in_flight(tmp_path: Path, servers: list[ServeProcess]) -> None:
    """SIGTERM: the request being handled is answered, new ones are refused, new connections
    too; then the server stops its runtime and exits 0."""
    config = write_config(
        tmp_path,
        f"""
        [modules]
        guest = "{GUESTS / "serve_guest.wat"}"

        [[processes]]
        module = "guest"
        function = "slow_echo"
        params = [800]
        name = "slow"
        """,
    )
    address = tmp_path / "control.sock"
    server = start(
        servers, config, "--workers", "1", "--control", address, "--metrics", "off", env=environment(tmp_path)
    )
    server.ready()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(WAIT)
    connection.connect(str(address))
    decoder = rpc.Decoder()

    def answer() -> Response:
        while True:
            data = connection.recv(65536)
            assert data, "the server closed the connection"
            (message,) = decoder.feed(data)
            assert isinstance(message, Response)
            return message

    connection.sendall(
        rpc.encode_request(1, "request", ["slow", b"in flight", 30]) + rpc.encode_request(2, "ping", [])
    )
    assert answer() == Response(2, None, "pong")  # so the request has been read
    server.process.send_signal(signal.SIGTERM)
    server.wait_for(r"stopping: 1 request in flight")
    connection.sendall(rpc.encode_request(3, "names", []))
    refused = answer()
    assert (refused.msgid, rpc.error_parts(refused.error)) == (3, ("ShuttingDown", "the server is stopping"))
    with pytest.raises(ConnectionError):
        lunatic_mp.connect(address)
    drained = answer()
    assert drained.msgid == 1
    assert drained.error is None
    assert drained.result["data"] == b"in flight"
    assert connection.recv(65536) == b""  # closed once stopped
    connection.close()
    assert server.finish() == 0
    assert server.lines[-1] == "lunatic-mp: stopped"


def test_sighup_reloads_the_modules(tmp_path: Path, servers: list[ServeProcess]) -> None:
    """After SIGHUP new processes run the new code; running ones keep theirs; a module that no
    longer compiles leaves every module as it was."""
    module = tmp_path / "versioned.wat"
    source = (GUESTS / "serve_guest.wat").read_text()
    module.write_text(source)
    config = write_config(
        tmp_path,
        """
        [modules]
        v = "versioned.wat"

        [[processes]]
        module = "v"
        function = "park"
        name = "parked"
        """,
    )
    address = tmp_path / "control.sock"
    server = start(
        servers, config, "--workers", "1", "--control", address, "--metrics", "off", env=environment(tmp_path)
    )
    server.ready()
    with lunatic_mp.connect(address) as client:

        def version() -> Any:
            finished = client.join(client.spawn("v", "version"), timeout=WAIT)
            assert finished is not None
            return finished.result

        assert version() == (1,)
        module.write_text(source.replace("(result i32) (i32.const 1)", "(result i32) (i32.const 2)"))
        server.process.send_signal(signal.SIGHUP)
        server.wait_for(r"^lunatic-mp: reloaded v$")
        assert version() == (2,)
        _, processes = client.processes()
        assert [(p.names, p.module) for p in processes] == [(("parked",), "v (old)")]

        module.write_text("(module (func $broken")
        server.process.send_signal(signal.SIGHUP)
        server.wait_for(r"^lunatic-mp: reload failed: module v")
        assert version() == (2,)
        with pytest.raises(RemoteError, match="reload failed, the modules stay as they were"):
            client.reload()
        assert client.stats()["server"]["reloads"] == {"ok": 1, "failed": 2}
    server.process.send_signal(signal.SIGINT)  # Ctrl-C stops it as SIGTERM does
    assert server.finish() == 0


def test_tcp_with_a_token(tmp_path: Path, servers: list[ServeProcess]) -> None:
    env = environment(tmp_path)
    refused = cli("serve", "--control", "tcp:127.0.0.1:0", "--metrics", "off", env=env)
    assert refused.returncode == 2
    assert "a TCP control socket needs a token" in refused.stderr

    server = start(
        servers, "--workers", "1", "--control", "tcp:127.0.0.1:0", "--metrics", "off",
        env=environment(tmp_path, LUNATIC_MP_TOKEN=TOKEN),
    )  # fmt: skip
    address = server.ready()["control"]
    assert re.fullmatch(r"tcp:127\.0\.0\.1:\d+", address)
    listed = cli("ps", "--connect", address, "--token", TOKEN, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "counter@1.0.0" in listed.stdout
    wrong = cli("ps", "--connect", address, "--token", "x" * len(TOKEN), env=env)
    assert wrong.returncode == 2  # and a warning that --token is visible to other users
    assert wrong.stderr.splitlines()[1:] == ["lunatic-mp: Unauthorized: wrong token"]
    with lunatic_mp.connect(address) as client, pytest.raises(RemoteError, match="send `auth"):
        client.processes()
    with lunatic_mp.connect(address, TOKEN) as client:
        assert client.request("counter", b"7").data == b"7"
    stopped = cli("stop", env=environment(tmp_path, LUNATIC_MP_CONNECT=address, LUNATIC_MP_TOKEN=TOKEN))
    assert stopped.returncode == 0, stopped.stderr
    assert server.finish() == 0


def test_json_logs(tmp_path: Path, servers: list[ServeProcess]) -> None:
    address = tmp_path / "control.sock"
    server = start(
        servers, "--workers", "1", "--control", address, "--metrics", "off",
        env=environment(tmp_path), before=("--log-format", "json"),
    )  # fmt: skip
    while True:  # the start-up lines are log records too (on stderr), "ready" the last of them
        line = server.records.get(timeout=WAIT)
        assert line is not None, f"the server ended before it was ready: {server.stderr}"
        if json.loads(line)["message"].startswith("ready: "):
            break
    with lunatic_mp.connect(address) as client:
        client.stop_server()
    assert server.finish() == 0
    assert server.lines == []  # nothing on stdout: every line went through logging
    records = [json.loads(line) for line in server.stderr if line is not None]
    assert records, "no log records"
    assert all({"time", "level", "logger", "message", "pid"} <= record.keys() for record in records)
    assert {
        "level": "INFO",
        "logger": "lunatic_mp.serve.server",
        "message": "stopping: asked through the control socket",
    }.items() <= next(record for record in records if record["message"].startswith("stopping")).items()


def test_bad_configs_fail_clearly(tmp_path: Path) -> None:
    env = environment(tmp_path)
    missing = cli("serve", tmp_path / "nothere.toml", env=env)
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith("lunatic-mp: cannot read ")
    typo = write_config(tmp_path, "wrkers = 2\n")
    result = cli("serve", typo, env=env)
    assert result.returncode == 2
    assert "unknown key 'wrkers' in the top level" in result.stderr
    no_file = write_config(tmp_path, '[modules]\nm = "nothere.wat"\n')
    result = cli(
        "serve", no_file, "--workers", "1", "--metrics", "off", "--control", tmp_path / "c.sock", env=env
    )
    assert result.returncode == 2
    assert result.stderr == f"lunatic-mp: module m: no file {tmp_path / 'nothere.wat'}\n"
    wrong_params = write_config(
        tmp_path,
        f'[modules]\nc = "{ROOT / "lunatic_mp" / "examples" / "counter.wat"}"\n'
        '[[processes]]\nmodule = "c"\nfunction = "add"\nparams = [1]\n',
    )
    result = cli(
        "serve", wrong_params, "--workers", "1", "--metrics", "off", "--control", tmp_path / "c.sock", env=env
    )
    assert result.returncode == 2
    assert result.stderr == "lunatic-mp: cannot start c.add: c:add takes 2 parameter(s) (i64, i64), got 1\n"
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    shutil.copy(GUESTS / "serve_guest.wat", tmp_path / "guest.wat")
    own = write_config(tmp_path, '[modules]\nguest = "guest.wat"\n')  # the example would move the port
    try:
        result = cli(
            "serve",
            own,
            "--workers",
            "1",
            "--control",
            tmp_path / "c.sock",
            "--metrics",
            f"127.0.0.1:{port}",
            env=env,
        )
    finally:
        taken.close()
    assert result.returncode == 2
    assert f"cannot listen for metrics on 127.0.0.1:{port}" in result.stderr
    assert not (tmp_path / "c.sock").exists()
    assert not (tmp_path / "c.sock").exists()
