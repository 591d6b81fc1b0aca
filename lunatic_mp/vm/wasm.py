"""The only module that calls wasmtime's C API directly.

wasmtime-py exposes synchronous calls only; its bundled C library also has the async API, which
lets a Wasm process suspend inside a host call (a fiber) and yield when its time slice ends
(epoch interruption; the ticker and the deadline callback are in the C core, :mod:`.core`). The
raw calls are also 10x cheaper than the Python wrappers, so the hot paths (host calls, memory
access, polling) go through here. Everything else in lunatic_mp stays above this line.

Hazards handled here (see docs/design.md): nothing may escape from a host call into wasmtime, so
the C trampolines of the Python host functions and their continuations (lunatic_mp/vm/pyhost.c)
catch everything and turn it into a guest trap;
a function or definition freed while wasmtime still points at it crashes the process, so the
objects behind every definition are kept alive by the :class:`Linker`.
"""

from __future__ import annotations

import ctypes
import logging
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import wasmtime
from wasmtime import _bindings as ffi

from lunatic_mp.vm import core
from lunatic_mp.vm.arena import Arenas

log = logging.getLogger(__name__)

I32: Final = 0
I64: Final = 1
F32: Final = 2
F64: Final = 3
V128: Final = 4
_VALTYPE: Final = {
    "i": wasmtime.ValType.i32,
    "I": wasmtime.ValType.i64,
    "f": wasmtime.ValType.f32,
    "F": wasmtime.ValType.f64,
}
U32_MASK: Final = 0xFFFF_FFFF
_EXTERN_FUNC: Final = 0  # wasmtime_extern_kind_t
_EXTERN_MEMORY: Final = 3

Future = Any  # ctypes.POINTER(ffi.wasmtime_call_future_t)
Context = Any  # ctypes.POINTER(ffi.wasmtime_context_t)

PENDING: Final = object()
"""Returned by an async host function to suspend the calling process until it is resumed."""


@dataclass(slots=True)
class Nested:
    """Returned by an async host function that calls back into the guest (``trap::catch``)."""

    call: Call


class GuestTrap(Exception):
    """Raised by a host function to trap the calling guest with this message."""


def new_engine(
    *,
    async_stack_size: int,
    max_wasm_stack: int,
    max_instances: int,
    max_memory: int,
    fuel: bool = False,
    arenas: Arenas | None = None,
) -> wasmtime.Engine:
    """An engine for fibers: epoch interruption, memories and stacks from ``arenas``.

    Guests are preempted by epochs (a tick of the engine's :class:`core.Ticker` ends a slice),
    which costs CPU-bound code a few percent; fuel metering costs it far more (1.4-2x, see
    docs/performance.md), so ``fuel`` (counting instructions, for ``EnvConfig.max_fuel``) is on
    only in a second engine that only the environments with a fuel budget use.

    Linear memories and fiber stacks are slots of arenas (:mod:`.arena`; new ones for
    ``max_instances`` processes unless given): a live process costs no memory mapping, so
    ``vm.max_map_count`` no longer bounds a worker. A slot is ``max_memory`` bytes, which caps a
    guest's memory; with no memory reservation and no guard region the compiled code checks every
    access against the memory's size (docs/performance.md measures what that costs).
    """
    if max_wasm_stack >= async_stack_size:
        raise ValueError("max_wasm_stack must be below async_stack_size, or wasmtime aborts")
    if arenas is None:
        arenas = Arenas(max(max_instances, 1), max_memory, async_stack_size)
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    config.max_wasm_stack = max_wasm_stack
    ffi.wasmtime_config_async_stack_size_set(config.ptr(), async_stack_size)
    ffi.wasmtime_config_memory_reservation_set(config.ptr(), 0)
    ffi.wasmtime_config_memory_guard_size_set(config.ptr(), 0)
    ffi.wasmtime_config_memory_reservation_for_growth_set(config.ptr(), 0)
    ffi.wasmtime_config_memory_may_move_set(config.ptr(), False)
    # Data segments are copied at instantiation (no copy-on-write image: that would map the
    # image's pages over the arena, a mapping per process).
    ffi.wasmtime_config_memory_init_cow_set(config.ptr(), False)
    arenas.install(config)
    return wasmtime.Engine(config)


def _functype(params: str, results: str) -> wasmtime.FuncType:
    return wasmtime.FuncType([_VALTYPE[c]() for c in params], [_VALTYPE[c]() for c in results])


class Linker:
    """A wasmtime linker whose host functions are plain Python callables.

    ``define`` registers a function that completes at once; ``define_async`` one that may
    return :data:`PENDING` (or a :class:`Nested` call) to suspend the calling fiber.
    ``on_suspend(results, kind, nested, trap_out) -> key`` is called when a process suspends
    (``results`` and ``trap_out`` are addresses, for :func:`write_result` and :func:`set_trap`), and
    ``poll_resume(key) -> bool`` each time wasmtime polls that suspended call: it writes the
    result and returns True once the process may go on. Each Python host function is called
    through a C trampoline (lunatic_mp/vm/pyhost.c), not a ctypes callback.
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        on_suspend: Callable[[int, int, Call | None, int], int],
        poll_resume: Callable[[int], bool],
        on_host_error: Callable[[BaseException], None],
    ) -> None:
        self.engine = engine
        self.linker = wasmtime.Linker(engine)
        self._keep: list[Any] = []
        self._wasi = False
        self._definitions: list[tuple[str, str, str, str, tuple[Any, ...], bool, bool]] = []
        self._others: list[wasmtime.Linker] = []
        """Linkers of other engines (the fuel-metering one) with the same definitions."""
        self._native: list[Callable[[Any], Any]] = []
        """Definers of C host functions (:mod:`.core`), given a linker pointer."""
        self.native_signatures: list[tuple[str, str, str, str]] = []
        """(namespace, name, params, results) of each C host function, as :meth:`define` takes."""
        self._on_suspend = on_suspend
        self._poll_resume = poll_resume
        self._on_host_error = on_host_error
        self.on_host_error = on_host_error
        """Where a host function (Python or C) reports an exception that is the host's fault."""

    def close(self) -> None:
        """Drop the wasmtime linker and engine now; the callbacks refer back to this object,
        so leaving it to the cyclic garbage collector would hold the engine and its arenas for long."""
        self._keep.clear()
        self._definitions.clear()
        self._native.clear()
        self._others.clear()
        self.linker = None  # type: ignore[assignment]
        self.engine = None  # type: ignore[assignment]

    def define_wasi(self) -> None:
        """WASI from wasmtime; the functions that would block the worker's thread are defined
        again afterwards (:mod:`lunatic_mp.vm.host.wasi`), which needs shadowing allowed."""
        self.linker.define_wasi()
        self.linker.allow_shadowing = True
        self._wasi = True

    def for_engine(self, engine: wasmtime.Engine) -> wasmtime.Linker:
        """A linker of another engine with every host function defined here, now and later
        (the same callbacks: a host function does not depend on the engine that calls it)."""
        linker = wasmtime.Linker(engine)
        if self._wasi:
            linker.define_wasi()
            linker.allow_shadowing = True
        for definition in self._definitions:
            self._keep.append(_define_on(linker, *definition))
        for define_native in self._native:
            define_native(linker.ptr())
        self._others.append(linker)
        return linker

    def define_native(self, define: Callable[[Any], tuple[tuple[str, str, str, str], ...]]) -> None:
        """Define host functions written in C: ``define(linker pointer)`` defines them on this
        engine's linker, and on the others' (:meth:`for_engine`), and returns their signatures."""
        self.native_signatures.extend(define(self.linker.ptr()))
        for linker in self._others:
            define(linker.ptr())
        self._native.append(define)

    def define(self, namespace: str, name: str, params: str, results: str, fn: Callable[..., Any]) -> None:
        """Define a host function that never suspends (the cheap path: under a microsecond)."""
        self._define(namespace, name, params, results, fn, is_async=False, with_caller=False)

    def define_async(
        self,
        namespace: str,
        name: str,
        params: str,
        results: str,
        fn: Callable[..., Any],
        *,
        with_caller: bool = False,
    ) -> None:
        """Define a host function that may return :data:`PENDING` to suspend the process.

        With ``with_caller`` the function gets the caller's address first (to call back into Wasm).
        """
        self._define(namespace, name, params, results, fn, is_async=True, with_caller=with_caller)

    def _define(
        self, namespace: str, name: str, params: str, results: str, fn: Callable[..., Any], *, is_async: bool,
        with_caller: bool,
    ) -> None:  # fmt: skip
        """Behind a C trampoline (lunatic_mp/vm/pyhost.c), on this linker and the others."""
        refs = (fn, GuestTrap, self._on_host_error, PENDING, Nested, self._on_suspend, self._poll_resume)
        definition = (namespace, name, params, results, refs, is_async, with_caller)
        for linker in (self.linker, *self._others):
            self._keep.append(_define_on(linker, *definition))
        self._definitions.append(definition)

    def instantiate_pre(self, module: wasmtime.Module) -> wasmtime.InstancePre:
        return self.linker.instantiate_pre(module)


def _define_on(
    linker: wasmtime.Linker, namespace: str, name: str, params: str, results: str, refs: tuple[Any, ...],
    is_async: bool, with_caller: bool,
) -> tuple[Any, tuple[Any, ...]]:  # fmt: skip
    """Define a Python host function on ``linker``; what must outlive the definition (its C state
    and the objects it borrows)."""
    capsule = core.define_python(linker.ptr(), namespace, name, params, results, refs, is_async, with_caller)
    return capsule, refs


def write_result(out: int, kind: int, value: int | float) -> None:
    """Write a suspended host call's result (at the address ``on_suspend`` got), just before its
    process resumes."""
    core.write_result(out, kind, value)


def set_trap(trap_out: int, message: str) -> None:
    """Make a suspended host call trap when it resumes (at the address ``on_suspend`` got)."""
    core.set_trap(trap_out, message)


Call = core.Call
"""One in-flight async call (an instantiation, an export or a function) and what it writes into:
a C object (lunatic_mp/vm/calls.c) that frees its future, values and failure with itself."""


def instantiate(
    pre: wasmtime.InstancePre, store: Store, name: bytes, args: Sequence[tuple[int, Any]], nresults: int
) -> Call:
    """Start instantiating in ``store``; the finished call holds the instance. Once it finishes
    without failing, the scheduler's resume loop goes straight on into calling the export ``name``
    with ``args`` (C, lunatic_mp/vm/runner.c); an instance without that export fails it."""
    return core.instantiate(pre.ptr(), store.context_address, name, args, nresults)


def export_memory(store: Store, call: Call) -> Any | None:
    """The exported ``memory`` of the instance ``call`` made (an instantiation) or runs in (the
    export a process runs), if any."""
    instance = ffi.wasmtime_instance_t.from_buffer_copy(call.instance)
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_instance_export_get(
        store_context(store), ctypes.byref(instance), b"memory", 6, ctypes.byref(item)
    ):
        return None
    return item.of.memory if int(item.kind) == _EXTERN_MEMORY else None  # type: ignore[call-overload]


def caller_at(address: int) -> Any:
    """A caller that a C host function handed over by address (valid only during its call)."""
    return ctypes.cast(address, ctypes.POINTER(ffi.wasmtime_caller_t))


def caller_memory(caller: int) -> Any | None:
    """The exported ``memory`` of the caller at ``caller`` (an address; 0: none): how host calls
    reach memory before instantiation ends."""
    if not caller:
        return None
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_caller_export_get(caller_at(caller), b"memory", 6, ctypes.byref(item)):
        return None
    return item.of.memory if int(item.kind) == _EXTERN_MEMORY else None  # type: ignore[call-overload]


def caller_export_func(caller: int, name: bytes) -> Any | None:
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_caller_export_get(caller_at(caller), name, len(name), ctypes.byref(item)):
        return None
    return item.of.func if int(item.kind) == _EXTERN_FUNC else None  # type: ignore[call-overload]


def call_async(context: Context, func: Any, args: list[tuple[int, Any]], nresults: int) -> Call:
    """Start calling ``func`` (a ``wasmtime_func_t``); ``args`` are (kind, value) pairs, v128
    values as 16 bytes."""
    return core.call_function(context, func, args, nresults)


def poll(call: Call) -> bool:
    """Run the call's fiber until it finishes (True), suspends or yields (False)."""
    return call.poll()


def finish(call: Call) -> None:
    """Free the future; safe on a call that never finished (the fiber is unwound)."""
    call.finish()


def result_value(call: Call, index: int = 0) -> int | float | bytes | None:
    """A finished call's result: a number, 16 bytes for a v128, None for a reference."""
    return call.result(index)


@dataclass(frozen=True, slots=True)
class Failure:
    """How a call failed: a trap or error message, the guest backtrace, or a WASI exit code."""

    message: str
    backtrace: tuple[str, ...] = ()
    exit_code: int | None = None
    out_of_fuel: bool = False


def take_failure(call: Call) -> Failure | None:
    """The call's trap or error, if any (ownership moves to the returned Python objects)."""
    if not call.failed:
        return None
    error = call.take_error()
    if error:
        pointer = ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t))
        status = ctypes.c_int()
        if ffi.wasmtime_error_exit_status(pointer, ctypes.byref(status)):
            ffi.wasmtime_error_delete(pointer)
            return Failure(f"exited with code {status.value}", exit_code=status.value)
        return Failure(_reason(str(wasmtime.WasmtimeError._from_ptr(pointer))))
    trap = wasmtime.Trap._from_ptr(ctypes.cast(call.take_trap(), ctypes.POINTER(ffi.wasm_trap_t)))
    code = trap.trap_code
    frames = tuple(
        f"{frame.module_name or '<module>'}!{frame.func_name or f'<func {frame.func_index}>'}"
        for frame in trap.frames
    )
    return Failure(_reason(trap.message), frames, out_of_fuel=code == wasmtime.TrapCode.OUT_OF_FUEL)


def _reason(text: str) -> str:
    """The cause in a wasmtime error text, without the backtrace wasmtime puts first."""
    lines = [line.strip() for line in text.strip().splitlines()]
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1 :]
        causes = [line.split(":", 1)[1].strip() if line[:1].isdigit() else line for line in after if line]
        return ": ".join(causes) or "trap"
    return lines[0] if lines else "trap"


# --- memory -------------------------------------------------------------------------------------


class Memory:
    """Bounds-checked access to a process's exported linear memory.

    The engine's arenas never move a memory (``memory_may_move`` is off), so the base address is
    read once, and the memory is reached through a memoryview of it (slices and ``pack_into``: a
    fraction of what ``ctypes.string_at`` and ``memmove`` cost a host call); the size, and the
    view with it, are re-read only when an access falls past the size last seen, since the guest
    may have grown its memory since.
    """

    __slots__ = ("_base", "_context", "_memory", "_size", "_view")

    def __init__(self, context: Context, memory: Any) -> None:
        self._context = context
        self._memory = ctypes.byref(memory)
        self._base: int = (
            ctypes.cast(ffi.wasmtime_memory_data(context, self._memory), ctypes.c_void_p).value or 0
        )
        self._size = 0
        self._view = memoryview(b"")
        self._refresh()

    def _refresh(self) -> None:
        size = ffi.wasmtime_memory_data_size(self._context, self._memory)
        if size != self._size:
            self._size = size
            self._view = _memory_view(self._base, size) if size else memoryview(b"")

    def _span(self, ptr: int, length: int) -> int:
        """The offset of [ptr, ptr+length) once checked; a guest trap past the memory."""
        ptr &= U32_MASK
        end = ptr + (length & U32_MASK)
        if end > self._size:
            self._refresh()
            if end > self._size:
                raise GuestTrap(
                    f"out-of-bounds pointer: {ptr}+{length & U32_MASK} exceeds memory size {self._size}"
                )
        return ptr

    @property
    def size(self) -> int:
        """The memory's size now, in bytes."""
        self._refresh()
        return self._size

    def check(self, ptr: int, length: int) -> None:
        """Trap now if [ptr, ptr+length) is out of bounds (before a process suspends)."""
        self._span(ptr, length)

    def read(self, ptr: int, length: int) -> bytes:
        start = self._span(ptr, length)
        return self._view[start : start + (length & U32_MASK)].tobytes()

    def read_str(self, ptr: int, length: int) -> str:
        try:
            return self.read(ptr, length).decode()
        except UnicodeDecodeError as exc:
            raise GuestTrap(f"invalid UTF-8 string passed to the host: {exc}") from None

    def write(self, ptr: int, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, memoryview):
            data = data.tobytes()  # any format, any shape: its bytes
        start = self._span(ptr, len(data))
        self._view[start : start + len(data)] = data

    def write_u64(self, ptr: int, value: int) -> None:
        at = self._span(ptr, 8)  # first: it may replace the view
        _U64.pack_into(self._view, at, value & 0xFFFF_FFFF_FFFF_FFFF)

    def write_u32(self, ptr: int, value: int) -> None:
        at = self._span(ptr, 4)
        _U32.pack_into(self._view, at, value & U32_MASK)

    def read_into(self, ptr: int, source: bytes, start: int, length: int) -> int:
        """Copy up to ``length`` bytes of ``source[start:]`` to guest memory; return the count."""
        count = max(min(length, len(source) - start), 0)
        if count:
            at = self._span(ptr, count)
            self._view[at : at + count] = memoryview(source)[start : start + count]
        return count


_U64: Final = struct.Struct("<Q")
_U32: Final = struct.Struct("<I")
_PyBUF_WRITE: Final = 0x200
_memory_view_from = ctypes.pythonapi.PyMemoryView_FromMemory
_memory_view_from.restype = ctypes.py_object
_memory_view_from.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)


def _memory_view(address: int, size: int) -> memoryview:
    """A writable view of ``size`` bytes at ``address`` (bytes, format "B")."""
    view: memoryview = _memory_view_from(address, size, _PyBUF_WRITE)
    return view


# --- stores -------------------------------------------------------------------------------------


Store = core.Store
"""A process's store (lunatic_mp/vm/store.c): ``Store(engine, owner, fuel, max_memory)``, where
engine is the address of a wasmtime engine (``wasmtime.Engine.ptr()``), owner the process (its
C state, the store's data, holds it and its pid), fuel -1 for none (else an engine made with
``fuel=True``: a guest traps "out of fuel" past that budget) and max_memory a limit (0: none).
Its guests yield at the end of each time slice (the C core's epoch deadline callback).
``close()`` frees it at once (a process's memory slot and fiber stack go back to its arenas); it
must not be used after, and never while one of its calls is being polled. ``yield_soon()``,
``wake(value)``, ``set_wasi(*Wasi.settings)``, ``context_address`` and ``state`` (the address of
the process's C state, which :mod:`.core`'s functions on a store take). A C type: a spawn makes
and frees one without a Python frame."""


def new_store(engine: wasmtime.Engine, *, fuel: int | None, max_memory: int, owner: object) -> Store:
    """A store of ``engine`` for ``owner``; wasmtime's refusal as a WasmtimeError."""
    try:
        return Store(engine.ptr(), owner, -1 if fuel is None else fuel, max_memory)
    except RuntimeError as exc:
        raise wasmtime.WasmtimeError(str(exc)) from None


def store_context(store: Store) -> Context:
    """The store's context as a ctypes pointer, for the host functions' raw calls."""
    return ctypes.cast(store.context_address, ctypes.POINTER(ffi.wasmtime_context_t))


def _array_address(strings: list[str], keep: list[Any]) -> int:
    """The address of a ``char **`` of the strings (0 for none); ``keep`` holds what it points
    into for as long as it is used."""
    array = (ctypes.c_char_p * len(strings))(*(text.encode() for text in strings))
    keep.append(array)
    return ctypes.addressof(array) if strings else 0


class Wasi:
    """A process's WASI settings (arguments, environment, preopened directories; stdout and
    stderr inherited), encoded once: a spawn hands them to one C call (``Store.set_wasi``),
    where wasmtime's WasiConfig re-encodes every string (about 10 µs a spawn) and raw ctypes calls
    cost about 3 µs. Immutable, so the engine caches one per distinct setting."""

    __slots__ = ("_keep", "settings")

    def __init__(
        self, argv: tuple[str, ...], env: tuple[tuple[str, str], ...], preopens: tuple[tuple[str, str], ...]
    ) -> None:
        self._keep: list[Any] = []  # the string arrays the addresses below point into
        self.settings = (
            len(argv),
            _array_address(list(argv), self._keep),
            len(env),
            _array_address([name for name, _ in env], self._keep),
            _array_address([value for _, value in env], self._keep),
            tuple((host.encode(), guest.encode()) for host, guest in preopens),
        )
        """The arguments of ``Store.set_wasi``."""


def caller_context(caller: int) -> Context:
    return ffi.wasmtime_caller_context(caller_at(caller))
