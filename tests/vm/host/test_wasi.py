"""WASI preview1 for processes (stdio, arguments, environment, preopened directories, proc_exit)
and the lunatic::wasi functions that give a child's config its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import spawn

from lunatic_mp import Engine, EnvConfig, Finished, Module
from lunatic_mp.errors import PermissionDenied, SpawnError
from lunatic_mp.vm.finished import Outcome

GUEST = "wasi_guest.wat"
WASI_EBADF = 8
WASI_ENOENT = 44
WASI_EPERM = 63
WASI_ENOTCAPABLE = 76


@pytest.fixture
def guest(load: Callable[[str], Module]) -> Module:
    return load(GUEST)


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_stdout_and_stderr(
    guest: Module, run: Callable[..., Finished], capfd: pytest.CaptureFixture[str]
) -> None:
    """fd_write on fds 1 and 2 reaches the host's stdout and stderr, separately."""
    finished = run(guest, "hello")
    assert finished.ok, finished
    assert finished.result == (0,)
    out, err = capfd.readouterr()
    assert out == "to stdout\n"
    assert err == "to stderr\n"


def test_args(guest: Module, run: Callable[..., Finished], capfd: pytest.CaptureFixture[str]) -> None:
    """args_sizes_get/args_get give the config's arguments after argv[0] (the program)."""
    finished = run(guest, "print_args", args=["a", "b"])
    assert finished.result == (3,)
    printed = lines(capfd.readouterr().out)
    assert len(printed) == 3
    assert printed[0]  # the program name
    assert printed[1:] == ["a", "b"]


def test_args_with_spaces_and_unicode(
    guest: Module, run: Callable[..., Finished], capfd: pytest.CaptureFixture[str]
) -> None:
    """Arguments arrive verbatim: no splitting on spaces, UTF-8 intact, empty ones kept."""
    finished = run(guest, "print_args", args=["two words", "", "héllo ✓"])
    assert finished.result == (4,)
    assert lines(capfd.readouterr().out)[1:] == ["two words", "", "héllo ✓"]


def test_no_args(guest: Module, run: Callable[..., Finished], capfd: pytest.CaptureFixture[str]) -> None:
    """Without configured arguments a guest sees only argv[0]."""
    finished = run(guest, "print_args")
    assert finished.result == (1,)
    assert len(lines(capfd.readouterr().out)) == 1


def test_environment(guest: Module, run: Callable[..., Finished], capfd: pytest.CaptureFixture[str]) -> None:
    """environ_get gives exactly the config's variables, not the host's environment."""
    finished = run(guest, "print_env", env={"GREETING": "hello world", "EMPTY": "", "N": "1"})
    assert finished.result == (3,)
    assert sorted(lines(capfd.readouterr().out)) == ["EMPTY=", "GREETING=hello world", "N=1"]


def test_environment_not_inherited(
    guest: Module,
    run: Callable[..., Finished],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host environment variable does not leak into a guest whose config has none."""
    monkeypatch.setenv("LUNATIC_MP_HOST_SECRET", "x")
    finished = run(guest, "print_env")
    assert finished.result == (0,)
    assert capfd.readouterr().out == ""


def test_preopened_dir_read_and_write(
    guest: Module, run: Callable[..., Finished], capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A guest opens a file of its preopened directory (fd 3), reads it, and creates another
    file there that the host then reads."""
    (tmp_path / "input.txt").write_text("first line\nsecond line\n")
    finished = run(guest, "copy_in", preopened_dirs={"/data": str(tmp_path)})
    assert finished.ok, finished
    assert finished.result == (0,), "0 = success; 1000+errno open, 2000+ read, 3000+ create, 4000+ write"
    assert capfd.readouterr().out == "first line\nsecond line\n"
    assert (tmp_path / "output.txt").read_text() == "written by the guest\n"


def test_preopened_dir_via_config_preopen(
    guest: Module, engine: Engine, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """EnvConfig.preopen(guest_path, host_path) maps a host directory under the guest path:
    fd_prestat_dir_name reports the guest path."""
    config = EnvConfig.permissive()
    config.preopen("/sandbox", tmp_path)
    process = engine.spawn(guest, "preopen_name", (), config)
    finished = engine.run_until_finished(process, timeout=30)
    assert finished is not None and finished.result == (0,)
    assert capfd.readouterr().out == "/sandbox\n"


def test_no_preopened_dir(guest: Module, run: Callable[..., Finished], tmp_path: Path) -> None:
    """Without a preopened directory there is no fd 3: opening fails with EBADF, no file is made."""
    finished = run(guest, "copy_in")
    assert finished.ok, finished
    assert finished.result == (1000 + WASI_EBADF,)
    assert not any(tmp_path.iterdir())


def test_missing_file_in_preopened_dir(guest: Module, run: Callable[..., Finished], tmp_path: Path) -> None:
    """Opening a file that does not exist returns an errno (ENOENT) instead of trapping."""
    finished = run(guest, "copy_in", preopened_dirs={"/data": str(tmp_path)})
    assert finished.ok, finished
    assert finished.result == (1000 + WASI_ENOENT,)


def test_cannot_escape_preopened_dir(guest: Module, run: Callable[..., Finished], tmp_path: Path) -> None:
    """A path with `..` leading out of the preopened directory is refused; nothing is created."""
    inner = tmp_path / "inner"
    inner.mkdir()
    finished = run(guest, "escape", preopened_dirs={"/data": str(inner)})
    assert finished.ok, finished
    assert finished.result[0] in (WASI_EPERM, WASI_ENOTCAPABLE)
    assert not (tmp_path / "escaped.txt").exists()


def test_preopen_refuses_missing_directory(tmp_path: Path) -> None:
    """EnvConfig.preopen refuses a host path that is not a directory."""
    config = EnvConfig.permissive()
    with pytest.raises(NotADirectoryError):
        config.preopen("/data", tmp_path / "missing")
    assert config.preopened_dirs == {}


def test_spawn_with_missing_preopened_dir_fails(guest: Module, engine: Engine, tmp_path: Path) -> None:
    """A config naming a host directory that does not exist fails the spawn (SpawnError), and
    leaves no process behind."""
    config = EnvConfig.permissive(preopened_dirs={"/data": str(tmp_path / "missing")})
    with pytest.raises(SpawnError, match="missing"):
        engine.spawn(guest, "copy_in", (), config)
    assert engine.processes == {}


def test_proc_exit_zero_is_normal(guest: Module, run: Callable[..., Finished]) -> None:
    """proc_exit(0) ends the process normally, with exit code 0."""
    finished = run(guest, "exit", (0,))
    assert finished.outcome is Outcome.NORMAL
    assert finished.exit_code == 0


@pytest.mark.parametrize("code", [1, 7, 125])
def test_proc_exit_code(guest: Module, run: Callable[..., Finished], code: int) -> None:
    """proc_exit(n != 0) ends the process as failed, keeping the exit code."""
    finished = run(guest, "exit", (code,))
    assert finished.outcome is Outcome.FAILED
    assert finished.exit_code == code
    assert not finished.ok


@pytest.mark.parametrize("code", [126, 256, -1])
def test_proc_exit_code_out_of_range(guest: Module, run: Callable[..., Finished], code: int) -> None:
    """proc_exit with a status outside WASI's [0, 126) fails the process with a reason, and no
    exit code (so a caller cannot mistake a truncated code for success)."""
    finished = run(guest, "exit", (code,))
    assert finished.outcome is Outcome.FAILED
    assert finished.exit_code is None
    assert "exit status" in finished.message


def test_proc_exit_failure_reaches_linked_process(guest: Module, engine: Engine) -> None:
    """A non-zero proc_exit is a Failure death: a process linked to it (dying with its links)
    is killed too."""
    watcher = spawn(engine, guest, "spawn_configured")  # blocks in receive forever
    exiting = engine.spawn(guest, "exit", (3,), EnvConfig.permissive(), link=(watcher, 9))
    engine.run(timeout=30)
    assert exiting.finished is not None and exiting.finished.exit_code == 3
    assert watcher.finished is not None
    assert watcher.finished.outcome is Outcome.KILLED


def test_lunatic_wasi_config_for_child(
    guest: Module, engine: Engine, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A config built with lunatic::wasi (argument, variable, preopened dir) gives a spawned child
    exactly those, and not its parent's. Its arguments are the config's list as it is: no program
    name in front (lunatic passes a configured list unchanged)."""
    (tmp_path / "input.txt").write_text("shared file\n")
    parent = spawn(
        engine, guest, "spawn_configured", args=["parent-arg"], env={"PARENT": "1"},
        preopened_dirs={"/parent": str(tmp_path)},
    )  # fmt: skip
    assert engine.send(parent.pid, str(tmp_path).encode())
    finished = engine.run_until_finished(parent, timeout=30)
    assert finished is not None and finished.ok, finished
    assert finished.result == (0,), "the child's done message arrived"
    printed = lines(capfd.readouterr().out)
    # the one added argument (argv[0] is it), the one variable, then the file
    assert printed == ["child-arg", "CHILD=yes", "shared file"]


def test_lunatic_wasi_preopen_of_missing_dir_is_a_spawn_error(
    guest: Module, engine: Engine, run: Callable[..., Finished], capfd: pytest.CaptureFixture[str]
) -> None:
    """A guest spawning under a config that preopens a missing directory gets spawn's error code
    and a message naming the directory; it is not trapped, and no child is left."""
    finished = run(guest, "spawn_bad_preopen")
    assert finished.ok, finished
    assert finished.result == (1,)
    assert "/nonexistent/lunatic-mp-test-dir" in capfd.readouterr().out
    assert engine.processes == {}


def test_lunatic_wasi_unknown_config_traps(guest: Module, run: Callable[..., Finished]) -> None:
    """lunatic::wasi functions given an unknown config id trap the caller with a clear reason."""
    finished = run(guest, "bad_config")
    assert finished.outcome is Outcome.FAILED
    assert "unknown config id 12345" in finished.message


def test_wasi_denied_by_config(guest: Module, engine: Engine) -> None:
    """A config whose allowed namespaces lack `wasi` refuses to spawn a WASI module."""
    config = EnvConfig.permissive(allowed_namespaces=frozenset({"process", "message"}))
    with pytest.raises(PermissionDenied, match="wasi"):
        engine.spawn(guest, "hello", (), config)
