"""``lunatic::process``: modules, configs, spawning, links, monitors and kills."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lunatic_mp import grants
from lunatic_mp.config import EnvConfig
from lunatic_mp.errors import LunaticError
from lunatic_mp.pids import FIRST_WORKER, worker_of
from lunatic_mp.vm import wasm
from lunatic_mp.vm.host._common import ERROR, OK, HostEngine, current, drop, lookup, memory_of, report_error
from lunatic_mp.vm.process import Phase
from lunatic_mp.vm.registry import exact
from lunatic_mp.vm.wasm import PENDING, GuestTrap, Memory

if TYPE_CHECKING:
    from lunatic_mp.vm.module import Module
    from lunatic_mp.vm.placement import SpawnRequest
    from lunatic_mp.vm.process import Process

NAMESPACE = "lunatic::process"
PARAM_RECORD = 17
ALREADY_REGISTERED = 2
PARAM_KINDS = {0x7F: wasm.I32, 0x7E: wasm.I64, 0x7B: wasm.V128}


class SpawnRefused(Exception):
    """A spawn the guest may not make (answered with an error id, not a trap)."""


def decode_params(data: bytes) -> list[tuple[int, Any]]:
    """Spawn parameters: 17-byte records of a type byte and a 16-byte little-endian value."""
    if len(data) % PARAM_RECORD:
        raise GuestTrap(f"spawn parameters must be {PARAM_RECORD}-byte records, got {len(data)} bytes")
    params: list[tuple[int, Any]] = []
    for offset in range(0, len(data), PARAM_RECORD):
        type_byte, value = data[offset], data[offset + 1 : offset + PARAM_RECORD]
        kind = PARAM_KINDS.get(type_byte)
        if kind is None:
            raise GuestTrap(f"unknown spawn parameter type 0x{type_byte:02x}")
        if kind == wasm.V128:
            params.append((kind, value))
        else:
            bits = 32 if kind == wasm.I32 else 64
            raw = int.from_bytes(value[: bits // 8], "little", signed=True)
            params.append((kind, raw))
    return params


def config_of(process: Process, config_id: int) -> EnvConfig:
    if config_id == -1:
        return process.config
    return lookup(process.resources.configs, config_id, "config")


def module_of(process: Process, module_id: int) -> Module:
    if module_id == -1:
        return process.module
    return lookup(process.resources.modules, module_id, "module")


def read_spawn_request(
    memory: Memory,
    parent: Process,
    config_id: int,
    module_id: int,
    function_at: tuple[int, int],
    params_at: tuple[int, int],
) -> SpawnRequest:
    """What a guest asks to spawn (a config and module by resource id, -1 its own; the function
    name's and the parameters' pointer and length in ``memory``, the parent's); bad input traps
    the guest, a config that grants too much raises :class:`SpawnRefused`."""
    if not parent.config.can_spawn_processes:
        raise GuestTrap("this process is not allowed to spawn processes")
    if parent.phase is Phase.INSTANTIATING:
        raise GuestTrap("cannot spawn while the module is still initializing (start function)")
    config = config_of(parent, config_id)  # -1: the parent's own, which never changes: shared
    if config_id != -1:  # a config the guest built stays in its environment, and under its bound
        config = config.copy()  # the guest may change its config after this spawn
        config.environment_id = parent.config.environment_id
        config.max_processes = parent.config.max_processes
        config.max_env_memory = parent.config.max_env_memory
        refusal = grants.excess(config, parent.config)
        if refusal is not None:
            raise SpawnRefused(f"the config grants more than its creator holds: {refusal}")
        grants.resolve_dirs(config)
    module = module_of(parent, module_id)
    function = memory.read_str(*function_at)
    params = decode_params(memory.read(*params_at)) if params_at[1] else []
    return module, function, params, config


def register(engine: HostEngine) -> None:
    define, define_async = engine.linker.define, engine.linker.define_async

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
        # a new config denies every permission, and starts from its creator's limits,
        # namespaces and network rules (lunatic lets every process use the network, and the ABI
        # has no call to grant it): the most it may grant (lunatic_mp.grants); its arguments
        # reach a child as they are (lunatic puts no program name in front of them)
        mine = process.config
        config = EnvConfig(
            max_memory=mine.max_memory,
            max_fuel=mine.max_fuel,
            max_mailbox=mine.max_mailbox,
            allowed_namespaces=mine.allowed_namespaces,
            net_bind=mine.net_bind,
            net_connect=mine.net_connect,
            program_name=False,
        )
        return process.resources.add(process.resources.configs, config)

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
    def both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            first()
            second()

        return call

    def written(memory: Memory, ptr: int, value: int) -> Callable[[], None]:
        return lambda: memory.write_u64(ptr, value)

    def reporting(process: Process, memory: Memory, ptr: int, error: str) -> Callable[[], None]:
        def report() -> None:
            report_error(process, memory, ptr, error)

        return report

    def spawn(
        link: int, config_id: int, module_id: int, fn_ptr: int, fn_len: int, params_ptr: int,
        params_len: int, id_ptr: int,
    ) -> object:  # fmt: skip
        parent = current(engine)
        memory = memory_of(parent, engine)
        try:
            what = read_spawn_request(
                memory, parent, config_id, module_id, (fn_ptr, fn_len), (params_ptr, params_len)
            )
        except SpawnRefused as exc:
            return report_error(parent, memory, id_ptr, str(exc))
        memory.check(id_ptr, 8)  # before the process may suspend
        child = engine.spawn_here_at_once(parent, link, what)  # most spawns: no callback
        if child is not None:
            if isinstance(child, str):
                return report_error(parent, memory, id_ptr, child)
            memory.write_u64(id_ptr, child)
            return OK
        answered: list[int | str] = []
        suspended = False

        def done(child: int | str) -> None:
            if not suspended:  # answered at once: the host call returns the value itself
                answered.append(child)
            elif isinstance(child, str):
                engine.resume(parent, ERROR, reporting(parent, memory, id_ptr, child))
            else:
                engine.resume(parent, OK, written(memory, id_ptr, child))

        engine.spawn_placed(parent, link, what, done)
        if not answered:
            suspended = True  # placed on another worker: its reply resumes the process
            return PENDING
        child = answered[0]
        if isinstance(child, str):
            return report_error(parent, memory, id_ptr, child)
        memory.write_u64(id_ptr, child)
        return OK

    def get_or_spawn(
        name_ptr: int, name_len: int, link: int, config_id: int, module_id: int, fn_ptr: int,
        fn_len: int, params_ptr: int, params_len: int, node_id_ptr: int, id_ptr: int,
    ) -> object:  # fmt: skip
        parent = current(engine)
        memory = memory_of(parent, engine)
        name = exact(memory.read_str(name_ptr, name_len))  # opaque, as lunatic's names are
        try:
            what = read_spawn_request(
                memory, parent, config_id, module_id, (fn_ptr, fn_len), (params_ptr, params_len)
            )
        except SpawnRefused as exc:
            return report_error(parent, memory, id_ptr, str(exc))
        memory.check(node_id_ptr, 8)
        memory.check(id_ptr, 8)

        def found(node: int, pid: int) -> Callable[[], None]:
            def write() -> None:
                memory.write_u64(node_id_ptr, node)
                memory.write_u64(id_ptr, pid)

            return write

        if engine.router is None:  # one engine: the registry is right here
            existing = engine.registry.get(name)
            if existing is not None:
                found(*existing)()
                return ALREADY_REGISTERED
            answered: list[int | str] = []
            engine.spawn_placed(parent, link, what, answered.append)  # no router: spawns right here
            child = answered[0]
            if isinstance(child, str):
                return report_error(parent, memory, id_ptr, child)
            engine.registry.put(name, engine.node_id, child)
            found(engine.node_id, child)()
            return OK
        engine.get_or_spawn_remote(
            parent,
            name,
            lambda on_done: engine.spawn_placed(parent, link, what, on_done),
            on_found=lambda node, pid: engine.resume(parent, ALREADY_REGISTERED, found(node, pid)),
            on_spawned=lambda node, pid, publish: engine.resume(parent, OK, both(found(node, pid), publish)),
            on_error=lambda error: engine.resume(parent, ERROR, reporting(parent, memory, id_ptr, error)),
        )
        return PENDING

    define_async(NAMESPACE, "spawn", "IIIiiiii", "i", spawn)
    define_async(NAMESPACE, "get_or_spawn", "iiIIIiiiiii", "i", get_or_spawn)

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

    def link(tag: int, pid: int) -> None:
        process = current(engine)
        engine.link(process, pid, tag)
        if process.kill_requested is not None:  # linked to no process, dying with its links
            raise GuestTrap(process.kill_requested)

    define(NAMESPACE, "link", "II", "", link)
    define(NAMESPACE, "unlink", "I", "", lambda pid: engine.unlink(current(engine), pid))
    define(NAMESPACE, "monitor", "I", "", lambda pid: engine.monitor(current(engine), pid))
    define(NAMESPACE, "stop_monitoring", "I", "", lambda pid: engine.stop_monitoring(current(engine), pid))
    define(NAMESPACE, "kill", "I", "", kill)

    def exists(pid: int) -> object:
        if engine.is_local(pid):
            return int(pid in engine.processes)
        if worker_of(pid) < FIRST_WORKER:
            return 0  # the supervisor's and the registry's ids host no processes
        router = engine.router
        assert router is not None  # pid is not local
        asker = current(engine)
        return engine.ask(
            asker, router.route(pid), lambda done: router.exists(asker.pid, pid, done),
            lambda reply: (int(reply is not None and reply.exists), None),
        )  # fmt: skip

    define_async(NAMESPACE, "exists", "I", "i", exists)


__all__ = ["ERROR", "OK", "decode_params", "register"]
