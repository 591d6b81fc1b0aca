"""`lunatic-mp serve` checks every address before it starts a worker, and reports every problem
in one line; the built-in example moves a taken metrics port as it does a taken HTTP port;
`--log-level` and `--log-format` work after `serve` too, and json sends the start-up lines
through logging."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import examples
from lunatic_mp.serve.config import TcpAddress, example_config
from lunatic_mp.serve.preflight import check_addresses

TIMEOUT = 120
CLI = [sys.executable, "-c", "from lunatic_mp.cli.app import main; main()"]


@pytest.fixture
def taken() -> Iterator[list[int]]:
    """Two ports something already listens on."""
    listeners = []
    for _ in range(2):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listeners.append(listener)
    yield [listener.getsockname()[1] for listener in listeners]
    for listener in listeners:
        listener.close()


def test_every_address_problem_in_one_line_before_any_worker(tmp_path: Path, taken: list[int]) -> None:
    """It used to find them one per try, each some seconds into the start-up."""
    shared = tmp_path / "shared"  # a directory anyone may write, as /tmp
    shared.mkdir()
    shared.chmod(0o777)
    sockets = shared / "sockets"  # not private: another user could watch the socket
    sockets.mkdir(mode=0o755)
    sockets.chmod(0o755)
    (tmp_path / "counter.wat").write_bytes(examples.path("counter.wat").read_bytes())
    config = tmp_path / "serve.toml"
    config.write_text(
        'workers = 1\n[modules]\ncounter = "counter.wat"\n'
        '[[routes]]\npath = "/count"\nmodule = "counter"\nfunction = "counter"\n'
    )
    metrics, http = taken
    started = time.monotonic()
    result = subprocess.run(
        [*CLI, "serve", str(config), "--control", f"unix:{sockets}/control.sock",
         "--metrics", f"127.0.0.1:{metrics}", "--http", f"127.0.0.1:{http}"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert result.returncode == 2
    assert "started" not in result.stdout  # no worker was started
    (line,) = result.stderr.splitlines()
    assert line.startswith("lunatic-mp: cannot start: control socket: ")
    assert f"{sockets} must belong to this user and be private (mode 0700)" in line
    assert f"cannot listen for metrics on 127.0.0.1:{metrics}: Address already in use" in line
    assert f"cannot serve HTTP on 127.0.0.1:{http}: Address already in use" in line


def test_the_example_moves_a_taken_metrics_port(taken: list[int]) -> None:
    config = example_config()
    config.metrics_address = TcpAddress("127.0.0.1", taken[0])
    config.http.address = TcpAddress("127.0.0.1", taken[1])  # the server moves it itself
    lines: list[str] = []
    check_addresses(config, lines.append)
    assert lines == [f"metrics port {taken[0]} is taken: serving metrics on another one"]
    assert config.metrics_address == TcpAddress("127.0.0.1", 0)


def test_log_options_after_serve_and_json_start_up_lines(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*CLI, "serve", "--log-level", "debug", "--log-format", "json", "--workers", "1",
         "--control", f"unix:{tmp_path}/control.sock", "--metrics", "off", "--http", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(TIMEOUT, process.kill)
    watchdog.start()
    records = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            records.append(json.loads(line))  # every line is a JSON record
            if records[-1]["message"].startswith("ready: "):
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    messages = [record["message"] for record in records]
    assert messages[0].startswith("no config given: serving the built-in example")
    assert any(message.startswith("started 1 worker") for message in messages)
    assert messages[-1].startswith("ready: 2 modules")
    assert all(record["logger"] == "lunatic_mp.serve" for record in records if "ready" in record["message"])
