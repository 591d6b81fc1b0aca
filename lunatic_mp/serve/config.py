"""The configuration of ``lunatic-mp serve``: a TOML file, the command line over it, defaults.

A config file looks like this (every key is optional; relative paths are relative to the file)::

    workers = 4                        # worker processes; default: one per CPU

    [modules]                          # name -> Wasm or WAT file, compiled at start-up
    counter = "counter.wat"            # (and again on SIGHUP or the `reload` method)

    [[processes]]                      # started at boot, in order
    module = "counter"
    function = "counter"               # default "_start"
    params = [0]                       # i32/i64 arguments
    name = "counter"                   # registered under this name...
    version = "1.0.0"                  # ...and version (optional)
    count = 1                          # instances (a named process has exactly one)
    config = { max_fuel = 0, can_spawn_processes = true }   # see ENV_CONFIG_KEYS

    [control]                          # the msgpack-RPC control socket
    address = "unix:/run/lunatic-mp.sock"   # or "tcp:127.0.0.1:7070" (needs a token)
    token_file = "token.txt"           # or token = "..."; LUNATIC_MP_TOKEN also works
    max_frame_size = 16777216          # bytes of the largest message accepted
    max_connections = 1024
    drain_timeout = 30.0               # seconds in-flight requests get when stopping
    auth_timeout = 10.0                # seconds a TCP client has to send its token
    message_timeout = 30.0             # seconds a client has to finish a message it began

    [metrics]                          # HTTP: /metrics (Prometheus) and /healthz
    address = "127.0.0.1:9464"         # enabled = false turns it off

    [http]                             # the routes' port, served by every worker (SO_REUSEPORT)
    address = "127.0.0.1:8080"         # port 0: any free port (the server says which)
    max_body = 1048576                 # bytes of the largest request body (larger: 413)
    enabled = true                     # false: no HTTP even with routes

    [[routes]]                         # a fresh process per request...
    method = "GET"                     # or ["GET", "POST"], or "*" (default "GET")
    path = "/hello/{name}"             # an aiohttp pattern
    module = "hello"
    function = "_start"                # default "_start"
    timeout = 30.0                     # seconds before 504 (default 30)
    config = { max_fuel = 1000 }       # as a process's config (ENV_CONFIG_KEYS)

    [[routes]]                         # ...or a request message to a registered process
    method = "POST"
    path = "/count"
    process = "counter"                # its registered name...
    version = "^1.0"                   # ...and a version requirement (optional)

    [log]
    level = "info"                     # debug, info, warning, error
    format = "text"                    # or json

Unknown keys are errors (a typo should not be silently ignored). :data:`TOP_LEVEL_KEYS` lists
the tables this module knows.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lunatic_mp.config import ALL_NAMESPACES, EnvConfig
from lunatic_mp.errors import ServeConfigError
from lunatic_mp.netpolicy import check_rules
from lunatic_mp.serve.rpc import DEFAULT_MAX_FRAME_SIZE

EXAMPLE_MODULE = Path(__file__).parents[1] / "examples" / "counter.wat"
"""The example application served when no config is given."""
EXAMPLE_HTTP_MODULE = Path(__file__).parents[1] / "examples" / "hello_http.wat"
"""The example's HTTP handler (a fresh process per request)."""

DEFAULT_METRICS_ADDRESS = "127.0.0.1:9464"
TOKEN_ENV = "LUNATIC_MP_TOKEN"  # noqa: S105 - the name of the variable, not a token
CONNECT_ENV = "LUNATIC_MP_CONNECT"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
DEFAULT_HTTP_ADDRESS = "127.0.0.1:8080"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_ROUTE_TIMEOUT = 30.0
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "*"})
TOP_LEVEL_KEYS = frozenset({"workers", "modules", "processes", "control", "metrics", "http", "routes", "log"})
ENV_CONFIG_KEYS = frozenset(
    {
        "max_memory",
        "max_fuel",
        "can_compile_modules",
        "can_create_configs",
        "can_spawn_processes",
        "spawn_local",
        "allowed_namespaces",
        "args",
        "env",
        "dirs",
        "net_bind",
        "net_connect",
    }
)
"""The keys of a process's ``config`` table (``dirs``: guest path -> host directory; ``net_bind``
and ``net_connect``: network rules, :mod:`lunatic_mp.netpolicy`)."""

MIN_TOKEN_LENGTH = 16
_PORT = re.compile(r"^(?P<host>.*):(?P<port>\d{1,5})$")

T = TypeVar("T")


# -- addresses ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnixAddress:
    """A unix socket path."""

    path: Path

    def __str__(self) -> str:
        return f"unix:{self.path}"


@dataclass(frozen=True)
class TcpAddress:
    """A TCP host and port (port 0: any free port, for the server)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"

    @property
    def netloc(self) -> str:
        """``host:port`` as in a URL."""
        return str(self).removeprefix("tcp:")


Address = UnixAddress | TcpAddress


def parse_address(text: str) -> Address:
    """``unix:PATH``, ``tcp:HOST:PORT`` (also ``tcp://HOST:PORT``), ``HOST:PORT``, or a path.

    A bare ``HOST:PORT`` is TCP when PORT is a number and HOST has no ``/``; anything else
    without a prefix is a unix socket path. IPv6 hosts go in brackets: ``tcp:[::1]:7070``.
    """
    text = text.strip()
    if not text:
        raise ServeConfigError("an empty address")
    if text.startswith("unix:"):
        path = text.removeprefix("unix:").removeprefix("//")
        if not path:
            raise ServeConfigError(f"no path in {text!r}")
        return UnixAddress(Path(path).expanduser())
    explicit = text.startswith("tcp:")
    rest = text.removeprefix("tcp:").removeprefix("//") if explicit else text
    match = _PORT.match(rest)
    if match is not None and "/" not in match["host"]:
        host = match["host"].removeprefix("[").removesuffix("]") or "127.0.0.1"
        port = int(match["port"])
        if port > 65535:
            raise ServeConfigError(f"port {port} is out of range in {text!r}")
        return TcpAddress(host, port)
    if explicit:
        raise ServeConfigError(f"a TCP address is tcp:HOST:PORT, got {text!r}")
    return UnixAddress(Path(text).expanduser())


def default_control_address() -> UnixAddress:
    """Where the control socket is when nobody says: ``$XDG_RUNTIME_DIR/lunatic-mp.sock``, or
    ``/tmp/lunatic-mp-<uid>/control.sock`` (a directory only this user can enter)."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and Path(runtime_dir).is_dir():
        return UnixAddress(Path(runtime_dir) / "lunatic-mp.sock")
    return UnixAddress(Path("/tmp") / f"lunatic-mp-{os.getuid()}" / "control.sock")  # noqa: S108


def client_address(given: str | None) -> Address:
    """The address a client connects to: ``given``, else ``$LUNATIC_MP_CONNECT``, else the
    server's default."""
    text = given or os.environ.get(CONNECT_ENV)
    return parse_address(text) if text else default_control_address()


# -- the config ---------------------------------------------------------------------------------


@dataclass
class ProcessSpec:
    """A process the server starts at boot."""

    module: str
    function: str = "_start"
    params: list[int] = field(default_factory=list)
    name: str | None = None
    version: str | None = None
    count: int = 1
    config: EnvConfig = field(default_factory=EnvConfig)


@dataclass
class RouteSpec:
    """An HTTP route: a fresh process of ``module.function`` per request, or a request message
    to the process registered as ``process`` (``version``: a requirement)."""

    path: str
    methods: tuple[str, ...] = ("GET",)
    module: str | None = None
    function: str = "_start"
    config: EnvConfig = field(default_factory=EnvConfig)
    process: str | None = None
    version: str | None = None
    timeout: float = DEFAULT_ROUTE_TIMEOUT

    @property
    def target(self) -> str:
        """What handles it, for people: ``module.function`` or ``process name@version``."""
        if self.module is not None:
            return f"{self.module}.{self.function}"
        return f"process {self.process}" + (f"@{self.version}" if self.version else "")


@dataclass
class HttpConfig:
    """Where the routes are served (by every worker, on one port)."""

    address: TcpAddress = field(default_factory=lambda: _tcp(DEFAULT_HTTP_ADDRESS, "http"))
    max_body: int = DEFAULT_MAX_BODY
    enabled: bool = True
    any_port_if_taken: bool = False
    """Serve on any free port when ``address``'s is taken (the built-in example does)."""


@dataclass
class ControlConfig:
    address: Address = field(default_factory=default_control_address)
    token: str | None = None
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_connections: int = 1024
    drain_timeout: float = 30.0
    auth_timeout: float = 10.0
    message_timeout: float = 30.0


@dataclass
class ServeConfig:
    """Everything ``lunatic-mp serve`` needs to start."""

    workers: int | None = None
    modules: dict[str, Path] = field(default_factory=dict)
    processes: list[ProcessSpec] = field(default_factory=list)
    control: ControlConfig = field(default_factory=ControlConfig)
    metrics_address: TcpAddress | None = field(
        default_factory=lambda: _tcp(DEFAULT_METRICS_ADDRESS, "metrics")
    )
    http: HttpConfig = field(default_factory=HttpConfig)
    metrics_any_port_if_taken: bool = False
    """Serve /metrics on any free port when its own is taken (the built-in example does)."""
    routes: list[RouteSpec] = field(default_factory=list)
    log_level: str | None = None
    log_format: str | None = None
    source: Path | None = None
    """The config file, or None for the built-in example."""

    def check(self) -> None:
        """Raise :class:`ServeConfigError` unless the server can start with this config: what
        only makes sense once the command line has had its say."""
        if isinstance(self.control.address, TcpAddress) and not self.control.token:
            raise ServeConfigError(
                "a TCP control socket needs a token: pass --token, set LUNATIC_MP_TOKEN, or set "
                "control.token_file in the config (clients then pass the same token)"
            )
        if self.control.token is not None and len(self.control.token) < MIN_TOKEN_LENGTH:
            raise ServeConfigError(f"the control token must be at least {MIN_TOKEN_LENGTH} characters")
        for name, path in self.modules.items():
            if not Path(path).is_file():
                raise ServeConfigError(f"module {name}: no file {path}")
        for spec in self.processes:
            if spec.module not in self.modules:
                raise ServeConfigError(f"process of module {spec.module!r}: no such module in [modules]")
        for index, route in enumerate(self.routes):
            if route.module is not None and route.module not in self.modules:
                raise ServeConfigError(
                    f"routes[{index}] ({route.path}): no module {route.module!r} in [modules]"
                )
        if self.routes:
            from lunatic_mp.serve.http import check_routes  # aiohttp's pattern rules, without a server

            check_routes([(route.methods, route.path) for route in self.routes])

    @property
    def http_enabled(self) -> bool:
        """Whether the workers serve HTTP: routes, and [http] not turned off."""
        return self.http.enabled and bool(self.routes)


def example_config() -> ServeConfig:
    """The built-in example application: a counter registered as ``counter`` 1.0.0, and HTTP
    handlers: ``/hello`` and ``/hello/{name}`` (a fresh process per request), and
    ``/greeter/{name}`` (a long-lived process registered as ``greeter``)."""
    return ServeConfig(
        http=HttpConfig(any_port_if_taken=True),
        metrics_any_port_if_taken=True,
        modules={"counter": EXAMPLE_MODULE, "hello": EXAMPLE_HTTP_MODULE},
        processes=[
            ProcessSpec("counter", "counter", [0], name="counter", version="1.0.0"),
            ProcessSpec("hello", "serve", name="greeter", version="1.0.0"),
        ],
        routes=[
            RouteSpec("/hello", ("GET",), module="hello", function="handle"),
            RouteSpec("/hello/{name}", ("GET",), module="hello", function="handle"),
            RouteSpec("/greeter/{name}", ("GET",), process="greeter", version="^1"),
        ],
    )


def load_config(path: str | Path) -> ServeConfig:
    """Read a config file (see the module docstring); :class:`ServeConfigError` says what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ServeConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ServeConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return config_from(data, path.parent.resolve(), source=path)
    except ServeConfigError as exc:
        raise ServeConfigError(f"{path}: {exc}") from None


def config_from(data: dict[str, Any], base: Path, source: Path | None = None) -> ServeConfig:
    """A config from parsed TOML; relative paths are taken from ``base``."""
    _no_unknown(data, TOP_LEVEL_KEYS, "the top level")
    config = ServeConfig(source=source)
    workers = _get(data, "workers", int, "workers")
    if workers is not None and workers < 1:
        raise ServeConfigError("workers must be at least 1")
    config.workers = workers
    modules = _get(data, "modules", dict, "modules") or {}
    for name, file in modules.items():
        if not isinstance(file, str):
            raise ServeConfigError(f"modules.{name} must be a file path (a string)")
        config.modules[name] = _resolve(base, file)
    for index, table in enumerate(_get(data, "processes", list, "processes") or []):
        config.processes.append(_process(table, f"processes[{index}]", base))
    control = _get(data, "control", dict, "control") or {}
    _no_unknown(
        control,
        {
            "address",
            "token",
            "token_file",
            "max_frame_size",
            "max_connections",
            "drain_timeout",
            "auth_timeout",
            "message_timeout",
        },
        "[control]",
    )
    if (address := _get(control, "address", str, "control.address")) is not None:
        config.control.address = parse_address(address)
        if isinstance(config.control.address, UnixAddress):
            config.control.address = UnixAddress(_resolve(base, str(config.control.address.path)))
    config.control.token = _get(control, "token", str, "control.token")
    if (token_file := _get(control, "token_file", str, "control.token_file")) is not None:
        config.control.token = read_token_file(_resolve(base, token_file))
    for key, least in (("max_frame_size", 1024), ("max_connections", 1)):
        if (number := _get(control, key, int, f"control.{key}")) is not None:
            if number < least:
                raise ServeConfigError(f"control.{key} must be at least {least}")
            setattr(config.control, key, number)
    for key in ("drain_timeout", "auth_timeout", "message_timeout"):
        if (seconds := _get(control, key, float, f"control.{key}")) is not None:
            if seconds <= 0:
                raise ServeConfigError(f"control.{key} must be positive")
            setattr(config.control, key, float(seconds))
    metrics = _get(data, "metrics", dict, "metrics") or {}
    _no_unknown(metrics, {"address", "enabled"}, "[metrics]")
    if (address := _get(metrics, "address", str, "metrics.address")) is not None:
        config.metrics_address = _tcp(address, "metrics.address")
    if _get(metrics, "enabled", bool, "metrics.enabled") is False:
        config.metrics_address = None
    http = _get(data, "http", dict, "http") or {}
    _no_unknown(http, {"address", "max_body", "enabled"}, "[http]")
    if (address := _get(http, "address", str, "http.address")) is not None:
        config.http.address = _tcp(address, "http.address")
    if (max_body := _get(http, "max_body", int, "http.max_body")) is not None:
        if not 0 <= max_body < 2**32:
            raise ServeConfigError("http.max_body must be between 0 and 4294967295 bytes")
        config.http.max_body = max_body
    if (enabled := _get(http, "enabled", bool, "http.enabled")) is not None:
        config.http.enabled = enabled
    for index, table in enumerate(_get(data, "routes", list, "routes") or []):
        config.routes.append(_route(table, f"routes[{index}]", base))
    log = _get(data, "log", dict, "log") or {}
    _no_unknown(log, {"level", "format"}, "[log]")
    config.log_level = _choice(_get(log, "level", str, "log.level"), LOG_LEVELS, "log.level")
    config.log_format = _choice(_get(log, "format", str, "log.format"), LOG_FORMATS, "log.format")
    return config


def read_token_file(path: Path) -> str:
    """The token in a file (surrounding whitespace dropped)."""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ServeConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise ServeConfigError(f"the token file {path} is empty")
    return token


def metrics_address(text: str) -> TcpAddress | None:
    """The ``--metrics`` option: ``HOST:PORT``, or ``off``."""
    return None if text.strip().lower() == "off" else _tcp(text, "--metrics")


def http_address(config: ServeConfig, text: str) -> None:
    """The ``--http`` option: ``HOST:PORT`` where the routes are served, or ``off``."""
    if text.strip().lower() == "off":
        config.http.enabled = False
    else:
        config.http.address = _tcp(text, "--http")
        config.http.enabled = True
        config.http.any_port_if_taken = False


def env_config(table: dict[str, Any], where: str, base: Path | None) -> EnvConfig:
    """An :class:`EnvConfig` from a ``config`` table (:data:`ENV_CONFIG_KEYS`); ``dirs`` only
    when ``base`` is given (a config file may preopen directories, a remote client may not)."""
    allowed = ENV_CONFIG_KEYS if base is not None else ENV_CONFIG_KEYS - {"dirs"}
    _no_unknown(table, allowed, where)
    config = EnvConfig()
    for key in ("max_memory", "max_fuel"):
        if (number := _get(table, key, int, f"{where}.{key}")) is not None:
            if not 0 <= number < 2**63:
                raise ServeConfigError(f"{where}.{key} must be a non-negative 64-bit int")
            setattr(config, key, number)
    for key in ("can_compile_modules", "can_create_configs", "can_spawn_processes", "spawn_local"):
        if (flag := _get(table, key, bool, f"{where}.{key}")) is not None:
            setattr(config, key, flag)
    if (namespaces := _get(table, "allowed_namespaces", list, f"{where}.allowed_namespaces")) is not None:
        unknown = [n for n in namespaces if n not in ALL_NAMESPACES]
        if unknown:
            raise ServeConfigError(
                f"{where}.allowed_namespaces: unknown {unknown}; known: {sorted(ALL_NAMESPACES)}"
            )
        config.allowed_namespaces = frozenset(namespaces)
    for key in ("net_bind", "net_connect"):
        if (rules := _get(table, key, list, f"{where}.{key}")) is not None:
            try:
                setattr(config, key, check_rules(rules, f"{where}.{key}"))
            except ValueError as exc:
                raise ServeConfigError(str(exc)) from None
    if (args := _get(table, "args", list, f"{where}.args")) is not None:
        if not all(isinstance(arg, str) for arg in args):
            raise ServeConfigError(f"{where}.args must be a list of strings")
        config.args = list(args)
    if (env := _get(table, "env", dict, f"{where}.env")) is not None:
        if not all(isinstance(value, str) for value in env.values()):
            raise ServeConfigError(f"{where}.env must map names to strings")
        config.env = dict(env)
    if base is not None and (dirs := _get(table, "dirs", dict, f"{where}.dirs")) is not None:
        for guest, host in dirs.items():
            if not isinstance(host, str):
                raise ServeConfigError(f"{where}.dirs.{guest} must be a directory path")
            try:
                config.preopen(guest, _resolve(base, host))
            except NotADirectoryError as exc:
                raise ServeConfigError(f"{where}.dirs.{guest}: {exc}") from None
    return config


# -- helpers ------------------------------------------------------------------------------------


def _process(table: object, where: str, base: Path) -> ProcessSpec:
    if not isinstance(table, dict):
        raise ServeConfigError(f"{where} must be a table")
    _no_unknown(table, {"module", "function", "params", "name", "version", "count", "config"}, where)
    module = _get(table, "module", str, f"{where}.module")
    if module is None:
        raise ServeConfigError(f"{where} needs a module")
    spec = ProcessSpec(module)
    spec.function = _get(table, "function", str, f"{where}.function") or "_start"
    params = _get(table, "params", list, f"{where}.params") or []
    if not all(type(p) is int for p in params):
        raise ServeConfigError(f"{where}.params must be a list of integers")
    spec.params = list(params)
    spec.name = _get(table, "name", str, f"{where}.name")
    spec.version = _get(table, "version", str, f"{where}.version")
    if spec.version is not None and spec.name is None:
        raise ServeConfigError(f"{where}: a version needs a name")
    if spec.name is not None and "@" in spec.name:
        raise ServeConfigError(f"{where}.name: give the version as `version`, not after '@'")
    count = _get(table, "count", int, f"{where}.count")
    if count is not None:
        if count < 1:
            raise ServeConfigError(f"{where}.count must be at least 1")
        if count > 1 and spec.name is not None:
            raise ServeConfigError(f"{where}: a named process cannot have count > 1 (one name, one pid)")
        spec.count = count
    spec.config = env_config(_get(table, "config", dict, f"{where}.config") or {}, f"{where}.config", base)
    return spec


def _route(table: object, where: str, base: Path) -> RouteSpec:
    if not isinstance(table, dict):
        raise ServeConfigError(f"{where} must be a table")
    known = {"method", "path", "module", "function", "config", "process", "version", "timeout"}
    _no_unknown(table, known, where)
    path = _get(table, "path", str, f"{where}.path")
    if path is None or not path.startswith("/"):
        raise ServeConfigError(f"{where} needs a path that starts with '/', got {path!r}")
    route = RouteSpec(path)
    method = table.get("method", "GET")
    methods = [method] if isinstance(method, str) else method
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise ServeConfigError(f"{where}.method must be a method name or a list of them, got {method!r}")
    upper = tuple(dict.fromkeys(m.upper() for m in methods))
    unknown = [m for m in upper if m not in HTTP_METHODS]
    if unknown:
        names = ", ".join(sorted(HTTP_METHODS))
        raise ServeConfigError(f"{where}.method: unknown {unknown[0]!r}; known: {names}")
    if "*" in upper and len(upper) > 1:
        raise ServeConfigError(f"{where}.method: '*' (any method) stands alone")
    route.methods = upper
    route.module = _get(table, "module", str, f"{where}.module")
    route.process = _get(table, "process", str, f"{where}.process")
    if (route.module is None) == (route.process is None):
        raise ServeConfigError(
            f"{where} needs either a module (a fresh process per request) or a process name"
        )
    if route.module is not None:
        route.function = _get(table, "function", str, f"{where}.function") or "_start"
        table_config = _get(table, "config", dict, f"{where}.config") or {}
        route.config = env_config(table_config, f"{where}.config", base)
        if "version" in table:
            raise ServeConfigError(f"{where}.version goes with a process name, not a module")
    else:
        for key in ("function", "config"):
            if key in table:
                raise ServeConfigError(f"{where}.{key} goes with a module, not a process name")
        if "@" in route.process:  # type: ignore[operator]
            raise ServeConfigError(f"{where}.process: give the version as `version`, not after '@'")
        route.version = _get(table, "version", str, f"{where}.version")
    timeout = _get(table, "timeout", float, f"{where}.timeout")
    if timeout is not None:
        if not 0 < timeout <= 86400:
            raise ServeConfigError(f"{where}.timeout must be between 0 and 86400 seconds")
        route.timeout = float(timeout)
    return route


def _get(table: dict[str, Any], key: str, kind: type[T], where: str) -> T | None:
    """``table[key]`` if it is a ``kind`` (a bool is no int; an int is a float), None if absent."""
    if key not in table:
        return None
    value = table[key]
    if kind is float and type(value) is int:
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        names |= {list: "an array", dict: "a table"}
        raise ServeConfigError(f"{where} must be {names.get(kind, kind.__name__)}, got {value!r}")
    return value


def _no_unknown(table: dict[str, Any], known: set[str] | frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ServeConfigError(f"unknown key {unknown[0]!r} in {where}; known: {', '.join(sorted(known))}")


def _choice(value: str | None, choices: tuple[str, ...], where: str) -> str | None:
    if value is not None and value.lower() not in choices:
        raise ServeConfigError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    return None if value is None else value.lower()


def _resolve(base: Path, path: str) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base / expanded


def _tcp(text: str, where: str) -> TcpAddress:
    address = parse_address(text)
    if not isinstance(address, TcpAddress):
        raise ServeConfigError(f"{where} must be HOST:PORT, got {text!r}")
    return address


__all__ = [
    "CONNECT_ENV",
    "DEFAULT_HTTP_ADDRESS",
    "DEFAULT_MAX_BODY",
    "DEFAULT_METRICS_ADDRESS",
    "ENV_CONFIG_KEYS",
    "EXAMPLE_HTTP_MODULE",
    "EXAMPLE_MODULE",
    "TOKEN_ENV",
    "TOP_LEVEL_KEYS",
    "Address",
    "ControlConfig",
    "HttpConfig",
    "ProcessSpec",
    "RouteSpec",
    "ServeConfig",
    "ServeConfigError",
    "TcpAddress",
    "UnixAddress",
    "client_address",
    "config_from",
    "default_control_address",
    "env_config",
    "example_config",
    "http_address",
    "load_config",
    "metrics_address",
    "parse_address",
    "read_token_file",
]
