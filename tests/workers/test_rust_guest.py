"""workers/rust/hello.rs, the Rust guest of docs/guests.md, built and run where a Rust compiler
with the wasm32-wasi standard library is installed (Debian: rustc, libstd-rust-dev-wasm32).

CI installs no Rust toolchain, so there this test is skipped; the C guests are what CI proves.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from c_guests import TIMEOUT, WORKERS, lunatic_mp_script


def rust_for_wasi() -> tuple[str, str] | None:
    """(rustc, target) for the first rustc whose sysroot has a WASI std: Debian's rustc 1.63
    calls the target wasm32-wasi, rustup's newer ones wasm32-wasip1."""
    candidates = [
        found for found in (shutil.which("rustc"), "/usr/bin/rustc") if found and Path(found).exists()
    ]
    for rustc in dict.fromkeys(candidates):
        try:
            result = subprocess.run(
                [rustc, "--print", "sysroot"], capture_output=True, text=True, check=False
            )
        except OSError:
            continue
        if result.returncode != 0:
            continue
        for target in ("wasm32-wasi", "wasm32-wasip1"):
            if (Path(result.stdout.strip()) / "lib" / "rustlib" / target / "lib").is_dir():
                return rustc, target
    return None


def test_rust_hello_spawns_and_messages(tmp_path: Path) -> None:
    found = rust_for_wasi()
    if found is None:
        pytest.skip("no rustc with a wasm32-wasi standard library")
    rustc, target = found
    module = tmp_path / "hello.wasm"
    compiled = subprocess.run(
        [rustc, "--edition", "2021", "--target", target, "-O", "-C", "strip=debuginfo",
         str(WORKERS / "rust" / "hello.rs"), "-o", str(module)],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr
    result = subprocess.run(
        [lunatic_mp_script(), "run", "--workers", "2", str(module), "--", "10", "20", "30"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"sum of squares 1..={n} = {n * (n + 1) * (2 * n + 1) // 6}" for n in (10, 20, 30)
    ]
