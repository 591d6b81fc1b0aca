"""Networking across workers: an echo server guest hands each connection to a child process that
the runtime places on either of two workers, so streams move between worker processes
(their descriptors pass over unix sockets, :mod:`lunatic_mp.cluster.fdpass`).
"""

from __future__ import annotations

import functools
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lunatic_mp import EnvConfig, Module
from lunatic_mp.api.runtime import Runtime
from lunatic_mp.pids import worker_of

GUESTS = Path(__file__).parents[1] / "guests"
LOCALHOST = 0x0100007F
ERROR_TAG, PORT_TAG, ECHOED_TAG = 1, 2, 3
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    runtime = Runtime(workers=2)
    assert runtime.wait_for_workers(TIMEOUT)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def guest(runtime: Runtime) -> Module:
    return runtime.load_module(GUESTS / "net_guest.wat")


def i64(data: bytes | bytearray) -> int:
    return int(struct.unpack("<q", data)[0])


def serve_and_talk(runtime: Runtime, guest: Module, clients: int, rounds: int) -> list[int]:
    """Serve ``clients`` concurrent connections through the guest; the pids of the processes
    that served them."""
    server = runtime.spawn(guest, "serve", (runtime.pid, LOCALHOST, 0, clients), EnvConfig.permissive())
    port_message = runtime.receive([PORT_TAG], TIMEOUT)
    assert port_message is not None
    port = i64(port_message.data)
    failures: list[BaseException] = []
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
                barrier.wait(TIMEOUT)
                for round_ in range(rounds):
                    payload = f"{index}:{round_};".encode()
                    conn.sendall(payload)
                    received = b""
                    while len(received) < len(payload):
                        received += conn.recv(4096)
                    assert received == payload
        except BaseException as exc:  # noqa: BLE001 - reported on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=functools.partial(client, i)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not failures, failures
    servers = []
    for _ in range(clients):
        echoed = runtime.receive([ECHOED_TAG, ERROR_TAG], TIMEOUT)
        assert echoed is not None and echoed.tag == ECHOED_TAG, echoed
        servers.append(echoed.pid)
    finished = runtime.join(server, TIMEOUT)
    assert finished is not None and finished.ok, finished
    return servers


def worker_fds(runtime: Runtime) -> dict[int, int]:
    return {worker: psutil.Process(pid).num_fds() for worker, pid in runtime.worker_pids().items()}


def test_streams_move_to_children_on_other_workers(runtime: Runtime, guest: Module) -> None:
    """24 clients at once; the children that echo them run on both workers."""
    servers = serve_and_talk(runtime, guest, clients=24, rounds=10)
    assert len(set(servers)) == 24
    assert len({worker_of(pid) for pid in servers}) == 2


def test_no_descriptor_is_left_in_any_worker(runtime: Runtime, guest: Module) -> None:
    """Once the server and its children are gone, each worker holds as many descriptors as
    before (a first round opens the workers' sockets to each other, which stay)."""
    serve_and_talk(runtime, guest, clients=4, rounds=1)
    before = worker_fds(runtime)
    serve_and_talk(runtime, guest, clients=16, rounds=2)
    assert worker_fds(runtime) == before
