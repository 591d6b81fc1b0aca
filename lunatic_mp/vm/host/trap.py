"""``lunatic::trap``: run a guest function and survive its trap.

``catch(fn, arg)`` calls the guest's own export ``_lunatic_catch_trap(fn, arg)`` as a nested
async call on the same fiber; a trap inside it makes ``catch`` return 0 instead of killing the
process. A kill is not a trap: it still ends the process.
"""

from __future__ import annotations

from lunatic_mp.vm import wasm
from lunatic_mp.vm.host._common import HostEngine, current
from lunatic_mp.vm.wasm import GuestTrap

NAMESPACE = "lunatic::trap"
CATCH_EXPORT = b"_lunatic_catch_trap"


def register(engine: HostEngine) -> None:
    def catch(caller: int, fn: int, arg: int) -> object:
        current(engine)
        func = wasm.caller_export_func(caller, CATCH_EXPORT)
        if func is None:
            raise GuestTrap("lunatic::trap::catch needs the export `_lunatic_catch_trap(i32, i32) -> i32`")
        context = wasm.caller_context(caller)
        return wasm.Nested(wasm.call_async(context, func, [(wasm.I32, fn), (wasm.I32, arg)], 1))

    engine.linker.define_async(NAMESPACE, "catch", "ii", "i", catch, with_caller=True)
