"""Serving under abuse: slow and stalled clients, connection floods, wrong tokens, requests
after SIGTERM. The control server alone (fast, in this process), then a real `lunatic-mp serve`
taking all of it at once and showing it in /metrics."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_control import TOKEN, Raw, Stand, error_of
from test_control_fuzz import SockClient
from test_serve import GUESTS, ServeProcess, environment, servers, start, write_config

from lunatic_mp.serve import prometheus, rpc
from lunatic_mp.serve.config import ControlConfig, TcpAddress, UnixAddress
from lunatic_mp.serve.control import ControlServer
from lunatic_mp.serve.rpc import Code, Response

__all__ = ["servers"]  # the fixture, imported for the end-to-end test

WAIT = 30.0


async def serving(config: ControlConfig) -> tuple[ControlServer, Stand]:
    stand = Stand()
    server = ControlServer(stand.methods(), config)
    await server.start()
    return server, stand


def test_a_stalled_client_blocks_no_one_and_is_dropped(tmp_path: Path) -> None:
    """Half a request, then silence: others are served meanwhile; after message_timeout the
    stalled client gets Stalled and is closed, counted under ``stalled``."""

    async def main() -> None:
        server, _ = await serving(
            ControlConfig(address=UnixAddress(tmp_path / "c.sock"), message_timeout=0.5)
        )
        try:
            stalled, other = await Raw.open(server), await Raw.open(server)
            data = rpc.encode_request(1, "echo", [b"x" * 100])
            stalled.send(data[: len(data) // 2])
            for i in range(20):
                assert (await other.call("echo", i)).result == [i]
            code, message = error_of(await stalled.next())
            assert (code, message) == (
                Code.STALLED,
                "a message was begun and not finished within 0.5 seconds",
            )
            assert await stalled.closed()
            assert server.closed == {"stalled": 1}
            assert (await other.call("echo", "after")).result == ["after"]
            other.close()
        finally:
            await server.close()

    asyncio.run(main())


def test_a_trickling_client_is_dropped_a_streaming_one_is_not(tmp_path: Path) -> None:
    """The clock runs per message: a client sending one message a byte at a time, slower than
    message_timeout in all, is dropped although it never goes quiet; one sending message after
    message, for longer than message_timeout in all, each finished quickly, is not."""

    async def main() -> None:
        server, _ = await serving(
            ControlConfig(address=UnixAddress(tmp_path / "c.sock"), message_timeout=1.0)
        )
        try:
            trickler = await SockClient.connect(tmp_path / "c.sock")  # reads what came before a close
            streamer = await Raw.open(server)
            slow = rpc.encode_request(1, "echo", [b"y" * 40])
            requests = b"".join(rpc.encode_request(i, "echo", [i]) for i in range(15))
            half = len(requests) // 30  # so that a request is always half sent when a pause starts
            for step in range(15):
                await trickler.send(slow[step : step + 1])  # dropped part way: the point
                streamer.send(requests[step * 2 * half : (step + 1) * 2 * half])
                await asyncio.sleep(0.1)
            streamer.send(requests[15 * 2 * half :])
            code, _ = error_of(await trickler.next(WAIT))
            assert code == Code.STALLED
            answers = [await streamer.next() for _ in range(15)]
            assert sorted(answer.msgid for answer in answers) == list(range(15))
            assert server.closed == {"stalled": 1}, server.closed
            assert (await streamer.call("echo", "still")).result == ["still"]
            assert server.closed == {"stalled": 1}
            streamer.close()
            trickler.close()
        finally:
            await server.close()

    asyncio.run(main())


def test_a_flood_of_connections_is_bounded_and_the_server_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        server, _ = await serving(ControlConfig(address=UnixAddress(tmp_path / "c.sock"), max_connections=5))
        try:
            kept = [await Raw.open(server) for _ in range(5)]
            for client in kept:
                assert (await client.call("echo")).result == []
            flood = [await Raw.open(server) for _ in range(40)]
            for client in flood:
                assert error_of(await client.next()) == (Code.BUSY, "the server has 5 connections, its limit")
                assert await client.closed()
            assert len(server.connections) == 5
            for client in kept:
                assert (await client.call("echo", 1)).result == [1]
            kept.pop().close()
            await asyncio.wait_for(wait_until(lambda: len(server.connections) == 4), WAIT)
            again = await Raw.open(server)
            assert (await again.call("echo", "in")).result == ["in"]
            assert server.closed == {"busy": 40}
            assert server.errors[Code.BUSY] == 40
            for client in [*kept, again]:
                client.close()
        finally:
            await server.close()

    asyncio.run(main())


async def wait_until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)


def test_wrong_tokens_are_rejected_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lunatic_mp.serve.control")

    async def main() -> None:
        config = ControlConfig(address=TcpAddress("127.0.0.1", 0), token=TOKEN, auth_timeout=0.5)
        server, _ = await serving(config)
        try:
            for wrong in ("x" * len(TOKEN), TOKEN + "x", "", b"\xff" * 40, 12345, None):
                client = await Raw.open(server)
                assert error_of(await client.call("auth", wrong)) == (Code.UNAUTHORIZED, "wrong token")
                assert await client.closed()
            tokenless = await Raw.open(server)
            assert error_of(await tokenless.call("echo"))[0] == Code.UNAUTHORIZED
            silent = await Raw.open(server)
            assert error_of(await silent.next()) == (Code.UNAUTHORIZED, "no token within the time allowed")
            good = await Raw.open(server)
            assert (await good.call("auth", TOKEN)).result is True
            assert (await good.call("echo", "ok")).result == ["ok"]
            assert server.closed == {"wrong_token": 6, "no_token": 1, "auth_timeout": 1}
            assert server.errors[Code.UNAUTHORIZED] == 8
            good.close()
        finally:
            await server.close()

    asyncio.run(main())
    wrong = [r for r in caplog.records if "gave a wrong token" in r.getMessage()]
    assert len(wrong) == 6 and all(r.levelno == logging.WARNING for r in wrong)
    assert all("127.0.0.1" in r.getMessage() for r in wrong)  # who it was


def test_metrics_show_closed_connections_by_reason() -> None:
    snapshot = prometheus.Snapshot(
        workers=[], configured_workers=1, workers_lost=0, modules=0, start_time=0.0,
        errors={Code.UNAUTHORIZED: 3}, closed={"wrong_token": 2, "stalled": 1},
    )  # fmt: skip
    families = {f.name: f for f in text_string_to_metric_families(prometheus.render(snapshot).decode())}
    closed = {s.labels["reason"]: s.value for s in families["lunatic_control_connections_closed"].samples}
    assert closed == {"wrong_token": 2.0, "stalled": 1.0}
    errors = {s.labels["code"]: s.value for s in families["lunatic_control_errors"].samples}
    assert errors == {"Unauthorized": 3.0}


# -- a real server --------------------------------------------------------------------------------


def raw_connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    return sock


def read_answer(sock: socket.socket, decoder: rpc.Decoder) -> Any:
    while True:
        data = sock.recv(65536)
        if not data:
            return None
        messages = decoder.feed(data)
        if messages:
            return messages[0]


def metrics_of(url: str) -> dict[str, dict[str, float]]:
    with urllib.request.urlopen(url, timeout=WAIT) as response:
        text = response.read().decode()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("reason") or sample.labels.get("code") or ""
            out.setdefault(sample.name, {})[label] = sample.value
    return out


def test_serve_under_abuse(tmp_path: Path, servers: list[ServeProcess]) -> None:
    """One `lunatic-mp serve` on TCP with a token takes wrong tokens, a connection flood, a
    stalled client and garbage, goes on answering a good client, and shows each in /metrics
    (and the wrong tokens in its log); after SIGTERM a request on an open connection is
    refused with ShuttingDown, a new connection is refused, and it exits 0."""
    config = write_config(
        tmp_path,
        f"""
        [modules]
        guest = "{GUESTS / "serve_guest.wat"}"

        [[processes]]
        module = "guest"
        function = "echo"
        name = "echo"

        [control]
        max_connections = 4
        message_timeout = 1.0
        """,
    )
    server = start(
        servers, config, "--workers", "1", "--control", "tcp:127.0.0.1:0", "--metrics", "127.0.0.1:0",
        env=environment(tmp_path, LUNATIC_MP_TOKEN=TOKEN + "-serve"),
    )  # fmt: skip
    where = server.ready()
    port = int(where["control"].rsplit(":", 1)[1])
    token = TOKEN + "-serve"

    good = raw_connect(port)
    decoder = rpc.Decoder()
    good.sendall(rpc.encode_request(1, "auth", [token]))
    assert read_answer(good, decoder) == Response(1, None, True)

    for _ in range(3):  # wrong tokens
        sock = raw_connect(port)
        sock.sendall(rpc.encode_request(1, "auth", ["not the token, not at all"]))
        answer = read_answer(sock, rpc.Decoder())
        assert isinstance(answer, Response) and rpc.error_parts(answer.error)[0] == Code.UNAUTHORIZED
        assert read_answer(sock, rpc.Decoder()) is None
        sock.close()

    garbage = raw_connect(port)  # bytes that are no msgpack
    garbage.sendall(b"\xc1\xc1")
    assert rpc.error_parts(read_answer(garbage, rpc.Decoder()).params[0])[0] == Code.MALFORMED
    garbage.close()

    stalled = raw_connect(port)  # authenticated, then half a request
    stalled_decoder = rpc.Decoder()
    stalled.sendall(rpc.encode_request(1, "auth", [token]))
    assert read_answer(stalled, stalled_decoder) == Response(1, None, True)
    stalled.sendall(rpc.encode_request(2, "request", ["echo", b"never finished", 5])[:10])

    flood = [raw_connect(port) for _ in range(2)]  # with good and stalled: 4, the limit
    refused = [raw_connect(port) for _ in range(5)]
    for sock in refused:
        answer = read_answer(sock, rpc.Decoder())
        assert rpc.error_parts(answer.params[0])[0] == Code.BUSY
        sock.close()
    for msgid in range(2, 6):  # the good client is served all along
        good.sendall(rpc.encode_request(msgid, "request", ["echo", b"hello", 30]))
        answer = read_answer(good, decoder)
        assert isinstance(answer, Response) and answer.error is None and answer.result["data"] == b"hello"
    stall = read_answer(stalled, stalled_decoder)
    assert rpc.error_parts(stall.params[0])[0] == Code.STALLED
    assert read_answer(stalled, stalled_decoder) is None
    stalled.close()
    for sock in flood:
        sock.close()

    metrics = metrics_of(where["metrics"])
    closed = metrics["lunatic_control_connections_closed_total"]
    assert closed == {"wrong_token": 3.0, "not_msgpack": 1.0, "busy": 5.0, "stalled": 1.0}, closed
    errors = metrics["lunatic_control_errors_total"]
    assert errors["Unauthorized"] == 3.0 and errors["Busy"] == 5.0 and errors["Stalled"] == 1.0, errors
    assert errors["MalformedMessage"] == 1.0, errors
    assert metrics["lunatic_malformed_frames_total"] == {"": 0.0}

    server.process.send_signal(signal.SIGTERM)
    server.wait_for(r"^lunatic-mp: stopping")
    good.sendall(rpc.encode_request(9, "names", []))
    answer = read_answer(good, decoder)
    assert isinstance(answer, Response)
    assert rpc.error_parts(answer.error) == (Code.SHUTTING_DOWN, "the server is stopping")
    with pytest.raises(ConnectionRefusedError):
        raw_connect(port).close()
    assert read_answer(good, decoder) is None  # closed once stopped
    good.close()
    assert server.finish() == 0
    assert sum("gave a wrong token" in line for line in server.stderr if line is not None) == 3
