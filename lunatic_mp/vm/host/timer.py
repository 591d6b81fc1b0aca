"""``lunatic::timer``: send the scratch message later, and cancel that.

A timer belongs to the process that made it: only that process can cancel it (another's id is
"no such timer"), its death cancels it, and a process may have at most
:data:`MAX_TIMERS_PER_PROCESS` pending at once (one more traps it), so timers cannot outlive
their process or pile up without bound.
"""

from __future__ import annotations

from lunatic_mp.vm.host._common import HostEngine, current
from lunatic_mp.vm.host.message import take_scratch
from lunatic_mp.vm.wasm import GuestTrap

NAMESPACE = "lunatic::timer"
MAX_TIMERS_PER_PROCESS = 10_000
"""Pending ``send_after`` timers a process may have at once (each holds its message)."""


def register(engine: HostEngine) -> None:
    def send_after(pid: int, delay_ms: int) -> int:
        process = current(engine)
        if len(process.timers) >= MAX_TIMERS_PER_PROCESS:
            raise GuestTrap(
                f"process {process.pid} has {len(process.timers)} pending timers, "
                f"the most a process may have (send_after)"
            )
        message = take_scratch(process)
        message.pid = process.pid
        return engine.send_after(pid, message, delay_ms if delay_ms >= 0 else None, owner=process)

    def cancel_timer(timer_id: int) -> int:
        return int(engine.cancel_timer(timer_id, owner=current(engine)))

    engine.linker.define(NAMESPACE, "send_after", "II", "I", send_after)
    engine.linker.define(NAMESPACE, "cancel_timer", "I", "i", cancel_timer)
