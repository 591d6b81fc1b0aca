"""``lunatic::process``: modules, configs, spawning, links, monitors and kills."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lunatic_mp import wasm
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import InvalidNameError, LunaticError
from lunatic_mp.host._common import ERROR, OK, current, drop, lookup, memory_of, report_error
from lunatic_mp.wasm import PENDING, GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.engine import Engine
    from lunatic_mp.module import Module
    from lunatic_mp.process import Process

NAMESPACE = "lunatic::process"
PARAM_RECORD = 17
ALREADY_REGISTERED = 2
_PARAM_KINDS = {0x7F: wasm.I32, 0x7E: wasm.I64, 0x7B: wasm.V128}


def decode_params(data: bytes) -> list[tuple[int, Any]]:
    """Spawn parameters: 17-byte records of a type byte and a 16-byte little-endian value."""
    if len(data) % PARAM_RECORD:
        raise GuestTrap(f"spawn parameters must be {PARAM_RECORD}-byte records, got {len(data)} bytes")
    params: list[tuple[int, Any]] = []
    for offset in range(0, len(data), PARAM_RECORD):
        type_byte, value = data[offset], data[offset + 1 : offset + PARAM_RECORD]
        kind = _PARAM_KINDS.get(type_byte)
        if kind is None:
            raise GuestTrap(f"unknown spawn parameter type 0x{type_byte:02x}")
        if kind == wasm.V128:
            params.append((kind, value))
        else:
            bits = 32 if kind == wasm.I32 else 64
            raw = int.from_bytes(value[: bits // 8], "little", signed=True)
            params.append((kind, raw))
    return params


def register(engine: Engine) -> None:
    define, define_async = engine.linker.define, engine.linker.define_async

    def config_of(process: Process, config_id: int) -> EnvConfig:
        if config_id == -1:
            return process.config
        return lookup(process.resources.configs, config_id, "config")

    def module_of(process: Process, module_id: int) -> Module:
        if module_id == -1:
            return process.module
        return lookup(process.resources.modules, module_id, "module")

    # -- modules
    def compile_module(data_ptr: int, data_len: int, id_ptr: int) -> int:
        process = current(engine)
        if not process.config.can_compile_modules:
            return -1
        memory = memory_of(process, engine)
        data = memory.read(data_ptr, data_len)
        try:
            module = engine.load_module(data, name=f"module compiled by {process.pid}")
        except LunaticError as exc:
            return report_error(process, memory, id_ptr, str(exc))
        memory.write_u64(id_ptr, process.resources.add(process.resources.modules, module))
        return OK

    define(NAMESPACE, "compile_module", "iii", "i", compile_module)
    define(
        NAMESPACE, "drop_module", "I", "", lambda rid: drop(current(engine).resources.modules, rid, "module")
    )

    # -- configs
    def create_config() -> int:
        process = current(engine)
        if not process.config.can_create_configs:
            return -1
        return process.resources.add(process.resources.configs, EnvConfig())

    define(NAMESPACE, "create_config", "", "I", create_config)
    define(
        NAMESPACE, "drop_config", "I", "", lambda rid: drop(current(engine).resources.configs, rid, "config")
    )

    def define_setting(name: str, attribute: str, kind: str) -> None:
        def setter(config_id: int, value: int) -> None:
            if config_id == -1:
                raise GuestTrap("a process cannot change its own config; create_config makes a new one")
            config = config_of(current(engine), config_id)
            setattr(config, attribute, bool(value) if kind == "i" else max(value, 0))

        def getter(config_id: int) -> int:
            return int(getattr(config_of(current(engine), config_id), attribute))

        define(NAMESPACE, f"config_set_{name}", "I" + kind, "", setter)
        getter_name = f"config_get_{name}" if kind == "I" else f"config_{name}"
        define(NAMESPACE, getter_name, "I", kind, getter)

    define_setting("max_memory", "max_memory", "I")
    define_setting("max_fuel", "max_fuel", "I")
    define_setting("can_compile_modules", "can_compile_modules", "i")
    define_setting("can_create_configs", "can_create_configs", "i")
    define_setting("can_spawn_processes", "can_spawn_processes", "i")

    # -- spawning
    def spawn_child(
        parent: Process, link: int, config_id: int, module_id: int, fn_ptr: int, fn_len: int,
        params_ptr: int, params_len: int,
    ) -> Process | str:  # fmt: skip
        """Spawn for a guest: the child, or the error message to hand back."""
        if not parent.config.can_spawn_processes:
            raise GuestTrap("this process is not allowed to spawn processes")
        if parent.phase.value == "instantiating":
            raise GuestTrap("cannot spawn while the module is still initializing (start function)")
        memory = memory_of(parent, engine)
        config = config_of(parent, config_id).copy()
        module = module_of(parent, module_id)
        function = memory.read_str(fn_ptr, fn_len)
        params = decode_params(memory.read(params_ptr, params_len))
        try:
            return engine.spawn(module, function, params, config, link=(parent, link) if link else None)
        except LunaticError as exc:
            return str(exc)

    def spawn(
        link: int, config_id: int, module_id: int, fn_ptr: int, fn_len: int, params_ptr: int,
        params_len: int, id_ptr: int,
    ) -> int:  # fmt: skip
        parent = current(engine)
        child = spawn_child(parent, link, config_id, module_id, fn_ptr, fn_len, params_ptr, params_len)
        memory = memory_of(parent, engine)
        if isinstance(child, str):
            return report_error(parent, memory, id_ptr, child)
        memory.write_u64(id_ptr, child.pid)
        return OK

    def get_or_spawn(
        name_ptr: int, name_len: int, link: int, config_id: int, module_id: int, fn_ptr: int,
        fn_len: int, params_ptr: int, params_len: int, node_id_ptr: int, id_ptr: int,
    ) -> int:  # fmt: skip
        parent = current(engine)
        memory = memory_of(parent, engine)
        name = memory.read_str(name_ptr, name_len)
        try:
            engine.registry.check_name(name)  # before spawning: a bad name must not leave an orphan
            found = engine.registry.get(name)
        except InvalidNameError as exc:
            raise GuestTrap(str(exc)) from None
        if found is not None:
            memory.write_u64(node_id_ptr, found[0])
            memory.write_u64(id_ptr, found[1])
            return ALREADY_REGISTERED
        child = spawn_child(parent, link, config_id, module_id, fn_ptr, fn_len, params_ptr, params_len)
        if isinstance(child, str):
            return report_error(parent, memory, id_ptr, child)
        engine.registry.put(name, engine.node_id, child.pid)
        memory.write_u64(node_id_ptr, engine.node_id)
        memory.write_u64(id_ptr, child.pid)
        return OK

    define(NAMESPACE, "spawn", "IIIiiiii", "i", spawn)
    define(NAMESPACE, "get_or_spawn", "iiIIIiiiiii", "i", get_or_spawn)

    # -- this process
    def sleep_ms(ms: int) -> object:
        process = current(engine)
        engine.wait(process, ms, on_timeout=0)  # ms < 0: u64 past i64, practically forever
        return PENDING

    def die_when_link_dies(flag: int) -> None:
        current(engine).die_when_link_dies = bool(flag)

    define_async(NAMESPACE, "sleep_ms", "I", "", sleep_ms)
    define(NAMESPACE, "die_when_link_dies", "i", "", die_when_link_dies)
    define(NAMESPACE, "process_id", "", "I", lambda: current(engine).pid)
    define(NAMESPACE, "environment_id", "", "I", lambda: current(engine).environment_id)

    # -- signals
    def kill(pid: int) -> None:
        process = current(engine)
        engine.kill(pid, f"killed by process {process.pid}")
        if process.kill_requested is not None:
            raise GuestTrap(process.kill_requested)

    define(NAMESPACE, "link", "II", "", lambda tag, pid: engine.link(current(engine), pid, tag))
    define(NAMESPACE, "unlink", "I", "", lambda pid: engine.unlink(current(engine), pid))
    define(NAMESPACE, "monitor", "I", "", lambda pid: engine.monitor(current(engine), pid))
    define(NAMESPACE, "stop_monitoring", "I", "", lambda pid: engine.stop_monitoring(current(engine), pid))
    define(NAMESPACE, "kill", "I", "", kill)
    define(NAMESPACE, "exists", "I", "i", lambda pid: int(pid in engine.processes))


__all__ = ["ERROR", "OK", "decode_params", "register"]
