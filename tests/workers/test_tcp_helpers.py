"""lunatic.h's TCP helpers on the paths tcp_echo.c does not take: addresses that are no dotted
quad, a read timeout, a greeting written before the client speaks, and the peer's close."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import time
from pathlib import Path

import pytest
from c_guests import GUESTS, ROOT, TIMEOUT, build, lunatic_mp_script, require_built

BAD_ADDRESSES = ["", "127.0.0", "127.0.0.1.2", "256.0.0.1", "1.2.3.4x", "1..2.3", "localhost", "1234.0.0.1"]


def read_line(pipe: int, timeout: float) -> str:
    """One line from an unbuffered pipe, a byte at a time so that nothing after it is taken from
    the pipe; what came before EOF or the deadline if no newline came."""
    deadline = time.monotonic() + timeout
    line = bytearray()
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
        byte = os.read(pipe, 1) if ready else b""
        if not byte:
            break
        line += byte
    return line.decode()


@pytest.fixture(scope="module")
def tcp_checks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tcp-checks")
    require_built(build(out, GUESTS / "tcp_checks.c"))
    return out / "tcp_checks.wasm"


@pytest.mark.parametrize("workers", [1, 2])
def test_tcp_helpers(tcp_checks: Path, workers: int) -> None:
    command = [lunatic_mp_script(), "run", "--workers", str(workers), str(tcp_checks)]
    guest = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=ROOT)
    try:
        assert guest.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith(("port ", "listen:")):
            line = read_line(guest.stdout.fileno(), TIMEOUT)
            assert line.endswith("\n"), (lines, line, guest.poll())
            lines.append(line.rstrip("\n"))
        assert lines[:-1] == [f'bind "{text}": not an IPv4 address' for text in BAD_ADDRESSES]
        port = re.fullmatch(r"port (\d+)", lines[-1])
        assert port is not None, lines[-1]
        with socket.create_connection(("127.0.0.1", int(port.group(1))), timeout=TIMEOUT) as conn:
            greeting = b""
            while not greeting.endswith(b"\n"):  # written only after the guest's read timed out
                chunk = conn.recv(64)
                assert chunk, greeting
                greeting += chunk
            assert greeting == b"hello\n"
            conn.sendall(b"hi")
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(1) == b""  # the guest closed after its last read
        out, err = guest.communicate(timeout=TIMEOUT)
    finally:
        if guest.poll() is None:
            guest.kill()
            guest.communicate(timeout=TIMEOUT)
    assert guest.returncode == 0, err
    assert out.decode().splitlines() == [
        "quiet read: timed out",
        "greeting: written",
        "client said: hi",
        "after close: 0 bytes",
    ]
