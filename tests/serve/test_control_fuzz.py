"""The control socket fed random and mutated msgpack-RPC (hypothesis, derandomized), and the
serve methods fed random params.

Whatever a client sends, it gets well-formed answers (responses, or error notifications), and
either its stream stays in step (a request sent after the garbage is answered) or the server
closes the connection after saying why; the server never answers ``Internal`` (a method or the
params checks failing on odd input), never unpickles anything, and goes on serving other
clients.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_control import Raw, Stand, error_of

from lunatic_mp.serve import rpc
from lunatic_mp.serve.config import ControlConfig, ProcessSpec, ServeConfig, UnixAddress
from lunatic_mp.serve.control import ControlServer, Method
from lunatic_mp.serve.rpc import Code, Notification, Response
from lunatic_mp.serve.server import Server

GUESTS = Path(__file__).parents[1] / "guests"
WAIT = 30.0
FUZZ = settings(
    derandomize=True,
    max_examples=60,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: an example can take a second
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- a canary: anything unpickled trips it ------------------------------------------------------

TRIPPED: list[str] = []


def _trip() -> None:
    TRIPPED.append("something received was unpickled")


class _Canary:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_trip, ())


PICKLE = pickle.dumps(_Canary())

# -- what hostile clients send ------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.sampled_from([PICKLE, msgpack.ExtType(1, PICKLE), msgpack.ExtType(127, b"\x00" * 4)]),
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=4) | st.integers(-(2**63), 2**64 - 1), children, max_size=3)
    ),
    max_leaves=10,
)
msgids = st.one_of(st.integers(0, rpc.MAX_MSGID), st.integers(-5, 2**64 - 1), values)
methods = st.sampled_from(["echo", "typed", "fail", "note", "ping", "auth", "nosuch", ""]) | st.text(
    max_size=8
)


def _pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


@st.composite
def huge_header(draw: st.DrawFn) -> bytes:
    first = draw(st.sampled_from([0xC6, 0xDB, 0xDD, 0xDF]))  # bin32, str32, array32, map32
    return bytes([first]) + draw(st.integers(2**20, 2**32 - 1)).to_bytes(4, "big")


messages = st.one_of(
    st.builds(
        rpc.encode_request,
        st.integers(0, rpc.MAX_MSGID),
        methods,
        st.lists(values, max_size=4),
    ),
    st.builds(rpc.encode_notification, methods, st.lists(values, max_size=3)),
    st.builds(rpc.encode_response, st.integers(0, rpc.MAX_MSGID), values, values),
    st.builds(
        lambda k, i, m, p: _pack([k, i, m, p]), st.integers(-2, 3) | st.booleans(), msgids, values, values
    ),
    st.lists(values, max_size=6).map(_pack),
    values.map(_pack),
    st.binary(max_size=24),
    huge_header(),
    st.just(PICKLE),
    st.just(b"\x94\x00\x01\xa4echo\x91\xd6\xff\x00\x00\x00\x00"),  # echo [a msgpack timestamp]
    st.just(b"\x94\x00\x01\xa4echo\x91\xc7\x01\xff\x00"),  # echo [a malformed timestamp]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request with a byte flipped, cut short, or with bytes inserted."""
    data = bytearray(
        rpc.encode_request(draw(st.integers(0, 1000)), "echo", draw(st.lists(values, max_size=3)))
    )
    at = draw(st.integers(0, len(data) - 1))
    op = draw(st.sampled_from(["flip", "cut", "insert"]))
    if op == "flip":
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif op == "cut":
        del data[at:]
    else:
        data[at:at] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


def stand_methods() -> dict[str, Method]:
    """Stand-in methods, without ``slow`` (it waits for the test) and ``bug`` (it answers
    Internal on purpose)."""
    stand_in = Stand().methods()
    return {name: method for name, method in stand_in.items() if name not in ("slow", "bug")}


async def answers_until(client: Raw, sentinel: int) -> tuple[list[Any], bool]:
    """What the server sends until it answers ``sentinel`` (True) or closes (False)."""
    got: list[Any] = []
    while True:
        answer = await client.next()
        if answer is None:
            return got, False
        got.append(answer)
        if isinstance(answer, Response) and answer.msgid == sentinel:
            return got, True


class SockClient:
    """A client on a plain socket: unlike asyncio's streams, a write that fails because the
    server has closed the connection does not discard what the server sent before closing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.decoder = rpc.Decoder()
        self.ready: list[Any] = []
        self.open = True

    @classmethod
    async def connect(cls, path: Path) -> SockClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, str(path))
        return cls(sock)

    async def send(self, data: bytes) -> bool:
        """False once the server has closed the connection."""
        if self.open:
            try:
                await self.loop.sock_sendall(self.sock, data)
            except OSError:
                self.open = False
        return self.open

    async def next(self, timeout: float) -> Any:
        """The next message, None at the end; TimeoutError if none comes in time."""
        while not self.ready:
            try:
                data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), timeout)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.ready.extend(self.decoder.feed(data))
        return self.ready.pop(0)

    def close(self) -> None:
        self.sock.close()


async def answers_until_in_step(client: SockClient) -> tuple[list[Any], bool]:
    """Send sentinel requests until one is answered (True) or the server closes (False).

    Garbage may leave a container open that swallows the next requests as its elements: each
    sentinel fills one more place, and a container announcing more places than will ever come
    leaves the message unfinished, which the server cuts off after ``message_timeout``.
    """
    got: list[Any] = []
    for round_ in range(100):
        if not await client.send(rpc.encode_request(SENTINEL - round_, "echo", ["sentinel"])):
            while (answer := await client.next(WAIT)) is not None:
                got.append(answer)
            return got, False
        while True:
            try:
                answer = await client.next(0.1)
            except TimeoutError:
                break  # swallowed (or just slow: then a later one is answered too)
            if answer is None:
                return got, False
            got.append(answer)
            if isinstance(answer, Response) and answer.msgid > SENTINEL - 100:
                return got, True
    raise AssertionError(f"neither answered nor closed: {got}")


SENTINEL = rpc.MAX_MSGID


def check_answers(got: list[Any], in_step: bool) -> None:
    """Every answer is a response or an error notification; a closed connection was told why."""
    for answer in got:
        assert isinstance(answer, Response | Notification), answer
        if isinstance(answer, Notification):
            assert answer.method == rpc.ERROR_NOTIFICATION, answer
        if isinstance(answer, Response) and answer.error is not None:
            code, message = rpc.error_parts(answer.error)
            assert code != Code.INTERNAL, message
            assert message, answer
    if in_step:
        assert got[-1].result == ["sentinel"], got[-1]
    else:
        assert got, "closed without a word"
        assert isinstance(got[-1], Notification), got[-1]
        assert error_of(got[-1])[0] in (Code.MALFORMED, Code.TOO_LARGE, Code.STALLED), got[-1]


@FUZZ
@given(
    chunks=st.lists(st.one_of(messages, mutated()), min_size=1, max_size=8),
    split=st.integers(1, 64),
)
def test_fuzzed_streams_get_answers_or_a_reasoned_close(chunks: list[bytes], split: int) -> None:
    stream = b"".join(chunks)

    async def main(directory: str) -> None:
        config = ControlConfig(
            address=UnixAddress(Path(directory) / "c.sock"), max_frame_size=4096, message_timeout=0.1
        )
        server = ControlServer(stand_methods(), config)
        await server.start()
        try:
            bystander = await Raw.open(server)
            assert (await bystander.call("echo", "before")).result == ["before"]
            client = await SockClient.connect(Path(directory) / "c.sock")
            for start in range(0, len(stream), split):
                await client.send(stream[start : start + split])
            got, in_step = await answers_until_in_step(client)
            check_answers(got, in_step)
            client.close()
            assert (await bystander.call("echo", "after")).result == ["after"]
            assert server.errors[Code.INTERNAL] == 0
            bystander.close()
        finally:
            await server.close()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(directory))
    assert not TRIPPED


# -- the real serve methods, fed random params ---------------------------------------------------


class Served:
    """``lunatic-mp serve`` (lunatic_mp.serve.server.Server) on a thread of this process, one worker,
    ``tests/guests/serve_guest.wat`` as ``guest`` with an ``echo`` process named ``echo``."""

    def __init__(self, directory: Path) -> None:
        self.address = UnixAddress(directory / "control.sock")
        config = ServeConfig(
            workers=1,
            modules={"guest": GUESTS / "serve_guest.wat"},
            processes=[ProcessSpec("guest", "echo", name="echo")],
            control=ControlConfig(address=self.address, message_timeout=1.0),
            metrics_address=None,
        )
        self.ready = threading.Event()
        self.failures: list[BaseException] = []
        self.server = Server(config, self._announce)
        self.thread = threading.Thread(target=self._run, name="fuzzed-server")
        self.thread.start()
        assert self.ready.wait(WAIT), "the server did not get ready"
        assert not self.failures, self.failures

    def _announce(self, line: str) -> None:
        if line.startswith("ready"):
            self.ready.set()

    def _run(self) -> None:
        try:
            self.server.start()
            asyncio.run(self.server.serve(handle_signals=False))
        except BaseException as exc:  # noqa: BLE001 - reported in the test's thread
            self.failures.append(exc)
            self.ready.set()
        finally:
            self.server.close()

    def stop(self) -> None:
        self.server.stop_threadsafe()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        assert not self.failures, self.failures


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = Served(tmp_path_factory.mktemp("fuzzserve"))
    yield served
    served.stop()


SERVE_METHODS = [
    "ping", "spawn", "send", "request", "join", "kill", "exists", "lookup", "register", "unregister",
    "names", "processes", "stats", "modules", "reload",
]  # fmt: skip
"""Every method but ``stop``."""

params_values: st.SearchStrategy[Any] = st.one_of(
    values,
    st.sampled_from(["guest", "echo", "echo@^1", "echo@>=0", "_start", "echo", "park", ""]),
    st.sampled_from([0, 1, -1, 2**63, 2**64 - 1, 0.0, 0.01, float("nan"), float("inf"), -1.5]),
    st.fixed_dictionaries(
        {}, optional={"worker": values, "name": values, "version": values, "max_fuel": values}
    ),
)


@FUZZ
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(SERVE_METHODS), st.lists(params_values, max_size=4)), min_size=1, max_size=6
    )
)
def test_serve_methods_answer_random_params_without_internal_errors(
    served: Served, calls: list[tuple[str, list[Any]]]
) -> None:
    """Every answer that comes is a result or a clear error, never Internal; a request sent
    after them is answered (calls that wait, a request or join with a long timeout, may still
    be pending then: they are not waited for)."""

    async def main() -> None:
        reader, writer = await asyncio.open_unix_connection(str(served.address.path))
        client = Raw(reader, writer)
        for msgid, (method, params) in enumerate(calls):
            try:
                client.send(rpc.encode_request(msgid, method, params))
            except rpc.ProtocolError:
                continue  # a value msgpack cannot carry (a float NaN can; an int past u64 cannot)
        client.send(rpc.encode_request(SENTINEL, "ping", []))
        got, in_step = await answers_until(client, SENTINEL)
        assert in_step
        for answer in got[:-1]:
            assert isinstance(answer, Response), answer
            if answer.error is not None:
                code, message = rpc.error_parts(answer.error)
                assert code != Code.INTERNAL, (calls[answer.msgid], message)
        assert got[-1] == Response(SENTINEL, None, "pong")
        client.close()

    asyncio.run(main())
    assert not TRIPPED
    assert served.server.control.errors[Code.INTERNAL] == 0
