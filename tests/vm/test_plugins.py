"""Plugins (lunatic_mp.vm.plugins): Wasm plugin modules and Python plugins as host namespaces,
granted per environment; Python plugins found through the ``lunatic_mp.plugins`` entry points."""

from __future__ import annotations

import logging
import struct
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp import Engine, EnvConfig, Outcome, PermissionDenied, Runtime, examples
from lunatic_mp.errors import PluginError
from lunatic_mp.vm.plugins import Call, Namespace, PythonPlugin, WasmPlugin, discover

GUESTS = Path(__file__).parents[1] / "guests"
EXAMPLES = examples.DIRECTORY  # plugin_calc.wat and plugin_guest.wat, which the guide uses
TIMEOUT = 30


def register_greeter(namespace: Namespace) -> None:
    @namespace.function("greet", "ii", "i")
    def greet(call: Call, ptr: int, length: int) -> int:
        call.write(ptr, call.read(ptr, length).upper())
        return length


CALC = WasmPlugin("calc", EXAMPLES / "plugin_calc.wat")
GREETER = PythonPlugin("greeter", register_greeter)


def granted(*plugins: str) -> EnvConfig:
    return EnvConfig.permissive(allowed_namespaces=EnvConfig().allowed_namespaces | set(plugins))


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(plugins=[CALC, GREETER])
    yield engine
    engine.close()
    assert not engine.host_errors


def run(
    engine: Engine, guest: str, function: str, *params: object, config: EnvConfig | None = None
) -> object:
    module = engine.load_module(GUESTS / guest if (GUESTS / guest).exists() else EXAMPLES / guest)
    process = engine.spawn(module, function, params, config or granted("calc", "greeter"))
    finished = engine.run_until_finished(process, timeout=TIMEOUT)
    assert finished is not None
    return finished


def test_wasm_plugin_exports_are_host_functions(engine: Engine) -> None:
    assert engine.plugins == ["calc", "greeter"]
    assert run(engine, "plugin_guest.wat", "sum", 2, 40).result == (42,)  # type: ignore[attr-defined]
    assert run(engine, "plugin_guest.wat", "half", 5.0).result == (2.5,)  # type: ignore[attr-defined]


def test_each_process_has_its_own_plugin_instance(engine: Engine) -> None:
    assert run(engine, "plugin_guest.wat", "bumps").result == (3,)  # type: ignore[attr-defined]
    assert run(engine, "plugin_guest.wat", "bumps").result == (3,)  # type: ignore[attr-defined]


def test_a_trapping_plugin_traps_only_its_caller(engine: Engine) -> None:
    finished = run(engine, "plugin_guest.wat", "boom")
    assert finished.outcome is Outcome.FAILED  # type: ignore[attr-defined]
    assert finished.message == "lunatic::calc::boom trapped: wasm `unreachable` instruction executed"  # type: ignore[attr-defined]
    assert run(engine, "plugin_guest.wat", "sum", 1, 1).ok  # type: ignore[attr-defined]


def test_a_plugin_call_runs_on_a_fuel_budget(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lunatic_mp.vm.plugins.PLUGIN_CALL_FUEL", 100_000)
    finished = run(engine, "plugin_guest.wat", "spin")
    assert finished.message == "lunatic::calc::spin trapped: all fuel consumed by WebAssembly"  # type: ignore[attr-defined]


def test_python_plugins_read_and_write_guest_memory(engine: Engine) -> None:
    finished = run(engine, "plugin_greeter.wat", "shout")
    assert struct.pack("<q", finished.result[0]) == b"LUNATIC!"  # type: ignore[attr-defined]
    bad = run(engine, "plugin_greeter.wat", "out_of_bounds")
    assert bad.outcome is Outcome.FAILED and "out-of-bounds pointer" in bad.message  # type: ignore[attr-defined]


def test_a_failing_python_plugin_traps_its_caller() -> None:
    def register(namespace: Namespace) -> None:
        @namespace.function("greet", "ii", "i")
        def greet(call: Call, ptr: int, length: int) -> int:
            raise KeyError("no greeting today")

    engine = Engine(plugins=[PythonPlugin("greeter", register)])
    try:
        finished = run(engine, "plugin_greeter.wat", "shout", config=granted("greeter"))
        assert finished.message == "lunatic::greeter::greet failed: KeyError: 'no greeting today'"  # type: ignore[attr-defined]
        assert not engine.host_errors  # a plugin's failure is the guest's, not the host's
    finally:
        engine.close()


def test_environments_must_be_granted_a_plugin(engine: Engine) -> None:
    module = engine.load_module(EXAMPLES / "plugin_guest.wat")
    with pytest.raises(PermissionDenied, match="calc"):
        engine.spawn(module, "sum", (1, 2), EnvConfig.permissive())


def test_a_module_importing_a_missing_plugin_does_not_link() -> None:
    engine = Engine()
    try:
        with pytest.raises(Exception, match="lunatic::calc"):
            engine.load_module(EXAMPLES / "plugin_guest.wat")
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("plugins", "error"),
    [
        ([WasmPlugin("calc", '(module (import "x" "y" (func)) (func (export "f")))')], "may import nothing"),
        ([WasmPlugin("calc", '(module (memory (export "memory") 1))')], "exports no function"),
        ([WasmPlugin("calc", b"\x00asm garbage")], "not a valid Wasm module"),
        ([WasmPlugin("calc", "/no/such/plugin.wasm")], "cannot read module"),
        ([CALC, WasmPlugin("calc", EXAMPLES / "plugin_calc.wat")], "two plugins are named calc"),
        ([PythonPlugin("greeter", lambda namespace: 1 / 0)], "failed to register: division by zero"),
        (["not a plugin"], "a plugin is a WasmPlugin or a PythonPlugin"),
    ],
)
def test_broken_plugins_are_refused(plugins: list[object], error: str) -> None:
    with pytest.raises(PluginError, match=error):
        Engine(max_processes=1, plugins=plugins)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["process", "wasi", "Calc", "9lives", "has-dash", ""])
def test_plugin_names(name: str) -> None:
    with pytest.raises(PluginError):
        WasmPlugin(name, b"")


def test_bad_function_signatures_are_refused() -> None:
    def register(namespace: Namespace) -> None:
        namespace.function("f", "s", "i")

    with pytest.raises(PluginError, match="letters of 'iIfF'"):
        Engine(max_processes=1, plugins=[PythonPlugin("bad", register)])


def test_plugins_on_every_worker_of_a_runtime() -> None:
    with Runtime(workers=2, plugins=[CALC, GREETER], discover_plugins=False) as runtime:
        assert runtime.plugins == ("calc", "greeter")
        guest = runtime.load_module(EXAMPLES / "plugin_guest.wat")
        env = runtime.environment(EnvConfig.permissive(), plugins=["calc"])
        for worker in runtime.worker_ids:
            assert env.spawn(guest, "sum", [worker, 1], worker=worker).join(TIMEOUT).result == (worker + 1,)  # type: ignore[union-attr]
        plain = runtime.environment(EnvConfig.permissive())
        with pytest.raises(Exception, match="denies: calc"):
            plain.spawn(guest, "sum", [1, 2])
        with pytest.raises(PluginError, match="no plugin nope"):
            runtime.environment(plugins=["nope"])


def test_a_broken_plugin_fails_the_runtime_at_once() -> None:
    with pytest.raises(PluginError, match="two plugins"):
        Runtime(workers=1, plugins=[CALC, CALC], discover_plugins=False)


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package offering a Python plugin through the entry point group, on sys.path."""
    (tmp_path / "lmp_shouter.py").write_text(
        textwrap.dedent(
            """
            def register(namespace):
                @namespace.function("greet", "ii", "i")
                def greet(call, ptr, length):
                    call.write(ptr, call.read(ptr, length).upper())
                    return length
            """
        )
    )
    info = tmp_path / "lmp_shouter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lmp-shouter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[lunatic_mp.plugins]\ngreeter = lmp_shouter:register\nbroken = lmp_missing_module:register\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_entry_point_plugins_are_discovered(installed_plugin: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="lunatic_mp.vm.plugins"):
        found = discover()
    assert [plugin.name for plugin in found] == ["greeter"]
    assert "plugin 'broken'" in caplog.text and "lmp_missing_module" in caplog.text
    with Runtime(workers=1) as runtime:
        assert "greeter" in runtime.plugins
        guest = runtime.load_module(GUESTS / "plugin_greeter.wat")
        env = runtime.environment(EnvConfig.permissive(), plugins=["greeter"])
        finished = env.spawn(guest, "shout").join(TIMEOUT)
        assert finished is not None
        assert struct.pack("<q", finished.result[0]) == b"LUNATIC!"  # type: ignore[arg-type]
