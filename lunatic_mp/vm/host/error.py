"""``lunatic::error``: the messages behind the error ids that other calls hand out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lunatic_mp.vm.host._common import current, drop, lookup, memory_of

if TYPE_CHECKING:
    from lunatic_mp.vm.engine import Engine

NAMESPACE = "lunatic::error"


def register(engine: Engine) -> None:
    def message_of(error_id: int) -> bytes:
        return str(lookup(current(engine).resources.errors, error_id, "error")).encode()

    def to_string(error_id: int, ptr: int) -> None:
        memory_of(current(engine), engine).write(ptr, message_of(error_id))

    engine.linker.define(NAMESPACE, "string_size", "I", "i", lambda error_id: len(message_of(error_id)))
    engine.linker.define(NAMESPACE, "to_string", "Ii", "", to_string)
    engine.linker.define(
        NAMESPACE, "drop", "I", "", lambda rid: drop(current(engine).resources.errors, rid, "error")
    )
