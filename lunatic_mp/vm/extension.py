"""The C extension (``lunatic_mp.vm._core``), with a clear error where it was never built.

Importing it loads no wasmtime: :mod:`lunatic_mp.vm.core` binds it to wasmtime's library, and
:mod:`lunatic_mp.vm.mailbox` takes its message types, which need none.
"""

from __future__ import annotations

from lunatic_mp.errors import NativeCoreError

try:
    from lunatic_mp.vm import _core
except ImportError as exc:  # pragma: no cover - a checkout whose extension was never built
    raise NativeCoreError(
        f"lunatic_mp's C core is not built ({exc}): run `pip install -e .` "
        "(it needs a C compiler and Python's headers)"
    ) from None

__all__ = ["_core"]
