"""The serve config file's schema: msgspec models over :mod:`tomllib`, its defaults, and errors
that give the path of the bad value (``routes[0].path``). :mod:`lunatic_mp.serve.config` turns a
checked file into a :class:`~lunatic_mp.serve.config.ServeConfig`.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, TypeVar

import msgspec

from lunatic_mp.errors import ServeConfigError
from lunatic_mp.serve.http_limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LINGER,
)
from lunatic_mp.serve.rpc import DEFAULT_MAX_FRAME_SIZE
from lunatic_mp.vm.metrics import MAX_SERIES

DEFAULT_METRICS_ADDRESS = "127.0.0.1:9464"
TOKEN_ENV = "LUNATIC_MP_TOKEN"  # noqa: S105 - the name of the variable, not a token
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
        "max_mailbox",
        "max_env_memory",
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

_S = TypeVar("_S", bound=msgspec.Struct)


# -- the file's schema --------------------------------------------------------------------------
# msgspec checks types, ranges and unknown keys (a typo should not be silently ignored) and says
# where the bad value is; what depends on several keys, the file system or the command line is
# checked below, in the same words.

_I64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Positive = Annotated[float, msgspec.Meta(gt=0)]
CAN_KEYS = ("compile_modules", "create_configs", "spawn_processes")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A TOML table: unknown keys are errors."""


class EnvTable(_Strict):
    """A process's ``config``: its limits and permissions (``EnvConfig``)."""

    max_memory: _I64 | None = None
    max_fuel: _I64 | None = None
    max_mailbox: _I64 | None = None
    max_env_memory: _I64 | None = None
    can_compile_modules: bool | None = None
    can_create_configs: bool | None = None
    can_spawn_processes: bool | None = None
    spawn_local: bool | None = None
    allowed_namespaces: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] | None = None
    dirs: dict[str, str] | None = None
    net_bind: list[str] | None = None
    net_connect: list[str] | None = None


class ProcessTable(_Strict):
    """A process started at boot (``count`` instances; a named one has exactly one)."""

    module: str
    function: str = "_start"
    params: list[int] = []
    name: str | None = None
    version: str | None = None
    count: Annotated[int, msgspec.Meta(ge=1)] = 1
    config: EnvTable = msgspec.field(default_factory=EnvTable)


class RouteTable(_Strict):
    """An HTTP route: a fresh process of ``module`` per request, or a request message to the
    process registered as ``process``."""

    path: str
    method: str | list[str] = "GET"
    module: str | None = None
    function: str | None = None
    config: EnvTable | None = None
    process: str | None = None
    version: str | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] = DEFAULT_ROUTE_TIMEOUT


class ControlTable(_Strict):
    """The msgpack-RPC control socket."""

    address: str | None = None
    token: str | None = None
    token_file: str | None = None
    max_frame_size: Annotated[int, msgspec.Meta(ge=1024)] = DEFAULT_MAX_FRAME_SIZE
    max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1024
    drain_timeout: _Positive = 30.0
    auth_timeout: _Positive = 10.0
    message_timeout: _Positive = 30.0
    spawn_config: EnvTable | None = None


class MetricsTable(_Strict):
    """HTTP ``/metrics`` (Prometheus) and ``/healthz``."""

    address: str = DEFAULT_METRICS_ADDRESS
    enabled: bool = True
    max_series: Annotated[int, msgspec.Meta(ge=0)] = MAX_SERIES


class HttpTable(_Strict):
    """Where the routes are served, by every worker on one port."""

    address: str = DEFAULT_HTTP_ADDRESS
    max_body: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = DEFAULT_MAX_BODY
    idle_timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] = DEFAULT_IDLE_TIMEOUT
    body_timeout: Annotated[float, msgspec.Meta(gt=0, le=86400)] = DEFAULT_BODY_TIMEOUT
    linger: Annotated[float, msgspec.Meta(ge=0, le=3600)] = DEFAULT_LINGER
    enabled: bool = True


class LogTable(_Strict):
    """How the server logs: ``level`` debug, info, warning or error; ``format`` text or json."""

    level: str | None = None
    format: str | None = None


class ConfigFile(_Strict):
    """The config file of ``lunatic-mp serve`` (docs/serve.md); every key is optional."""

    workers: Annotated[int, msgspec.Meta(ge=1)] | None = None
    modules: dict[str, str] = {}
    processes: list[ProcessTable] = []
    control: ControlTable = msgspec.field(default_factory=ControlTable)
    metrics: MetricsTable = msgspec.field(default_factory=MetricsTable)
    http: HttpTable = msgspec.field(default_factory=HttpTable)
    routes: list[RouteTable] = []
    log: LogTable = msgspec.field(default_factory=LogTable)


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editors (``lunatic-mp serve --schema``)."""
    schema: dict[str, Any] = _without_null(msgspec.json.schema(ConfigFile))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "lunatic-mp serve config"
    return schema


def _without_null(node: Any) -> Any:
    """The schema without ``null``: TOML has none (an absent key is the default), so an editor
    should not offer it."""
    if isinstance(node, list):
        return [_without_null(item) for item in node if item != {"type": "null"}]
    if not isinstance(node, dict):
        return node
    node = {key: _without_null(value) for key, value in node.items() if (key, value) != ("default", None)}
    if "anyOf" in node and len(node["anyOf"]) == 1:
        node |= node.pop("anyOf")[0]
    return node


_TYPE_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}
_TYPE_WORDS |= {"array": "an array", "object": "a table"}
_EXPECTED = re.compile(
    r"^Expected `(?P<type>[^`]+)`(?P<bound>[^,]*?)(?:, got `[^`]+`)?(?: - at `\$(?P<at>.*)`)?$"
)
_FIELD = re.compile(
    r"^Object (?P<what>contains unknown|missing required) field `(?P<key>[^`]+)`(?: - at `\$(?P<at>.*)`)?$"
)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def convert(data: object, kind: type[_S], where: str) -> _S:
    """``data`` as ``kind``; :class:`ServeConfigError` names the bad value by its path
    (``routes[0].path``), prefixed with ``where``."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        raise ServeConfigError(_explain(str(exc), data, kind, where)) from None


def _explain(message: str, data: object, kind: type[msgspec.Struct], where: str) -> str:
    """msgspec's error in this module's words: ``PATH must be an integer >= 1, got 0``."""
    if (match := _FIELD.match(message)) is not None:
        at = match["at"] or ""
        table = _join(where, at) or "the top level"
        if not where and re.fullmatch(r"\.\w+", at):
            table = f"[{at[1:]}]"  # a top-level table, as TOML writes it
        if match["what"] == "missing required":
            return f"{table} needs a {match['key']}"
        known = ", ".join(sorted(f.encode_name for f in msgspec.structs.fields(_struct_at(kind, at))))
        return f"unknown key {match['key']!r} in {table}; known: {known}"
    if (match := _EXPECTED.match(message)) is not None:
        at = match["at"] or ""
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in match["type"].split(" | ") if t != "null")
        found, value = _value_at(data, at.removesuffix("[...]"))
        if at.endswith("[...]") and isinstance(value, dict):  # a value of a table of strings
            key = next((k for k, v in value.items() if type(v) is not str), None)
            at, value = at.removesuffix("[...]") + f".{key}", value.get(key)
        got = f", got {value!r}" if found else ""
        bound = re.sub(r"(\d)\.0\b", r"\1", match["bound"])  # "> 0", not "> 0.0"
        return f"{_join(where, at) or 'the config'} must be {words}{bound}{got}"
    return f"{where}: {message}" if where else message


def _join(where: str, at: str) -> str:
    return f"{where}{at}" if where else at.removeprefix(".")


def _steps(at: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _STEP.findall(at)]


def _value_at(data: Any, at: str) -> tuple[bool, object]:
    for step in _steps(at):
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, data


def _struct_at(kind: type[msgspec.Struct], at: str) -> type[msgspec.Struct]:
    """The table type at path ``at`` in ``kind``."""
    for step in _steps(at):
        if isinstance(step, str):
            field = next(f for f in msgspec.structs.fields(kind) if f.encode_name == step)
            kind = _table_of(field.type)
    return kind


def _table_of(tp: Any) -> Any:
    """The Struct inside ``X``, ``X | None`` or ``list[X]``, or None."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp
    return next((t for t in map(_table_of, typing.get_args(tp)) if t is not None), None)
