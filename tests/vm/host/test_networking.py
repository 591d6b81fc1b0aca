"""``lunatic::networking`` on one engine: TCP echo with concurrent clients, timeouts, peers that
vanish, UDP, DNS, permissions, bad input, and no descriptor left open once processes die.

The guest (``net_guest.wat``) reports to a native sink process; clients are threads of the test,
so the engine runs on the test's thread while they talk to it.
"""

from __future__ import annotations

import functools
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lunatic_mp import Engine, EnvConfig, Module, Outcome
from lunatic_mp.vm.mailbox import Message
from lunatic_mp.vm.process import Process

GUESTS = Path(__file__).parents[2] / "guests"
LOCALHOST = 0x0100007F  # 127.0.0.1 as the guest stores it
TIMEOUT_CODE = 9027
ERROR_TAG, PORT_TAG, ECHOED_TAG, DATA_TAG, DATAGRAM_TAG, ADDRESS_TAG = 1, 2, 3, 5, 6, 7
WAIT = 20.0


class Sink:
    """A native process that keeps every message it gets."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.messages: list[Message] = []
        messages = self.messages

        def collect(ctx: Any) -> None:
            while True:
                messages.append(ctx.receive())

        self.pid = engine.spawn_native(collect).pid

    def tagged(self, tag: int) -> list[bytes]:
        """The messages with ``tag`` so far, once every ready process has run."""
        scheduler = self.engine.scheduler
        scheduler.run(until=lambda: not scheduler.run_queue, timeout=WAIT)
        return [bytes(m.data) for m in self.messages if m.tag == tag]

    def wait(self, tag: int, count: int = 1) -> list[bytes]:
        """Run the engine until ``count`` messages with ``tag`` arrived."""
        self.engine.scheduler.run(until=lambda: len(self.tagged(tag)) >= count, timeout=WAIT)
        found = self.tagged(tag)
        assert len(found) >= count, f"{len(found)} of {count} messages tagged {tag}: {self.messages}"
        return found

    def errors(self) -> list[str]:
        return [data.decode() for data in self.tagged(ERROR_TAG)]


@pytest.fixture
def guest(engine: Engine) -> Module:
    return engine.load_module(GUESTS / "net_guest.wat")


@pytest.fixture
def sink(engine: Engine) -> Sink:
    return Sink(engine)


def i64(data: bytes) -> int:
    return int(struct.unpack("<q", data)[0])


def start(engine: Engine, guest: Module, function: str, *params: Any, **config: Any) -> Process:
    return engine.spawn(guest, function, params, EnvConfig.permissive(**config))


def run_until_done(engine: Engine, process: Process) -> Any:
    finished = engine.run_until_finished(process, timeout=WAIT)
    assert finished is not None, f"{process} did not finish"
    return finished


def serve(engine: Engine, guest: Module, sink: Sink, count: int, **config: Any) -> tuple[Process, int]:
    server = start(engine, guest, "serve", sink.pid, LOCALHOST, 0, count, **config)
    return server, i64(sink.wait(PORT_TAG)[0])


def in_thread(target: Callable[[], None]) -> threading.Thread:
    """Run ``target`` on a thread; its exception, if any, is re-raised by ``join_all``."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
        for error in thread.errors:  # type: ignore[attr-defined]
            raise error


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket of the test's own on 127.0.0.1."""
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


# --- TCP --------------------------------------------------------------------------------------


def test_echo_server_serves_many_concurrent_clients(engine: Engine, guest: Module, sink: Sink) -> None:
    """Each accepted connection goes to a new process in a message; 20 clients talk at once."""
    clients, rounds = 20, 10
    server, port = serve(engine, guest, sink, clients)
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
            barrier.wait(WAIT)  # every client is connected before any of them talks
            for round_ in range(rounds):
                payload = f"client {index} round {round_}".encode()
                conn.sendall(payload)
                received = b""
                while len(received) < len(payload):
                    received += conn.recv(4096)
                assert received == payload

    threads = [in_thread(functools.partial(client, i)) for i in range(clients)]
    echoed = sink.wait(ECHOED_TAG, clients)
    join_all(threads)
    expected = sorted(sum(len(f"client {i} round {r}") for r in range(rounds)) for i in range(clients))
    assert sorted(i64(data) for data in echoed) == expected
    assert run_until_done(engine, server).result == (0,)
    assert sink.errors() == []


def test_large_writes_echo_whole(engine: Engine, guest: Module, sink: Sink) -> None:
    """A megabyte through the echo: partial writes and reads in 4 KiB pieces add up."""
    _, port = serve(engine, guest, sink, 1)
    payload = os.urandom(1 << 20)
    received = bytearray()

    def client() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
            sender = threading.Thread(target=conn.sendall, args=(payload,))
            sender.start()
            while len(received) < len(payload):
                received.extend(conn.recv(1 << 16))
            sender.join()

    thread = in_thread(client)
    assert i64(sink.wait(ECHOED_TAG)[0]) == len(payload)
    join_all([thread])
    assert bytes(received) == payload


def test_peer_that_disconnects_mid_stream(engine: Engine, guest: Module, sink: Sink) -> None:
    """A client that resets its connection half way ends its echo process with an error (or an
    end of stream), never a trap, and the server goes on serving the next client."""
    server, port = serve(engine, guest, sink, 2)

    def rude() -> None:
        conn = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        conn.sendall(b"half a")
        assert conn.recv(16) == b"half a"
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST

    def polite() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as conn:
            conn.sendall(b"still here")
            assert conn.recv(16) == b"still here"

    first = in_thread(rude)
    sink.wait(ECHOED_TAG, 1)
    join_all([first])
    second = in_thread(polite)
    sink.wait(ECHOED_TAG, 2)
    join_all([second])
    assert run_until_done(engine, server).ok
    assert all("reset" in error.lower() for error in sink.errors()), sink.errors()


def test_connect_reads_what_the_peer_sends(
    engine: Engine, guest: Module, sink: Sink, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    client = start(engine, guest, "connect", sink.pid, LOCALHOST, port, 5000, -1)

    def peer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"hi guest")

    thread = in_thread(peer)
    assert run_until_done(engine, client).result == (10000,)
    join_all([thread])
    assert sink.tagged(DATA_TAG) == [b"hi guest"]


def test_read_timeout(engine: Engine, guest: Module, sink: Sink, listener: socket.socket) -> None:
    """A peer that never sends: tcp_read returns 9027 after the read timeout."""
    port = listener.getsockname()[1]
    client = start(engine, guest, "connect", sink.pid, LOCALHOST, port, 5000, 50)
    assert run_until_done(engine, client).result == (10000 + TIMEOUT_CODE,)
    assert sink.tagged(DATA_TAG) == []


def test_connect_timeout(engine: Engine, guest: Module, sink: Sink) -> None:
    """A listener whose accept queue is full drops new SYNs: connect returns 9027 in time."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        for _ in range(2):  # the queue holds backlog + 1 connections
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            client = start(engine, guest, "connect", sink.pid, LOCALHOST, port, 100, -1)
            assert run_until_done(engine, client).result == (TIMEOUT_CODE,)
        finally:
            for filler in fillers:
                filler.close()


def test_connect_refused_is_an_error_with_the_os_message(engine: Engine, guest: Module, sink: Sink) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        client = start(engine, guest, "connect", sink.pid, LOCALHOST, port, -1, -1)
        assert run_until_done(engine, client).result == (1,)
    assert sink.errors() == ["Connection refused (os error 111)"]


def test_bind_to_a_port_in_use_is_an_error(
    engine: Engine, guest: Module, sink: Sink, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    server = start(engine, guest, "serve", sink.pid, LOCALHOST, port, 1)
    assert run_until_done(engine, server).result == (1,)
    assert sink.errors() == ["Address already in use (os error 98)"]


# --- UDP --------------------------------------------------------------------------------------


def test_udp_round_trip(engine: Engine, guest: Module, sink: Sink) -> None:
    """A datagram to the guest's UDP echo comes back to the sender, and a guest client that
    connects its socket gets its own datagram echoed by a Python peer."""
    echo = start(engine, guest, "udp_echo", sink.pid, LOCALHOST, 0)
    port = i64(sink.wait(PORT_TAG)[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.settimeout(WAIT)
        peer.sendto(b"datagram", ("127.0.0.1", port))
        assert run_until_done(engine, echo).result == (0,)
        assert peer.recvfrom(64)[0] == b"datagram"

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(WAIT)
        client = start(engine, guest, "udp_client", sink.pid, LOCALHOST, server.getsockname()[1])

        def answer() -> None:
            data, sender = server.recvfrom(64)
            server.sendto(data.upper(), sender)

        thread = in_thread(answer)
        assert run_until_done(engine, client).result == (0,)
        join_all([thread])
    assert sink.tagged(DATAGRAM_TAG) == [b"datagram", b"PING"]


# --- DNS --------------------------------------------------------------------------------------


def test_resolve_localhost(engine: Engine, guest: Module, sink: Sink) -> None:
    """The lookup runs off the engine's thread; localhost gives 127.0.0.1 (and maybe ::1)."""
    resolver = start(engine, guest, "resolve", sink.pid, 0, 5000)
    assert run_until_done(engine, resolver).result == (0,)
    addresses = {(i64(data) >> 32, i64(data) & 0xFFFF) for data in sink.tagged(ADDRESS_TAG)}
    assert (4, 8080) in addresses
    assert addresses <= {(4, 8080), (6, 8080)}
    assert not engine.reactor.watching  # the lookup thread's wake-up is no longer watched


def test_resolve_unknown_name_fails_or_times_out(engine: Engine, guest: Module, sink: Sink) -> None:
    resolver = start(engine, guest, "resolve", sink.pid, 1, 3000)
    (code,) = run_until_done(engine, resolver).result
    assert code in (1, TIMEOUT_CODE)
    if code == 1:
        assert sink.errors()[0].startswith("failed to lookup address information")


# --- permissions ------------------------------------------------------------------------------


def test_denied_calls_return_an_error_and_touch_nothing(engine: Engine, guest: Module, sink: Sink) -> None:
    before = open_fds()
    no_network = {"net_bind": (), "net_connect": ()}
    server = start(engine, guest, "serve", sink.pid, LOCALHOST, 0, 1, **no_network)
    assert run_until_done(engine, server).result == (1,)
    client = start(engine, guest, "connect", sink.pid, LOCALHOST, 80, -1, -1, net_connect=("127.0.0.1:1-10",))
    assert run_until_done(engine, client).result == (1,)
    udp = start(engine, guest, "udp_echo", sink.pid, LOCALHOST, 0, net_bind=("10.0.0.0/8",))
    assert run_until_done(engine, udp).result == (1,)
    resolver = start(engine, guest, "resolve", sink.pid, 0, -1, **no_network)
    assert run_until_done(engine, resolver).result == (1,)
    assert sink.errors() == [
        "permission denied: this process's config does not allow it to bind to 127.0.0.1:0 "
        "(see EnvConfig.net_bind)",
        "permission denied: this process's config does not allow it to connect to 127.0.0.1:80 "
        "(see EnvConfig.net_connect)",
        "permission denied: this process's config does not allow it to bind to 127.0.0.1:0 "
        "(see EnvConfig.net_bind)",
        "permission denied: this process's config has no network access (EnvConfig.net_*)",
    ]
    assert open_fds() == before


def test_rules_that_allow(engine: Engine, guest: Module, sink: Sink, listener: socket.socket) -> None:
    """Only the named host and port range are open; binding port 0 needs a `*` port."""
    port = listener.getsockname()[1]
    allowed = {"net_connect": (f"localhost:{port}",)}
    client = start(engine, guest, "connect", sink.pid, LOCALHOST, port, 5000, 0, **allowed)
    assert run_until_done(engine, client).result == (10000 + TIMEOUT_CODE,)
    server = start(engine, guest, "serve", sink.pid, LOCALHOST, 0, 0, net_bind=("127.0.0.1:1024-65535",))
    assert run_until_done(engine, server).result == (1,)
    server = start(engine, guest, "serve", sink.pid, LOCALHOST, 0, 0, net_bind=("127.0.0.0/8:*",))
    assert run_until_done(engine, server).result == (0,)


def test_configs_a_guest_creates_keep_its_network_rules(engine: Engine) -> None:
    """create_config denies everything but the network rules, which come from the creator."""
    wat = """(module
      (import "lunatic::process" "create_config" (func $create (result i64)))
      (import "lunatic::message" "receive" (func $receive (param i32 i32 i64) (result i32)))
      (memory (export "memory") 1)
      (func (export "main")
        (drop (call $create))
        (drop (call $receive (i32.const 0) (i32.const 0) (i64.const -1)))))"""
    process = engine.spawn(
        engine.load_module(wat), "main", (), EnvConfig.permissive(net_connect=("10.0.0.1:80",))
    )
    engine.run(timeout=WAIT)  # until it waits in receive
    (config,) = process.resources.configs.values()
    assert (config.net_bind, config.net_connect) == (("*",), ("10.0.0.1:80",))
    assert not config.can_spawn_processes
    engine.kill(process.pid)


# --- resources --------------------------------------------------------------------------------


def test_no_descriptor_outlives_its_processes(engine: Engine, guest: Module, sink: Sink) -> None:
    """Listeners, streams waiting in reads and streams in undelivered messages all close when
    their processes die."""
    before = open_fds()
    server, port = serve(engine, guest, sink, -1)  # serves forever
    clients = [socket.create_connection(("127.0.0.1", port), timeout=WAIT) for _ in range(5)]
    try:
        for conn in clients:
            conn.sendall(b"x")

        def all_echoed() -> bool:
            return len(select.select(clients, [], [], 0)[0]) == len(clients)

        assert engine.scheduler.run(until=all_echoed, timeout=WAIT)
        assert [conn.recv(1) for conn in clients] == [b"x"] * len(clients)
        assert len(open_fds()) >= len(before) + 1 + len(clients)
        for pid in list(engine.processes):
            if pid not in (sink.pid,):
                engine.kill(pid)
        engine.run(timeout=0.01)
        assert server.finished is not None and server.finished.outcome is Outcome.KILLED
        for conn in clients:
            assert conn.recv(1) == b""  # the guest's side was closed
    finally:
        for conn in clients:
            conn.close()
    assert open_fds() == before


def test_dropped_and_cloned_ids(engine: Engine) -> None:
    """drop_tcp_stream of an unknown id traps; a clone keeps the connection open after the
    original id is dropped (checked by the echo guest); take of a missing stream traps."""
    wat = """(module
      (import "lunatic::networking" "drop_tcp_stream" (func $drop (param i64)))
      (import "lunatic::message" "create_data" (func $create (param i64 i64)))
      (import "lunatic::message" "take_tcp_stream" (func $take (param i64) (result i64)))
      (import "lunatic::message" "push_tcp_stream" (func $push (param i64) (result i64)))
      (import "lunatic::networking" "tcp_bind" (func $bind (param i32 i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "drop_unknown") (call $drop (i64.const 77)))
      (func (export "take_missing")
        (call $create (i64.const 0) (i64.const 0)) (drop (call $take (i64.const 0))))
      (func (export "push_unknown")
        (call $create (i64.const 0) (i64.const 0)) (drop (call $push (i64.const 5))))
      (func (export "bad_family") (result i32)
        (call $bind (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 16)))
      (func (export "bad_pointer") (result i32)
        (call $bind (i32.const 4) (i32.const 70000) (i32.const 0) (i32.const 0) (i32.const 0)
          (i32.const 16))))"""
    module = engine.load_module(wat)
    expected = {
        "drop_unknown": "unknown TCP stream id 77",
        "take_missing": "no TCP stream at index 0",
        "push_unknown": "unknown TCP stream id 5",
        "bad_family": "address type must be 4 or 6, got 5",
        "bad_pointer": "out-of-bounds pointer",
    }
    for function, reason in expected.items():
        finished = run_until_done(engine, engine.spawn(module, function, (), EnvConfig.permissive()))
        assert finished.outcome is Outcome.FAILED, function
        assert reason in finished.message, (function, finished.message)
