"""The distributions: metadata, licence, and an sdist that carries what its own tests need."""

from __future__ import annotations

import email
import importlib.util
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.message import Message
from pathlib import Path

import pytest

import lunatic_mp

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_written_once() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lunatic_mp.__version__"}
    assert f"## {lunatic_mp.__version__}" in (ROOT / "CHANGELOG.md").read_text()


def test_dependencies_are_the_ones_imported() -> None:
    names = {
        dep.split(";")[0].split(">")[0].split("<")[0].split("=")[0].strip()
        for dep in PYPROJECT["project"]["dependencies"]
    }
    assert "multiprocessing-logging" not in names
    assert {"msgspec", "multidict", "uvloop", "wasmtime"} <= names
    uvloop = next(dep for dep in PYPROJECT["project"]["dependencies"] if dep.startswith("uvloop"))
    assert "sys_platform != 'win32'" in uvloop


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it (as ``python -m build`` does), without network."""
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package is not installed (it is in the dev extra)")
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} predates PEP 639 (77 is needed)")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_wheel_has_the_licence_and_the_metadata(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "lunatic_mp/py.typed" in names
    meta = _metadata(wheel)
    assert meta["Version"] == lunatic_mp.__version__
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # PEP 639: the expression only
    assert meta.get_all("Project-URL")
    requires = meta.get_all("Requires-Dist") or []
    assert not [r for r in requires if r.startswith("multiprocessing-logging")]
    assert any(r.startswith("msgspec") for r in requires)


def test_the_sdist_carries_what_its_tests_need_and_they_pass(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    for needed in (
        "LICENSE",
        "CHANGELOG.md",
        "tests/conftest.py",
        "lunatic_mp/examples/ping_pong.wat",
        "lunatic_mp/include/lunatic.h",
        "workers/build.sh",
        "lunatic_mp/examples/hello.wat",
        "docs/guide.md",
        "benchmarks/pingpong.py",
    ):
        assert (tree / needed).is_file(), needed
    assert not list(tree.rglob("*.wasm"))
    assert not list(tree.rglob("__pycache__"))
    # Build the sdist's C core in place, then run a test file against the sdist's own package.
    built = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tree, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cluster/test_frames.py"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout


def test_ci_checks_lint_format_types_docs_and_times_out_tests() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    for step in ("ruff check ", "ruff format --check ", "\nmypy\n", "sphinx-build -W "):
        assert step in script, step
    assert "pip install -e '.[test,cluster]' && pytest" in script  # the README's test command
    assert "pip install -e '.[test,cluster]' && pytest" in (ROOT / "README.md").read_text()
    assert PYPROJECT["tool"]["pytest"]["ini_options"]["timeout"] == 300
    assert any(
        dep.startswith("pytest-timeout") for dep in PYPROJECT["project"]["optional-dependencies"]["test"]
    )
