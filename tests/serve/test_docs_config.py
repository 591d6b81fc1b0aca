"""The config file of docs/serve.md starts as written (it used to name a module it did not load
and a socket path a user cannot create)."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from lunatic_mp import examples
from lunatic_mp.serve.config import load_config

ROOT = Path(__file__).parents[2]
TIMEOUT = 120


def documented_config() -> str:
    text = (ROOT / "docs" / "serve.md").read_text()
    section = text.split("## The config file", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


def test_the_documented_config_starts(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(documented_config())
    for name in ("counter.wat", "hello_http.wat"):
        shutil.copy(examples.path(name), tmp_path / name)
    (tmp_path / "token.txt").write_text("a-token-of-32-characters-or-so!!\n")
    loaded = load_config(config)
    assert sorted(loaded.modules) == ["counter", "hello"]
    process = subprocess.Popen(
        [sys.executable, "-c", "from lunatic_mp.cli.app import main; main()", "serve", str(config),
         "--workers", "1", "--metrics", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    watchdog = threading.Timer(TIMEOUT, process.kill)
    watchdog.start()
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("lunatic-mp: ready"):
                break
        assert lines and lines[-1].startswith("lunatic-mp: ready"), "".join(lines)
        assert any("registered as greeter@1.0.0" in line for line in lines)
        process.send_signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
