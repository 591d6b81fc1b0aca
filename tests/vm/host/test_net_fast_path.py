"""The C tcp_read, tcp_peek and tcp_write_vectored (lunatic_mp/vm/net.c) and the reactor's kept
registrations: a stream waited on round after round is registered once and still wakes its
process each time; a process that dies while it waits leaves nothing registered; hostile
arguments trap the guest, as the Python functions did, and never reach the worker.

The client is the test's own socket and the engine runs on the test's thread: no threads, no
sleeps (the engine runs until the client's socket is readable).
"""

from __future__ import annotations

import os
import select
import socket
from collections.abc import Iterator

import pytest
from test_networking import ECHOED_TAG, GUESTS, WAIT, Sink, i64, run_until_done, serve

from lunatic_mp import Engine, EnvConfig, Module, Outcome


@pytest.fixture
def guest(engine: Engine) -> Module:
    return engine.load_module(GUESTS / "net_guest.wat")


@pytest.fixture
def sink(engine: Engine) -> Sink:
    return Sink(engine)


@pytest.fixture
def client(engine: Engine, guest: Module, sink: Sink) -> Iterator[socket.socket]:
    """A connection to a one-client echo server of the guest (its listener is gone once the
    connection is handed to the echo process)."""
    server, port = serve(engine, guest, sink, 1)
    conn = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    run_until_done(engine, server)
    yield conn
    conn.close()


def echo(engine: Engine, conn: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` and run the engine until all of it has come back."""
    conn.sendall(payload)
    received = b""
    while len(received) < len(payload):
        assert engine.scheduler.run(until=lambda: bool(select.select([conn], [], [], 0)[0]), timeout=WAIT)
        received += conn.recv(1 << 16)
    return received


def test_a_stream_stays_registered_across_many_waits(engine: Engine, client: socket.socket) -> None:
    reactor = engine.reactor
    for round_ in range(200):
        payload = f"round {round_}".encode()
        assert echo(engine, client, payload) == payload
        assert engine.scheduler.run(until=lambda: reactor.watching, timeout=WAIT)  # waits again
        assert reactor.registered == 1  # the echo process's stream, registered once


def test_a_process_that_dies_waiting_leaves_no_registration(
    engine: Engine, client: socket.socket, sink: Sink
) -> None:
    reactor = engine.reactor
    assert echo(engine, client, b"x") == b"x"
    assert engine.scheduler.run(until=lambda: reactor.watching, timeout=WAIT)
    (waiting,) = [pid for pid in engine.processes if pid != sink.pid]
    engine.kill(waiting)
    assert not reactor.watching
    assert reactor.registered == 0  # its stream was closed, and forgotten first
    assert client.recv(1) == b""  # the guest's side is closed
    assert not engine.scheduler.run(timeout=WAIT)  # nothing left that could wake anything


def test_a_wake_up_with_nothing_to_read_waits_anew(engine: Engine, client: socket.socket, sink: Sink) -> None:
    """Another holder of the socket takes the data between the edge and the process's turn: the
    C retry would block, so the process waits again, and the next data still wakes it."""
    reactor = engine.reactor
    assert echo(engine, client, b"first") == b"first"
    assert engine.scheduler.run(until=lambda: reactor.watching, timeout=WAIT)
    (pid,) = [pid for pid in engine.processes if pid != sink.pid]
    (stream,) = engine.processes[pid].resources.net.streams.values()  # type: ignore[attr-defined]
    thief = socket.socket(fileno=os.dup(stream.fd))
    try:
        client.sendall(b"stolen")
        assert thief.recv(16) == b"stolen"  # the edge is pending; the data is gone
        assert reactor.dispatch(0) == 1  # the process is woken, finds nothing, and waits again
        assert reactor.watching and reactor.registered == 1
        assert engine.processes[pid].finished is None
        assert echo(engine, client, b"after") == b"after"
    finally:
        thief.close()


HOSTILE = """(module
  (import "lunatic::networking" "tcp_connect"
    (func $connect (param i32 i32 i32 i32 i32 i64 i32) (result i32)))
  (import "lunatic::networking" "tcp_read" (func $read (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_peek" (func $peek (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_write_vectored"
    (func $write (param i64 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $stream (param $port i32) (result i64)
    (i32.store (i32.const 0) (i32.const 0x0100007F))
    (if (call $connect (i32.const 4) (i32.const 0) (local.get $port) (i32.const 0) (i32.const 0)
          (i64.const 5000) (i32.const 16))
      (then unreachable))
    (i64.load (i32.const 16)))
  (func (export "read_past_memory") (param $port i32) (result i32)
    (call $read (call $stream (local.get $port)) (i32.const 65530) (i32.const 16) (i32.const 48)))
  (func (export "read_wrapping") (param $port i32) (result i32)
    (call $read (call $stream (local.get $port)) (i32.const -16) (i32.const 32) (i32.const 48)))
  (func (export "peek_count_past_memory") (param $port i32) (result i32)
    (call $peek (call $stream (local.get $port)) (i32.const 4096) (i32.const 16) (i32.const 65535)))
  (func (export "too_many_iovecs") (param $port i32) (result i32)
    (call $write (call $stream (local.get $port)) (i32.const 64) (i32.const 2000) (i32.const 48)))
  (func (export "iovecs_past_memory") (param $port i32) (result i32)
    (call $write (call $stream (local.get $port)) (i32.const 65532) (i32.const 1) (i32.const 48)))
  (func (export "iovec_data_past_memory") (param $port i32) (result i32)
    (i32.store (i32.const 64) (i32.const 65000))
    (i32.store (i32.const 68) (i32.const 4096))
    (call $write (call $stream (local.get $port)) (i32.const 64) (i32.const 1) (i32.const 48)))
  (func (export "unknown_stream") (param $port i32) (result i32)
    (call $read (i64.const 99) (i32.const 4096) (i32.const 16) (i32.const 48)))
  (func (export "write_whole") (param $port i32) (result i32)
    (local $stream i64)
    (local.set $stream (call $stream (local.get $port)))
    (i64.store (i32.const 4096) (i64.const 0x6f6c6c6568))  ;; "hello"
    (i32.store (i32.const 64) (i32.const 4096))
    (i32.store (i32.const 68) (i32.const 3))
    (i32.store (i32.const 72) (i32.const 4099))
    (i32.store (i32.const 76) (i32.const 0))
    (i32.store (i32.const 80) (i32.const 4099))
    (i32.store (i32.const 84) (i32.const 2))
    (drop (call $write (local.get $stream) (i32.const 64) (i32.const 3) (i32.const 48)))
    (i32.wrap_i64 (i64.load (i32.const 48))))
  (func (export "write_after_grow") (param $port i32) (result i32)
    (local $stream i64)
    (local.set $stream (call $stream (local.get $port)))
    (drop (call $write (local.get $stream) (i32.const 64) (i32.const 0) (i32.const 48)))
    (drop (memory.grow (i32.const 1)))
    (i32.store16 (i32.const 70000) (i32.const 0x6968))  ;; "hi"
    (i32.store (i32.const 64) (i32.const 70000))
    (i32.store (i32.const 68) (i32.const 2))
    (drop (call $write (local.get $stream) (i32.const 64) (i32.const 1) (i32.const 48)))
    (i32.wrap_i64 (i64.load (i32.const 48)))))
"""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        ("read_past_memory", "out-of-bounds pointer: 65530+16"),
        ("read_wrapping", "out-of-bounds pointer: 4294967280+32"),
        ("peek_count_past_memory", "out-of-bounds pointer: 65535+8"),
        ("too_many_iovecs", "at most 1024 iovecs per write, got 2000"),
        ("iovecs_past_memory", "out-of-bounds pointer: 65532+8"),
        ("iovec_data_past_memory", "out-of-bounds pointer: 65000+4096"),
        ("unknown_stream", "unknown TCP stream id 99"),
    ],
)
def test_hostile_arguments_trap_the_guest(
    engine: Engine, listener: socket.socket, function: str, reason: str
) -> None:
    module = engine.load_module(HOSTILE)
    port = listener.getsockname()[1]
    finished = run_until_done(engine, engine.spawn(module, function, (port,), EnvConfig.permissive()))
    assert finished.outcome is Outcome.FAILED, function
    assert reason in finished.message, (function, finished.message)


def test_a_write_sends_every_iovec_in_order(engine: Engine, listener: socket.socket) -> None:
    module = engine.load_module(HOSTILE)
    port = listener.getsockname()[1]
    process = engine.spawn(module, "write_whole", (port,), EnvConfig.permissive())
    assert run_until_done(engine, process).result == (5,)
    conn, _ = listener.accept()
    with conn:
        assert conn.recv(16) == b"hello"


def test_a_write_from_memory_the_guest_grew(engine: Engine, listener: socket.socket) -> None:
    """The C side re-reads the memory's size when an access falls past the size it saw."""
    module = engine.load_module(HOSTILE)
    port = listener.getsockname()[1]
    process = engine.spawn(module, "write_after_grow", (port,), EnvConfig.permissive())
    assert run_until_done(engine, process).result == (2,)
    conn, _ = listener.accept()
    with conn:
        assert conn.recv(16) == b"hi"


def test_the_echo_reports_every_byte(engine: Engine, client: socket.socket, sink: Sink) -> None:
    """Reads and writes that finish in C report their counts: the echo process's total."""
    sizes = (1, 100, 4096, 70_000, 7)
    for size in sizes:
        payload = bytes(i % 251 for i in range(size))
        assert echo(engine, client, payload) == payload
    client.shutdown(socket.SHUT_WR)
    assert i64(sink.wait(ECHOED_TAG)[0]) == sum(sizes)
