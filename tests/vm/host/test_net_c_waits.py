"""TCP calls that wait in C (lunatic_mp/vm/net.c): a read or write that would block on a stream
with no timeout, once the reactor holds its descriptor, waits in ``Reactor.c_waits`` with no
Python call, and ``core.net_ready`` ends the wait: the data, an error, a retry that would block
again, a wait in the other direction. A timeout keeps the wait in Python; a death ends either.

The peer is the test's own socket and the engine runs on the test's thread (no threads, no
sleeps: the engine runs until a socket or the reactor is in the state the test waits for).
"""

from __future__ import annotations

import os
import select
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import sweep

from lunatic_mp import Engine, EnvConfig, Module
from lunatic_mp.vm import core
from lunatic_mp.vm.process import Process

GUEST = Path(__file__).parent.parent.parent / "guests" / "net_c_waits.wat"
WAIT = 30.0
TIMEOUT = 9027  # lunatic's code for a call that timed out


@pytest.fixture
def guest(engine: Engine) -> Module:
    return engine.load_module(GUEST)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def connected(
    engine: Engine, guest: Module, listener: socket.socket, *args: int
) -> tuple[Process, socket.socket]:
    """Spawn ``args[0]`` (an export) connecting to the listener; the test's end of the connection."""
    export, *params = args
    process = engine.spawn(
        guest, ("echo", "flood")[export], (listener.getsockname()[1], *params), EnvConfig.permissive()
    )
    assert engine.scheduler.run(until=lambda: readable(listener), timeout=WAIT)
    conn, _ = listener.accept()
    conn.settimeout(WAIT)
    return process, conn


def stream_fd(process: Process) -> int:
    (stream,) = process.resources.net.streams.values()  # type: ignore[union-attr]
    return stream.fd


def echo(engine: Engine, conn: socket.socket, payload: bytes) -> bytes:
    conn.sendall(payload)
    received = b""
    while len(received) < len(payload):
        assert engine.scheduler.run(until=lambda: readable(conn), timeout=WAIT)
        received += conn.recv(1 << 16)
    return received


def waiting(engine: Engine, process: Process) -> None:
    """Run the engine until ``process`` waits on its socket again."""
    assert engine.scheduler.run(until=lambda: process.waiting, timeout=WAIT)


def waiting_after_an_echo(
    engine: Engine, guest: Module, listener: socket.socket, read_timeout: int = -1
) -> tuple[Process, socket.socket]:
    """An echo process with one round trip behind it, waiting on its socket again."""
    process, conn = connected(engine, guest, listener, 0, read_timeout)
    assert echo(engine, conn, b"x") == b"x"
    waiting(engine, process)
    return process, conn


def test_a_stream_without_a_timeout_waits_in_c_after_its_first_wait(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    """The first wait registers the descriptor through Python; every later one is C's alone."""
    process, conn = connected(engine, guest, listener, 0, -1)
    reactor = engine.reactor
    with conn:
        assert echo(engine, conn, b"first") == b"first"
        for round_ in range(100):
            waiting(engine, process)
            fd = stream_fd(process)
            assert reactor.c_waits == {fd: process} and reactor.waiters[fd] == []
            payload = f"round {round_}".encode()
            assert echo(engine, conn, payload) == payload
        conn.shutdown(socket.SHUT_WR)
        finished = engine.run_until_finished(process, timeout=WAIT)
        assert finished is not None and finished.result == (0,), finished
    assert reactor.c_waits == {} and reactor.registered == 0


def test_a_reset_while_waiting_in_c_reaches_the_guest_as_an_error(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    process, conn = waiting_after_an_echo(engine, guest, listener)
    assert stream_fd(process) in engine.reactor.c_waits
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # a reset: the retry fails with ECONNRESET
    finished = engine.run_until_finished(process, timeout=WAIT)
    assert finished is not None and finished.ok, finished
    (code,) = finished.result
    assert code > 1000, code  # ERROR, with an error id whose text the guest could read
    assert engine.reactor.c_waits == {}


def test_a_c_wait_woken_with_nothing_to_read_waits_again(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    """Another holder of the socket takes the data between the edge and the retry: the process
    stays in its C wait, and the next data still reaches it."""
    process, conn = waiting_after_an_echo(engine, guest, listener)
    reactor = engine.reactor
    with conn:
        fd = stream_fd(process)
        thief = socket.socket(fileno=os.dup(fd))
        try:
            conn.sendall(b"stolen")
            assert thief.recv(16) == b"stolen"
            assert reactor.dispatch(WAIT) == 1  # the edge: C tries again, it would block, it waits on
            assert reactor.c_waits == {fd: process} and process.waiting
            assert echo(engine, conn, b"after") == b"after"
        finally:
            thief.close()


def test_a_write_waits_in_c_until_the_peer_reads(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    """A write past what the socket buffers waits (in C once the descriptor is held) until the
    peer makes room, as many times as it takes."""
    rounds = 2048  # 8 MiB: far past the buffers of a loopback connection
    process, conn = connected(engine, guest, listener, 1, rounds)
    received, waits_seen = 0, set()
    with conn:
        while received < rounds * 4096:
            assert engine.scheduler.run(until=lambda: readable(conn), timeout=WAIT)
            if process.waiting:
                waits_seen.add("c" if engine.reactor.c_waits else "python")
            received += len(conn.recv(1 << 20))
        finished = engine.run_until_finished(process, timeout=WAIT)
    assert finished is not None and finished.result == (rounds * 4096,), finished
    assert "c" in waits_seen, waits_seen
    assert engine.reactor.c_waits == {}


def test_a_process_killed_while_waiting_in_c_leaves_no_wait(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    process, conn = waiting_after_an_echo(engine, guest, listener)
    reactor = engine.reactor
    with conn:
        assert reactor.c_waits
        engine.kill(process.pid)
        assert reactor.c_waits == {} and not reactor.watching and reactor.registered == 0
        assert conn.recv(1) == b""  # the guest's side is closed


def test_a_stream_with_a_read_timeout_waits_in_python(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    process, conn = waiting_after_an_echo(engine, guest, listener, read_timeout=50)
    reactor = engine.reactor
    with conn:
        assert reactor.c_waits == {} and len(reactor.waiters[stream_fd(process)]) == 1
        finished = engine.run_until_finished(process, timeout=WAIT)  # nothing comes: it times out
        assert finished is not None and finished.result == (TIMEOUT,), finished


def test_net_ready_refuses_what_is_not_its_hooks_or_epoll_pairs(engine: Engine) -> None:
    hooks = engine.reactor.c_ready.args[0]  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="net_ready"):
        core.net_ready((), [])
    with pytest.raises(TypeError, match="net_ready"):
        core.net_ready(hooks, ())  # type: ignore[arg-type]
    engine.reactor.c_waits[3] = object()
    for bad in ([(3,)], [("3", 1)], [(-1, 1)], [3]):
        with pytest.raises(ValueError, match="net_ready"):
            core.net_ready(hooks, bad)  # type: ignore[arg-type]
    del engine.reactor.c_waits[3]
    assert core.net_ready(hooks, [(5, 1), (6, 4)]) == [(5, 1), (6, 4)]  # nobody waits in C: Python's


def test_a_c_wait_left_by_a_process_that_is_gone_is_dropped(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    """An entry whose process no longer waits on that descriptor (it finished, or waits on
    something else now) is dropped when the descriptor turns ready, and nothing runs."""
    process, conn = connected(engine, guest, listener, 0, -1)
    with conn:
        conn.shutdown(socket.SHUT_WR)
        finished = engine.run_until_finished(process, timeout=WAIT)
    assert finished is not None and finished.result == (0,)
    hooks = engine.reactor.c_ready.args[0]  # type: ignore[union-attr]
    engine.reactor.c_waits[7] = process
    assert core.net_ready(hooks, [(7, 1)]) == []
    assert engine.reactor.c_waits == {}


def test_a_process_waiting_in_c_on_its_socket_never_hibernates(
    engine: Engine, guest: Module, listener: socket.socket
) -> None:
    """net_ready writes into the guest's buffer from outside a poll: its memory must stay put."""
    process, conn = waiting_after_an_echo(engine, guest, listener)
    assert stream_fd(process) in engine.reactor.c_waits
    before = core.hibernation_stats()[0]
    for _ in range(3):
        sweep(engine)
    assert core.hibernation_stats()[0] == before
    with conn:
        assert echo(engine, conn, b"after the sweeps") == b"after the sweeps"
