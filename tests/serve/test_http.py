"""HTTP routes of `lunatic-mp serve` (lunatic_mp.serve.http): the guest convention's layouts, the
[[routes]] config, and real servers answering a real HTTP client: fresh-process and named
routes, round trips, 404/405/413/500/502/503/504, requests spread over the workers, routes
after a worker is replaced, SIGHUP reloads and SIGTERM drains."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_serve import WAIT, ServeProcess, environment

import lunatic_mp
from lunatic_mp.errors import HttpMessageError, RemoteError, ServeConfigError
from lunatic_mp.pids import worker_of
from lunatic_mp.serve.config import config_from, example_config
from lunatic_mp.serve.http import (
    Route,
    Table,
    _response,
    decode_reply,
    decode_request,
    decode_table,
    encode_reply,
    encode_request,
    encode_table,
)

GUESTS = Path(__file__).parents[1] / "guests"

CONFIG = """
workers = 2
[modules]
guest = "http_guest.wat"
[[processes]]
module = "guest"
function = "serve"
name = "echo"
version = "1.2.0"
[[processes]]
module = "guest"
function = "trap"
name = "crasher"
[http]
address = "127.0.0.1:0"
max_body = 1024
[[routes]]
method = ["GET", "POST", "PUT"]
path = "/echo"
module = "guest"
function = "echo"
[[routes]]
method = "*"
path = "/echo/{rest:.*}"
module = "guest"
function = "echo"
[[routes]]
path = "/one/{segment}"
module = "guest"
function = "echo"
[[routes]]
method = ["GET", "POST"]
path = "/named"
process = "echo"
version = "^1.0"
[[routes]]
path = "/crasher"
process = "crasher"
[[routes]]
path = "/nobody"
process = "nobody"
timeout = 5
[[routes]]
path = "/trap"
module = "guest"
function = "trap"
[[routes]]
path = "/hang"
module = "guest"
function = "hang"
timeout = 0.5
[[routes]]
path = "/linger"
module = "guest"
function = "linger"
timeout = 0.5
[[routes]]
path = "/slow"
module = "guest"
function = "slow"
[[routes]]
path = "/garbage"
module = "guest"
function = "garbage"
[[routes]]
path = "/quiet"
module = "guest"
function = "quiet"
"""


# -- the layouts ----------------------------------------------------------------------------


def test_a_request_round_trips_through_its_layout() -> None:
    headers = [(b"Host", b"example"), (b"X-Two", b"a b")]
    data = encode_request(b"POST", b"/a%20b", b"x=1&y=2", headers, b"\x00body")
    assert data[:7] == struct.pack("<I", 4) + b"POS"
    request = decode_request(data)
    assert (request.method, request.path, request.query) == ("POST", "/a%20b", "x=1&y=2")
    assert request.headers == [("host", "example"), ("x-two", "a b")]
    assert request.body == b"\x00body"


def test_a_reply_round_trips_and_bad_ones_are_refused() -> None:
    data = encode_reply(201, [("Content-Type", "text/plain"), (b"x-a", b"1")], b"made")
    assert data[:8] == struct.pack("<II", 201, 2)
    assert decode_reply(data) == (201, [("Content-Type", "text/plain"), ("x-a", "1")], b"made")
    assert decode_reply(struct.pack("<II", 204, 0)) == (204, [], b"")
    with pytest.raises(HttpMessageError, match="status 99"):
        decode_reply(struct.pack("<II", 99, 0))
    with pytest.raises(HttpMessageError, match="in a length field"):
        decode_reply(b"bad")
    with pytest.raises(HttpMessageError, match="runs past its end"):
        decode_reply(struct.pack("<III", 200, 1, 50) + b"short")
    with pytest.raises(HttpMessageError, match="not a valid header"):
        decode_reply(encode_reply(200, [("x\r\ny", "v")]))
    with pytest.raises(HttpMessageError, match="at most"):
        decode_reply(struct.pack("<II", 200, 10**6))


def test_a_replys_hop_by_hop_headers_are_the_servers() -> None:
    reply = encode_reply(201, [("Content-Length", "999"), ("Connection", "close"), ("X-A", "1")], b"ok")
    response = _response(Route(("GET",), "/", 1.0), 1, reply)
    assert (response.status, response.body) == (201, b"ok")
    assert dict(response.headers) == {"X-A": "1"}
    failed = _response(Route(("GET",), "/", 1.0), 1, b"\x00")
    assert (failed.status, failed.body) == (500, b"500: the request's handler failed\n")


def test_the_table_round_trips() -> None:
    table = Table("127.0.0.1", 8080, 10, [Route(("GET",), "/a", 1.5, b"d" * 32, "f", b"c", "")], True)
    assert decode_table(encode_table(table)) == table


# -- the config -----------------------------------------------------------------------------


def test_routes_in_a_config(tmp_path: Path) -> None:
    (tmp_path / "g.wat").write_text("(module)")
    data: dict[str, Any] = {
        "modules": {"g": "g.wat"},
        "http": {"address": "0.0.0.0:9000", "max_body": 10},
        "routes": [
            {
                "path": "/a/{x}",
                "method": ["get", "POST"],
                "module": "g",
                "timeout": 2,
                "config": {"max_fuel": 5},
            },
            {"path": "/b", "method": "*", "process": "svc", "version": "^2"},
        ],
    }
    config = config_from(data, tmp_path)
    config.check()
    a, b = config.routes
    assert (a.methods, a.function, a.timeout, a.config.max_fuel) == (("GET", "POST"), "_start", 2.0, 5)
    assert (b.methods, b.process, b.version, b.target) == (("*",), "svc", "^2", "process svc@^2")
    assert (config.http.address.port, config.http.max_body, config.http_enabled) == (9000, 10, True)


@pytest.mark.parametrize(
    ("route", "error"),
    [
        ({"path": "a", "module": "g"}, r"routes\[0\]\.path must start with '/', got 'a'"),
        ({"path": "/a"}, "either a module"),
        ({"path": "/a", "module": "g", "process": "p"}, "either a module"),
        ({"path": "/a", "module": "g", "method": "FETCH"}, "unknown 'FETCH'"),
        ({"path": "/a", "module": "g", "method": ["*", "GET"]}, "stands alone"),
        ({"path": "/a", "module": "g", "timeout": 0}, r"routes\[0\]\.timeout must be a number > 0, got 0"),
        ({"path": "/a", "process": "p", "function": "f"}, "goes with a module"),
        ({"path": "/a", "module": "g", "version": "1"}, "goes with a process name"),
        ({"path": "/a", "process": "p@1"}, "not after '@'"),
        ({"path": "/a", "module": "g", "colour": 1}, "unknown key 'colour'"),
        ({"path": "/a", "module": "missing"}, "no module 'missing'"),
        ({"path": "/{a", "module": "g"}, "route GET /{a"),
    ],
)
def test_bad_routes_are_refused(tmp_path: Path, route: dict[str, Any], error: str) -> None:
    (tmp_path / "g.wat").write_text("(module)")
    with pytest.raises(ServeConfigError, match=error):
        config_from({"modules": {"g": "g.wat"}, "routes": [route]}, tmp_path).check()


def test_bad_http_tables_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ServeConfigError, match="max_body"):
        config_from({"http": {"max_body": -1}}, tmp_path)
    with pytest.raises(ServeConfigError, match=r"http\.address must be HOST:PORT"):
        config_from({"http": {"address": "/a/path"}}, tmp_path)
    with pytest.raises(ServeConfigError, match="unknown key 'port'"):
        config_from({"http": {"port": 1}}, tmp_path)
    config = config_from({"http": {"enabled": False}, "routes": [{"path": "/", "process": "p"}]}, tmp_path)
    assert not config.http_enabled
    assert example_config().http_enabled


# -- served ---------------------------------------------------------------------------------


class Served:
    """A running server with the test config: where its HTTP, control socket and metrics are."""

    def __init__(self, server: ServeProcess, where: dict[str, str]) -> None:
        self.server = server
        self.control = where["control"]
        self.metrics = where.get("metrics")
        self.url = next(line.split("http ", 1)[1].split()[0] for line in server.lines if " http http" in line)
        self.netloc = urlsplit(self.url).netloc

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a new connection: status, headers, body."""
        connection = http.client.HTTPConnection(self.netloc, timeout=WAIT)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def stats(self) -> dict[str, Any]:
        with lunatic_mp.connect(self.control, timeout=WAIT) as client:
            stats: dict[str, Any] = client.stats()
        return stats


def serve(tmp_path: Path, config: str = CONFIG, *args: str) -> Served:
    (tmp_path / "run").mkdir(mode=0o700, exist_ok=True)
    shutil.copy(GUESTS / "http_guest.wat", tmp_path / "http_guest.wat")
    (tmp_path / "serve.toml").write_text(config)
    control = tmp_path / "run" / "control.sock"
    server = ServeProcess(
        tmp_path / "serve.toml", "--control", str(control), "--metrics", "127.0.0.1:0", *args,
        env=environment(tmp_path),
    )  # fmt: skip
    try:
        return Served(server, server.ready())
    except BaseException:
        server.kill()
        raise


def stop(served: Served) -> int:
    served.server.process.send_signal(signal.SIGTERM)
    return served.server.finish()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    running = serve(tmp_path_factory.mktemp("http"))
    try:
        yield running
    finally:
        running.server.kill()


def echoed(body: bytes) -> tuple[int, lunatic_mp.serve.http.HttpRequest]:
    """The echo guest's reply body: the pid that answered, and the request it saw."""
    (pid,) = struct.unpack_from("<Q", body)
    return pid, decode_request(body[8:])


def test_a_fresh_process_sees_the_whole_request(served: Served) -> None:
    status, headers, body = served.request(
        "POST", "/echo/a%2Fb?x=1&y=%20", b"payload\x00", {"X-Custom": "Value 1", "Content-Type": "app/x"}
    )
    assert status == 200
    assert headers["x-echo"] == "yes"
    assert headers["content-type"] == "application/octet-stream"  # the guest set none
    pid, request = echoed(body)
    assert (request.method, request.path, request.query) == ("POST", "/echo/a%2Fb", "x=1&y=%20")
    assert ("x-custom", "Value 1") in request.headers
    assert ("content-type", "app/x") in request.headers
    assert request.body == b"payload\x00"
    # a fresh process each time
    assert echoed(served.request("GET", "/echo")[2])[0] != pid


def test_a_named_process_answers_its_route(served: Served) -> None:
    with lunatic_mp.connect(served.control, timeout=WAIT) as client:
        named = client.registry_get("echo")
    pids = set()
    for index in range(3):
        status, _, body = served.request("POST", f"/named?n={index}", str(index).encode())
        assert status == 200
        pid, request = echoed(body)
        pids.add(pid)
        assert (request.query, request.body) == (f"n={index}", str(index).encode())
    assert pids == {named}


def test_unknown_routes_methods_and_names(served: Served) -> None:
    assert served.request("GET", "/nowhere")[0] == 404
    status, headers, _ = served.request("DELETE", "/named")
    assert status == 405
    assert "GET" in headers["allow"]
    status, _, body = served.request("GET", "/nobody")
    assert status == 503
    assert b"not running" in body


def test_paths_are_matched_as_sent(served: Served) -> None:
    """A remembered match is keyed by the path as sent: an encoded "/" is no separator."""
    for _ in range(2):
        status, _, body = served.request("GET", "/one/a%2Fb")
        assert (status, echoed(body)[1].path) == (200, "/one/a%2Fb")
        assert served.request("GET", "/one/a/b")[0] == 404


def test_a_named_process_that_dies_gives_502_then_503(served: Served) -> None:
    status, _, body = served.request("GET", "/crasher")
    assert (status, body) == (502, b"502: the route's process ended before it replied\n")
    # its name went before its death was announced (to the port, which forgot the name then)
    assert served.request("GET", "/crasher")[0] == 503
    assert served.request("GET", "/named")[0] == 200


def test_the_body_limit(served: Served) -> None:
    assert served.request("POST", "/echo", b"x" * 1024)[0] == 200
    status, _, body = served.request("POST", "/echo", b"x" * 1025)
    assert status == 413
    assert b"1024" in body
    # chunked, with no length announced
    connection = http.client.HTTPConnection(served.netloc, timeout=WAIT)
    try:
        connection.request("PUT", "/echo", body=iter([b"y" * 600, b"y" * 600]), encode_chunked=True)
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    assert served.request("GET", "/echo")[0] == 200  # and it goes on serving


def test_timeouts_give_504_and_end_the_process(served: Served) -> None:
    before = sum(worker["processes"] for worker in served.stats()["workers"])
    status, _, body = served.request("GET", "/hang")
    assert status == 504
    assert b"in time" in body
    after = sum(worker["processes"] for worker in served.stats()["workers"])
    assert after <= before + 1  # the hanging process is gone (the port may be new)


def test_a_process_that_replied_and_lingers_is_ended(served: Served) -> None:
    status, _, body = served.request("GET", "/linger")
    assert status == 200
    pid = echoed(body)[0]
    deadline = time.monotonic() + WAIT
    with lunatic_mp.connect(served.control, timeout=WAIT) as client:
        while client.exists(pid):  # it gets the route's timeout (0.5 s) again, then it is killed
            assert time.monotonic() < deadline


@pytest.mark.parametrize("path", ["/trap", "/garbage", "/quiet"])
def test_failing_handlers_give_500_without_their_details(served: Served, path: str) -> None:
    status, _, body = served.request("GET", path)
    assert status == 500
    assert body == b"500: the request's handler failed\n"
    assert served.request("GET", "/echo")[0] == 200


def test_requests_spread_over_the_workers(served: Served) -> None:
    workers = {worker_of(echoed(served.request("GET", "/echo")[2])[0]) for _ in range(40)}
    assert len(workers) == 2


def test_metrics_count_requests_by_route_and_status(served: Served) -> None:
    assert served.metrics is not None
    for _ in range(3):
        served.request("GET", "/echo")
    served.request("GET", "/nowhere")
    with __import__("urllib.request").request.urlopen(served.metrics, timeout=WAIT) as response:
        text = response.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    counts: dict[tuple[str, str], float] = {}
    for sample in families["lunatic_http_requests"].samples:
        key = (sample.labels["route"], sample.labels["status"])
        counts[key] = counts.get(key, 0) + sample.value
    assert counts[("/echo", "200")] >= 3
    assert counts[("none", "404")] >= 1
    histogram = families["lunatic_http_request_duration_seconds"]
    total = sum(
        s.value for s in histogram.samples if s.name.endswith("_count") and s.labels["route"] == "/echo"
    )
    assert total >= 3
    assert "lunatic_http_in_flight" in families


def test_a_second_server_cannot_take_the_port(served: Served, tmp_path: Path) -> None:
    """SO_REUSEPORT would let it share the first one's connections: it is refused instead."""
    (tmp_path / "run").mkdir(mode=0o700)
    second = ServeProcess(
        "--http", served.netloc, "--metrics", "off", "--workers", "1",
        "--control", str(tmp_path / "run" / "control.sock"), env=environment(tmp_path),
    )  # fmt: skip
    assert second.finish() == 2
    assert any(f"cannot serve HTTP on {served.netloc}" in line for line in second.stderr)
    assert served.request("GET", "/echo")[0] == 200


def test_routes_reach_a_worker_started_after_a_crash(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        victim = served.stats()["workers"][0]
        os.kill(victim["os_pid"], signal.SIGKILL)
        deadline = time.monotonic() + WAIT
        while True:  # until the replacement listens (a stats call may meet the loss: asked again)
            assert time.monotonic() < deadline
            try:
                workers = served.stats()["workers"]
            except RemoteError:
                continue
            ids = {w["worker"] for w in workers}
            if victim["worker"] not in ids and len(ids) == 2 and all(w["http"]["listening"] for w in workers):
                break
        answered = {worker_of(echoed(served.request("GET", "/echo")[2])[0]) for _ in range(40)}
        assert answered == ids
        assert stop(served) == 0
    finally:
        served.server.kill()


def test_sighup_reload_changes_the_handler(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        assert served.request("GET", "/echo")[1]["x-echo"] == "yes"
        wat = tmp_path / "http_guest.wat"
        wat.write_text(wat.read_text().replace('\\03\\00\\00\\00yes")', '\\03\\00\\00\\00new")'))
        served.server.process.send_signal(signal.SIGHUP)
        served.server.wait_for("reloaded")
        assert all(served.request("GET", "/echo")[1]["x-echo"] == "new" for _ in range(10))
        assert stop(served) == 0
    finally:
        served.server.kill()


def test_sigterm_drains_requests_in_flight(tmp_path: Path) -> None:
    served = serve(tmp_path)
    try:
        answers: list[tuple[int, dict[str, str], bytes]] = []
        client = threading.Thread(target=lambda: answers.append(served.request("GET", "/slow")))
        client.start()
        deadline = time.monotonic() + WAIT
        while not any(w["http"].get("in_flight") for w in served.stats()["workers"]):
            assert time.monotonic() < deadline
        assert stop(served) == 0
        client.join(WAIT)
        assert answers and answers[0][0] == 200
        assert any("stopping" in line for line in served.server.lines)
    finally:
        served.server.kill()


def test_the_example_serves_hello(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    server = ServeProcess(
        "--http", "127.0.0.1:0", "--metrics", "off", "--control", str(tmp_path / "run" / "c.sock"),
        "--workers", "1", env=environment(tmp_path),
    )  # fmt: skip
    try:
        served = Served(server, server.ready())
        status, headers, body = served.request("GET", "/hello/you")
        assert (status, headers["content-type"], body) == (200, "text/plain; charset=utf-8", b"Hello, you!\n")
        assert served.request("GET", "/hello")[2] == b"Hello, world!\n"
        assert served.request("GET", "/greeter/Ada")[2] == b"Hello, Ada!\n"
        assert stop(served) == 0
    finally:
        server.kill()
