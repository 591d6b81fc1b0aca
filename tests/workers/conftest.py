"""The C guests, built once per session with workers/build.sh, and a way to run them.

Without a C toolchain for wasm32-wasi these tests are skipped, unless
``LUNATIC_MP_REQUIRE_C_TOOLCHAIN=1`` (set by .ci/run, which installs it) makes that a failure.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from c_guests import GUESTS, ROOT, TIMEOUT, build, lunatic_mp_script, require_built


@pytest.fixture(scope="session")
def c_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with every example and test guest built (-O2): ``<name>.wasm``."""
    out = tmp_path_factory.mktemp("c-guests")
    require_built(build(out))
    require_built(build(out, GUESTS / "sdk_checks.c", extra_cflags="-msimd128"))
    return out


@pytest.fixture
def run_guest(c_build: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_guest("hello", "a", "b", workers=2)``: `lunatic-mp run` a built guest, as a
    subprocess, with those WASI arguments."""

    def run(name: str, *args: str, workers: int = 1) -> subprocess.CompletedProcess[str]:
        command = [lunatic_mp_script(), "run", "--workers", str(workers), str(c_build / f"{name}.wasm")]
        return subprocess.run(
            [*command, "--", *args], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, check=False
        )

    return run
