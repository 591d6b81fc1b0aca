"""lunatic_mp/include/lunatic.h: its declarations against the ABI, its helpers against the runtime.

The declarations are checked where it matters, in the compiled module: a C file that takes the
address of every function the header declares is built, and the types of its Wasm imports are
compared with the tables of docs/abi.md, parsed here (a transcription independent of the one in
tests/vm/host/test_abi.py). The helpers are checked by tests/workers/guests/sdk_checks.c, which
uses every one of them and says "ok <check>" for each.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from c_guests import ROOT, build, require_built

import lunatic_mp
from lunatic_mp import Engine, EnvConfig

HEADER = Path(lunatic_mp.get_include()) / "lunatic.h"
ABI_DOC = ROOT / "docs" / "abi.md"
WASM_TYPES = {"i32": "i", "i64": "I", "f32": "f", "f64": "F"}
CHECKS = [
    "version",
    "selective receive",
    "receive timeout",
    "partial read",
    "spawn parameters",
    "spawn error",
    "request reply",
    "request timeout",
    "link",
    "monitor and kill",
    "registry versions",
    "opaque names",
    "get or spawn",
    "timers",
    "catch",
    "error strings",
    "modules",
    "configs",
    "metrics",
]

Signature = tuple[str, str]  # params, results: one letter a value (i i32, I i64, f f32, F f64)


# --- docs/abi.md, parsed ---------------------------------------------------------------------------


def _signature(text: str) -> Signature:
    """``(a i32, b i64) -> i32`` -> ``("iI", "i")``."""
    match = re.fullmatch(r"\s*`?\(([^)]*)\)`?\s*(?:->\s*(\w+))?\s*\.?\s*", text)
    assert match is not None, f"not a signature: {text!r}"
    params = [p.split()[-1] for p in match.group(1).split(",") if p.strip()]
    return "".join(WASM_TYPES[p] for p in params), WASM_TYPES[match.group(2)] if match.group(2) else ""


def _table_row(cells: list[str]) -> dict[str, Signature]:
    """``a / b | sig_a / sig_b`` or ``a, b, c | sig`` -> each name's signature."""
    names = [n.strip(" `") for n in re.split(r" / |, ", cells[0])]
    signatures = [_signature(s) for s in cells[1].split(" / ")]
    if len(signatures) == 1:
        signatures *= len(names)
    assert len(signatures) == len(names), cells
    return dict(zip(names, signatures, strict=True))


def _prose(line: str) -> dict[str, Signature]:
    """```a(sig)`, `b`, `c`: `(sig)``` and ```x`, `y`: () -> i32.``` -> each name's signature;
    nothing for prose that defines no function (the count in the test below guards this)."""
    found: dict[str, Signature] = {}
    pending: list[str] = []
    for name, own in re.findall(r"`(\w+)(\((?:\w+ (?:i32|i64|f32|f64)(?:, )?)*\))?`", line):
        if own:
            found[name] = _signature(own)
        else:
            pending.append(name)
    shared = re.search(r"`\s*:\s*(`?\([^)]*\)`?(?:\s*->\s*\w+)?)", line)
    if pending and shared is not None:
        found |= dict.fromkeys(pending, _signature(shared.group(1)))
    return found


def abi_from_docs() -> dict[tuple[str, str], Signature]:
    """Every host function of docs/abi.md's ``## lunatic::*`` sections."""
    functions: dict[tuple[str, str], Signature] = {}
    namespace = None
    for line in ABI_DOC.read_text().splitlines():
        heading = re.match(r"## (\S+)", line)
        if heading:
            namespace = heading.group(1) if heading.group(1).startswith("lunatic::") else None
            continue
        if namespace is None:
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] in {"function"} or set(cells[0]) <= {"-"}:
                continue
            rows = _table_row(cells)
        elif line.startswith("`") and "(" in line:
            rows = _prose(line)
        else:
            continue
        for name, signature in rows.items():
            functions[(namespace, name)] = signature
    return functions


def test_the_docs_parse_into_the_whole_abi() -> None:
    """The parser finds every namespace and a sane number of functions (guards the parser)."""
    abi = abi_from_docs()
    namespaces = {ns for ns, _ in abi}
    names = ("process", "message", "timer", "registry", "error", "version", "trap", "wasi", "networking")
    assert namespaces == {f"lunatic::{ns}" for ns in (*names, "distributed", "metrics")}
    # process 26, message 14, timer 2, registry 6 (3 + 3 _versioned), error 3, version 3, trap 1,
    # wasi 3, networking 35 (TCP 21, UDP 14), distributed 12, metrics 6
    assert len(abi) == 111
    assert abi[("lunatic::distributed", "send_receive_skip_search")] == ("IIII", "i")
    assert abi[("lunatic::process", "spawn")] == ("IIIiiiii", "i")
    assert abi[("lunatic::process", "config_get_max_memory")] == ("I", "I")
    assert abi[("lunatic::networking", "drop_tcp_stream")] == ("I", "")
    assert abi[("lunatic::metrics", "counter")] == ("iiI", "")
    assert abi[("lunatic::metrics", "histogram")] == ("iiF", "")
    assert abi[("lunatic::version", "patch")] == ("", "i")
    assert abi[("lunatic::wasi", "config_preopen_dir")] == ("Iii", "")


# --- the header's declarations ---------------------------------------------------------------------

DECLARATION = re.compile(
    r'__attribute__\(\(import_module\("([^"]+)"\), import_name\("([^"]+)"\)\)\)\s*\n'
    r"[\w\s*]*?\b(\w+)\("
)


def header_declarations() -> list[tuple[str, str, str]]:
    """(import module, import name, C name) of every import the header declares."""
    return DECLARATION.findall(HEADER.read_text())


def test_header_declares_the_whole_abi_once() -> None:
    declared = header_declarations()
    keys = [(module, name) for module, name, _ in declared]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(abi_from_docs())
    assert HEADER.read_text().count("import_module(") == len(declared)
    for module, name, c_name in declared:  # one naming rule: lunatic_<namespace>_<function>
        assert c_name == f"lunatic_{module.removeprefix('lunatic::')}_{name}"


def test_header_types_are_the_abis(tmp_path: Path) -> None:
    """Compiled, every declaration becomes an import with exactly the docs' Wasm types."""
    declared = header_declarations()
    source = tmp_path / "abi_imports.c"
    entries = ",\n".join(f"    (void (*)(void)){c_name}" for _, _, c_name in declared)
    source.write_text(
        '#include "lunatic.h"\n\n'
        f"void (*volatile every_import[])(void) = {{\n{entries}\n}};\n\n"
        "int main(void) { return every_import[0] == 0; }\n"
    )
    require_built(build(tmp_path, source))
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(tmp_path / "abi_imports.wasm"))
    letter = {str(wasmtime.ValType.i32()): "i", str(wasmtime.ValType.i64()): "I"}
    letter |= {str(wasmtime.ValType.f32()): "f", str(wasmtime.ValType.f64()): "F"}
    imported = {}
    for item in module.imports:
        if item.module.startswith("lunatic::"):
            functype = item.type
            assert isinstance(functype, wasmtime.FuncType)
            params = "".join(letter[str(t)] for t in functype.params)
            imported[(item.module, item.name)] = (params, "".join(letter[str(t)] for t in functype.results))
    assert imported == abi_from_docs()


# --- the helpers, on the runtime -------------------------------------------------------------------


def test_sdk_checks_in_one_engine(c_build: Path, engine: Engine, capfd: pytest.CaptureFixture[str]) -> None:
    """Every helper behaves as documented; the metrics it reports reach the engine."""
    module = engine.load_module(c_build / "sdk_checks.wasm")
    process = engine.spawn(module, "_start", (), EnvConfig.permissive())
    finished = engine.run_until_finished(process, timeout=60)
    out = capfd.readouterr().out
    assert finished is not None and finished.ok, (finished, out)
    assert out.splitlines() == [f"ok {check}" for check in CHECKS] + ["all checks passed"]
    assert engine.metrics.counters["sdk.counter"] == 6
    assert engine.metrics.gauges["sdk.gauge"] == 3.0
    assert engine.metrics.histograms["sdk.histogram"].count == 1


def test_sdk_checks_over_two_workers(run_guest: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """The same checks when spawned processes, the registry and timers are on other workers."""
    result = run_guest("sdk_checks", workers=2)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.splitlines() == [f"ok {c}" for c in CHECKS] + ["all checks passed"]
