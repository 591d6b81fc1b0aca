"""Plugins: host namespaces beyond lunatic's own, written in Wasm or in Python.

A plugin named ``hash`` adds the host namespace ``lunatic::hash``: guests import its functions
from that module name, and an environment grants it like any namespace
(``runtime.environment(config, plugins=["hash"])`` adds it to ``allowed_namespaces``; a module
importing a namespace its environment does not allow is refused at spawn).

- A :class:`WasmPlugin` is a Wasm module whose exported functions (numbers in, at most one
  number out) become the namespace's functions. Each process that calls the plugin gets an
  instance of its own, made at its first call, in a store of its own: plugin state is per
  process, as if the plugin were linked into it, and dies with it. A call runs to completion
  on a budget of :data:`PLUGIN_CALL_FUEL` instructions; a trap (or an exhausted budget) traps
  the calling guest.
- A :class:`PythonPlugin` is a ``register(namespace)`` function that defines host functions
  written in Python with :meth:`Namespace.function`. Installed packages offer them through the
  ``lunatic_mp.vm.plugins`` entry-point group (the entry point's name is the plugin's name, its
  object the register function); :func:`discover` finds them, and a :class:`Runtime` loads
  them into every worker at start.

Plugins belong to the runtime (every worker defines them before it links any module, so a
module that imports a plugin links wherever it runs); environments only grant them.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wasmtime

from lunatic_mp.config import ALL_NAMESPACES
from lunatic_mp.errors import PluginError
from lunatic_mp.vm.binary import export_signatures
from lunatic_mp.vm.host._common import current, memory_of
from lunatic_mp.vm.module import LUNATIC_PREFIX, Module
from lunatic_mp.vm.wasm import GuestTrap

if TYPE_CHECKING:
    from lunatic_mp.vm.host._common import HostEngine
    from lunatic_mp.vm.process import Process

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lunatic_mp.plugins"
PLUGIN_CALL_FUEL = 1_000_000_000
"""Instructions one call into a Wasm plugin may run before it traps."""

RESERVED_NAMES = ALL_NAMESPACES | {"sqlite", "plugin"}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_NUMBER_TYPES = frozenset("iIfF")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise PluginError(
            f"plugin name {name!r} must be lowercase letters, digits and _, starting with a letter"
        )
    if name in RESERVED_NAMES:
        raise PluginError(f"plugin name {name!r} is taken by a lunatic namespace; choose another")
    return name


@dataclass(frozen=True)
class WasmPlugin:
    """A Wasm module whose exports become the host namespace ``lunatic::<name>``.

    ``source`` is a path, Wasm bytes or WAT text. The module may not import anything.
    """

    name: str
    source: str | bytes | Path = field(repr=False)

    def __post_init__(self) -> None:
        check_name(self.name)


@dataclass(frozen=True)
class PythonPlugin:
    """Host functions written in Python: ``register(namespace)`` defines them."""

    name: str
    register: Callable[[Namespace], None] = field(repr=False)

    def __post_init__(self) -> None:
        check_name(self.name)
        if not callable(self.register):
            raise PluginError(f"plugin {self.name}: register must be callable, got {self.register!r}")


Plugin = WasmPlugin | PythonPlugin


def discover() -> list[PythonPlugin]:
    """The Python plugins that installed packages offer (the ``lunatic_mp.vm.plugins`` entry points).

    A plugin that fails to load is left out with a logged error: one broken package must not
    stop the runtime.
    """
    plugins: list[PythonPlugin] = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugins.append(PythonPlugin(entry.name, entry.load()))
        except Exception as exc:  # noqa: BLE001 - a broken package: report it, go on
            log.error("plugin %r (%s) cannot be loaded: %s", entry.name, entry.value, exc)
    return plugins


def check_unique(plugins: Iterable[Plugin]) -> list[Plugin]:
    plugins = list(plugins)
    for plugin in plugins:
        if not isinstance(plugin, WasmPlugin | PythonPlugin):
            raise PluginError(f"a plugin is a WasmPlugin or a PythonPlugin, got {plugin!r}")
    names = [plugin.name for plugin in plugins]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PluginError(f"two plugins are named {', '.join(duplicates)}")
    return plugins


class Call:
    """What a Python plugin function gets first: the calling process and its memory."""

    __slots__ = ("_engine", "_process")

    def __init__(self, engine: HostEngine, process: Process) -> None:
        self._engine = engine
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    def read(self, ptr: int, length: int) -> bytes:
        """Bytes of the calling guest's memory (a bad range traps the guest)."""
        return memory_of(self._process, self._engine).read(ptr, length)

    def read_str(self, ptr: int, length: int) -> str:
        return memory_of(self._process, self._engine).read_str(ptr, length)

    def write(self, ptr: int, data: bytes) -> None:
        """Write into the calling guest's memory (a bad range traps the guest)."""
        memory_of(self._process, self._engine).write(ptr, data)


class Namespace:
    """Where a Python plugin's ``register`` defines its host functions."""

    def __init__(self, engine: HostEngine, name: str) -> None:
        self._engine = engine
        self.name = name
        self.module = LUNATIC_PREFIX + name
        self.functions: list[str] = []

    def function(
        self, name: str, params: str = "", results: str = ""
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Define ``lunatic::<plugin>::<name>``: ``fn(call, *params)``. ``params`` and ``results``
        spell the Wasm types, one letter each: ``i`` i32, ``I`` i64, ``f`` f32, ``F`` f64 (at
        most one result). An exception in ``fn`` traps the calling guest with its message."""
        if set(params) - _NUMBER_TYPES or set(results) - _NUMBER_TYPES or len(results) > 1:
            raise PluginError(
                f"{self.module}::{name}: params and results are letters of 'iIfF', one result at most"
            )
        engine = self._engine
        where = f"{self.module}::{name}"

        def define(fn: Callable[..., Any]) -> Callable[..., Any]:
            def host_function(*args: Any) -> Any:
                call = Call(engine, current(engine))
                try:
                    return fn(call, *args)
                except GuestTrap:
                    raise
                except Exception as exc:  # noqa: BLE001 - the plugin's failure traps the guest
                    raise GuestTrap(f"{where} failed: {type(exc).__name__}: {exc}") from None

            engine.linker.define(self.module, name, params, results, host_function)
            self.functions.append(name)
            return fn

        return define


class _WasmPluginCode:
    """A Wasm plugin compiled for one engine: instantiated per process on first use."""

    def __init__(self, plugin: WasmPlugin) -> None:
        self.name = plugin.name
        config = wasmtime.Config()
        config.consume_fuel = True
        self.engine = wasmtime.Engine(config)
        try:
            module = Module.load(self.engine, plugin.source, f"plugin {plugin.name}", require_memory=False)
        except Exception as exc:  # noqa: BLE001 - ModuleError, and wasmtime's own errors
            raise PluginError(f"plugin {plugin.name}: {exc}") from None
        if list(module.compiled.imports):
            raise PluginError(f"plugin {plugin.name} imports functions; a plugin module may import nothing")
        self.module = module
        self.exports: dict[str, tuple[str, str]] = {}
        for export, (params, results) in export_signatures(module.binary).items():
            if set(params) - _NUMBER_TYPES or set(results) - _NUMBER_TYPES or len(results) > 1:
                log.warning(
                    "plugin %s: export %s is not numbers in, one number out: left out", self.name, export
                )
                continue
            self.exports[export] = (params, results)
        if not self.exports:
            raise PluginError(f"plugin {plugin.name} exports no function of numbers to at most one number")

    def instance(self, process: Process) -> tuple[wasmtime.Store, Any]:
        """The calling process's instance of the plugin, made on its first call."""
        instances = process.resources.plugins
        found = instances.get(self.name)
        if found is None:
            store = wasmtime.Store(self.engine)
            store.set_fuel(PLUGIN_CALL_FUEL)
            try:
                instance = wasmtime.Instance(store, self.module.compiled, [])
            except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
                raise GuestTrap(f"plugin {self.name} failed to start: {_first_line(exc)}") from None
            found = instances[self.name] = (store, instance.exports(store))
        return found


def _first_line(exc: BaseException) -> str:
    """The cause of a wasmtime error, without its backtrace: ``wasm `unreachable` ...``."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if "Caused by:" in lines and lines[-1] != "Caused by:":
        return lines[-1].removeprefix("wasm trap: ")
    return lines[0] if lines else type(exc).__name__


def install(engine: HostEngine, plugins: Iterable[Plugin]) -> list[str]:
    """Define every plugin's functions on the engine's linker; the namespaces added."""
    names = []
    for plugin in check_unique(plugins):
        if isinstance(plugin, WasmPlugin):
            _install_wasm(engine, _WasmPluginCode(plugin))
        else:
            namespace = Namespace(engine, plugin.name)
            try:
                plugin.register(namespace)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {plugin.name} failed to register: {exc}") from exc
        names.append(plugin.name)
    return names


def _install_wasm(engine: HostEngine, code: _WasmPluginCode) -> None:
    namespace = LUNATIC_PREFIX + code.name
    for export, (params, results) in code.exports.items():
        where = f"{namespace}::{export}"

        def call_plugin(*args: Any, export: str = export, where: str = where) -> Any:
            store, exports = code.instance(current(engine))
            store.set_fuel(PLUGIN_CALL_FUEL)
            try:
                return exports[export](store, *args)
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                raise GuestTrap(f"{where} trapped: {_first_line(exc)}") from None

        engine.linker.define(namespace, export, params, results, call_plugin)


__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_CALL_FUEL",
    "Call",
    "Namespace",
    "Plugin",
    "PythonPlugin",
    "WasmPlugin",
    "discover",
    "install",
]
