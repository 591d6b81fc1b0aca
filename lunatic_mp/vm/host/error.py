"""``lunatic::error``: the messages behind the error ids that other calls hand out."""

from __future__ import annotations

from lunatic_mp.vm.host._common import HostEngine, current, drop, lookup, memory_of

NAMESPACE = "lunatic::error"


def register(engine: HostEngine) -> None:
    def message_of(error_id: int) -> bytes:
        return str(lookup(current(engine).resources.errors, error_id, "error")).encode()

    def to_string(error_id: int, ptr: int) -> None:
        memory_of(current(engine), engine).write(ptr, message_of(error_id))

    engine.linker.define(NAMESPACE, "string_size", "I", "i", lambda error_id: len(message_of(error_id)))
    engine.linker.define(NAMESPACE, "to_string", "Ii", "", to_string)
    engine.linker.define(
        NAMESPACE, "drop", "I", "", lambda rid: drop(current(engine).resources.errors, rid, "error")
    )
