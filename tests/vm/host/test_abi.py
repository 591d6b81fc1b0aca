"""The host's import table against the ABI contract (ABI.md).

``abi_all_imports.wat`` imports every function of ABI.md (networking aside) with its table types;
the table below is a second, independent transcription of ABI.md that the guest is checked
against, and that drives per-function link tests with the right and with wrong signatures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import wasmtime

from lunatic_mp import Engine, Finished, Module
from lunatic_mp.errors import ModuleError

# namespace -> function -> (params, results), one letter a value: i i32, I i64, f f32, F f64.
ABI: dict[str, dict[str, tuple[str, str]]] = {
    "lunatic::process": {
        "compile_module": ("iii", "i"),
        "drop_module": ("I", ""),
        "create_config": ("", "I"),
        "drop_config": ("I", ""),
        "config_set_max_memory": ("II", ""),
        "config_get_max_memory": ("I", "I"),
        "config_set_max_fuel": ("II", ""),
        "config_get_max_fuel": ("I", "I"),
        "config_set_can_compile_modules": ("Ii", ""),
        "config_can_compile_modules": ("I", "i"),
        "config_set_can_create_configs": ("Ii", ""),
        "config_can_create_configs": ("I", "i"),
        "config_set_can_spawn_processes": ("Ii", ""),
        "config_can_spawn_processes": ("I", "i"),
        "spawn": ("IIIiiiii", "i"),
        "get_or_spawn": ("iiIIIiiiiii", "i"),
        "sleep_ms": ("I", ""),
        "die_when_link_dies": ("i", ""),
        "process_id": ("", "I"),
        "environment_id": ("", "I"),
        "link": ("II", ""),
        "unlink": ("I", ""),
        "monitor": ("I", ""),
        "stop_monitoring": ("I", ""),
        "kill": ("I", ""),
        "exists": ("I", "i"),
    },
    "lunatic::message": {
        "create_data": ("II", ""),
        "write_data": ("ii", "i"),
        "read_data": ("ii", "i"),
        "seek_data": ("I", ""),
        "get_tag": ("", "I"),
        "data_size": ("", "I"),
        "get_process_id": ("", "I"),
        "push_module": ("I", "I"),
        "take_module": ("I", "I"),
        "send": ("I", "i"),
        "send_receive_skip_search": ("III", "i"),
        "receive": ("iiI", "i"),
    },
    "lunatic::timer": {
        "send_after": ("II", "I"),
        "cancel_timer": ("I", "i"),
    },
    "lunatic::registry": {
        "put": ("iiII", ""),
        "get": ("iiii", "i"),
        "remove": ("ii", ""),
    },
    "lunatic::error": {
        "string_size": ("I", "i"),
        "to_string": ("Ii", ""),
        "drop": ("I", ""),
    },
    "lunatic::version": {
        "major": ("", "i"),
        "minor": ("", "i"),
        "patch": ("", "i"),
    },
    "lunatic::trap": {
        "catch": ("ii", "i"),
    },
    "lunatic::wasi": {
        "config_add_environment_variable": ("Iiiii", ""),
        "config_add_command_line_argument": ("Iii", ""),
        "config_preopen_dir": ("Iii", ""),
    },
    "lunatic::metrics": {
        "counter": ("iiI", ""),
        "increment_counter": ("ii", ""),
        "gauge": ("iiF", ""),
        "increment_gauge": ("iiF", ""),
        "decrement_gauge": ("iiF", ""),
        "histogram": ("iiF", ""),
    },
    "lunatic::distributed": {
        "nodes_count": ("", "i"),
        "get_nodes": ("ii", "i"),
        "node_id": ("", "I"),
        "module_id": ("", "I"),
        "spawn": ("IIIiiiii", "i"),
        "send": ("II", "i"),
        "send_receive_skip_search": ("IIII", "i"),
        "exec_lookup_nodes": ("iiiii", "i"),
        "copy_lookup_nodes_results": ("Iiii", "i"),
        "test_root_cert": ("i", "i"),
        "default_server_certificates": ("iiiii", "i"),
        "sign_node": ("iiiiiii", "i"),
    },
}

GUESTS = Path(__file__).parents[2] / "guests"

ROWS = [(ns, name, sig) for ns, functions in ABI.items() for name, sig in functions.items()]
ROW_IDS = [f"{ns.removeprefix('lunatic::')}.{name}" for ns, name, _ in ROWS]
_WAT_TYPE = {"i": "i32", "I": "i64", "f": "f32", "F": "f64"}


def signature(functype: wasmtime.FuncType) -> tuple[str, str]:
    """A function type in the table's notation (no v128 here: printing one aborts wasmtime)."""
    letter = {str(wasmtime.ValType.i32()): "i", str(wasmtime.ValType.i64()): "I"}
    letter |= {str(wasmtime.ValType.f32()): "f", str(wasmtime.ValType.f64()): "F"}
    return "".join(letter[str(t)] for t in functype.params), "".join(letter[str(t)] for t in functype.results)


def import_module(namespace: str, name: str, params: str, results: str) -> str:
    """WAT for a module importing one function with the given types (and exporting memory)."""
    param_list = " ".join(_WAT_TYPE[c] for c in params)
    result_list = " ".join(_WAT_TYPE[c] for c in results)
    func_type = (f"(param {param_list})" if params else "") + (f" (result {result_list})" if results else "")
    return (
        f'(module (import "{namespace}" "{name}" (func {func_type}))\n'
        '  (memory (export "memory") 1)\n'
        '  (func (export "answer") (result i32) (i32.const 42)))'
    )


def wrong_signatures(params: str, results: str) -> list[tuple[str, str]]:
    """Signatures one step away from the right one: an extra parameter, a changed type, a
    changed or missing or extra result."""
    flip = {"i": "I", "I": "i", "F": "I", "f": "F"}
    wrong = [(params + "i", results)]
    if params:
        wrong.append((flip[params[0]] + params[1:], results))
    if results:
        wrong.append((params, flip[results[0]]))
        wrong.append((params, ""))
    else:
        wrong.append((params, "i"))
    return wrong


@pytest.fixture(scope="module")
def link_engine() -> Iterator[Engine]:
    """One engine for the link-only tests (loading never changes an engine's state)."""
    engine = Engine()
    yield engine
    engine.close()


def test_guest_imports_exactly_the_abi_table(load: Callable[[str], Module]) -> None:
    """abi_all_imports.wat imports every function of the table, with the table's types, and
    nothing else (guards against a typo in either transcription)."""
    module = load("abi_all_imports.wat")
    imported = {
        (imp.module, imp.name): signature(imp.type)  # type: ignore[arg-type]
        for imp in module.compiled.imports
    }
    expected = {(ns, name): sig for ns, name, sig in ROWS}
    assert imported == expected
    assert len(module.compiled.imports) == len(ROWS)


def test_all_imports_link_and_run(load: Callable[[str], Module], run: Callable[..., Finished]) -> None:
    """The module importing the whole ABI links against the host, and an export of it runs."""
    module = load("abi_all_imports.wat")
    assert module.instance_pre is not None
    assert module.namespaces == {ns.removeprefix("lunatic::") for ns in ABI}
    finished = run(module, "answer")
    assert finished.ok, finished
    assert finished.result == (42,)


def test_all_imports_run_under_a_fresh_engine() -> None:
    """Linking does not depend on state left by another engine: a new engine links it too."""
    engine = Engine()
    try:
        module = engine.load_module(GUESTS / "abi_all_imports.wat")
        process = engine.spawn(module, "answer", ())
        finished = engine.run_until_finished(process, timeout=30)
        assert finished is not None and finished.result == (42,)
    finally:
        engine.close()


@pytest.mark.parametrize(("namespace", "name", "signature"), ROWS, ids=ROW_IDS)
def test_each_function_links_with_its_abi_type(
    link_engine: Engine, namespace: str, name: str, signature: tuple[str, str]
) -> None:
    """Each ABI function alone links with exactly its table types."""
    module = link_engine.load_module(import_module(namespace, name, *signature))
    assert module.instance_pre is not None


@pytest.mark.parametrize(("namespace", "name", "signature"), ROWS, ids=ROW_IDS)
def test_each_function_rejects_wrong_types(
    link_engine: Engine, namespace: str, name: str, signature: tuple[str, str]
) -> None:
    """Importing an ABI function with a wrong type fails at load time with a ModuleError that
    names the import, rather than at the first call."""
    for params, results in wrong_signatures(*signature):
        with pytest.raises(ModuleError, match="cannot be linked") as caught:
            link_engine.load_module(import_module(namespace, name, params, results))
        assert name in str(caught.value), (params, results, str(caught.value))


@pytest.mark.parametrize(
    ("namespace", "name"),
    [
        ("lunatic::process", "no_such_function"),
        ("lunatic::message", "push_tcp_streams"),
        ("lunatic::nonexistent", "anything"),
        ("lunatic::metrics", "Counter"),
    ],
)
def test_unknown_import_fails_to_link(link_engine: Engine, namespace: str, name: str) -> None:
    """An import the host does not define is a ModuleError at load, not a trap later."""
    with pytest.raises(ModuleError, match="cannot be linked"):
        link_engine.load_module(import_module(namespace, name, "", ""))


def test_wrong_signature_in_a_large_module_fails(engine: Engine) -> None:
    """The whole table with one row wrong (process_id returning i32) does not link."""
    text = (GUESTS / "abi_all_imports.wat").read_text()
    right = '(import "lunatic::process" "process_id" (func (result i64)))'
    assert right in text
    wrong = text.replace(right, '(import "lunatic::process" "process_id" (func (result i32)))')
    with pytest.raises(ModuleError, match="process_id"):
        engine.load_module(wrong)
