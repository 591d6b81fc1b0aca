"""A wheel stands alone: built from the source tree, installed into a fresh virtual environment
outside the repository, it runs the README's examples from another directory (the example modules
and lunatic.h are package data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_examples import ROOT, Example, examples

TIMEOUT = 300
README_EXAMPLES = [example for example in examples([ROOT / "README.md"]) if example.marker is None]


def check(*command: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        **options,
    )  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A venv with only the wheel installed (its dependencies come from this environment, through
    a .pth file); its python, and an environment without PYTHONPATH."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):  # setup.py builds the C core
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "lunatic_mp", source / "lunatic_mp", ignore=shutil.ignore_patterns("__pycache__"))
    check(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", base / "dist", source
    )
    (wheel,) = (base / "dist").glob("lunatic_mp-*.whl")
    venv = base / "venv"
    check(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # away from the checkout and without PYTHONPATH: a lunatic_mp.egg-info there (an sdist build
    # leaves one) would make pip take the wheel's version as installed already
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    check(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel,
        cwd=base, env=clean,
    )  # fmt: skip
    site = check(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    dependencies = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz_dependencies.pth").write_text("\n".join(sorted(dependencies)) + "\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    yield python, env


def test_the_wheel_holds_the_examples_and_the_header(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    python, env = installed
    probe = (
        "import lunatic_mp, pathlib; from lunatic_mp import examples; "
        "print(lunatic_mp.__file__); print(examples.path('ping_pong.wat')); "
        "print(pathlib.Path(lunatic_mp.get_include(), 'lunatic.h').is_file())"
    )
    package, example, header = check(python, "-c", probe, cwd=tmp_path, env=env).stdout.split()
    venv = python.parent.parent
    assert Path(package).is_relative_to(venv) and Path(example).is_relative_to(venv)
    assert header == "True"
    hello = check(
        venv / "bin" / "lunatic-mp", "run", example.replace("ping_pong", "hello"), cwd=tmp_path, env=env
    )
    assert hello.stdout.count("\n") >= 4


@pytest.mark.parametrize("example", README_EXAMPLES, ids=lambda example: example.name)
def test_the_wheel_runs_the_readme_example(
    example: Example, installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    python, env = installed
    script = tmp_path / "example.py"
    script.write_text(example.source)
    assert check(python, script, cwd=tmp_path, env=env).stdout.strip()
