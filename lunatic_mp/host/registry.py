"""``lunatic::registry``: well-known processes by name, with the ``name@version`` extension."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lunatic_mp.errors import InvalidNameError
from lunatic_mp.host._common import ERROR, OK, current, memory_of
from lunatic_mp.wasm import GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.engine import Engine

NAMESPACE = "lunatic::registry"


def register(engine: Engine) -> None:
    registry = engine.registry

    def read_name(name_ptr: int, name_len: int) -> str:
        return memory_of(current(engine), engine).read_str(name_ptr, name_len)

    def put(name_ptr: int, name_len: int, node_id: int, pid: int) -> None:
        try:
            registry.put(read_name(name_ptr, name_len), node_id, pid)
        except InvalidNameError as exc:
            raise GuestTrap(str(exc)) from None

    def get(name_ptr: int, name_len: int, node_id_ptr: int, pid_ptr: int) -> int:
        memory = memory_of(current(engine), engine)
        try:
            found = registry.get(memory.read_str(name_ptr, name_len))
        except InvalidNameError as exc:
            raise GuestTrap(str(exc)) from None
        if found is None:
            return ERROR
        memory.write_u64(node_id_ptr, found[0])
        memory.write_u64(pid_ptr, found[1])
        return OK

    def remove(name_ptr: int, name_len: int) -> None:
        try:
            registry.remove(read_name(name_ptr, name_len))
        except InvalidNameError as exc:
            raise GuestTrap(str(exc)) from None

    engine.linker.define(NAMESPACE, "put", "iiII", "", put)
    engine.linker.define(NAMESPACE, "get", "iiii", "i", get)
    engine.linker.define(NAMESPACE, "remove", "ii", "", remove)
