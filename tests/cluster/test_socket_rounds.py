"""A sleeping worker that a socket wakes runs the processes waiting on it at once, without a whole
step of its loop, and sleeps on when that was all (``Worker._on_sockets_ready``). What those
processes do besides the socket still happens: a message for another worker leaves, a timer one
sets fires, and the worker's counters show that the rounds ran that way."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import EnvConfig
from lunatic_mp.api.runtime import Runtime

GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 30.0
RELAYED_TAG = 5
ROUNDS = 30


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with Runtime(workers=2) as runtime:
        assert runtime.wait_for_workers(TIMEOUT)
        yield runtime


def socket_rounds(runtime: Runtime, worker: int) -> int:
    (stats,) = [s for s in runtime.stats() if s["worker"] == worker]
    return int(stats["socket_rounds"])


def accept_guest(
    runtime: Runtime, guest: str, function: str, params: tuple[int, ...]
) -> tuple[int, socket.socket]:
    """Spawn ``function`` on the first worker with a listening port as its first parameter; the
    process and the connection it made."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        module = runtime.load_module(GUESTS / guest)
        worker = runtime.worker_ids[0]
        pid = runtime.spawn(module, function, (port, *params), EnvConfig.permissive(), worker=worker)
        conn, _ = listener.accept()
    conn.settimeout(TIMEOUT)
    return pid, conn


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "the guest closed the connection"
        data += chunk
    return data


def test_an_echo_runs_in_socket_rounds(runtime: Runtime) -> None:
    worker = runtime.worker_ids[0]
    before = socket_rounds(runtime, worker)
    pid, conn = accept_guest(runtime, "net_c_waits.wat", "echo", (-1,))
    with conn:
        for index in range(ROUNDS):
            # The worker has answered, so it is idle: the guest waits on its socket, and the
            # worker sleeps (it never spins while it watches sockets) by the time the request
            # comes. A request that comes while it is still in a step waits for that step.
            socket_rounds(runtime, worker)
            payload = struct.pack("<q", index) * 4
            conn.sendall(payload)
            assert recv_exactly(conn, len(payload)) == payload
    finished = runtime.join(pid, TIMEOUT)
    assert finished is not None and finished.result == (0,), finished
    assert socket_rounds(runtime, worker) > before


@pytest.mark.parametrize("pause_ms", [-1, 1], ids=["message", "timer-then-message"])
def test_what_a_socket_round_starts_goes_on(runtime: Runtime, pause_ms: int) -> None:
    """The relay sends each read to this program (a frame to the supervisor) before echoing it;
    with a pause it first sleeps, on a timer set during the socket's round."""
    worker = runtime.worker_ids[0]
    before = socket_rounds(runtime, worker)
    pid, conn = accept_guest(runtime, "socket_relay.wat", "relay", (runtime.pid, pause_ms))
    with conn:
        for index in range(ROUNDS):
            payload = f"round {index}".encode()
            conn.sendall(payload)
            relayed = runtime.receive([RELAYED_TAG], TIMEOUT)
            assert relayed is not None and bytes(relayed.data) == payload
            assert recv_exactly(conn, len(payload)) == payload
    finished = runtime.join(pid, TIMEOUT)
    assert finished is not None and finished.result == (0,), finished
    assert socket_rounds(runtime, worker) > before


def test_socket_rounds_beside_frequent_hibernation_sweeps(caplog: pytest.LogCaptureFixture) -> None:
    """With sweeps due every millisecond, a sleeping worker's alarm often falls due within a
    millisecond, which uvloop turns into a plain call_soon handle: a socket that wakes the worker
    then must still find when its alarm is due (it failed on the handle's missing ``when``)."""
    with Runtime(workers=1, hibernate_after=0.001) as quick:
        pid, conn = accept_guest(quick, "net_c_waits.wat", "echo", (-1,))
        with conn:
            for index in range(ROUNDS * 10):
                payload = struct.pack("<q", index) * 4
                conn.sendall(payload)
                assert recv_exactly(conn, len(payload)) == payload
        finished = quick.join(pid, TIMEOUT)
        assert finished is not None and finished.result == (0,), finished
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
