"""``lunatic::registry``: well-known processes by name, with versions as an extension.

``put``, ``get`` and ``remove`` take a name as an opaque string, exactly as lunatic 0.13 does:
lunatic-rs names processes ``crate@version::module::Ident``, which is no version requirement.
``put_versioned``, ``get_versioned`` and ``remove_versioned`` (same types) parse ``name@version``
and ``name@requirement`` as the embedding API does. On its own an engine keeps the registry
itself; in a runtime the registry is a process of its own, and these calls suspend the caller
until it answers.
"""

from __future__ import annotations

from typing import Any

from lunatic_mp.errors import InvalidNameError
from lunatic_mp.pids import REGISTRY
from lunatic_mp.vm.host._common import ERROR, OK, HostEngine, current, memory_of
from lunatic_mp.vm.registry import check_name_length, exact
from lunatic_mp.vm.wasm import GuestTrap

NAMESPACE = "lunatic::registry"


def register(engine: HostEngine) -> None:
    for suffix, versioned in (("", False), ("_versioned", True)):
        _register(engine, suffix, versioned=versioned)


def _register(engine: HostEngine, suffix: str, *, versioned: bool) -> None:
    """``put``, ``get`` and ``remove`` (plus ``suffix``); names parsed for versions or opaque."""
    registry = engine.registry

    def read_name(name_ptr: int, name_len: int, *, to_register: bool = False) -> str:
        try:
            check_name_length(name_len)
        except InvalidNameError as exc:
            raise GuestTrap(str(exc)) from None
        name = memory_of(current(engine), engine).read_str(name_ptr, name_len)
        if not versioned:
            return exact(name)
        try:
            (registry.check_name if to_register else registry.get)(name)
        except InvalidNameError as exc:
            raise GuestTrap(str(exc)) from None
        return name

    def failed(reply: Any) -> None:
        if reply is not None and reply.error:
            raise GuestTrap(reply.error)

    def put(name_ptr: int, name_len: int, node_id: int, pid: int) -> object:
        name = read_name(name_ptr, name_len, to_register=True)
        router = engine.router
        if router is None:
            registry.put(name, node_id, pid)
            return None
        process = current(engine)
        named = engine.processes.get(pid)
        if named is not None:  # its death waits for the registry from now on (Signals._release)
            named.registered = True
        return engine.ask(
            process, router.names_at, lambda done: router.registry_put(process.pid, name, node_id, pid, done),
            lambda reply: (0, lambda: failed(reply)),
        )  # fmt: skip

    def get(name_ptr: int, name_len: int, node_id_ptr: int, pid_ptr: int) -> object:
        name = read_name(name_ptr, name_len)
        memory = memory_of(current(engine), engine)
        memory.check(node_id_ptr, 8)  # before the process may suspend
        memory.check(pid_ptr, 8)

        def write(node: int, pid: int) -> None:
            memory.write_u64(node_id_ptr, node)
            memory.write_u64(pid_ptr, pid)

        if engine.router is None:
            found = registry.get(name)
            if found is None:
                return ERROR
            write(*found)
            return OK
        router = engine.router
        process = current(engine)

        def answer(reply: Any) -> tuple[int, Any]:
            if reply is None or not reply.found:
                return ERROR, None
            return OK, lambda: write(reply.node, reply.pid)

        return engine.ask(
            process, REGISTRY, lambda done: router.registry_get(process.pid, name, False, done), answer
        )

    def remove(name_ptr: int, name_len: int) -> object:
        name = read_name(name_ptr, name_len)
        router = engine.router
        if router is None:
            registry.remove(name)
            return None
        process = current(engine)
        return engine.ask(
            process, router.names_at, lambda done: router.registry_remove(process.pid, name, done),
            lambda reply: (0, lambda: failed(reply)),
        )  # fmt: skip

    engine.linker.define_async(NAMESPACE, "put" + suffix, "iiII", "", put)
    engine.linker.define_async(NAMESPACE, "get" + suffix, "iiii", "i", get)
    engine.linker.define_async(NAMESPACE, "remove" + suffix, "ii", "", remove)
