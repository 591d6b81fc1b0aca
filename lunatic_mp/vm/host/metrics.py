"""``lunatic::metrics``: counters, gauges and histograms reported by guests."""

from __future__ import annotations

from lunatic_mp.vm.host._common import HostEngine, current, memory_of
from lunatic_mp.vm.metrics import MAX_NAME_LENGTH
from lunatic_mp.vm.wasm import GuestTrap

NAMESPACE = "lunatic::metrics"
U64_MASK = 0xFFFF_FFFF_FFFF_FFFF  # counters add a u64


def register(engine: HostEngine) -> None:
    metrics, define = engine.metrics, engine.linker.define

    def name(ptr: int, length: int) -> str:
        if length > MAX_NAME_LENGTH:
            raise GuestTrap(f"a metric name of {length} bytes is longer than the limit of {MAX_NAME_LENGTH}")
        return memory_of(current(engine), engine).read_str(ptr, length)

    define(NAMESPACE, "counter", "iiI", "", lambda p, n, value: metrics.count(name(p, n), value & U64_MASK))
    define(NAMESPACE, "increment_counter", "ii", "", lambda p, n: metrics.count(name(p, n)))
    define(NAMESPACE, "gauge", "iiF", "", lambda p, n, value: metrics.set_gauge(name(p, n), value))
    define(NAMESPACE, "increment_gauge", "iiF", "", lambda p, n, value: metrics.add_gauge(name(p, n), value))
    define(NAMESPACE, "decrement_gauge", "iiF", "", lambda p, n, value: metrics.add_gauge(name(p, n), -value))
    define(NAMESPACE, "histogram", "iiF", "", lambda p, n, value: metrics.observe(name(p, n), value))
