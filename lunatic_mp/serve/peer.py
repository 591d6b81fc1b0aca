"""Whether a unix control socket is the server's, before a client sends it anything.

A client sends its token, and then its data, to whoever listens at the path it connects to. In
a directory other users can write (``/tmp``), another user could make the socket's directory or
the socket first and answer in the server's place. So, as the server does for the sockets it
makes, the client checks before it connects that the socket and its directory belong to this
user (or root), that nobody else can replace the socket (the directory is not writable by
others, or is sticky and the socket is this user's), and after it connects that the process
listening runs as this user or root (``SO_PEERCRED``). Anything else raises
:class:`~lunatic_mp.errors.UntrustedServer`.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from pathlib import Path

from lunatic_mp.errors import UntrustedServer

_PEERCRED = struct.Struct("3i")  # pid, uid, gid


def trusted_users() -> set[int]:
    """Who may own a server's socket and run its server: this user, and root."""
    return {os.geteuid(), 0}


def check_socket_path(path: Path) -> None:
    """Raise UntrustedServer unless the socket at ``path`` and its directory are trustworthy
    (see the module docstring); a missing path is left to ``connect`` to report."""
    try:
        socket_info = os.lstat(path)
    except FileNotFoundError:
        return
    trusted = trusted_users()
    if not stat.S_ISSOCK(socket_info.st_mode):
        raise UntrustedServer(f"{path} is not a socket")
    if socket_info.st_uid not in trusted:
        raise UntrustedServer(
            f"{path} belongs to user {socket_info.st_uid}, not to this user: refusing to send it anything"
        )
    directory = path.parent
    info = os.stat(directory)
    if info.st_uid not in trusted:
        raise UntrustedServer(
            f"{directory} (the directory of {path.name}) belongs to user {info.st_uid}, not to this "
            "user, who could have made the socket: refusing to send it anything"
        )
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise UntrustedServer(
            f"{directory} (the directory of {path.name}) can be written by other users, who could "
            "replace the socket: refusing to send it anything"
        )


def check_peer(sock: socket.socket, address: object) -> None:
    """Raise UntrustedServer unless the process listening on connected unix socket ``sock``
    runs as this user or root."""
    _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    if uid not in trusted_users():
        raise UntrustedServer(
            f"the server at {address} runs as user {uid}, not this user: refusing to talk to it"
        )


__all__ = ["check_peer", "check_socket_path", "trusted_users"]
