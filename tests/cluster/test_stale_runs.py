"""The sweep of what killed supervisors left behind (lunatic_mp.cluster.stale_runs), against files
another local user planted in the shared temp directory and /dev/shm (``runuser -u nobody``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lunatic_mp.cluster.hub import bell_name, ring_name
from lunatic_mp.cluster.stale_runs import (
    OWNER_FILE,
    RUN_DIR_PREFIX,
    read_owner,
    sweep_stale_runs,
    write_owner,
)
from lunatic_mp.cluster.transport import Doorbell, SharedMemory

SHM = Path(SharedMemory._DIRECTORY)
as_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="plants files as another user (root only)"
)


def dead_pid() -> int:
    """The pid of a process that has exited (so a run naming it is stale)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def as_nobody(script: str) -> None:
    subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c", script], check=True, timeout=30)


@pytest.fixture
def planted() -> Iterator[list[Path]]:
    """Paths to remove afterwards, whoever made them."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def plant_run(planted: list[Path], run_id: str) -> Path:
    """A run directory of user nobody whose owner file names a dead supervisor and ``run_id``."""
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX + "planted-"))
    os.rmdir(run_dir)  # nobody makes it again, as its own
    planted.append(run_dir)
    as_nobody(f"mkdir -m 700 '{run_dir}' && printf '%s' '{dead_pid()} {run_id}' > '{run_dir}/{OWNER_FILE}'")
    return run_dir


@as_root
def test_a_planted_run_id_cannot_reach_outside_dev_shm(tmp_path: Path, planted: list[Path]) -> None:
    """Another user plants a run whose id climbs out of /dev/shm (``../``) into a directory only
    root can read: the sweep deletes nothing there (before the fix it deleted ``x-precious``)."""
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "x-precious").write_text("keep me")
    planted.append(SHM / "lmp-a")
    as_nobody(f"mkdir '{SHM / 'lmp-a'}'")
    plant_run(planted, f"a/../../..{secret}/x")
    sweep_stale_runs()
    assert (secret / "x-precious").read_text() == "keep me"


@as_root
def test_a_planted_directory_named_like_a_ring_does_not_break_the_sweep(planted: list[Path]) -> None:
    """A planted run whose id names a directory in /dev/shm: the sweep goes on (before the fix
    every Runtime() failed with IsADirectoryError), and leaves another user's things alone."""
    ring = SHM / ring_name("deadbeef", 1, 2)
    planted.append(ring)
    as_nobody(f"mkdir '{ring}'")
    run_dir = plant_run(planted, "deadbeef")
    sweep_stale_runs()
    assert ring.is_dir() and run_dir.is_dir()


@as_root
def test_another_users_segment_in_a_stale_run_of_ours_is_left_alone(planted: list[Path]) -> None:
    """In a stale run of this user, a segment with its name that another user made is not ours
    to delete; our own are removed, and so is the run directory."""
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    planted.append(run_dir)
    (run_dir / OWNER_FILE).write_text(f"{dead_pid()} cafef00d\n")
    theirs, ours = SHM / ring_name("cafef00d", 1, 2), SHM / ring_name("cafef00d", 2, 1)
    planted += [theirs, ours]
    as_nobody(f"touch '{theirs}'")
    ours.touch(mode=0o600)
    sweep_stale_runs()
    assert theirs.exists() and not ours.exists() and not run_dir.exists()


def test_a_stale_run_of_ours_is_removed(planted: list[Path]) -> None:
    """A run whose supervisor is gone: its rings, doorbell flags and directory are removed; a
    run whose supervisor lives (this process) is kept."""
    stale = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    live = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    planted += [stale, live]
    (stale / OWNER_FILE).write_text(f"{dead_pid()} 0badc0de\n")
    (live / OWNER_FILE).write_text(f"{os.getpid()} 0badc0df\n")
    segments = [
        SHM / ring_name("0badc0de", 0, 2),
        SHM / Doorbell.flag_name(stale, bell_name(2)),
        SHM / ring_name("0badc0df", 0, 2),
    ]
    planted += segments
    for segment in segments:
        segment.touch(mode=0o600)
    assert read_owner(stale) is not None
    sweep_stale_runs()
    assert [s.exists() for s in segments] == [False, False, True]
    assert not stale.exists() and live.is_dir()


@pytest.mark.parametrize(
    "text", ["12 ../../etc", "12 DEADBEEF", "0 deadbeef", "12 deadbeef extra", "x deadbeef", "12  deadbeef"]
)
def test_an_owner_file_that_is_not_exactly_pid_and_run_id_is_ignored(text: str, planted: list[Path]) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    planted.append(run_dir)
    (run_dir / OWNER_FILE).write_text(text)
    assert read_owner(run_dir) is None


def test_a_runtimes_own_run_is_trusted_whatever_the_umask() -> None:
    """The owner file a runtime writes is mode 0600 even under umask 0, so its run is swept
    once its supervisor is gone (a file others may write would not be trusted)."""
    old = os.umask(0)
    try:
        run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
        write_owner(run_dir, "0badc0de")
    finally:
        os.umask(old)
    try:
        assert read_owner(run_dir) == (os.getpid(), "0badc0de")
    finally:
        shutil.rmtree(run_dir)


def test_a_run_directory_others_may_enter_is_ignored(planted: list[Path]) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    planted.append(run_dir)
    (run_dir / OWNER_FILE).write_text("12 deadbeef\n")
    assert read_owner(run_dir) == (12, "deadbeef")
    run_dir.chmod(0o755)
    assert read_owner(run_dir) is None
