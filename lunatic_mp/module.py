"""Compiled Wasm modules, checked once at load so that spawning them is cheap and safe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from lunatic_mp.binary import export_signatures
from lunatic_mp.errors import ModuleError

LUNATIC_PREFIX = "lunatic::"
WASI_MODULE = "wasi_snapshot_preview1"


@dataclass(eq=False)
class Module:
    """A compiled module, its exported function signatures and the host namespaces it imports."""

    compiled: wasmtime.Module
    engine: wasmtime.Engine
    name: str
    exports: dict[str, tuple[str, str]]
    namespaces: frozenset[str]
    uses_wasi: bool
    instance_pre: wasmtime.InstancePre | None = field(default=None, repr=False)

    @classmethod
    def load(cls, engine: wasmtime.Engine, source: str | bytes | Path, name: str | None = None) -> Module:
        """Compile from a path (.wasm or .wat), Wasm bytes, or WAT text."""
        label = name or "<module>"
        try:
            if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
                path = Path(source)
                label = name or path.name
                data: str | bytes = path.read_bytes()
            else:
                data = source if isinstance(source, str) else bytes(source)
            binary = bytes(wasmtime.wat2wasm(data)) if _is_text(data) else data
            assert isinstance(binary, bytes)
            compiled = wasmtime.Module(engine, binary)
        except OSError as exc:
            raise ModuleError(f"cannot read module {label}: {exc.strerror or exc}") from None
        except (wasmtime.WasmtimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModuleError(f"{label} is not a valid Wasm module: {first}") from None
        return cls.inspect(engine, compiled, binary, label)

    @classmethod
    def inspect(cls, engine: wasmtime.Engine, compiled: wasmtime.Module, binary: bytes, name: str) -> Module:
        exports = export_signatures(binary)
        has_memory = any(
            export.name == "memory" and isinstance(export.type, wasmtime.MemoryType)
            for export in compiled.exports
        )
        if not has_memory:
            raise ModuleError(f"{name} does not export a memory named `memory`, as guests must")
        namespaces = {
            imp.module[len(LUNATIC_PREFIX) :]
            for imp in compiled.imports
            if imp.module.startswith(LUNATIC_PREFIX)
        }
        uses_wasi = any(imp.module == WASI_MODULE for imp in compiled.imports)
        if uses_wasi:
            namespaces.add("wasi")
        return cls(compiled, engine, name, exports, frozenset(namespaces), uses_wasi)


def _is_text(data: str | bytes) -> bool:
    """WAT rather than a binary module (which starts with the magic ``\\0asm``)."""
    return isinstance(data, str) or bytes(data[:4]) != b"\x00asm"


def _looks_like_path(text: str) -> bool:
    stripped = text.lstrip()
    return not stripped.startswith("(") and len(text) < 4096 and "\n" not in text
