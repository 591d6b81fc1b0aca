"""The benchmark scripts run (how fast is for the harness, not for tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_engine_benchmark_quick_run_reports_every_scenario(tmp_path: Path) -> None:
    """`benchmarks/engine.py --quick` finishes and writes a figure for every scenario."""
    out = tmp_path / "figures.json"
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "engine.py"), "--quick", "--json", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    figures = json.loads(out.read_text())
    assert set(figures) == {"spawn", "message", "idle", "fuel"}
    assert figures["spawn"]["spawn_and_exit_us"] > 0
    assert figures["message"]["message_us"] > 0
    assert figures["message"]["ping_pong_message_us"] > 0
    assert figures["idle"]["rss_per_process_kib"] > 0
    assert figures["fuel"]["yield_s"] > 0
