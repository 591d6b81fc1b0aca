"""Every Python example of README.md and docs/*.md runs as written, saved as a script and run with
``python example.py`` (from the repository root, as the docs say): the way a newcomer tries them.
Most start a Runtime, so this also proves their ``if __name__ == "__main__":`` guards."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from docs_examples import ROOT, Example, examples

TIMEOUT = 120
EXAMPLES = examples()


def run_example(example: Example, tmp_path: Path, env: dict[str, str] | None = None) -> None:
    script = tmp_path / "example.py"
    script.write_text(example.source)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"{example.name} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{example.name} printed nothing"


def test_the_docs_have_examples_and_few_markers() -> None:
    assert len(EXAMPLES) >= 12
    marked = [example for example in EXAMPLES if example.marker is not None]
    assert len(marked) <= 4, [example.name for example in marked]


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.marker is None], ids=lambda example: example.name
)
def test_the_example_runs_as_a_script(example: Example, tmp_path: Path) -> None:
    if "lunatic_mp.cluster.simulated" in example.source and importlib.util.find_spec("ray") is None:
        pytest.skip("a cluster example needs Ray: pip install 'lunatic-mp[cluster]'")
    run_example(example, tmp_path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``lunatic-mp serve`` with no config (the counter example), one worker, on a socket of its
    own; the address to connect to."""
    socket = tmp_path_factory.mktemp("serve") / "control.sock"
    address = f"unix:{socket}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from lunatic_mp.cli.app import main; main()",
            "serve",
            "--workers",
            "1",
            "--control",
            address,
            "--metrics",
            "off",
            "--http",
            "off",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(TIMEOUT, process.kill)  # a server that never gets ready
    watchdog.start()
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("lunatic-mp: ready"):
                break
        else:
            pytest.fail("lunatic-mp serve did not get ready:\n" + "".join(lines))
        watchdog.cancel()
        yield address
    finally:
        watchdog.cancel()
        process.send_signal(signal.SIGTERM)
        process.wait(TIMEOUT)
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES if e.marker == "needs-server"], ids=lambda example: example.name
)
def test_the_client_example_runs_against_a_server(example: Example, server: str, tmp_path: Path) -> None:
    run_example(example, tmp_path, {**os.environ, "LUNATIC_MP_CONNECT": server})


def test_ruff_format_accepts_the_docs_code_blocks() -> None:
    """The README's `ruff format --check .` formats the Python blocks of the Markdown files too."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    documents = [str(example.document) for example in EXAMPLES]
    result = subprocess.run(
        [ruff, "format", "--check", *sorted(set(documents))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
