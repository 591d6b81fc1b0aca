"""Compiled Wasm modules, checked once at load so that spawning them is cheap and safe."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime

from lunatic_mp.errors import ModuleError
from lunatic_mp.vm.binary import export_signatures

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
    binary: bytes = field(repr=False)
    digest: bytes = field(repr=False)
    instance_pre: wasmtime.InstancePre | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        engine: wasmtime.Engine,
        source: str | bytes | Path,
        name: str | None = None,
        *,
        require_memory: bool = True,
    ) -> Module:
        """Compile from a path (.wasm or .wat), Wasm bytes, or WAT text. Guests must export
        their memory; plugins (``require_memory=False``) need not."""
        label = name or "<module>"
        where = label  # what errors name: a file by its path as given
        try:
            if isinstance(source, Path) or (isinstance(source, str) and _looks_like_path(source)):
                path = Path(source)
                label, where = name or path.name, str(path)
                raw = path.read_bytes()
                if path.suffix == ".wasm":
                    _check_binary(raw, where)
                data: str | bytes = raw
            elif isinstance(source, str):
                data = source
            elif isinstance(source, bytes | bytearray | memoryview):
                data = bytes(source)
                if not data.lstrip().startswith((b"(", b";;")):  # WAT text as bytes is fine
                    _check_binary(data, where)
            else:
                raise ModuleError(f"a module is a path, Wasm bytes or WAT text, not {type(source).__name__}")
            binary = bytes(wasmtime.wat2wasm(data)) if _is_text(data) else data
            assert isinstance(binary, bytes)
            compiled = wasmtime.Module(engine, binary)
        except OSError as exc:
            raise ModuleError(f"cannot read module {where}: {exc.strerror or exc}") from None
        except (wasmtime.WasmtimeError, ValueError) as exc:
            raise ModuleError(f"{where} is not a valid Wasm module: {_error_text(exc)}") from None
        return cls.inspect(engine, compiled, binary, label, require_memory=require_memory)

    @classmethod
    def inspect(
        cls,
        engine: wasmtime.Engine,
        compiled: wasmtime.Module,
        binary: bytes,
        name: str,
        *,
        require_memory: bool = True,
    ) -> Module:
        exports = export_signatures(binary)
        has_memory = any(
            export.name == "memory" and isinstance(export.type, wasmtime.MemoryType)
            for export in compiled.exports
        )
        if require_memory and not has_memory:
            raise ModuleError(f"{name} does not export a memory named `memory`, as guests must")
        namespaces = {
            imp.module[len(LUNATIC_PREFIX) :]
            for imp in compiled.imports
            if imp.module.startswith(LUNATIC_PREFIX)
        }
        uses_wasi = any(imp.module == WASI_MODULE for imp in compiled.imports)
        if uses_wasi:
            namespaces.add("wasi")
        digest = hashlib.sha256(binary).digest()
        return cls(compiled, engine, name, exports, frozenset(namespaces), uses_wasi, binary, digest)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled by digest (into a native process's closure): a worker finds it in the
        runtime's module cache, where :meth:`Runtime.load_module` put it."""
        return (_find_module, (self.digest, self.name))


_finder: Callable[[bytes], Module] | None = None


@contextlib.contextmanager
def resolving(find: Callable[[bytes], Module]) -> Iterator[None]:
    """Unpickle modules with ``find(digest)`` meanwhile (a worker loading a native process)."""
    global _finder  # noqa: PLW0603 - unpickling offers no other way to pass it
    previous, _finder = _finder, find
    try:
        yield
    finally:
        _finder = previous


def _find_module(digest: bytes, name: str) -> Module:
    if _finder is None:
        raise ModuleError(
            f"module {name} can only be unpickled inside a lunatic_mp worker (it travels by digest)"
        )
    return _finder(digest)


def _error_text(exc: Exception) -> str:
    """wasmtime's message on one line with its causes ("failed to parse WebAssembly module:
    unexpected end-of-file (at offset 0x9)"), or with where in WAT text it failed: its first
    line alone rarely says what is wrong."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "Caused by:" in lines:
        causes = lines[lines.index("Caused by:") + 1 :]
        causes = [c.split(":", 1)[1] if c[:1].isdigit() and ":" in c else c for c in causes]
        return ": ".join(" ".join(part.split()) for part in [lines[0], *causes])
    if len(lines) > 1 and lines[1].startswith("--> "):
        return f"{lines[0]} (at {lines[1][4:]})"
    return lines[0]


def _is_text(data: str | bytes) -> bool:
    """WAT rather than a binary module (which starts with the magic ``\\0asm``)."""
    return isinstance(data, str) or bytes(data[:4]) != b"\x00asm"


def _check_binary(data: bytes, where: str) -> None:
    """A .wasm file or bytes must be a Wasm binary: say so, rather than parse them as WAT text."""
    if data[:4] != b"\x00asm":
        raise ModuleError(
            f"{where} is not a valid Wasm module: a Wasm binary starts with \\0asm, this starts with "
            f"{data[:8]!r} (WAT text goes in a .wat file, or as str)"
        )


def _looks_like_path(text: str) -> bool:
    stripped = text.lstrip()
    return not stripped.startswith("(") and len(text) < 4096 and "\n" not in text


class ModuleCache:
    """Compiled modules shared between the processes of a runtime, by content digest.

    A module is compiled once; its binary (for its export signatures) and its serialized
    artifact go into this directory, and other workers deserialize the artifact, which is
    memory-mapped and takes well under a millisecond where compiling can take hundreds
    (DESIGN.md). Artifacts only load into an engine configured like the one that made them:
    every worker of a runtime uses the same settings.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _paths(self, digest: bytes) -> tuple[Path, Path, Path]:
        stem = self.directory / digest.hex()
        return stem.with_suffix(".wasm"), stem.with_suffix(".cwasm"), stem.with_suffix(".name")

    def store(self, module: Module) -> bytes:
        """Make ``module`` loadable from the cache (once per digest); its digest.

        Its name goes along, so that other workers report it by the name it was loaded under
        (in errors, backtraces and ``lunatic-mp ps``); the first name stored for a digest wins.
        """
        binary_path, artifact_path, name_path = self._paths(module.digest)
        if not artifact_path.exists():
            _write_atomically(binary_path, module.binary)
            _write_atomically(name_path, module.name.encode())
            _write_atomically(artifact_path, bytes(module.compiled.serialize()))
        return module.digest

    def binary(self, digest: bytes) -> tuple[str, bytes] | None:
        """The name and Wasm binary of a module in the cache (None: not there)."""
        binary_path, _, name_path = self._paths(digest)
        try:
            binary = binary_path.read_bytes()
        except OSError:
            return None
        try:
            return name_path.read_text(errors="replace"), binary
        except OSError:
            return f"module {digest.hex()[:12]}", binary

    def load(self, engine: wasmtime.Engine, digest: bytes, name: str | None = None) -> Module:
        binary_path, artifact_path, name_path = self._paths(digest)
        try:
            compiled = wasmtime.Module.deserialize_file(engine, str(artifact_path))
            binary = binary_path.read_bytes()
        except (OSError, wasmtime.WasmtimeError) as exc:
            raise ModuleError(
                f"module {digest.hex()[:12]} is not in the runtime's module cache: {exc}"
            ) from None
        if name is None:
            try:
                name = name_path.read_text(errors="replace")
            except OSError:
                name = f"module {digest.hex()[:12]}"
        return Module.inspect(engine, compiled, binary, name)


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers never see a partial file: write aside, then rename into place."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
