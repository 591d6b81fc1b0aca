"""``lunatic::timer``: send the scratch message later, and cancel that."""

from __future__ import annotations

from lunatic_mp.vm.host._common import HostEngine, current
from lunatic_mp.vm.host.message import take_scratch

NAMESPACE = "lunatic::timer"


def register(engine: HostEngine) -> None:
    def send_after(pid: int, delay_ms: int) -> int:
        process = current(engine)
        message = take_scratch(process)
        message.pid = process.pid
        return engine.send_after(pid, message, delay_ms if delay_ms >= 0 else None)

    engine.linker.define(NAMESPACE, "send_after", "II", "I", send_after)
    engine.linker.define(
        NAMESPACE, "cancel_timer", "I", "i", lambda timer_id: int(engine.cancel_timer(timer_id))
    )
