"""The `lunatic-mp` command, end to end: run as a subprocess, judged by output and exit code."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

ROOT = Path(__file__).parents[2]
GUESTS = Path(__file__).parents[1] / "guests"
TIMEOUT = 60
DEADLOCK_MESSAGE = "waits for a message that can never arrive"


def lunatic_mp() -> str:
    """The installed console script (the CLI package has no ``__main__``)."""
    beside_python = Path(sys.executable).parent / "lunatic-mp"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("lunatic-mp")
    if found is None:
        pytest.skip("the lunatic-mp script is not installed")
    return found


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lunatic_mp(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        env=env,
        check=False,
    )


def sum_of_squares(n: int) -> int:
    return n * (n + 1) * (2 * n + 1) // 6


def test_hello_example() -> None:
    """`lunatic-mp run lunatic_mp/examples/hello.wat` prints one line per child (four) and exits 0."""
    result = cli("run", "lunatic_mp/examples/hello.wat")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    expected = {
        f"hello from lunatic_mp: n = {n}, sum of squares 1..n = {sum_of_squares(n)}"
        for n in (1000, 2000, 3000, 4000)
    }
    assert set(lines) == expected
    assert result.stderr == ""


def test_args_after_double_dash() -> None:
    """Arguments after `--` reach the guest as WASI arguments, verbatim and in order, even ones
    that look like options."""
    result = cli("run", GUESTS / "cli_echo.wat", "--", "x", "y", "two words", "--dir")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["x", "y", "two words", "--dir"]


@pytest.mark.parametrize("dir_first", [True, False], ids=["dir-before-module", "dir-after-module"])
def test_preopened_dir_and_args(tmp_path: Path, dir_first: bool) -> None:
    """`--dir DIR` preopens a host directory: the guest reads a file the test put there."""
    (tmp_path / "input.txt").write_text("from the host\n")
    module = GUESTS / "cli_echo.wat"
    options = ("--dir", tmp_path, module) if dir_first else (module, "--dir", tmp_path)
    result = cli("run", *options, "--", "x", "y")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["x", "y", "from the host"]


def test_binary_module(tmp_path: Path) -> None:
    """A compiled `.wasm` file runs like its WAT source."""
    binary = tmp_path / "echo.wasm"
    binary.write_bytes(wasmtime.wat2wasm((GUESTS / "cli_echo.wat").read_text()))
    result = cli("run", binary, "--", "compiled")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "compiled\n"


def test_no_dir_means_no_preopen() -> None:
    """Without --dir the guest has no preopened directory (and prints only its arguments)."""
    result = cli("run", GUESTS / "cli_echo.wat", "--", "only")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "only\n"


def test_missing_dir_is_a_load_error(tmp_path: Path) -> None:
    """`--dir` naming a directory that does not exist exits 2 with a message naming it."""
    missing = tmp_path / "nowhere"
    result = cli("run", "--dir", missing, GUESTS / "cli_echo.wat")
    assert result.returncode == 2
    assert "nowhere" in result.stderr
    assert result.stdout == ""


def test_environment_is_inherited() -> None:
    """The guest sees the environment variables of the `lunatic-mp` process."""
    env = {**os.environ, "LUNATIC_MP_TEST_VAR": "hello there"}
    result = cli("run", GUESTS / "cli_env.wat", env=env)
    assert result.returncode == 0, result.stderr
    assert "LUNATIC_MP_TEST_VAR=hello there" in result.stdout.splitlines()


def test_proc_exit_code() -> None:
    """A guest calling proc_exit(7) makes the command exit 7, silently."""
    result = cli("run", GUESTS / "cli_exit.wat")
    assert result.returncode == 7
    assert result.stderr == ""


def test_trap_exits_1_with_one_line_reason() -> None:
    """A trapping root process exits 1 with one line on stderr giving the reason."""
    result = cli("run", GUESTS / "cli_trap.wat")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lunatic-mp:")
    assert "unreachable" in lines[0]


@pytest.mark.parametrize(
    "content",
    [b"\x00asm\x01\x00\x00\x00\xff\xff not really", b"\x00asm", b"\xff\xfe\x00garbage", b""],
    ids=["bad-section", "truncated", "not-utf8", "empty"],
)
def test_malformed_module_exits_2(tmp_path: Path, content: bytes) -> None:
    """Bytes that are not a Wasm module exit 2 with a message naming the file and the problem."""
    bad = tmp_path / "garbage.wasm"
    bad.write_bytes(content)
    result = cli("run", bad)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "garbage.wasm" in lines[0]
    assert "not a valid Wasm module" in lines[0]
    assert result.stdout == ""


def test_malformed_wat_exits_2(tmp_path: Path) -> None:
    """WAT text that does not parse exits 2 as well, without a Python traceback."""
    bad = tmp_path / "broken.wat"
    bad.write_text('(module (func (export "_start") (i32.add)')
    result = cli("run", bad)
    assert result.returncode == 2
    assert "broken.wat" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    """A module path that does not exist exits 2 with a message naming it."""
    result = cli("run", tmp_path / "missing.wasm")
    assert result.returncode == 2
    assert "missing.wasm" in result.stderr
    assert "No such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_module_without_start_exits_2(tmp_path: Path) -> None:
    """A valid module with no `_start` export exits 2, saying what is missing."""
    module = tmp_path / "no_start.wat"
    module.write_text('(module (memory (export "memory") 1) (func (export "main")))')
    result = cli("run", module)
    assert result.returncode == 2
    assert "_start" in result.stderr


def test_module_without_memory_exits_2(tmp_path: Path) -> None:
    """A module that does not export `memory` is refused at load with exit code 2."""
    module = tmp_path / "no_memory.wat"
    module.write_text('(module (func (export "_start")))')
    result = cli("run", module)
    assert result.returncode == 2
    assert "memory" in result.stderr


def test_deadlock_exits_1() -> None:
    """A root process blocked forever in receive, with nothing else alive, is detected: exit 1
    with the deadlock message (and no hang)."""
    result = cli("run", GUESTS / "cli_deadlock.wat")
    assert result.returncode == 1
    assert DEADLOCK_MESSAGE in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_program_ends_with_root_process() -> None:
    """When `_start` returns the command exits 0, even with a child still waiting."""
    result = cli("run", GUESTS / "cli_orphan.wat")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_version_option() -> None:
    """`lunatic-mp --version` prints the package version."""
    result = cli("--version")
    assert result.returncode == 0
    assert importlib.metadata.version("lunatic-mp") in result.stdout


def test_run_help() -> None:
    """`lunatic-mp run --help` documents --dir and exits 0."""
    result = cli("run", "--help")
    assert result.returncode == 0
    assert "--dir" in result.stdout


# --- over several worker processes ----------------------------------------------------------------


def test_hello_example_on_two_workers() -> None:
    """`run --workers 2` spreads the children over two worker processes; same output, exit 0."""
    result = cli("run", "--workers", "2", "lunatic_mp/examples/hello.wat")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(
        f"hello from lunatic_mp: n = {n}, sum of squares 1..n = {sum_of_squares(n)}"
        for n in (1000, 2000, 3000, 4000)
    )


def test_exit_code_and_trap_on_two_workers() -> None:
    """The root's `proc_exit` code, and a trap's one-line reason, cross from a worker process."""
    exited = cli("run", "--workers", "2", GUESTS / "cli_exit.wat")
    assert exited.returncode == 7, exited.stderr
    trapped = cli("run", "--workers", "2", GUESTS / "cli_trap.wat")
    assert trapped.returncode == 1
    assert "unreachable" in trapped.stderr
    assert len(trapped.stderr.strip().splitlines()) == 1, trapped.stderr


@pytest.mark.parametrize(
    ("options", "status"), [((), 0), (("--max-mailbox", "0"), 0), (("--max-mailbox", "100"), 1)]
)
def test_max_mailbox_sets_the_bound_of_every_mailbox(options: tuple[str, ...], status: int) -> None:
    """`--max-mailbox N`: a root sending 150 messages to a process that reads none of them until
    the 151st runs to its end under the default bound or none; under 100 it is paused for ever,
    and the command says why (exit 1) instead of hanging."""
    result = cli("run", *options, GUESTS / "cli_mailbox.wat")
    assert result.returncode == status, result.stderr
    if status:
        assert "waits for room in a full mailbox (--max-mailbox) that can never come" in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_time_slice_ms_is_taken_and_checked(workers: str) -> None:
    """`--time-slice-ms`: a run with a longer slice ends as any other; one outside what the
    ticker keeps (10 µs to 10 s) is refused before anything runs."""
    result = cli("run", "--workers", workers, "--time-slice-ms", "5", GUESTS / "cli_exit.wat")
    assert result.returncode == 7, result.stderr
    refused = cli("run", "--workers", workers, "--time-slice-ms", "0", GUESTS / "cli_exit.wat")
    assert refused.returncode == 2
    assert "--time-slice-ms" in refused.stderr


SAY_THEN_SLEEP = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "sleep_ms" (func $sleep (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "running\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $sleep (i64.const 600000))))
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_exits_130_however_many_workers(workers: str, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) ends `run` with 130 and
    one line; with one worker it used to exit 1 with click's "Aborted!"."""
    guest = tmp_path / "sleepy.wat"
    guest.write_text(SAY_THEN_SLEEP)
    process = subprocess.Popen(
        [lunatic_mp(), "run", "--workers", workers, str(guest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "running\n"
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "lunatic-mp: interrupted"
