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
    spawn_config = { max_memory = 268435456 }   # the most a client's spawn may grant (no dirs)

    [metrics]                          # HTTP: /metrics (Prometheus) and /healthz
    address = "127.0.0.1:9464"         # enabled = false turns it off
    max_series = 10000                 # guests' metric names kept per worker (more: dropped, counted)

    [http]                             # the routes' port, served by every worker (SO_REUSEPORT)
    address = "127.0.0.1:8080"         # port 0: any free port (the server says which)
    max_body = 1048576                 # bytes of the largest request body (larger: 413)
    idle_timeout = 30.0                # seconds to send a request head (idle keep-alive too)
    body_timeout = 60.0                # seconds from the head to the body's end (later: 408)
    linger = 2.0                       # seconds a body is read and dropped after a 413 or 408
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

Unknown keys are errors (a typo should not be silently ignored), and every error gives the path of
the bad value (``routes[0].path must start with '/'``). :class:`ConfigFile` is the file's schema
(msgspec models over :mod:`tomllib`); :func:`config_schema` gives it as JSON Schema for editors.
:data:`TOP_LEVEL_KEYS` lists the tables this module knows.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lunatic_mp.config import ALL_NAMESPACES, EnvConfig
from lunatic_mp.errors import ServeConfigError
from lunatic_mp.grants import excess
from lunatic_mp.netpolicy import check_rules
from lunatic_mp.serve.addresses import (
    CONNECT_ENV,
    Address,
    TcpAddress,
    UnixAddress,
    client_address,
    default_control_address,
    parse_address,
)
from lunatic_mp.serve.config_file import (
    CAN_KEYS,
    DEFAULT_HTTP_ADDRESS,
    DEFAULT_MAX_BODY,
    DEFAULT_METRICS_ADDRESS,
    DEFAULT_ROUTE_TIMEOUT,
    ENV_CONFIG_KEYS,
    HTTP_METHODS,
    LOG_FORMATS,
    LOG_LEVELS,
    MIN_TOKEN_LENGTH,
    TOKEN_ENV,
    TOP_LEVEL_KEYS,
    ConfigFile,
    EnvTable,
    ProcessTable,
    RouteTable,
    config_schema,
    convert,
)
from lunatic_mp.serve.http_limits import (
    HttpLimits,
)
from lunatic_mp.serve.rpc import DEFAULT_MAX_FRAME_SIZE
from lunatic_mp.vm.metrics import MAX_SERIES

EXAMPLE_MODULE = Path(__file__).parents[1] / "examples" / "counter.wat"
"""The example application served when no config is given."""
EXAMPLE_HTTP_MODULE = Path(__file__).parents[1] / "examples" / "hello_http.wat"
"""The example's HTTP handler (a fresh process per request)."""

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
    limits: HttpLimits = field(default_factory=HttpLimits)
    """How long a client is waited for (:class:`~lunatic_mp.serve.http_limits.HttpLimits`)."""
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
    spawn_config: EnvConfig = field(default_factory=EnvConfig.permissive)
    """The most a config sent with ``spawn`` may grant (:mod:`lunatic_mp.grants`); its limits
    are what a client that names none gets. ``[control] spawn_config`` (no ``dirs``)."""


@dataclass
class ServeConfig:
    """Everything ``lunatic-mp serve`` needs to start."""

    workers: int | None = None
    cluster: str | None = None
    """The Ray cluster the server spans (``--cluster``; docs/cluster.md), or None: this machine."""
    modules: dict[str, Path] = field(default_factory=dict)
    processes: list[ProcessSpec] = field(default_factory=list)
    control: ControlConfig = field(default_factory=ControlConfig)
    metrics_address: TcpAddress | None = field(
        default_factory=lambda: _tcp(DEFAULT_METRICS_ADDRESS, "metrics")
    )
    metrics_max_series: int = MAX_SERIES
    """Guest metric names each worker keeps (``[metrics] max_series``; the rest are dropped and counted)."""
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


# -- from the file to the config ----------------------------------------------------------------


def config_from(data: dict[str, Any], base: Path, source: Path | None = None) -> ServeConfig:
    """A config from parsed TOML; relative paths are taken from ``base``."""
    file = convert(data, ConfigFile, "")
    config = ServeConfig(source=source, workers=file.workers)
    for name, path in file.modules.items():
        config.modules[name] = _resolve(base, path)
    config.processes = [_process(table, f"processes[{i}]", base) for i, table in enumerate(file.processes)]
    control = file.control
    if control.address is not None:
        config.control.address = parse_address(control.address)
        if isinstance(config.control.address, UnixAddress):
            config.control.address = UnixAddress(_resolve(base, str(config.control.address.path)))
    config.control.token = control.token
    if control.token_file is not None:
        config.control.token = read_token_file(_resolve(base, control.token_file))
    config.control.max_frame_size = control.max_frame_size
    config.control.max_connections = control.max_connections
    config.control.drain_timeout = float(control.drain_timeout)
    config.control.auth_timeout = float(control.auth_timeout)
    config.control.message_timeout = float(control.message_timeout)
    if control.spawn_config is not None:
        if control.spawn_config.dirs is not None:  # a client cannot preopen the server's directories
            known = ", ".join(sorted(ENV_CONFIG_KEYS - {"dirs"}))
            raise ServeConfigError(f"unknown key 'dirs' in control.spawn_config; known: {known}")
        config.control.spawn_config = _env(control.spawn_config, "control.spawn_config", None)
    config.metrics_address = _tcp(file.metrics.address, "metrics.address") if file.metrics.enabled else None
    config.metrics_max_series = file.metrics.max_series
    http = file.http
    limits = HttpLimits(float(http.idle_timeout), float(http.body_timeout), float(http.linger))
    config.http = HttpConfig(_tcp(http.address, "http.address"), http.max_body, limits, http.enabled)
    config.routes = [_route(table, f"routes[{i}]", base) for i, table in enumerate(file.routes)]
    config.log_level = _choice(file.log.level, LOG_LEVELS, "log.level")
    config.log_format = _choice(file.log.format, LOG_FORMATS, "log.format")
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
    if base is None and isinstance(table, dict) and "dirs" in table:
        known = ", ".join(sorted(ENV_CONFIG_KEYS - {"dirs"}))
        raise ServeConfigError(f"unknown key 'dirs' in {where}; known: {known}")
    return _env(convert(table, EnvTable, where), where, base)


def _env(table: EnvTable, where: str, base: Path | None) -> EnvConfig:
    config = EnvConfig()
    for key in (
        "max_memory",
        "max_fuel",
        "max_mailbox",
        "max_env_memory",
        *(f"can_{can}" for can in CAN_KEYS),
        "spawn_local",
    ):
        if (value := getattr(table, key)) is not None:
            setattr(config, key, value)
    if table.allowed_namespaces is not None:
        unknown = [n for n in table.allowed_namespaces if n not in ALL_NAMESPACES]
        if unknown:
            raise ServeConfigError(
                f"{where}.allowed_namespaces: unknown {unknown}; known: {sorted(ALL_NAMESPACES)}"
            )
        config.allowed_namespaces = frozenset(table.allowed_namespaces)
    for key in ("net_bind", "net_connect"):
        if (rules := getattr(table, key)) is not None:
            try:
                setattr(config, key, check_rules(rules, f"{where}.{key}"))
            except ValueError as exc:
                raise ServeConfigError(str(exc)) from None
    if table.args is not None:
        config.args = list(table.args)
    if table.env is not None:
        config.env = dict(table.env)
    if base is not None and table.dirs is not None:
        for guest, host in table.dirs.items():
            try:
                config.preopen(guest, _resolve(base, host))
            except NotADirectoryError as exc:
                raise ServeConfigError(f"{where}.dirs.{guest}: {exc}") from None
    return config


def bounded_spawn_config(options: dict[str, Any], ceiling: EnvConfig) -> EnvConfig:
    """The config of a control-socket ``spawn`` with ``options``: what they leave out of the
    limits and namespaces comes from ``ceiling`` (the server's ``control.spawn_config``), and
    what they give may not exceed it (ServeConfigError naming what does)."""
    config = env_config(options, "spawn options", None)
    for key in ("max_memory", "max_fuel", "allowed_namespaces"):
        if key not in options:
            setattr(config, key, getattr(ceiling, key))
    config.max_mailbox, config.max_processes = ceiling.max_mailbox, ceiling.max_processes
    refusal = excess(config, ceiling)
    if refusal is not None:
        raise ServeConfigError(f"spawn options grant more than the server's control.spawn_config: {refusal}")
    return config


# -- helpers ------------------------------------------------------------------------------------


def _process(table: ProcessTable, where: str, base: Path) -> ProcessSpec:
    if table.version is not None and table.name is None:
        raise ServeConfigError(f"{where}: a version needs a name")
    if table.name is not None and "@" in table.name:
        raise ServeConfigError(f"{where}.name: give the version as `version`, not after '@'")
    if table.count > 1 and table.name is not None:
        raise ServeConfigError(f"{where}: a named process cannot have count > 1 (one name, one pid)")
    config = _env(table.config, f"{where}.config", base)
    return ProcessSpec(
        table.module, table.function, table.params, table.name, table.version, table.count, config
    )


def _route(table: RouteTable, where: str, base: Path) -> RouteSpec:
    if not table.path.startswith("/"):
        raise ServeConfigError(f"{where}.path must start with '/', got {table.path!r}")
    methods = [table.method] if isinstance(table.method, str) else table.method
    if not methods:
        raise ServeConfigError(f"{where}.method must be a method name or a list of them, got []")
    upper = tuple(dict.fromkeys(m.upper() for m in methods))
    unknown = [m for m in upper if m not in HTTP_METHODS]
    if unknown:
        names = ", ".join(sorted(HTTP_METHODS))
        raise ServeConfigError(f"{where}.method: unknown {unknown[0]!r}; known: {names}")
    if "*" in upper and len(upper) > 1:
        raise ServeConfigError(f"{where}.method: '*' (any method) stands alone")
    route = RouteSpec(table.path, upper, module=table.module, process=table.process, timeout=table.timeout)
    if (table.module is None) == (table.process is None):
        raise ServeConfigError(
            f"{where} needs either a module (a fresh process per request) or a process name"
        )
    if table.module is not None:
        route.function = table.function or "_start"
        route.config = _env(table.config or EnvTable(), f"{where}.config", base)
        if table.version is not None:
            raise ServeConfigError(f"{where}.version goes with a process name, not a module")
    else:
        for key in ("function", "config"):
            if getattr(table, key) is not None:
                raise ServeConfigError(f"{where}.{key} goes with a module, not a process name")
        if "@" in (table.process or ""):
            raise ServeConfigError(f"{where}.process: give the version as `version`, not after '@'")
        route.version = table.version
    return route


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
    "ConfigFile",
    "client_address",
    "config_from",
    "config_schema",
    "default_control_address",
    "env_config",
    "example_config",
    "http_address",
    "load_config",
    "metrics_address",
    "parse_address",
    "read_token_file",
]
