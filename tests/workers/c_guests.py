"""Paths and the build step shared by the tests of the C guests (a module with a name of its own,
so that test files can import it: conftest modules all share one name)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
WORKERS = ROOT / "workers"
BUILD_SCRIPT = WORKERS / "build.sh"
GUESTS = Path(__file__).parent / "guests"
NO_TOOLCHAIN = 3  # build.sh's exit status when clang cannot target wasm32-wasi
TIMEOUT = 120


def build(out: Path, *sources: Path, extra_cflags: str = "") -> subprocess.CompletedProcess[str]:
    """Run workers/build.sh into ``out`` (every example when no source is given)."""
    env = {**os.environ, "EXTRA_CFLAGS": extra_cflags}
    return subprocess.run(
        ["bash", str(BUILD_SCRIPT), "-o", str(out), *map(str, sources)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )


def require_built(result: subprocess.CompletedProcess[str]) -> None:
    """Skip when there is no toolchain (unless LUNATIC_MP_REQUIRE_C_TOOLCHAIN=1); fail when a
    build failed."""
    if result.returncode == NO_TOOLCHAIN and os.environ.get("LUNATIC_MP_REQUIRE_C_TOOLCHAIN") != "1":
        pytest.skip(f"no C toolchain for wasm32-wasi: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr


def lunatic_mp_script() -> str:
    """The installed console script (the CLI package has no ``__main__``)."""
    beside_python = Path(sys.executable).parent / "lunatic-mp"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lunatic-mp")
    if found is None:
        pytest.skip("the lunatic-mp script is not installed")
    return found
