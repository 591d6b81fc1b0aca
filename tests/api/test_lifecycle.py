"""A runtime at the edges of the interpreter: started by a main module that every spawned worker
imports again (one clear error), and left open at exit (closed, with a ResourceWarning)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run_script(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, *options, str(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_script_without_a_main_guard_gets_one_clear_error(tmp_path: Path) -> None:
    """The workers re-import the script; they exit quietly and the script gets one error that
    names the file and the guard, not multiprocessing's bootstrapping traceback from each child."""
    result = run_script(
        tmp_path,
        """
        from lunatic_mp import Runtime

        with Runtime(workers=2) as runtime:
            print("started")
        """,
    )
    assert result.returncode == 1
    assert "started" not in result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lunatic_mp.errors.UnguardedMainError: ")
    assert str(tmp_path / "program.py") in last
    assert 'if __name__ == "__main__":' in last
    assert "bootstrapping" not in result.stderr
    assert "replacing it" not in result.stderr
    assert len(result.stderr.splitlines()) < 12


def test_a_guarded_script_starts(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """
        from lunatic_mp import Runtime

        if __name__ == "__main__":
            with Runtime(workers=1) as runtime:
                print("started", runtime.worker_count)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "started 1\n"


def test_another_spawned_child_gets_the_error_itself(tmp_path: Path) -> None:
    """A child spawned by something else than a runtime raises UnguardedMainError while it imports
    the main module (nobody else would report it)."""
    result = run_script(
        tmp_path,
        """
        import multiprocessing

        from lunatic_mp import Runtime, UnguardedMainError

        if __name__ == "__mp_main__":
            try:
                Runtime(workers=1)
            except UnguardedMainError as error:
                print("refused:", error, flush=True)


        def child() -> None:
            pass


        if __name__ == "__main__":
            process = multiprocessing.get_context("spawn").Process(target=child)
            process.start()
            process.join()
            print("exit", process.exitcode)
        """,
    )
    assert result.returncode == 0, result.stderr
    refused, exited = result.stdout.splitlines()
    assert refused.startswith("refused: ") and "if __name__" in refused
    assert exited == "exit 0"


def test_an_unclosed_runtime_is_closed_at_exit_with_a_warning(tmp_path: Path) -> None:
    """It used to hang the interpreter at exit for ever."""
    result = run_script(
        tmp_path,
        """
        from lunatic_mp import Runtime

        if __name__ == "__main__":
            runtime = Runtime(workers=2)
            print("open", runtime.run_dir)
        """,
        "-W",
        "always::ResourceWarning",
    )
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning: unclosed <lunatic_mp.api.runtime.Runtime" in result.stderr
    run_dir = Path(result.stdout.split()[-1])
    assert not run_dir.exists()  # closed: its files are gone


def test_a_closed_runtime_gives_no_warning(tmp_path: Path) -> None:
    result = run_script(
        tmp_path,
        """
        from lunatic_mp import Runtime

        if __name__ == "__main__":
            Runtime(workers=1).close()
        """,
        "-W",
        "error::ResourceWarning",
    )
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning" not in result.stderr
