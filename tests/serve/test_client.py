"""lunatic_mp.connect and AsyncClient against a real server (lunatic_mp.serve.server) run in this
process, on a thread of its own: every control method, /metrics and /healthz."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import lunatic_mp
from lunatic_mp import AsyncClient, EnvConfig, Outcome, RemoteError, SpawnError
from lunatic_mp.config import ALL_NAMESPACES
from lunatic_mp.errors import InvalidNameError
from lunatic_mp.serve.config import ProcessSpec, TcpAddress, UnixAddress, example_config
from lunatic_mp.serve.server import Server

GUESTS = Path(__file__).parents[1] / "guests"
WAIT = 60.0


@dataclass
class Served:
    server: Server
    address: UnixAddress
    lines: list[str]

    @property
    def metrics_url(self) -> str:
        assert self.server.metrics_url is not None
        return self.server.metrics_url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The example application plus tests/guests/serve_guest.wat (an `echo` registered as
    `echo`), two workers, metrics on a free port."""
    config = example_config()
    config.workers = 2
    config.modules["guest"] = GUESTS / "serve_guest.wat"
    config.processes.append(ProcessSpec("guest", "echo", name="echo"))
    address = UnixAddress(tmp_path_factory.mktemp("serve") / "control.sock")
    config.control.address = address
    config.metrics_address = TcpAddress("127.0.0.1", 0)
    config.http.address = TcpAddress("127.0.0.1", 0)
    lines: list[str] = []
    ready = threading.Event()
    failures: list[BaseException] = []

    def announce(line: str) -> None:
        lines.append(line)
        if line.startswith("ready"):
            ready.set()

    server = Server(config, announce)

    def run() -> None:
        try:
            server.start()
            asyncio.run(server.serve(handle_signals=False))
        except BaseException as exc:  # noqa: BLE001 - reported by the fixture, in the test's thread
            failures.append(exc)
            ready.set()
        finally:
            server.close()

    thread = threading.Thread(target=run, name="test-server")
    thread.start()
    assert ready.wait(WAIT), "the server did not get ready"
    assert not failures, failures
    yield Served(server, address, lines)
    server.stop_threadsafe()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert lines[-1] == "stopped"


@pytest.fixture
def client(served: Served) -> Iterator[lunatic_mp.Client]:
    with lunatic_mp.connect(served.address) as client:
        yield client


def test_spawn_and_join(client: lunatic_mp.Client) -> None:
    pid = client.spawn("counter", "add", [2, 3])
    finished = client.join(pid, timeout=WAIT)
    assert finished is not None
    assert (finished.outcome, finished.result) == (Outcome.NORMAL, (5,))
    assert client.join(pid) == finished  # the end is remembered


def test_how_processes_end(client: lunatic_mp.Client) -> None:
    trapped = client.join(client.spawn("guest", "trap"), timeout=WAIT)
    assert trapped is not None
    assert trapped.outcome is Outcome.FAILED
    assert "unreachable" in trapped.message
    assert trapped.backtrace
    starved = client.join(client.spawn("guest", "spin", config=EnvConfig(max_fuel=1)), timeout=WAIT)
    assert starved is not None
    assert starved.outcome is Outcome.FAILED
    assert "fuel" in starved.message
    parked = client.spawn("guest", "park", worker=3)
    assert client.join(parked, timeout=0.2) is None  # still running
    assert client.exists(parked)
    client.kill(parked)
    killed = client.join(parked, timeout=WAIT)
    assert killed is not None
    assert killed.outcome is Outcome.KILLED
    assert not client.exists(parked)


def test_spawn_mistakes(client: lunatic_mp.Client) -> None:
    with pytest.raises(RemoteError, match="no module 'nosuch'") as raised:
        client.spawn("nosuch")
    assert raised.value.code == "NotFound"
    with pytest.raises(RemoteError, match="module guest has no export 'nope'"):
        client.spawn("guest", "nope")
    with pytest.raises(SpawnError, match="takes 2 parameter"):
        client.spawn("counter", "add", [1])
    with pytest.raises(SpawnError, match="no worker 999"):
        client.spawn("counter", "add", [1, 2], worker=999)
    with pytest.raises(RemoteError, match="unknown key 'fuel'"):
        client.call("spawn", "counter", "add", [1, 2], {"fuel": 3})
    with pytest.raises(ValueError, match="cannot be preopened"):
        config = EnvConfig()
        config.preopen("/tmp")
        client.spawn("guest", "park", config=config)
    with pytest.raises(InvalidNameError):
        client.spawn("guest", "park", name="x", version="not.a.version")
    with pytest.raises(RemoteError) as raised:
        client.join(12345)
    assert raised.value.code == "NotFound"


def test_spawn_configs_are_bounded_by_the_servers_spawn_config(
    client: lunatic_mp.Client, served: Served
) -> None:
    """A client's spawn config may grant no more than ``control.spawn_config`` (here: 1,000 fuel
    units, no permissions, no metrics namespace): asking for more is BadParams naming what;
    limits it leaves out are the bound's (before the fix any config was accepted)."""
    control = served.server.config.control
    default = control.spawn_config
    control.spawn_config = EnvConfig(max_fuel=1000, allowed_namespaces=ALL_NAMESPACES - {"networking"})
    try:
        for options, what in [
            ({"max_fuel": 0}, "max_fuel unlimited is looser"),
            ({"max_fuel": 5000}, "max_fuel 5000 is looser"),
            ({"can_spawn_processes": True}, "can_spawn_processes"),
            ({"allowed_namespaces": sorted(ALL_NAMESPACES)}, "['networking']"),
        ]:
            with pytest.raises(
                RemoteError, match=r"grant more than the server's control\.spawn_config"
            ) as raised:
                client.call("spawn", "counter", "add", [1, 2], options)
            assert raised.value.code == "BadParams" and what in str(raised.value)
        starved = client.join(client.spawn("guest", "spin"), timeout=WAIT)  # 1,000 units, not unlimited
        assert starved is not None and starved.message == "out of fuel"
        within = EnvConfig(max_fuel=10, allowed_namespaces=ALL_NAMESPACES - {"networking"})
        assert client.join(client.spawn("counter", "add", [2, 3], config=within), timeout=WAIT)
    finally:
        control.spawn_config = default


def test_send_and_request(client: lunatic_mp.Client) -> None:
    reply = client.request("echo", b"hello")
    assert reply.data == b"hello"
    assert reply.tag != 0
    echo = client.registry_get("echo")
    assert echo is not None
    assert reply.pid == echo
    assert client.request(echo, "text goes as UTF-8").data == b"text goes as UTF-8"
    big = bytes(range(256)) * 200
    assert client.request(echo, big).data == big
    client.send("echo", b"no answer for tag 0")
    client.send(echo, b"none either", tag=0)
    assert client.request("echo", b"").data == b""


def test_a_late_reply_is_dropped(client: lunatic_mp.Client) -> None:
    """A reply that comes after its request timed out is counted and dropped; the next request
    gets its own reply (the guest answers in order)."""
    slow = client.spawn("guest", "slow_echo", [300])
    before = client.stats()["server"]["dropped_messages"]
    with pytest.raises(TimeoutError, match=r"did not reply within 0\.05 s"):
        client.request(slow, b"first", timeout=0.05)
    assert client.request(slow, b"second", timeout=WAIT).data == b"second"
    assert client.stats()["server"]["dropped_messages"] == before + 1
    client.kill(slow)


def test_unknown_targets(client: lunatic_mp.Client) -> None:
    with pytest.raises(RemoteError, match="no process is registered as 'ghost'"):
        client.send("ghost", b"x")
    with pytest.raises(RemoteError, match="registered as 'ghost'"):
        client.request("ghost", b"x")
    assert client.registry_get("ghost") is None
    assert not client.exists("ghost")
    with pytest.raises(RemoteError, match="is no pid"):
        client.send(0, b"x")
    with pytest.raises(ValueError, match="cannot encode"):  # no tag that wide: not even sent
        client.send("echo", b"x", tag=2**64)
    client.send("echo", b"x", tag=2**64 - 1)  # the widest tag there is


def test_the_registry(client: lunatic_mp.Client) -> None:
    first = client.spawn("guest", "park")
    second = client.spawn("guest", "park", name="svc", version="1.1.0")
    client.registry.put("svc", "1.0.0", first)
    client.registry_put("svc@2.0.0-beta", first)
    assert client.registry.get("svc", "^1.0") == second
    assert client.registry_get("svc@=1.0.0") == first
    assert client.registry_get("svc") == first  # the newest version, pre-releases included
    entries = [entry for entry in client.registry_names() if entry[0] == "svc"]
    assert entries == [("svc", "1.0.0", first), ("svc", "1.1.0", second), ("svc", "2.0.0-beta", first)]
    client.registry.remove("svc", "1.1.0")
    assert client.registry.get("svc", "^1.1") is None
    client.registry_remove("svc")
    assert client.registry_get("svc") is None
    with pytest.raises(InvalidNameError, match="invalid version requirement"):
        client.registry_get("svc@not a requirement!")
    with pytest.raises(InvalidNameError):
        client.registry.put("svc", "1.x", first)
    client.kill(first)
    client.kill(second)


def test_processes(client: lunatic_mp.Client) -> None:
    total, processes = client.processes()
    assert total == len(processes) >= 2
    by_name = {name: info for info in processes for name in info.names}
    counter = by_name["counter@1.0.0"]
    assert (counter.kind, counter.module, counter.function) == ("wasm", "counter", "counter")
    assert counter.phase == "running"
    assert counter.waiting  # in receive
    assert counter.worker in (2, 3)
    echo = by_name["echo"]
    assert (echo.module, echo.function) == ("guest", "echo")
    total, some = client.processes(limit=0)
    assert (total, some) == (len(processes), [])


def test_stats_and_modules(client: lunatic_mp.Client) -> None:
    client.request("counter", b"")
    stats = client.stats()
    assert sorted(w["worker"] for w in stats["workers"]) == [2, 3]
    assert any(w["counters"].get("counter.requests", 0) > 0 for w in stats["workers"])
    server = stats["server"]
    assert server["workers_configured"] == 2
    assert server["modules"] == 3
    assert server["requests"]["request"] >= 1
    modules = {module["name"]: module for module in client.modules()}
    assert modules["counter"]["exports"] == ["add", "counter"]
    assert modules["guest"]["path"].endswith("serve_guest.wat")
    client.ping()


def test_reload_through_the_socket(client: lunatic_mp.Client, served: Served) -> None:
    assert client.reload() == ["counter", "guest", "hello"]
    assert "reloaded counter, guest, hello" in served.lines
    assert client.join(client.spawn("counter", "add", [1, 1]), timeout=WAIT) is not None


def test_the_async_client_keeps_many_calls_in_flight(served: Served) -> None:
    async def main() -> list[int]:
        async with await AsyncClient.connect(served.address) as client:
            counter = await client.registry_get("counter")
            assert counter is not None
            before = int((await client.request(counter, b"")).data)
            replies = await asyncio.gather(*(client.request(counter, b"1") for _ in range(300)))
            pids = await asyncio.gather(*(client.spawn("counter", "add", [i, i]) for i in range(20)))
            ends = await asyncio.gather(*(client.join(pid, timeout=WAIT) for pid in pids))
            assert [end.result for end in ends if end is not None] == [(2 * i,) for i in range(20)]
            total, _ = await client.processes()
            assert total >= 2
            return sorted(int(reply.data) - before for reply in replies)

    assert asyncio.run(main()) == list(range(1, 301))  # each request counted once, none lost


def test_metrics_and_health(client: lunatic_mp.Client, served: Served) -> None:
    client.request("echo", b"12345")
    client.request("counter", b"2")
    with urllib.request.urlopen(served.metrics_url, timeout=WAIT) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def total(metric: str, **labels: str) -> float:
        return sum(
            value
            for (sample, sample_labels), value in samples.items()
            if sample == metric and set(labels.items()) <= set(sample_labels)
        )

    assert total("lunatic_workers") == 2
    assert total("lunatic_processes") >= 2
    assert any(name == "lunatic_hibernated_processes" for name, _ in samples)
    assert total("lunatic_guest_counter_total", name="counter.requests") >= 1
    assert total("lunatic_guest_gauge", name="counter.value") != 0
    assert total("lunatic_guest_histogram_count", name="echo.size") >= 1
    assert total("lunatic_guest_histogram_sum", name="echo.size") >= 5
    assert total("lunatic_guest_histogram_max", name="echo.size") >= 5
    assert total("lunatic_control_requests_total", method="request") >= 2
    assert total("lunatic_reloads_total", result="failed") == 0
    assert total("process_cpu_seconds_total") > 0
    health_url = served.metrics_url.replace("/metrics", "/healthz")
    with urllib.request.urlopen(health_url, timeout=WAIT) as response:
        health = json.loads(response.read())
    assert health["status"] == "ok"
    assert health["workers"] == health["workers_configured"] == 2
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(served.metrics_url.replace("/metrics", "/nothing"), timeout=WAIT)
    assert raised.value.code == 404


def test_raw_calls_and_connection_errors(served: Served, tmp_path: Path) -> None:
    with lunatic_mp.connect(str(served.address)) as client:
        assert client.call("ping") == "pong"
        with pytest.raises(RemoteError, match="UnknownMethod"):
            client.call("nosuch")
        client.notify("send", "echo", b"fire and forget")
        assert client.call("ping") == "pong"
    with pytest.raises(ConnectionError, match="no lunatic-mp server at"):
        lunatic_mp.connect(tmp_path / "nobody.sock")
