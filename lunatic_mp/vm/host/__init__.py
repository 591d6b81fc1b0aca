"""The guests' view of the runtime: one module per ``lunatic::*`` host namespace.

Each module's ``register(engine)`` defines its functions on the engine's linker. Host functions
act on ``engine.current``, the process whose fiber made the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lunatic_mp.vm.host import (
    distributed,
    error,
    message,
    metrics,
    networking,
    process,
    registry,
    timer,
    trap,
    version,
    wasi,
)

if TYPE_CHECKING:
    from lunatic_mp.vm.host._common import HostEngine

NAMESPACES = (process, message, timer, registry, error, version, trap, wasi, metrics, networking, distributed)


def register_all(engine: HostEngine) -> None:
    for namespace in NAMESPACES:
        namespace.register(engine)
