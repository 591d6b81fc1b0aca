"""workers/examples/http_hello.c behind `lunatic-mp serve`: a route to it, a real HTTP client,
and the lm_http_* helpers of lunatic.h seen from outside (the request parsed, the reply built)."""

from __future__ import annotations

import http.client
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from c_guests import ROOT, TIMEOUT, lunatic_mp_script

from lunatic_mp.pids import worker_of


class Server:
    """`lunatic-mp serve` of a config routing /greet/{name} to the built http_hello.wasm."""

    def __init__(self, tmp_path: Path, wasm: Path) -> None:
        (tmp_path / "run").mkdir(mode=0o700)
        config = tmp_path / "hello.toml"
        config.write_text(
            f"workers = 2\n[modules]\nhello = {str(wasm)!r}\n[http]\naddress = '127.0.0.1:0'\n"
            "[[routes]]\nmethod = ['GET', 'POST']\npath = '/greet/{name}'\nmodule = 'hello'\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("LUNATIC_MP_")}
        self.process = subprocess.Popen(
            [lunatic_mp_script(), "serve", str(config), "--metrics", "off",
             "--control", str(tmp_path / "run" / "control.sock")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env,
        )  # fmt: skip
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(lines,), daemon=True).start()
        self.netloc = ""
        while True:
            line = lines.get(timeout=TIMEOUT)
            assert line is not None, "the server ended before it was ready"
            if line.startswith("lunatic-mp: http http://"):
                self.netloc = line.split("http://", 1)[1].split()[0]
            if line.startswith("lunatic-mp: ready"):
                break

    def _read(self, lines: queue.Queue[str | None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPConnection(self.netloc, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=body, headers={"User-Agent": "the-tests/1.0"})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(TIMEOUT)


@pytest.fixture
def server(c_build: Path, tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, c_build / "http_hello.wasm")
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait(TIMEOUT)


def test_http_hello_greets_in_fresh_processes(server: Server) -> None:
    status, headers, text = server.request("GET", "/greet/Ada%20L?x=1&lang=fr")
    assert (status, text) == (200, "Bonjour, Ada L!\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["x-echo-user-agent"] == "the-tests/1.0"
    assert server.request("GET", "/greet/Ada?lang=de")[2] == "Hallo, Ada!\n"
    assert server.request("POST", "/greet/ignored", b"Grace")[2] == "Hello, Grace!\n"
    status, _, text = server.request("GET", "/greet/Ada?lang=xx")
    assert (status, text) == (400, "unknown language: use lang=en, fr or de\n")
    assert server.request("GET", "/nowhere")[0] == 404
    pids = {int(server.request("GET", "/greet/x")[1]["x-lunatic-pid"]) for _ in range(30)}
    assert len(pids) == 30  # a process per request...
    assert len({worker_of(pid) for pid in pids}) == 2  # ...on whichever worker took the connection
    assert server.stop() == 0
