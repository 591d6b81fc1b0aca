"""The control socket's server (lunatic_mp.serve.control) with stand-in methods: framing, errors,
authentication, limits and draining, whatever a client sends. No runtime is started here."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from lunatic_mp.errors import ServeConfigError
from lunatic_mp.serve import rpc
from lunatic_mp.serve.config import ControlConfig, TcpAddress, UnixAddress
from lunatic_mp.serve.control import CallError, ControlServer, Method, Params
from lunatic_mp.serve.rpc import Code, Notification, Response

TOKEN = "correct horse battery staple"
WAIT = 10.0


class Stand:
    """Stand-in methods, and what they saw."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.notified: list[Any] = []

    def methods(self) -> dict[str, Method]:
        return {
            "echo": Method(lambda p: p.values),
            "typed": Method(self.typed),
            "slow": Method(self.slow),
            "fail": Method(self.fail),
            "bug": Method(self.bug),
            "note": Method(self.note),
            "ping": Method(lambda p: "pong", while_draining=True),
        }

    @staticmethod
    def typed(p: Params) -> Any:
        p.at_most(2)
        return [p.integer(0, "count", low=0, high=10), p.text(1, "label", "none")]

    async def slow(self, p: Params) -> str:
        await self.release.wait()
        return "done"

    @staticmethod
    def fail(p: Params) -> None:
        raise CallError(Code.NOT_FOUND, "nothing here")

    @staticmethod
    def bug(p: Params) -> None:
        raise RuntimeError("secret detail of the server")

    def note(self, p: Params) -> None:
        self.notified.append(p.values)


class Raw:
    """A client that sends whatever bytes a test wants and reads what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = rpc.Decoder()
        self.ready: list[Any] = []
        self.ids = iter(range(1, 1 << 30))

    @classmethod
    async def open(cls, server: ControlServer) -> Raw:
        address = server.address
        if isinstance(address, UnixAddress):
            reader, writer = await asyncio.open_unix_connection(str(address.path))
        else:
            assert isinstance(address, TcpAddress)
            reader, writer = await asyncio.open_connection(address.host, address.port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def request(self, method: str, *params: Any) -> int:
        msgid = next(self.ids)
        self.send(rpc.encode_request(msgid, method, list(params)))
        return msgid

    async def next(self) -> Any:
        while not self.ready:
            data = await asyncio.wait_for(self.reader.read(65536), WAIT)
            if not data:
                return None  # closed
            self.ready.extend(self.decoder.feed(data))
        return self.ready.pop(0)

    async def call(self, method: str, *params: Any) -> Response:
        msgid = self.request(method, *params)
        answer = await self.next()
        assert isinstance(answer, Response), answer
        assert answer.msgid == msgid
        return answer

    async def closed(self) -> bool:
        return await self.next() is None

    def close(self) -> None:
        self.writer.close()


def run_with_server(
    test: Callable[[ControlServer, Stand], Awaitable[None]], tmp_path: Path, **options: Any
) -> None:
    """Run ``test`` against a fresh server on a unix socket under ``tmp_path`` (or what the
    options say), closing it afterwards."""

    async def main() -> None:
        stand = Stand()
        config = ControlConfig(address=UnixAddress(tmp_path / "control.sock"), **options)
        server = ControlServer(stand.methods(), config)
        await server.start()
        try:
            await test(server, stand)
        finally:
            await server.close()

    asyncio.run(main())


def error_of(answer: Response | Notification) -> tuple[str, str]:
    if isinstance(answer, Notification):
        assert answer.method == rpc.ERROR_NOTIFICATION
        return rpc.error_parts(answer.params[0])
    return rpc.error_parts(answer.error)


def test_pipelined_requests_are_all_answered(tmp_path: Path) -> None:
    """A hundred requests in one write get a hundred answers, each with its msgid."""

    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        client.send(b"".join(rpc.encode_request(i, "echo", [i, b"x" * i]) for i in range(100)))
        answers = [await client.next() for _ in range(100)]
        assert sorted((a.msgid, a.result[0]) for a in answers) == [(i, i) for i in range(100)]
        assert all(a.result[1] == b"x" * a.msgid and a.error is None for a in answers)
        assert server.requests["echo"] == 100
        client.close()

    run_with_server(test, tmp_path)


def test_bytes_split_anywhere_still_make_requests(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        data = rpc.encode_request(1, "echo", ["split", b"\x00\xff"])
        for byte in data:
            client.send(bytes([byte]))
            await client.writer.drain()
        assert (await client.next()).result == ["split", b"\x00\xff"]
        client.close()

    run_with_server(test, tmp_path)


def test_unknown_methods_and_bad_params_get_errors_and_the_connection_goes_on(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        assert error_of(await client.call("nosuch")) == (Code.UNKNOWN_METHOD, "no method 'nosuch'")
        code, message = error_of(await client.call("typed", "three"))
        assert code == Code.BAD_PARAMS
        assert message == "typed param 1, count, must be an integer, got a string"
        assert error_of(await client.call("typed")) == (Code.BAD_PARAMS, "typed needs param 1, count")
        assert error_of(await client.call("typed", 11))[1] == "typed param 1, count, is out of range: 11"
        assert error_of(await client.call("typed", 1, 2, 3))[1] == "typed takes at most 2 params, got 3"
        assert error_of(await client.call("typed", True))[0] == Code.BAD_PARAMS  # a bool is no int
        ext = msgpack.ExtType(1, b"\x80")
        assert error_of(await client.call("typed", ext))[1].endswith("got ExtType")
        assert (await client.call("typed", 3)).result == [3, "none"]
        assert (await client.call("typed", 3, None)).result == [3, "none"]  # nil takes the default
        assert error_of(await client.call("fail")) == (Code.NOT_FOUND, "nothing here")
        assert server.errors[Code.BAD_PARAMS] == 6
        client.close()

    run_with_server(test, tmp_path)


def test_a_handler_bug_answers_internal_without_details(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        code, message = error_of(await client.call("bug"))
        assert code == Code.INTERNAL
        assert "secret" not in message
        assert (await client.call("echo", 1)).result == [1]
        client.close()

    run_with_server(test, tmp_path)


def test_msgpack_that_is_no_rpc_message_gets_an_error(tmp_path: Path) -> None:
    """With a readable msgid: an error response; without: an error notification. The
    connection goes on either way."""

    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        client.send(msgpack.packb({"method": "echo"}))
        assert error_of(await client.next())[0] == Code.MALFORMED
        client.send(msgpack.packb([0, 5, 7, []]))
        answer = await client.next()
        assert isinstance(answer, Response)
        assert answer.msgid == 5
        assert error_of(answer) == (Code.MALFORMED, "a request's method must be a string")
        client.send(rpc.encode_response(3, None, 1))  # the server asks nothing: no responses
        assert error_of(await client.next())[0] == Code.MALFORMED
        assert (await client.call("echo", "still here")).result == ["still here"]
        client.close()

    run_with_server(test, tmp_path)


def test_bytes_that_are_not_msgpack_close_only_that_connection(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        bad, good = await Raw.open(server), await Raw.open(server)
        bad.send(b"\xc1\xc1\xc1")
        code, message = error_of(await bad.next())
        assert code == Code.MALFORMED
        assert "not msgpack" in message
        assert await bad.closed()
        assert (await good.call("echo", "fine")).result == ["fine"]
        good.close()

    run_with_server(test, tmp_path)


def test_a_message_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        big, other = await Raw.open(server), await Raw.open(server)
        big.request("echo", b"x" * 5000)
        assert error_of(await big.next())[0] == Code.TOO_LARGE
        assert await big.closed()
        assert (await other.call("echo", b"y" * 500)).result == [b"y" * 500]
        other.close()

    run_with_server(test, tmp_path, max_frame_size=1024)


def test_notifications_run_and_are_not_answered(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        client.send(rpc.encode_notification("note", ["a", 1]))
        client.send(rpc.encode_notification("nosuch", []))  # an error, but not answered either
        assert (await client.call("echo", "after")).result == ["after"]
        assert stand.notified == [["a", 1]]
        client.close()

    run_with_server(test, tmp_path)


def test_a_tcp_socket_wants_the_token_first(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        assert isinstance(server.address, TcpAddress)
        assert server.address.port != 0
        silent = await Raw.open(server)
        rude = await Raw.open(server)
        assert error_of(await rude.call("echo", 1)) == (Code.UNAUTHORIZED, "send `auth [token]` first")
        assert await rude.closed()
        wrong = await Raw.open(server)
        assert error_of(await wrong.call("auth", "x" * len(TOKEN))) == (Code.UNAUTHORIZED, "wrong token")
        assert await wrong.closed()
        good = await Raw.open(server)
        assert (await good.call("auth", TOKEN)).result is True
        assert (await good.call("echo", 2)).result == [2]
        assert (await good.call("auth", TOKEN)).result is True  # again: harmless
        # the silent one is cut off once auth_timeout has passed
        assert error_of(await silent.next()) == (Code.UNAUTHORIZED, "no token within the time allowed")
        assert await silent.closed()
        good.close()

    async def main() -> None:
        stand = Stand()
        config = ControlConfig(address=TcpAddress("127.0.0.1", 0), token=TOKEN, auth_timeout=0.5)
        server = ControlServer(stand.methods(), config)
        await server.start()
        try:
            await test(server, stand)
        finally:
            await server.close()

    asyncio.run(main())


def test_before_auth_only_a_small_message_is_buffered(tmp_path: Path) -> None:
    """60 strangers each begin an ``auth`` request announcing a 15 MiB token and send 64 KiB of
    it: each gets ``FrameTooLarge`` and is closed as soon as it passes 4 KiB (before the fix the
    server buffered up to ``max_frame_size``, 16 MiB, for each until ``auth_timeout``). Once
    authenticated, a client may send large messages again."""
    # a request [0, 1, "auth", [token]] whose token is a str32 of 15 MiB, of which 64 KiB are sent
    start = bytes([0x94, 0, 1]) + msgpack.packb("auth") + bytes([0x91, 0xDB]) + (15 << 20).to_bytes(4, "big")

    async def test(server: ControlServer, stand: Stand) -> None:
        strangers = [await Raw.open(server) for _ in range(60)]
        for stranger in strangers:
            stranger.send(start + b"x" * (64 << 10))
        for stranger in strangers:
            assert error_of(await stranger.next())[0] == Code.TOO_LARGE
            assert await stranger.closed()
        assert server.closed["too_large"] == 60
        good = await Raw.open(server)
        assert (await good.call("auth", TOKEN)).result is True
        assert (await good.call("echo", b"y" * 100_000)).result == [b"y" * 100_000]
        good.close()

    async def main() -> None:
        stand = Stand()
        config = ControlConfig(address=TcpAddress("127.0.0.1", 0), token=TOKEN, auth_timeout=60.0)
        server = ControlServer(stand.methods(), config)
        await server.start()
        try:
            await test(server, stand)
        finally:
            await server.close()

    asyncio.run(main())


def test_connections_beyond_the_limit_are_turned_away(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        first = await Raw.open(server)
        assert (await first.call("echo")).result == []
        second = await Raw.open(server)
        assert error_of(await second.next())[0] == Code.BUSY
        assert await second.closed()
        first.close()

    run_with_server(test, tmp_path, max_connections=1)


def test_draining_finishes_what_was_read_and_refuses_the_rest(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        slow = client.request("slow")
        assert (await client.call("echo")).result == []  # the slow one has been read
        assert server.in_flight == 1
        drained = asyncio.ensure_future(server.drain(WAIT))
        await asyncio.sleep(0)  # let drain begin: the listener closes
        assert not os.path.exists(tmp_path / "control.sock")
        assert error_of(await client.call("echo")) == (Code.SHUTTING_DOWN, "the server is stopping")
        assert (await client.call("ping")).result == "pong"  # allowed while draining
        assert not drained.done()
        stand.release.set()
        answer = await client.next()
        assert (answer.msgid, answer.result) == (slow, "done")
        assert await drained == 0
        client.close()

    run_with_server(test, tmp_path)


def test_a_closed_connection_cancels_its_requests(tmp_path: Path) -> None:
    async def test(server: ControlServer, stand: Stand) -> None:
        client = await Raw.open(server)
        client.request("slow")
        assert (await client.call("echo")).result == []
        assert server.in_flight == 1
        client.close()
        assert await server.drain(WAIT) == 0  # nothing left in flight: it was cancelled

    run_with_server(test, tmp_path)


def test_the_unix_socket_is_private_and_a_stale_one_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a dead server's socket file: nobody listens

    async def test(server: ControlServer, stand: Stand) -> None:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        second = ControlServer(Stand().methods(), ControlConfig(address=UnixAddress(path)))
        with pytest.raises(ServeConfigError, match="another server is listening"):
            await second.start()
        client = await Raw.open(server)
        assert (await client.call("echo", 1)).result == [1]
        client.close()

    run_with_server(test, tmp_path)
    assert not path.exists()  # removed when the server closed


def test_a_path_that_is_no_socket_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "control.sock").write_text("precious")

    async def main() -> None:
        server = ControlServer({}, ControlConfig(address=UnixAddress(tmp_path / "control.sock")))
        with pytest.raises(ServeConfigError, match="not a socket"):
            await server.start()

    asyncio.run(main())
    assert (tmp_path / "control.sock").read_text() == "precious"


def test_a_socket_directory_others_could_reach_is_refused(tmp_path: Path) -> None:
    """Inside a directory anyone may write (like /tmp), the socket's directory must be private."""
    world = tmp_path / "world"
    world.mkdir()
    world.chmod(0o1777)
    shared = world / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)

    async def main(directory: Path) -> None:
        server = ControlServer({}, ControlConfig(address=UnixAddress(directory / "control.sock")))
        try:
            await server.start()
        finally:
            await server.close()

    with pytest.raises(ServeConfigError, match="must belong to this user and be private"):
        asyncio.run(main(shared))
    asyncio.run(main(world / "private"))  # made 0700: fine
    assert stat.S_IMODE(os.stat(world / "private").st_mode) == 0o700


def test_a_tcp_port_in_use_is_named() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    async def main() -> None:
        config = ControlConfig(address=TcpAddress("127.0.0.1", port), token=TOKEN)
        server = ControlServer({}, config)
        with pytest.raises(ServeConfigError, match=f"cannot listen on tcp:127.0.0.1:{port}"):
            await server.start()

    try:
        asyncio.run(main())
    finally:
        taken.close()
