"""``lunatic::networking``: TCP listeners and streams, UDP sockets and DNS, as in lunatic 0.13;
and ``lunatic::message``'s ``push_tcp_stream`` / ``take_tcp_stream``.

Every socket is non-blocking. A call first tries its system call; when that would block, the
process is suspended (as in ``receive``) and waits on the engine's reactor
(:mod:`lunatic_mp.vm.reactor`) for its descriptor, with a timer for its timeout: no waiting socket
ever blocks the other processes of the worker. DNS lookups (``getaddrinfo`` blocks) run on a
small thread pool and come back through the reactor.

Sockets belong to the process's resource tables (:class:`Net`) and close when their last
reference goes: the ids that name them (clones share one socket, as lunatic's ``Arc`` does),
and messages they travel in. A process that dies drops all of its ids at once.

Each call that would reach the network first checks the process's config (``net_bind``,
``net_connect``: :mod:`lunatic_mp.netpolicy`); a denied call returns the error code with an
error id saying so, and touches nothing.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lunatic_mp.netpolicy import allows
from lunatic_mp.vm import core
from lunatic_mp.vm.host._common import (
    ERROR,
    NO_TIMEOUT,
    OK,
    TIMEOUT,
    HostEngine,
    current,
    lookup,
    memory_of,
    report_error,
)
from lunatic_mp.vm.host.message import extensible_scratch, scratch_of
from lunatic_mp.vm.reactor import READ, WRITE
from lunatic_mp.vm.sockets import (
    Address,
    DnsIterator,
    Net,
    Resolver,
    Socket,
    format_address,
    net_of,
    os_error,
)
from lunatic_mp.vm.wasm import PENDING, GuestTrap, Memory

if TYPE_CHECKING:
    from lunatic_mp.vm.process import Process

NAMESPACE = "lunatic::networking"
LISTEN_BACKLOG = 1024
MAX_IOVECS = 1024
C_READ, C_PEEK, C_WRITE = 0, 1, 2  # c_slow_path's op, as net.c numbers them
NO_NETWORK = "permission denied: this process's config has no network access (EnvConfig.net_*)"

After = Callable[[], None] | None
"""What a call does in its process just before it returns: writes its out-parameters."""


class CWait:
    """A C network call (lunatic_mp/vm/net.c) suspended until its socket is ready; called then, it
    lets C try again (core.net_io), straight into or out of guest memory, and resumes the
    process with OK or an error id (or waits again when another process took the data first).

    An object rather than a closure: a closure that re-arms itself is a reference cycle, garbage
    that only the cyclic collector frees, and an echo server makes one per request.
    """

    __slots__ = ("a", "b", "engine", "events", "fd", "net", "op", "opaque_ptr", "process", "state")

    def __init__(
        self, engine: HostEngine, process: Process, net: Net, fd: int, events: int, op: int, a: int, b: int,
        opaque_ptr: int,
    ) -> None:  # fmt: skip
        self.engine, self.process, self.net, self.fd, self.events = engine, process, net, fd, events
        self.op, self.a, self.b, self.opaque_ptr = op, a, b, opaque_ptr
        self.state = process.store.state  # type: ignore[union-attr]  # a live process has its store

    def __call__(self) -> None:
        process, net = self.process, self.net
        net.waiter = None
        if process.finished is not None:
            return
        outcome = core.net_io(self.state, self.fd, self.op, self.a, self.b, self.opaque_ptr)
        if outcome == errno.EAGAIN:  # woken, but another process took the data first
            net.waiter = self.engine.reactor.wait(self.fd, self.events, self)
            return
        if outcome:  # -1: its buffers cannot be reached (memory never shrinks: none to fit them)
            error_id = io_error_id(process, outcome)
            process.memory.write_u64(self.opaque_ptr, error_id)  # type: ignore[union-attr]  # c_slow_path set it
        self.engine.resume(process, ERROR if outcome else OK)


def io_error_id(process: Process, outcome: int) -> int:
    """The id of the error a C socket call's attempt ended in (an errno, or -1: its buffers are
    out of reach), for the guest to read."""
    text = os_error(OSError(outcome, os.strerror(outcome))) if outcome > 0 else "out of memory"
    return process.resources.add(process.resources.errors, text)


def register(engine: HostEngine) -> None:
    define, define_async = engine.linker.define, engine.linker.define_async
    reactor = engine.reactor

    # -- helpers ---------------------------------------------------------------------------------

    def state() -> tuple[Process, Memory, Net]:
        process: Process = current(engine)  # type: ignore[assignment]  # only Wasm imports these
        return process, memory_of(process, engine), net_of(process, engine.reactor)

    def error(process: Process, message: str) -> int:
        return process.resources.add(process.resources.errors, message)

    def read_address(memory: Memory, addr_type: int, ptr: int, port: int, flow: int, scope: int) -> Address:
        if addr_type == 4:
            return (socket.inet_ntop(socket.AF_INET, memory.read(ptr, 4)), port & 0xFFFF)
        if addr_type == 6:
            host = socket.inet_ntop(socket.AF_INET6, memory.read(ptr, 16))
            return (host, port & 0xFFFF, flow & 0xFFFFFFFF, scope & 0xFFFFFFFF)
        raise GuestTrap(f"address type must be 4 or 6, got {addr_type}")

    def denied(process: Process, rules_name: str, verb: str, address: Address) -> str | None:
        rules = getattr(process.config, rules_name)
        if allows(rules, address[0], address[1]):
            return None
        return (
            f"permission denied: this process's config does not allow it to {verb} "
            f"{format_address(address)} (see EnvConfig.{rules_name})"
        )

    def new_iterator(net: Net, process: Process, addresses: list[Address]) -> int:
        return process.resources.add(net.dns, DnsIterator(addresses))

    def wait_for(
        process: Process, net: Net, fd: int, events: int, ready: Any, timeout_ms: int | None, *expired: Any
    ) -> None:
        """Call ``ready`` when the socket is ready; after ``timeout_ms`` (None: never) stop
        waiting and resume the process with ``expired``."""
        net.waiter = reactor.wait(fd, events, ready)
        if timeout_ms is not None:

            def expire() -> None:
                process.timer = None
                if net.waiter is not None:
                    reactor.cancel(net.waiter)
                    net.waiter = None
                engine.resume(process, *expired)

            process.timer = engine.scheduler.call_later(timeout_ms / 1000, expire)

    def suspend(
        process: Process,
        net: Net,
        sock: Socket,
        events: int,
        timeout_ms: int | None,
        attempt: Callable[[], tuple[int, After] | None],
        on_timeout: After = None,
    ) -> object:
        """Try ``attempt`` now; when it would block, suspend until it succeeds or times out.

        ``attempt()`` is None while the socket is not ready, else (result code, what to write
        into the process's memory before it goes on).
        """
        result = attempt()
        if result is not None:
            value, after = result
            if after is not None:
                after()
            return value
        if timeout_ms == 0:
            if on_timeout is not None:
                on_timeout()
            return TIMEOUT

        def ready() -> None:
            net.waiter = None
            if process.finished is not None:
                return
            try:
                outcome = attempt()
            except GuestTrap as trap:
                message = str(trap)

                def trap_now() -> None:
                    raise GuestTrap(message)

                engine.resume(process, ERROR, trap_now)
                return
            if outcome is None:  # woken, but another process took the data first
                net.waiter = reactor.wait(sock.fd, events, ready)
                return
            engine.resume(process, *outcome)

        wait_for(process, net, sock.fd, events, ready, timeout_ms, TIMEOUT, on_timeout)
        return PENDING

    def timeout_of(ms: int) -> int | None:
        return None if ms < 0 else ms  # u64::MAX (and anything past i64) means none

    # -- DNS -------------------------------------------------------------------------------------

    def resolve(name_ptr: int, name_len: int, timeout_ms: int, id_ptr: int) -> object:
        process, memory, net = state()
        name = memory.read_str(name_ptr, name_len)
        memory.check(id_ptr, 8)
        config = process.config
        if not config.net_connect and not config.net_bind:
            return report_error(process, memory, id_ptr, NO_NETWORK)
        pending = [True]

        def done(result: list[Address] | str) -> None:
            reactor.thread_job_done()
            if not pending[0] or process.finished is not None:
                return  # timed out meanwhile, or died
            pending[0] = False

            def write() -> None:
                if isinstance(result, str):
                    memory.write_u64(id_ptr, error(process, result))
                else:
                    memory.write_u64(id_ptr, new_iterator(net, process, result))

            engine.resume(process, ERROR if isinstance(result, str) else OK, write)

        def expire() -> None:
            process.timer = None
            pending[0] = False
            engine.resume(process, TIMEOUT, lambda: memory.write_u64(id_ptr, 0))

        if timeout_ms >= 0:
            process.timer = engine.scheduler.call_later(timeout_ms / 1000, expire)
        Resolver.submit(reactor, name, done)
        return PENDING

    def resolve_next(
        iter_id: int, type_ptr: int, addr_ptr: int, port_ptr: int, flow_ptr: int, scope_ptr: int
    ) -> int:
        _, memory, net = state()
        iterator = lookup(net.dns, iter_id, "DNS iterator")
        if iterator.index >= len(iterator.addresses):
            return ERROR
        address = iterator.addresses[iterator.index]
        iterator.index += 1
        if len(address) == 2:
            memory.write_u32(type_ptr, 4)
            memory.write(addr_ptr, socket.inet_pton(socket.AF_INET, address[0]))
            memory.write(port_ptr, struct.pack("<H", address[1]))
        else:
            memory.write_u32(type_ptr, 6)
            memory.write(addr_ptr, socket.inet_pton(socket.AF_INET6, address[0].split("%", 1)[0]))
            memory.write(port_ptr, struct.pack("<H", address[1]))
            memory.write_u32(flow_ptr, address[2])
            memory.write_u32(scope_ptr, address[3])
        return OK

    def dropper(table: str, what: str) -> Callable[[int], None]:
        def drop(rid: int) -> None:
            process = current(engine)
            net = net_of(process, engine.reactor)  # type: ignore[arg-type]
            resources: dict[int, Any] = getattr(net, table)
            resource = resources.pop(rid, None)
            if resource is None:
                raise GuestTrap(f"unknown {what} id {rid}")
            if isinstance(resource, Socket):
                resource.release()

        return drop

    define_async(NAMESPACE, "resolve", "iiIi", "i", resolve)
    define(NAMESPACE, "resolve_next", "Iiiiii", "i", resolve_next)
    define(NAMESPACE, "drop_dns_iterator", "I", "", dropper("dns", "DNS iterator"))

    # -- TCP -------------------------------------------------------------------------------------

    def bind(kind: int, addr_type: int, addr_ptr: int, port: int, flow: int, scope: int, id_ptr: int) -> int:
        process, memory, net = state()
        address = read_address(memory, addr_type, addr_ptr, port, flow, scope)
        memory.check(id_ptr, 8)
        refusal = denied(process, "net_bind", "bind to", address)
        if refusal is not None:
            return report_error(process, memory, id_ptr, refusal)
        family = socket.AF_INET if addr_type == 4 else socket.AF_INET6
        try:
            sock = socket.socket(family, kind)
        except OSError as exc:
            return report_error(process, memory, id_ptr, os_error(exc))
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            if kind == socket.SOCK_STREAM:
                sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            return report_error(process, memory, id_ptr, os_error(exc))
        table = net.listeners if kind == socket.SOCK_STREAM else net.udp
        memory.write_u64(id_ptr, process.resources.add(table, Socket(sock, reactor).hold()))
        return OK

    def local_addr(table: str, what: str, *, peer: bool = False) -> Callable[[int, int], int]:
        def call(rid: int, id_ptr: int) -> int:
            process, memory, net = state()
            sock = lookup(getattr(net, table), rid, what)
            try:
                address = sock.live.getpeername() if peer else sock.live.getsockname()
            except OSError as exc:
                return report_error(process, memory, id_ptr, os_error(exc))
            memory.write_u64(id_ptr, new_iterator(net, process, [address]))
            return OK

        return call

    def tcp_peer_addr(rid: int, id_ptr: int) -> int:
        process, memory, net = state()
        sock = lookup(net.streams, rid, "TCP stream")
        try:
            address = sock.live.getpeername()
        except OSError as exc:
            return report_error(process, memory, id_ptr, os_error(exc))
        memory.write_u64(id_ptr, new_iterator(net, process, [address]))
        return OK

    def tcp_accept(listener_id: int, id_ptr: int, peer_ptr: int) -> object:
        process, memory, net = state()
        listener = lookup(net.listeners, listener_id, "TCP listener")
        memory.check(id_ptr, 8)
        memory.check(peer_ptr, 8)

        def attempt() -> tuple[int, After] | None:
            try:
                conn, peer = listener.live.accept()
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                message = os_error(exc)

                def failed() -> None:
                    memory.write_u64(id_ptr, error(process, message))
                    memory.write_u64(peer_ptr, 0)

                return ERROR, failed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = Socket(conn, reactor)

            def write() -> None:
                memory.write_u64(id_ptr, process.resources.add(net.streams, stream.hold()))
                memory.write_u64(peer_ptr, new_iterator(net, process, [peer]))

            return OK, write

        return suspend(process, net, listener, READ, None, attempt)

    def tcp_connect(
        addr_type: int, addr_ptr: int, port: int, flow: int, scope: int, timeout_ms: int, id_ptr: int
    ) -> object:
        process, memory, net = state()
        address = read_address(memory, addr_type, addr_ptr, port, flow, scope)
        memory.check(id_ptr, 8)
        refusal = denied(process, "net_connect", "connect to", address)
        if refusal is not None:
            return report_error(process, memory, id_ptr, refusal)
        try:
            sock = Socket(socket.socket(socket.AF_INET if addr_type == 4 else socket.AF_INET6), reactor)
            code = sock.live.connect_ex(address)
        except OSError as exc:
            return report_error(process, memory, id_ptr, os_error(exc))
        started = [code in (errno.EINPROGRESS, errno.EAGAIN)]

        def attempt() -> tuple[int, After] | None:
            if started[0]:
                started[0] = False
                return None  # wait for the first writability
            status = code if code not in (0, errno.EINPROGRESS, errno.EAGAIN) else 0
            if not status:
                status = sock.live.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if status:
                sock.close()
                message = os_error(OSError(status, os.strerror(status)))
                return ERROR, lambda: memory.write_u64(id_ptr, error(process, message))
            sock.live.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return OK, lambda: memory.write_u64(id_ptr, process.resources.add(net.streams, sock.hold()))

        def timed_out() -> None:
            sock.close()

        return suspend(process, net, sock, WRITE, timeout_of(timeout_ms), attempt, timed_out)

    def clone_tcp_stream(rid: int) -> int:
        process, _, net = state()
        return process.resources.add(net.streams, lookup(net.streams, rid, "TCP stream").hold())

    def iovec_data(memory: Memory, iovec_ptr: int, count: int) -> bytes:
        count &= 0xFFFFFFFF
        if count > MAX_IOVECS:
            raise GuestTrap(f"at most {MAX_IOVECS} iovecs per write, got {count}")
        raw = memory.read(iovec_ptr, count * 8)
        parts = [memory.read(ptr, length) for ptr, length in struct.iter_unpack("<II", raw)]
        return b"".join(parts)

    def transfer(
        process: Process,
        memory: Memory,
        net: Net,
        sock: Socket,
        events: int,
        timeout_ms: int | None,
        opaque_ptr: int,
        io: Callable[[socket.socket], int | bytes],
        buf_ptr: int = 0,
    ) -> object:
        """Read (``io`` returns bytes, written at ``buf_ptr``) or write (``io`` returns a count),
        writing the count or an error id at ``opaque_ptr``."""
        memory.check(opaque_ptr, 8)

        def attempt() -> tuple[int, After] | None:
            try:
                result = io(sock.live)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                message = os_error(exc)
                return ERROR, lambda: memory.write_u64(opaque_ptr, error(process, message))
            if isinstance(result, bytes):

                def write() -> None:
                    memory.write(buf_ptr, result)
                    memory.write_u64(opaque_ptr, len(result))

                return OK, write
            return OK, lambda: memory.write_u64(opaque_ptr, result)

        return suspend(process, net, sock, events, timeout_ms, attempt)

    def c_slow_path(
        process: Process, op: int, rid: int, a: int, b: int, opaque_ptr: int, err: int, caller: int
    ) -> object:
        """What the C tcp_read (op 0), tcp_peek (1) or tcp_write_vectored (2) left to Python:
        ``(a, b)`` is (buffer, length), or (iovecs, count) for a write; ``err`` the errno of the
        C side's attempt (0: it made none, EAGAIN: it would block, else an error to report)."""
        if err == errno.EAGAIN and process.memory is not None:  # every request of a server
            return c_wait(process, process.resources.net, op, rid, a, b, opaque_ptr)  # type: ignore[arg-type]
        memory, net = memory_of(process, engine, caller), net_of(process, reactor)
        if err == errno.EAGAIN:
            return c_wait(process, net, op, rid, a, b, opaque_ptr)
        # an error, or no attempt: an unknown id or a bad pointer, which trap here with their message
        sock = lookup(net.streams, rid, "TCP stream")
        if op == C_WRITE:
            iovec_data(memory, a, b)
        else:
            memory.check(a, b & 0xFFFFFFFF)
        memory.check(opaque_ptr, 8)
        if not err:  # pragma: no cover - C finds every stream Python does
            raise RuntimeError(f"C made no attempt on TCP stream {rid} (fd {sock.fd}), its pointers good")
        return report_error(process, memory, opaque_ptr, os_error(OSError(err, os.strerror(err))))

    def c_wait(process: Process, net: Net, op: int, rid: int, a: int, b: int, opaque_ptr: int) -> object:
        """The C call's attempt would block (its stream and its pointers are good): wait for the
        socket (:class:`CWait`), with a timer for the stream's timeout."""
        sock = net.streams[rid]
        if op == C_WRITE:
            events, timeout_ms = WRITE, sock.write_timeout
        else:
            events, timeout_ms = READ, sock.peek_timeout if op == C_PEEK else sock.read_timeout
        if timeout_ms == 0:
            return TIMEOUT
        wait = CWait(engine, process, net, sock.fd, events, op, a, b, opaque_ptr)
        wait_for(process, net, sock.fd, events, wait, timeout_ms, TIMEOUT)
        process.waiting = process.receiving = True
        return PENDING

    def tcp_flush(rid: int, error_ptr: int) -> int:
        # the stream has no buffer of its own: what was written is with the kernel already
        _, memory, net = state()
        lookup(net.streams, rid, "TCP stream")
        memory.write_u64(error_ptr, 0)
        return OK

    def timeout_setter(field: str) -> Callable[[int, int], None]:
        def call(rid: int, ms: int) -> None:
            _, _, net = state()
            setattr(lookup(net.streams, rid, "TCP stream"), field, timeout_of(ms))

        return call

    def timeout_getter(field: str) -> Callable[[int], int]:
        def call(rid: int) -> int:
            _, _, net = state()
            value: int | None = getattr(lookup(net.streams, rid, "TCP stream"), field)
            return NO_TIMEOUT if value is None else value

        return call

    define(NAMESPACE, "tcp_bind", "iiiiii", "i", lambda *a: bind(socket.SOCK_STREAM, *a))
    define(NAMESPACE, "drop_tcp_listener", "I", "", dropper("listeners", "TCP listener"))
    define(NAMESPACE, "tcp_local_addr", "Ii", "i", local_addr("listeners", "TCP listener"))
    define_async(NAMESPACE, "tcp_accept", "Iii", "i", tcp_accept)
    define_async(NAMESPACE, "tcp_connect", "iiiiiIi", "i", tcp_connect)
    define(NAMESPACE, "tcp_peer_addr", "Ii", "i", tcp_peer_addr)
    define(NAMESPACE, "drop_tcp_stream", "I", "", dropper("streams", "TCP stream"))
    define(NAMESPACE, "clone_tcp_stream", "I", "I", clone_tcp_stream)
    # tcp_read, tcp_peek and tcp_write_vectored: C host functions (lunatic_mp/vm/net.c) that do the
    # system call themselves, straight into (or out of) guest memory, and call c_slow_path for
    # the rest: a call that would block, an error, an unknown id or a bad pointer.
    # A call that would block on a stream without a timeout waits in C (reactor.c_waits) once
    # the reactor holds its descriptor, and core.net_ready ends the wait, with no Python per call.
    c_waits = (reactor.c_waits, reactor.waiters, engine.scheduler.run_queue, engine.resume, io_error_id)
    hooks = (c_slow_path, GuestTrap, engine.linker.on_host_error, PENDING, *c_waits)
    reactor.c_ready = functools.partial(core.net_ready, hooks)
    engine.linker.define_native(lambda linker: core.define_net(linker, hooks))
    define(NAMESPACE, "tcp_flush", "Ii", "i", tcp_flush)
    for kind in ("read", "write", "peek"):
        define(NAMESPACE, f"set_{kind}_timeout", "II", "", timeout_setter(f"{kind}_timeout"))
        define(NAMESPACE, f"get_{kind}_timeout", "I", "I", timeout_getter(f"{kind}_timeout"))

    # -- UDP -------------------------------------------------------------------------------------

    def udp_connect(
        rid: int, addr_type: int, addr_ptr: int, port: int, flow: int, scope: int, _timeout: int, id_ptr: int
    ) -> int:
        process, memory, net = state()
        address = read_address(memory, addr_type, addr_ptr, port, flow, scope)
        sock = lookup(net.udp, rid, "UDP socket")
        memory.check(id_ptr, 8)
        refusal = denied(process, "net_connect", "connect to", address)
        if refusal is not None:
            return report_error(process, memory, id_ptr, refusal)
        try:
            sock.live.connect(address)  # a datagram socket connects at once: nothing to wait for
        except OSError as exc:
            return report_error(process, memory, id_ptr, os_error(exc))
        memory.write_u64(id_ptr, 0)
        return OK

    def udp_receive(rid: int, buf_ptr: int, length: int, opaque_ptr: int) -> object:
        process, memory, net = state()
        sock = lookup(net.udp, rid, "UDP socket")
        length &= 0xFFFFFFFF
        memory.check(buf_ptr, length)
        return transfer(process, memory, net, sock, READ, None, opaque_ptr, lambda s: s.recv(length), buf_ptr)

    def udp_receive_from(rid: int, buf_ptr: int, length: int, opaque_ptr: int, iter_ptr: int) -> object:
        process, memory, net = state()
        sock = lookup(net.udp, rid, "UDP socket")
        length &= 0xFFFFFFFF
        memory.check(buf_ptr, length)
        memory.check(opaque_ptr, 8)
        memory.check(iter_ptr, 8)

        def attempt() -> tuple[int, After] | None:
            try:
                data, sender = sock.live.recvfrom(length)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                message = os_error(exc)
                return ERROR, lambda: memory.write_u64(opaque_ptr, error(process, message))

            def write() -> None:
                memory.write(buf_ptr, data)
                memory.write_u64(opaque_ptr, len(data))
                memory.write_u64(iter_ptr, new_iterator(net, process, [sender]))

            return OK, write

        return suspend(process, net, sock, READ, None, attempt)

    def udp_send(rid: int, buf_ptr: int, length: int, opaque_ptr: int) -> object:
        process, memory, net = state()
        sock = lookup(net.udp, rid, "UDP socket")
        data = memory.read(buf_ptr, length)
        return transfer(process, memory, net, sock, WRITE, None, opaque_ptr, lambda s: s.send(data))

    def udp_send_to(
        rid: int, buf_ptr: int, length: int, addr_type: int, addr_ptr: int, port: int, flow: int, scope: int,
        opaque_ptr: int,
    ) -> object:  # fmt: skip
        process, memory, net = state()
        sock = lookup(net.udp, rid, "UDP socket")
        data = memory.read(buf_ptr, length)
        address = read_address(memory, addr_type, addr_ptr, port, flow, scope)
        memory.check(opaque_ptr, 8)
        refusal = denied(process, "net_connect", "send to", address)
        if refusal is not None:
            return report_error(process, memory, opaque_ptr, refusal)
        return transfer(
            process, memory, net, sock, WRITE, None, opaque_ptr, lambda s: s.sendto(data, address)
        )

    def clone_udp_socket(rid: int) -> int:
        process, _, net = state()
        return process.resources.add(net.udp, lookup(net.udp, rid, "UDP socket").hold())

    def udp_option(rid: int, option: str, value: int | None) -> int:
        """Get (``value`` None) or set SO_BROADCAST (``broadcast``) or the TTL (``ttl``, the
        hop limit of an IPv6 socket); an option the system refuses traps, as in lunatic."""
        _, _, net = state()
        sock = lookup(net.udp, rid, "UDP socket")
        if option == "broadcast":
            level, name = socket.SOL_SOCKET, socket.SO_BROADCAST
        elif sock.family == socket.AF_INET6:
            level, name = socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS
        else:
            level, name = socket.IPPROTO_IP, socket.IP_TTL
        try:
            if value is None:
                return sock.live.getsockopt(level, name)
            sock.live.setsockopt(level, name, value)
        except OSError as exc:
            raise GuestTrap(f"cannot set the UDP socket's {option}: {os_error(exc)}") from None
        return 0

    def set_broadcast(rid: int, flag: int) -> None:
        udp_option(rid, "broadcast", int(flag != 0))

    def set_ttl(rid: int, ttl: int) -> None:
        udp_option(rid, "ttl", ttl & 0xFFFFFFFF)

    define(NAMESPACE, "udp_bind", "iiiiii", "i", lambda *a: bind(socket.SOCK_DGRAM, *a))
    define(NAMESPACE, "udp_local_addr", "Ii", "i", local_addr("udp", "UDP socket"))
    define(NAMESPACE, "udp_peer_addr", "Ii", "i", local_addr("udp", "UDP socket", peer=True))
    define(NAMESPACE, "drop_udp_socket", "I", "", dropper("udp", "UDP socket"))
    define_async(NAMESPACE, "udp_receive", "Iiii", "i", udp_receive)
    define_async(NAMESPACE, "udp_receive_from", "Iiiii", "i", udp_receive_from)
    define(NAMESPACE, "udp_connect", "IiiiiiIi", "i", udp_connect)
    define(NAMESPACE, "clone_udp_socket", "I", "I", clone_udp_socket)
    define(NAMESPACE, "set_udp_socket_broadcast", "Ii", "", set_broadcast)
    define(
        NAMESPACE,
        "get_udp_socket_broadcast",
        "I",
        "i",
        lambda rid: int(udp_option(rid, "broadcast", None) > 0),
    )
    define(NAMESPACE, "set_udp_socket_ttl", "Ii", "", set_ttl)
    define(NAMESPACE, "get_udp_socket_ttl", "I", "i", lambda rid: udp_option(rid, "ttl", None))
    define_async(NAMESPACE, "udp_send_to", "Iiiiiiiii", "i", udp_send_to)
    define_async(NAMESPACE, "udp_send", "Iiii", "i", udp_send)

    # -- streams in messages ---------------------------------------------------------------------

    def push_tcp_stream(rid: int) -> int:
        process, _, net = state()
        message = extensible_scratch(process)
        stream = net.streams.pop(rid, None)
        if stream is None:
            raise GuestTrap(f"unknown TCP stream id {rid}")
        if message.streams is None:
            message.streams = []
        message.streams.append(stream)
        return len(message.streams) - 1

    def take_tcp_stream(index: int) -> int:
        process, _, net = state()
        message = scratch_of(process)
        streams = message.streams
        if not streams or not 0 <= index < len(streams) or streams[index] is None:
            raise GuestTrap(f"no TCP stream at index {index} of the message")
        stream = streams[index]
        streams[index] = None
        return process.resources.add(net.streams, stream)

    define("lunatic::message", "push_tcp_stream", "I", "I", push_tcp_stream)
    define("lunatic::message", "take_tcp_stream", "I", "I", take_tcp_stream)
