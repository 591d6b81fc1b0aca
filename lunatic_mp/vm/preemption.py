"""Time slices and fuel budgets: how an engine's running guests are made to give way.

Every Wasm process is preempted by epochs: the C core's ticker thread advances the wasmtime
engine's epoch every time slice (1 ms by default), and a guest whose slice is over yields (async)
at its next loop back-edge or function entry, back to the scheduler. This costs CPU-bound code a
few percent; fuel metering (counting every instruction) costs it 1.4-2x, so only processes whose
environment sets ``EnvConfig.max_fuel`` pay for it: they run in a second wasmtime engine with fuel
metering on (and epochs too, for their slices), made on the first such spawn; each module is
compiled for it the first time such a process runs it. docs/performance.md has the figures.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wasmtime

from lunatic_mp.vm import core, wasm

if TYPE_CHECKING:
    from lunatic_mp.vm.module import Module

DEFAULT_TIME_SLICE_NS = 1_000_000
MIN_TIME_SLICE_NS, MAX_TIME_SLICE_NS = 10_000, 10_000_000_000  # what the ticker keeps: 10 µs to 10 s

DEFAULT_LONG_SLICE_NS = 100_000_000
"""How long a guest may run on when its last slice ended it and every process waiting beside it is
CPU-bound in the same way: the ticker then sleeps instead of interrupting a busy core every time
slice (1,000 times a second cost CPU-bound work 2-3% on a 2-core machine, docs/performance.md),
and anything that arrives for the engine (a frame, a socket, a host call of the guest) ends it at
once. 0 turns long slices off. Each long slice still costs two wake-ups of the ticker, which
preempt a busy core: at 20 ms, 0.3% of a CPU-bound worker's time; at 100 ms, 0.06%. What it
bounds is only how long CPU-bound processes wait for each other."""


def check_time_slice(time_slice_ns: int) -> int:
    """``time_slice_ns``, or a ValueError naming it when the ticker cannot keep it."""
    if (
        isinstance(time_slice_ns, bool)
        or not isinstance(time_slice_ns, int)
        or not MIN_TIME_SLICE_NS <= time_slice_ns <= MAX_TIME_SLICE_NS
    ):
        raise ValueError(
            f"time_slice_ns must be an int between {MIN_TIME_SLICE_NS:,} (10 µs) and "
            f"{MAX_TIME_SLICE_NS:,} (10 s) nanoseconds, got {time_slice_ns!r}"
        )
    return time_slice_ns


def check_long_slice(long_slice_ns: int | None, time_slice_ns: int) -> int:
    """``long_slice_ns`` (None: :data:`DEFAULT_LONG_SLICE_NS`, or off when the time slice is that
    long already), or a ValueError naming it: 0 (off), or from ``time_slice_ns`` to 10 s."""
    if long_slice_ns is None:
        return DEFAULT_LONG_SLICE_NS if time_slice_ns < DEFAULT_LONG_SLICE_NS else 0
    if type(long_slice_ns) is int and (
        long_slice_ns == 0 or time_slice_ns <= long_slice_ns <= MAX_TIME_SLICE_NS
    ):
        return long_slice_ns
    raise ValueError(
        f"long_slice_ns must be None (the default), 0 (off) or an int between the time slice "
        f"({time_slice_ns:,}) and {MAX_TIME_SLICE_NS:,} (10 s) nanoseconds, got {long_slice_ns!r}"
    )


class Preemption:
    """One engine's ticker, and its fuel-metering engine (made when first needed).

    ``make_engine(fuel=True)`` makes the fuel engine (:func:`wasm.new_engine`). ``owner``
    (the :class:`~lunatic_mp.vm.engine.Engine`) going away stops the ticker's thread even if
    :meth:`close` was never called.
    """

    def __init__(
        self,
        owner: object,
        wasm_engine: wasmtime.Engine,
        linker: wasm.Linker,
        make_engine: Callable[..., wasmtime.Engine],
        time_slice_ns: int,
    ) -> None:
        self.ticker = core.Ticker(time_slice_ns)
        self.ticker.add(wasm_engine, core.address(wasm_engine.ptr()))
        self._finalizer = weakref.finalize(owner, self.ticker.close)
        self._linker = linker
        self._make_engine = make_engine
        self._fuel_engine: wasmtime.Engine | None = None
        self._fuel_linker: wasmtime.Linker | None = None
        self._metered: weakref.WeakKeyDictionary[Module, tuple[Any, wasmtime.InstancePre]] = (
            weakref.WeakKeyDictionary()
        )

    def metered(self, module: Module) -> tuple[wasmtime.Engine, wasmtime.InstancePre]:
        """The fuel engine, and ``module`` compiled and linked in it (both made on first use)."""
        if self._fuel_engine is None or self._fuel_linker is None:
            engine = self._make_engine(fuel=True)
            self._fuel_linker = self._linker.for_engine(engine)
            self.ticker.add(engine, core.address(engine.ptr()))
            self._fuel_engine = engine
        entry = self._metered.get(module)
        if entry is None:
            compiled = wasmtime.Module(self._fuel_engine, module.binary)
            entry = (compiled, self._fuel_linker.instantiate_pre(compiled))
            self._metered[module] = entry
        return self._fuel_engine, entry[1]

    def close(self) -> None:
        """Stop the ticker (joining its thread) and drop the fuel engine; processes are gone."""
        self._finalizer()
        self._metered.clear()
        self._fuel_linker = None
        self._fuel_engine = None
