"""The addresses of ``lunatic-mp serve``'s sockets, as written in its config and on the command line
(``unix:PATH``, ``tcp:HOST:PORT``), shared by the server and its clients."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from lunatic_mp.errors import ServeConfigError

__all__ = [
    "CONNECT_ENV",
    "Address",
    "TcpAddress",
    "UnixAddress",
    "client_address",
    "default_control_address",
    "parse_address",
]

CONNECT_ENV = "LUNATIC_MP_CONNECT"
_PORT = re.compile(r"^(?P<host>.*):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class UnixAddress:
    """A unix socket path."""

    path: Path

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class TcpAddress:
    """A TCP host and port (port 0: any free port, for the server)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"

    @property
    def netloc(self) -> str:
        """``host:port`` as in a URL."""
        return str(self).removeprefix("tcp:")


Address = UnixAddress | TcpAddress


def parse_address(text: str) -> Address:
    """``unix:PATH``, ``tcp:HOST:PORT`` (also ``tcp://HOST:PORT``), ``HOST:PORT``, or a path.

    A bare ``HOST:PORT`` is TCP when PORT is a number and HOST has no ``/``; anything else
    without a prefix is a unix socket path. IPv6 hosts go in brackets: ``tcp:[::1]:7070``.
    """
    text = text.strip()
    if not text:
        raise ServeConfigError("an empty address")
    if text.startswith("unix:"):
        path = text.removeprefix("unix:").removeprefix("//")
        if not path:
            raise ServeConfigError(f"no path in {text!r}")
        return UnixAddress(Path(path).expanduser())
    explicit = text.startswith("tcp:")
    rest = text.removeprefix("tcp:").removeprefix("//") if explicit else text
    match = _PORT.match(rest)
    if match is not None and "/" not in match["host"]:
        host = match["host"].removeprefix("[").removesuffix("]") or "127.0.0.1"
        port = int(match["port"])
        if port > 65535:
            raise ServeConfigError(f"port {port} is out of range in {text!r}")
        return TcpAddress(host, port)
    if explicit:
        raise ServeConfigError(f"a TCP address is tcp:HOST:PORT, got {text!r}")
    return UnixAddress(Path(text).expanduser())


def default_control_address() -> UnixAddress:
    """Where the control socket is when nobody says: ``$XDG_RUNTIME_DIR/lunatic-mp.sock`` (a
    directory of this user's that no other user can create), or else
    ``/tmp/lunatic-mp-<uid>/control.sock`` (a directory only this user can enter; if another
    user made it first, the server and the clients refuse it: :mod:`lunatic_mp.serve.peer`)."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and _own_private_directory(Path(runtime_dir)):
        return UnixAddress(Path(runtime_dir) / "lunatic-mp.sock")
    return UnixAddress(Path("/tmp") / f"lunatic-mp-{os.getuid()}" / "control.sock")  # noqa: S108


def _own_private_directory(path: Path) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077


def client_address(given: str | None) -> Address:
    """The address a client connects to: ``given``, else ``$LUNATIC_MP_CONNECT``, else the
    server's default."""
    text = given or os.environ.get(CONNECT_ENV)
    return parse_address(text) if text else default_control_address()
