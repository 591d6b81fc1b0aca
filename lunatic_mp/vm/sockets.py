"""The sockets of an engine's processes: reference-counted sockets, each process's tables of ids,
and the resolver (``getaddrinfo`` blocks, so it runs on a small thread pool and comes back through
the reactor). :mod:`lunatic_mp.vm.host.networking` is the guests' view of them; a stream that
travels in a message between workers is adopted here on arrival (:func:`adopt_stream`).
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lunatic_mp.vm.reactor import Reactor, Waiter
from lunatic_mp.vm.wasm import GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.vm.process import Process

RESOLVER_THREADS = 4

Address = tuple[Any, ...]
"""A socket address as Python's socket module writes it: (host, port[, flowinfo, scope_id])."""


class Socket:
    """A socket a guest holds: closed when the last id or message referring to it goes."""

    __slots__ = (
        "family", "fd", "holders", "peek_timeout", "reactor", "read_timeout", "sock", "write_timeout",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, reactor: Reactor) -> None:
        sock.setblocking(False)
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.reactor = reactor
        self.read_timeout: int | None = None  # milliseconds; None: wait forever
        self.write_timeout: int | None = None
        self.peek_timeout: int | None = None
        self.holders = 0  # ids naming it, in every process's tables (a message holds one too)

    def hold(self) -> Socket:
        self.holders += 1
        return self

    def release(self) -> None:
        """One id naming it is gone; the last one closes it."""
        self.holders -= 1
        if self.holders <= 0:
            self.close()

    @property
    def live(self) -> socket.socket:
        if self.sock is None:  # pragma: no cover - a closed socket has no id left to name it
            raise GuestTrap("socket already closed")
        return self.sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            self.reactor.forget(self.fd)
            sock.close()

    def __del__(self) -> None:
        self.close()


class DnsIterator:
    """Addresses (from a lookup, or one: a listener's, a peer's) handed out one by one."""

    __slots__ = ("addresses", "index")

    def __init__(self, addresses: list[Address]) -> None:
        self.addresses = addresses
        self.index = 0


class Net:
    """One process's networking resources (``Resources.net``) and the one wait it may be in."""

    __slots__ = ("dns", "listeners", "reactor", "streams", "udp", "waiter")

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.listeners: dict[int, Socket] = {}
        self.streams: dict[int, Socket] = {}
        self.udp: dict[int, Socket] = {}
        self.dns: dict[int, DnsIterator] = {}
        self.waiter: Waiter | None = None

    def close(self, owner: object = None) -> None:
        """The process (``owner``) died: stop its wait, in Python or in C, and drop its ids
        (sockets nobody else holds close)."""
        if self.waiter is not None:
            self.reactor.cancel(self.waiter)
            self.waiter = None
        for sock in self.streams.values():
            self.reactor.cancel_c_wait(sock.fd, owner)
        for table in (self.listeners, self.streams, self.udp):
            sockets = list(table.values())
            table.clear()
            for sock in sockets:
                sock.release()
        self.dns.clear()


def net_of(process: Process, reactor: Reactor) -> Net:
    """The process's sockets, made on its first networking call."""
    net: Net | None = process.resources.net
    if net is None:
        net = process.resources.net = Net(reactor)
    return net


def os_error(exc: OSError) -> str:
    """An OS error as Rust's std::io::Error displays it (what lunatic's guests see)."""
    if exc.errno is not None:
        return f"{os.strerror(exc.errno)} (os error {exc.errno})"
    return str(exc) or type(exc).__name__


def format_address(address: Address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Resolver:
    """Blocking ``getaddrinfo`` calls on a few threads; results come back to the engine's thread
    through the reactor (:meth:`Reactor.call_soon_threadsafe`)."""

    _pool: concurrent.futures.ThreadPoolExecutor | None = None
    _lock = threading.Lock()

    @classmethod
    def submit(cls, reactor: Reactor, name: str, done: Callable[[list[Address] | str], None]) -> None:
        with cls._lock:
            if cls._pool is None:
                cls._pool = concurrent.futures.ThreadPoolExecutor(RESOLVER_THREADS, "lunatic-dns")
            pool = cls._pool
        reactor.thread_job_started()

        def work() -> None:
            result = lookup_host(name)
            reactor.call_soon_threadsafe(lambda: done(result))

        pool.submit(work)


def lookup_host(name: str) -> list[Address] | str:
    """``name`` as ``host:port`` (``[v6]:port`` too), resolved; or an error message."""
    host, sep, port_text = name.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535 or not host:
        return "invalid socket address"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        infos = socket.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"failed to lookup address information: {exc.strerror}"
    except (OSError, UnicodeError) as exc:
        return f"failed to lookup address information: {exc}"
    addresses: list[Address] = []
    for family, _, _, _, address in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and address not in addresses:
            addresses.append(address)
    return addresses


def adopt_stream(fd: int, reactor: Reactor, timeouts: tuple[int, int, int]) -> Socket:
    """A stream whose descriptor came from another worker, with its timeouts (-1: none)."""
    sock = socket.socket(fileno=fd)
    stream = Socket(sock, reactor).hold()  # held by the message it came in
    stream.read_timeout, stream.write_timeout, stream.peek_timeout = (t if t >= 0 else None for t in timeouts)
    return stream
