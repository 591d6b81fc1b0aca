"""The configuration of `lunatic-mp serve` (lunatic_mp.serve.config): files, addresses, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lunatic_mp.cli.app import main as cli
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import ServeConfigError
from lunatic_mp.serve.config import (
    ENV_CONFIG_KEYS,
    EXAMPLE_HTTP_MODULE,
    EXAMPLE_MODULE,
    TOP_LEVEL_KEYS,
    ProcessSpec,
    ServeConfig,
    TcpAddress,
    UnixAddress,
    client_address,
    config_schema,
    default_control_address,
    example_config,
    load_config,
    metrics_address,
    parse_address,
)

FULL = """
workers = 3

[modules]
counter = "guests/counter.wat"

[[processes]]
module = "counter"
function = "counter"
params = [7]
name = "counter"
version = "1.2.0"
config = { max_fuel = 5, can_spawn_processes = true, args = ["a"], env = { K = "v" }, \
    dirs = { "/data" = "data" } }

[[processes]]
module = "counter"
function = "add"
params = [1, 2]
count = 4

[control]
address = "run/control.sock"
token_file = "token.txt"
max_frame_size = 4096
max_connections = 8
drain_timeout = 2
auth_timeout = 1.5

[metrics]
address = "0.0.0.0:9100"

[log]
level = "DEBUG"
format = "json"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    return path


def test_a_full_config(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "token.txt").write_text("  a-token-of-sixteen-chars \n")
    (tmp_path / "guests").mkdir()
    (tmp_path / "guests" / "counter.wat").write_text("(module)")
    config = load_config(write(tmp_path, FULL))
    config.check()
    assert config.workers == 3
    assert config.modules == {"counter": tmp_path / "guests" / "counter.wat"}
    first, second = config.processes
    assert first == ProcessSpec(
        "counter",
        "counter",
        [7],
        name="counter",
        version="1.2.0",
        config=EnvConfig(
            max_fuel=5,
            can_spawn_processes=True,
            args=["a"],
            env={"K": "v"},
            preopened_dirs={"/data": str(tmp_path / "data")},
        ),
    )
    assert (second.function, second.params, second.count, second.name) == ("add", [1, 2], 4, None)
    assert config.control.address == UnixAddress(tmp_path / "run" / "control.sock")
    assert config.control.token == "a-token-of-sixteen-chars"
    assert (config.control.max_frame_size, config.control.max_connections) == (4096, 8)
    assert (config.control.drain_timeout, config.control.auth_timeout) == (2.0, 1.5)
    assert config.metrics_address == TcpAddress("0.0.0.0", 9100)
    assert (config.log_level, config.log_format) == ("debug", "json")
    assert config.source == tmp_path / "serve.toml"


def test_the_control_sockets_spawn_config(tmp_path: Path) -> None:
    """``[control] spawn_config`` bounds what control-socket spawns may grant (default: as a
    config file's process may, everything but directories)."""
    config = load_config(
        write(tmp_path, '[control]\nspawn_config = { max_fuel = 100, net_connect = ["10.0.0.0/8"] }\n')
    )
    assert config.control.spawn_config.max_fuel == 100
    assert config.control.spawn_config.net_connect == ("10.0.0.0/8",)
    assert load_config(write(tmp_path, "")).control.spawn_config == EnvConfig.permissive()
    with pytest.raises(ServeConfigError, match=r"unknown key 'dirs' in control\.spawn_config"):
        load_config(write(tmp_path, '[control]\nspawn_config = { dirs = { "/" = "/" } }\n'))


def test_an_empty_config_takes_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.workers is None
    assert config.modules == {}
    assert config.processes == []
    assert config.control.address == default_control_address()
    assert config.control.token is None
    assert config.metrics_address == TcpAddress("127.0.0.1", 9464)
    assert config.log_level is None


def test_the_example_is_a_registered_counter_and_an_http_route() -> None:
    config = example_config()
    config.check()
    assert config.modules == {"counter": EXAMPLE_MODULE, "hello": EXAMPLE_HTTP_MODULE}
    assert EXAMPLE_MODULE.is_file() and EXAMPLE_HTTP_MODULE.is_file()
    assert [(r.path, r.target) for r in config.routes] == [
        ("/hello", "hello.handle"),
        ("/hello/{name}", "hello.handle"),
        ("/greeter/{name}", "process greeter@^1"),
    ]
    spec, greeter = config.processes
    assert (greeter.module, greeter.function, greeter.name) == ("hello", "serve", "greeter")
    assert (spec.module, spec.function, spec.name, spec.version) == ("counter", "counter", "counter", "1.0.0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wrkers = 2", "unknown key 'wrkers' in the top level"),
        ("workers = 0", "workers must be an integer >= 1, got 0"),
        ("workers = true", "workers must be an integer, got True"),
        ('workers = "2"', "workers must be an integer, got '2'"),
        ("[modules]\nm = 3", "modules.m must be a string, got 3"),
        ("[[processes]]\nfunction = 'f'", "processes[0] needs a module"),
        ("[[processes]]\nmodule = 'm'\nparams = [1.5]", "processes[0].params[0] must be an integer, got 1.5"),
        ("[[processes]]\nmodule = 'm'\nversion = '1.0.0'", "processes[0]: a version needs a name"),
        ("[[processes]]\nmodule = 'm'\nname = 'a@1.0'", "give the version as `version`"),
        ("[[processes]]\nmodule = 'm'\nname = 'a'\ncount = 2", "a named process cannot have count > 1"),
        ("[[processes]]\nmodule = 'm'\ncount = 0", "processes[0].count must be an integer >= 1, got 0"),
        ("[[processes]]\nmodule = 'm'\nconfig = { fuel = 1 }", "unknown key 'fuel' in processes[0].config"),
        (
            "[[processes]]\nmodule = 'm'\nconfig = { max_fuel = -1 }",
            "processes[0].config.max_fuel must be an integer >= 0, got -1",
        ),
        (
            "[[processes]]\nmodule = 'm'\nconfig = { allowed_namespaces = ['net'] }",
            "allowed_namespaces: unknown ['net']",
        ),
        ("[[processes]]\nmodule = 'm'\nconfig = { dirs = { '/x' = 'missing' } }", "not a directory"),
        ("[control]\nport = 1", "unknown key 'port' in [control]"),
        ("[control]\naddress = 'tcp:host'", "a TCP address is tcp:HOST:PORT"),
        ("[control]\ntoken_file = 'nope.txt'", "cannot read the token file"),
        ("[control]\nmax_frame_size = 10", "control.max_frame_size must be an integer >= 1024, got 10"),
        ("[control]\ndrain_timeout = 0", "control.drain_timeout must be a number > 0, got 0"),
        ("[metrics]\naddress = '/a/path'", "metrics.address must be HOST:PORT"),
        ("[log]\nlevel = 'loud'", "log.level must be one of debug, info, warning, error"),
        ("[log]\nformat = 'xml'", "log.format must be one of text, json"),
        ("workers = [", "is not valid TOML"),
        ("[[routes]]\npath = 'x'\nmodule = 'm'", "routes[0].path must start with '/', got 'x'"),
        ("[[routes]]\nmodule = 'm'", "routes[0] needs a path"),
        (
            "[[routes]]\npath = '/x'\nmodule = 'm'\nmethod = 3",
            "routes[0].method must be a string or an array, got 3",
        ),
        (
            "[[routes]]\npath = '/x'\nmodule = 'm'\ntimeout = -1",
            "routes[0].timeout must be a number > 0, got -1",
        ),
        (
            "[[routes]]\npath = '/x'\nmodule = 'm'\nmodle = 'm'",
            "unknown key 'modle' in routes[0]; known: config,",
        ),
        ("[[routes]]\npath = '/x'\nprocess = 'p'\nfunction = 'f'", "routes[0].function goes with a module"),
        (
            "[[processes]]\nmodule = 'm'\nconfig = { env = { K = 1 } }",
            "processes[0].config.env.K must be a string, got 1",
        ),
        ("[http]\nmax_body = -1", "http.max_body must be an integer >= 0, got -1"),
        ("processes = 3", "processes must be an array, got 3"),
        ("log = 1", "log must be a table, got 1"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ServeConfigError, match=message.replace("[", r"\[").replace("(", r"\(")) as raised:
        load_config(write(tmp_path, text))
    assert str(raised.value).startswith(str(tmp_path / "serve.toml"))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ServeConfigError, match=r"cannot read .*nothere\.toml"):
        load_config(tmp_path / "nothere.toml")


def test_check_needs_a_token_for_tcp_and_known_modules(tmp_path: Path) -> None:
    config = ServeConfig()
    config.control.address = TcpAddress("127.0.0.1", 7070)
    with pytest.raises(ServeConfigError, match="a TCP control socket needs a token"):
        config.check()
    config.control.token = "short"
    with pytest.raises(ServeConfigError, match="at least 16 characters"):
        config.check()
    config.control.token = "x" * 16
    config.check()
    config.processes.append(ProcessSpec("ghost"))
    with pytest.raises(ServeConfigError, match="no such module"):
        config.check()
    config.modules["ghost"] = tmp_path / "ghost.wat"
    with pytest.raises(ServeConfigError, match="module ghost: no file"):
        config.check()
    config.modules["ghost"].write_text("(module)")
    config.check()


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("unix:/run/x.sock", UnixAddress(Path("/run/x.sock"))),
        ("unix:///run/x.sock", UnixAddress(Path("/run/x.sock"))),
        ("/run/x.sock", UnixAddress(Path("/run/x.sock"))),
        ("control.sock", UnixAddress(Path("control.sock"))),
        ("tcp:127.0.0.1:7070", TcpAddress("127.0.0.1", 7070)),
        ("tcp://example.org:80", TcpAddress("example.org", 80)),
        ("localhost:7070", TcpAddress("localhost", 7070)),
        (":7070", TcpAddress("127.0.0.1", 7070)),
        ("tcp:[::1]:7070", TcpAddress("::1", 7070)),
        ("./dir:1/x.sock", UnixAddress(Path("./dir:1/x.sock"))),
    ],
)
def test_addresses(text: str, address: UnixAddress | TcpAddress) -> None:
    assert parse_address(text) == address
    assert parse_address(str(address)) == address  # str() writes what parses back


def test_bad_addresses() -> None:
    for text, message in [("", "empty"), ("tcp:1.2.3.4:99999", "out of range"), ("unix:", "no path")]:
        with pytest.raises(ServeConfigError, match=message):
            parse_address(text)
    assert metrics_address("off") is None
    assert metrics_address("127.0.0.1:0") == TcpAddress("127.0.0.1", 0)


def test_the_default_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("LUNATIC_MP_CONNECT", raising=False)
    assert default_control_address() == UnixAddress(tmp_path / "lunatic-mp.sock")
    assert client_address(None) == default_control_address()
    monkeypatch.setenv("LUNATIC_MP_CONNECT", "tcp:h:1")
    assert client_address(None) == TcpAddress("h", 1)
    assert client_address("/x.sock") == UnixAddress(Path("/x.sock"))
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert default_control_address().path.parent.name.startswith("lunatic-mp-")


def test_the_schema_describes_the_file_for_editors(tmp_path: Path) -> None:
    schema = config_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    json.dumps(schema)  # plain JSON
    top = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    assert set(top["properties"]) == TOP_LEVEL_KEYS
    assert top["additionalProperties"] is False  # unknown keys are errors there too
    assert top["properties"]["workers"] == {"type": "integer", "minimum": 1}  # no null: TOML has none
    assert "null" not in json.dumps(schema)
    route = schema["$defs"]["RouteTable"]
    assert route["required"] == ["path"]
    assert set(route["properties"]) == {
        "path",
        "method",
        "module",
        "function",
        "config",
        "process",
        "version",
        "timeout",
    }
    env = schema["$defs"]["EnvTable"]
    assert set(env["properties"]) == ENV_CONFIG_KEYS


def test_serve_schema_prints_it() -> None:
    result = CliRunner().invoke(cli, ["serve", "--schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == config_schema()


def test_a_process_config_sets_its_mailbox_bound(tmp_path: Path) -> None:
    """max_mailbox: the default bound unless set, 0 for none; a negative one is named."""
    (tmp_path / "m.wat").write_text("(module)")
    head = "[modules]\nm = 'm.wat'\n[[processes]]\nmodule = 'm'\n"
    config = load_config(write(tmp_path, head + "config = { max_mailbox = 0 }"))
    assert config.processes[0].config.max_mailbox == 0
    config = load_config(write(tmp_path, head))
    assert config.processes[0].config.max_mailbox == EnvConfig().max_mailbox > 0
    with pytest.raises(
        ServeConfigError, match=r"processes\[0\]\.config\.max_mailbox must be an integer >= 0, got -1"
    ):
        load_config(write(tmp_path, head + "config = { max_mailbox = -1 }"))


def test_the_guest_metric_names_a_worker_keeps(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).metrics_max_series == 10_000
    assert load_config(write(tmp_path, "[metrics]\nmax_series = 50")).metrics_max_series == 50
    with pytest.raises(ServeConfigError, match=r"metrics\.max_series must be an integer >= 0, got -1"):
        load_config(write(tmp_path, "[metrics]\nmax_series = -1"))
