"""Check every address a server will listen on before it starts any worker.

Starting the workers and compiling the modules takes seconds; a server used to find a taken
control socket only then, and the metrics port after that, and the socket directory's mode last,
one failure per try. :func:`check_addresses` finds them all at once, in milliseconds, and the
built-in example moves its metrics to a free port when 9464 is taken, as it does its HTTP port.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Callable

from lunatic_mp.errors import ServeConfigError
from lunatic_mp.serve.config import ServeConfig, TcpAddress, UnixAddress
from lunatic_mp.serve.control import _check_private


def _tcp_problem(address: TcpAddress) -> OSError | None:
    """Whether ``address`` can be listened on now (a port in TIME_WAIT can)."""
    if address.port == 0:
        return None
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((address.host, address.port))
    except OSError as exc:
        return exc
    return None


def _unix_problem(address: UnixAddress) -> str | None:
    path = address.path
    if path.parent.is_dir():
        try:
            _check_private(path.parent)
        except ServeConfigError as exc:
            return str(exc)
    if not (path.exists() or path.is_symlink()):
        return None
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        return f"{path} exists and is not a socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return None  # a dead server's: the server replaces it
    return f"another server is listening at {path} (pass another --control address)"


def check_addresses(config: ServeConfig, announce: Callable[[str], None]) -> None:
    """Raise one :class:`ServeConfigError` naming every address the server could not listen on.

    Where the config takes any free port when its own is taken (the built-in example), a taken
    metrics port is replaced by a free one, with a line saying so, as the HTTP port is.
    """
    problems = []
    control = config.control.address
    if isinstance(control, UnixAddress):
        if (problem := _unix_problem(control)) is not None:
            problems.append(f"control socket: {problem}")
    elif (error := _tcp_problem(control)) is not None:
        problems.append(f"control socket: cannot listen on {control.netloc}: {error.strerror or error}")
    metrics = config.metrics_address
    if metrics is not None and (error := _tcp_problem(metrics)) is not None:
        if config.metrics_any_port_if_taken and error.errno == errno.EADDRINUSE:
            announce(f"metrics port {metrics.port} is taken: serving metrics on another one")
            config.metrics_address = TcpAddress(metrics.host, 0)
        else:
            problems.append(
                f"cannot listen for metrics on {metrics.netloc}: {error.strerror or error} "
                "(pass --metrics HOST:PORT, or off)"
            )
    http = config.http.address
    error = _tcp_problem(http) if config.http_enabled else None
    if error is not None and not (config.http.any_port_if_taken and error.errno == errno.EADDRINUSE):
        problems.append(
            f"cannot serve HTTP on {http.netloc}: {error.strerror or error} (pass --http HOST:PORT, or off)"
        )
    if problems:
        raise ServeConfigError("cannot start: " + "; ".join(problems))
