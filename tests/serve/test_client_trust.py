"""A client never talks to a control socket another local user could have made (issue 20):
another user (``runuser -u nobody``) makes the socket's directory and socket first, listens, and
records what it is sent. Root only (skipped otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lunatic_mp.errors import UntrustedServer
from lunatic_mp.serve.client import AsyncClient, Client
from lunatic_mp.serve.config import UnixAddress, default_control_address
from lunatic_mp.serve.peer import check_peer

TOKEN = "correct horse battery staple"
WAIT = 30.0

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="runs an attacker as another user (root only)",
)

# Listens at argv[1] (made with mode 0666 so anyone can connect) and prints every byte it is
# sent, hex, one line per chunk; prints "listening" first.
IMPOSTOR = """
import os, select, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.umask(0)
sock.bind(sys.argv[1])
sock.listen(8)
print("listening", flush=True)
peers = []
while True:
    ready, _, _ = select.select([sock, *peers], [], [])
    for r in ready:
        if r is sock:
            peers.append(sock.accept()[0])
        else:
            data = r.recv(65536)
            if not data:
                peers.remove(r)
            else:
                print(data.hex(), flush=True)
"""


@dataclass
class Impostor:
    path: Path
    process: subprocess.Popen[str]

    def heard(self) -> str:
        """Everything it was sent (stops it)."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=WAIT)
        return "".join(bytes.fromhex(line).decode(errors="replace") for line in out.split()[1:])


@pytest.fixture
def world() -> Iterator[Path]:
    """A directory like /tmp: anyone may write, sticky."""
    directory = Path(tempfile.mkdtemp(prefix="lmp-world-"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def impostor(path: Path, make_directory: bool) -> Impostor:
    """User nobody listening at ``path`` (making its directory first, mode 0700, if asked)."""
    if make_directory:
        subprocess.run(["runuser", "-u", "nobody", "--", "mkdir", "-m", "700", str(path.parent)], check=True)
    process = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", IMPOSTOR, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own: runuser does not pass a SIGKILL on
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "listening"
    return Impostor(path, process)


@pytest.fixture
def impostors() -> Iterator[list[Impostor]]:
    started: list[Impostor] = []
    yield started
    for one in started:
        if one.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(one.process.pid, signal.SIGKILL)  # runuser and the listener it started
            one.process.wait()
        if one.process.stdout is not None:
            one.process.stdout.close()


def test_a_socket_directory_another_user_made_first_gets_nothing(
    world: Path, impostors: list[Impostor]
) -> None:
    """Another user makes the default-style directory (``lunatic-mp-UID``) and listens in it:
    the client refuses before connecting, and the impostor hears nothing (before the fix it
    received the token and could answer in the server's place)."""
    impostors.append(impostor(world / f"lunatic-mp-{os.getuid()}" / "control.sock", make_directory=True))
    with pytest.raises(UntrustedServer, match="belongs to user 65534"):
        Client(UnixAddress(impostors[0].path), TOKEN, timeout=2)
    with pytest.raises(UntrustedServer):
        asyncio.run(AsyncClient.connect(UnixAddress(impostors[0].path), TOKEN, timeout=2))
    assert TOKEN not in impostors[0].heard()


def test_another_users_socket_in_a_shared_directory_gets_nothing(
    world: Path, impostors: list[Impostor]
) -> None:
    impostors.append(impostor(world / "control.sock", make_directory=False))
    with pytest.raises(UntrustedServer, match="belongs to user 65534"):
        Client(UnixAddress(impostors[0].path), TOKEN, timeout=2)
    assert TOKEN not in impostors[0].heard()


def test_a_listener_of_another_user_is_refused_after_connecting(
    world: Path, impostors: list[Impostor]
) -> None:
    """SO_PEERCRED: even a connection already made is checked before anything is sent."""
    impostors.append(impostor(world / "control.sock", make_directory=False))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(impostors[0].path))
        with pytest.raises(UntrustedServer, match="runs as user 65534"):
            check_peer(sock, impostors[0].path)


def test_the_default_address_ignores_a_runtime_dir_of_another_user(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = world / "run-user"
    subprocess.run(["runuser", "-u", "nobody", "--", "mkdir", "-m", "700", str(theirs)], check=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(theirs))
    assert default_control_address().path == Path("/tmp") / f"lunatic-mp-{os.getuid()}" / "control.sock"
    mine = world / "run-me"
    mine.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(mine))
    assert default_control_address().path == mine / "lunatic-mp.sock"
