"""The environment config (:class:`~lunatic_mp.config.EnvConfig`) as bytes, for
:attr:`lunatic_mp.cluster.frames.Spawn.config`: a msgpack map of its fields, checked field by field
when decoded, since it comes from another process like any frame."""

from __future__ import annotations

import functools

import msgpack
import msgspec

from lunatic_mp.cluster.wire import I64_MAX, MAX_FRAME_SIZE, FrameError, type_name
from lunatic_mp.config import EnvConfig
from lunatic_mp.netpolicy import check_rules

__all__ = ["decode_config", "decode_shared_config", "encode_config"]

_pack = msgspec.msgpack.Encoder().encode
_unpackb = msgpack.unpackb
_UNPACK_ERRORS = (ValueError, TypeError, msgpack.UnpackException, RecursionError)
_CONFIG_INTS = ("max_memory", "max_fuel", "max_mailbox", "max_processes", "max_env_memory", "environment_id")
_CONFIG_BOOLS = (
    "can_compile_modules", "can_create_configs", "can_spawn_processes", "spawn_local", "program_name"
)  # fmt: skip
_CONFIG_DICTS = ("preopened_dirs", "env")
_CONFIG_RULES = ("net_bind", "net_connect")
_CONFIG_FIELDS = frozenset(
    (*_CONFIG_INTS, *_CONFIG_BOOLS, *_CONFIG_DICTS, *_CONFIG_RULES, "allowed_namespaces", "args")
)


def encode_config(config: EnvConfig) -> bytes:
    """``config`` as a msgpack map of its fields (namespaces as a sorted array), for
    :attr:`Spawn.config`."""
    try:
        return _pack(
            {
                "max_memory": config.max_memory,
                "max_fuel": config.max_fuel,
                "max_mailbox": config.max_mailbox,
                "max_processes": config.max_processes,
                "max_env_memory": config.max_env_memory,
                "environment_id": config.environment_id,
                "can_compile_modules": config.can_compile_modules,
                "can_create_configs": config.can_create_configs,
                "can_spawn_processes": config.can_spawn_processes,
                "spawn_local": config.spawn_local,
                "program_name": config.program_name,
                "allowed_namespaces": sorted(config.allowed_namespaces),
                "preopened_dirs": config.preopened_dirs,
                "args": config.args,
                "env": config.env,
                "net_bind": list(config.net_bind),
                "net_connect": list(config.net_connect),
            }
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise FrameError(f"cannot encode config: {exc}") from exc


def _config_problem(obj: object) -> str | None:
    """What makes ``obj`` (decoded msgpack) not an encoded config, or None."""
    if type(obj) is not dict:
        return f"a config must be a msgpack map, got {type_name(obj)}"
    if obj.keys() != _CONFIG_FIELDS:
        missing = sorted(_CONFIG_FIELDS - obj.keys())
        unknown = sorted(repr(key) for key in obj.keys() - _CONFIG_FIELDS)
        return f"config fields: missing {missing}, unknown [{', '.join(unknown)}]"
    for name in _CONFIG_INTS:
        value = obj[name]
        if type(value) is not int:
            return f"config.{name} must be int, got {type_name(value)}"
        if not 0 <= value <= I64_MAX:
            return f"config.{name} = {value} is not a non-negative i64"
    for name in _CONFIG_BOOLS:
        if type(obj[name]) is not bool:
            return f"config.{name} must be bool, got {type_name(obj[name])}"
    for name in ("allowed_namespaces", "args"):
        value = obj[name]
        if type(value) is not tuple or not all(type(item) is str for item in value):
            return f"config.{name} must be an array of str"
    for name in _CONFIG_DICTS:
        value = obj[name]
        if type(value) is not dict or not all(type(k) is str and type(v) is str for k, v in value.items()):
            return f"config.{name} must be a map of str to str"
    for name in _CONFIG_RULES:
        value = obj[name]
        if type(value) is not tuple or not all(type(item) is str for item in value):
            return f"config.{name} must be an array of str"
        try:
            check_rules(value, f"config.{name}")
        except ValueError as exc:
            return str(exc)
    return None


def decode_config(data: bytes | bytearray | memoryview) -> EnvConfig:
    """The config that :func:`encode_config` encoded in ``data``; :class:`FrameError` on anything
    else (malformed msgpack, missing or unknown fields, a field of the wrong type)."""
    if len(data) > MAX_FRAME_SIZE:
        raise FrameError(f"config of {len(data)} bytes exceeds {MAX_FRAME_SIZE}")
    try:
        obj = _unpackb(data, raw=False, strict_map_key=False, use_list=False)
    except _UNPACK_ERRORS as exc:
        raise FrameError(f"malformed config msgpack: {type(exc).__name__}: {exc}") from exc
    problem = _config_problem(obj)
    if problem is not None:
        raise FrameError(problem)
    return EnvConfig(
        max_memory=obj["max_memory"],
        max_fuel=obj["max_fuel"],
        max_mailbox=obj["max_mailbox"],
        max_processes=obj["max_processes"],
        max_env_memory=obj["max_env_memory"],
        environment_id=obj["environment_id"],
        can_compile_modules=obj["can_compile_modules"],
        can_create_configs=obj["can_create_configs"],
        can_spawn_processes=obj["can_spawn_processes"],
        spawn_local=obj["spawn_local"],
        program_name=obj["program_name"],
        allowed_namespaces=frozenset(obj["allowed_namespaces"]),
        preopened_dirs=dict(obj["preopened_dirs"]),
        args=list(obj["args"]),
        env=dict(obj["env"]),
        net_bind=obj["net_bind"],
        net_connect=obj["net_connect"],
    )


@functools.lru_cache(maxsize=256)
def decode_shared_config(data: bytes) -> EnvConfig:
    """:func:`decode_config`, one object per distinct encoding: a worker's spawns of one
    environment (an executor's jobs, a fan-out) share it instead of decoding it per spawn. Shared:
    a process never changes its config (a derived one is a copy)."""
    return decode_config(data)
