"""The C core (``lunatic_mp.vm._core``), bound to the wasmtime library wasmtime-py loaded.

The extension does not link against wasmtime: it is handed the dlopen handle of the
``_libwasmtime.so`` inside the wasmtime wheel (the one ``wasmtime._ffi`` loaded), and resolves the
functions ``wasmtime_api.h`` declares from it. Both sides then share one library: engines, stores
and contexts cross from Python as integer addresses of wasmtime-py's ctypes objects.
"""

from __future__ import annotations

import ctypes
from typing import Any

from lunatic_mp.errors import NativeCoreError
from lunatic_mp.vm.extension import _core


def _library() -> tuple[int, str]:
    """The handle and path of the C library wasmtime-py loaded."""
    from wasmtime import _ffi

    dll: Any = _ffi.dll
    return int(dll._handle), str(getattr(_ffi, "filename", dll._name))


def load() -> None:
    """Resolve the core's wasmtime functions; naming every one the library lacks."""
    handle, path = _library()
    missing = _core.load(handle, path)
    if missing:
        raise NativeCoreError(
            f"the wasmtime library {path} lacks functions lunatic_mp's C core needs: {', '.join(missing)} "
            "(lunatic_mp is built for wasmtime 50)"
        )


def address(pointer: Any) -> int:
    """The address a ctypes pointer holds (0 for a null one)."""
    return ctypes.cast(pointer, ctypes.c_void_p).value or 0


load()

Ticker = _core.Ticker
Runner = _core.Runner
RunQueue = _core.RunQueue
Call = _core.Call
Store = _core.Store
instantiate = _core.instantiate
call_function = _core.call_function
define_message = _core.define_message
define_receive = _core.define_receive
define_net = _core.define_net
net_io = _core.net_io
net_ready = _core.net_ready
deliver_messages = _core.deliver_messages
encode_message = _core.encode_message
split_link_records = _core.split_link_records
batch_message = _core.batch_message
split_batch = _core.split_batch
hibernate_idle = _core.hibernate_idle
hibernation_stats = _core.hibernation_stats
waits_begun = _core.waits_begun
define_python = _core.define_python
caller = _core.caller
write_result = _core.write_result
set_trap = _core.set_trap
