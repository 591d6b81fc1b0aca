"""workers/build.sh: what it builds, when it rebuilds, and how it fails.

Tests that need the compiler take the session's ``c_build`` fixture, which skips them (or fails,
in CI) when there is no toolchain.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from c_guests import BUILD_SCRIPT, NO_TOOLCHAIN, build

HELLO = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "tiny.c"
    path.parent.mkdir()
    path.write_text(HELLO)
    return path


def test_builds_then_skips_what_is_up_to_date(c_build: Path, tmp_path: Path, source: Path) -> None:
    out = tmp_path / "out"
    first = build(out, source)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"built {out / 'tiny.wasm'}\n"
    assert (out / "tiny.wasm").read_bytes()[:4] == b"\0asm"
    again = build(out, source)
    assert again.returncode == 0 and again.stdout == ""
    later = time.time() + 10  # an edited source is newer than its module
    os.utime(source, (later, later))
    assert build(out, source).stdout == f"built {out / 'tiny.wasm'}\n"
    assert sorted(p.name for p in out.iterdir()) == ["tiny.wasm"]  # no temporary files left


def test_a_warning_fails_the_build(c_build: Path, tmp_path: Path, source: Path) -> None:
    source.write_text("int main(void) { int unused; return 0; }\n")
    result = build(tmp_path / "out", source)
    assert result.returncode == 1
    assert "unused" in result.stderr and f"{source} did not compile" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_a_missing_source_is_a_usage_error(c_build: Path, tmp_path: Path) -> None:
    result = build(tmp_path, tmp_path / "nowhere.c")
    assert result.returncode == 2
    assert "no such source" in result.stderr


def test_no_compiler_says_what_to_install(tmp_path: Path, source: Path) -> None:
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "-o", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, "CC": "no-such-compiler"},
        timeout=60,
        check=False,
    )
    assert result.returncode == NO_TOOLCHAIN
    assert "apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" in result.stderr
    assert list(tmp_path.glob("*.wasm")) == []


def test_builds_with_a_compiler_command_such_as_zig(tmp_path: Path) -> None:
    """CC may be a command with arguments: ``python -m ziglang cc`` (the ``[guests]`` extra) builds
    every example without apt. Skipped where ziglang is not installed."""
    pytest.importorskip("ziglang")
    out = tmp_path / "out"
    env = {**os.environ, "CC": f"{sys.executable} -m ziglang cc"}
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "-o", str(out)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    examples = sorted(p.stem for p in (BUILD_SCRIPT.parent / "examples").glob("*.c"))
    assert sorted(p.stem for p in out.glob("*.wasm")) == examples
    hello = subprocess.run(
        [sys.executable, "-c", "from lunatic_mp.cli.app import main; main()", "run", str(out / "hello.wasm")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert hello.returncode == 0, hello.stderr
    assert "Hello, world!" in hello.stdout
