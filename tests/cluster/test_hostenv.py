"""What the machine offers the multi-worker runtime: platform, /dev/shm room, cgroup CPU quota."""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path

import pytest

from lunatic_mp.api.runtime import Runtime
from lunatic_mp.cluster import hostenv
from lunatic_mp.cluster.hostenv import (
    check_shm_space,
    cpu_quota,
    default_worker_count,
    platform_problem,
    shm_space,
)
from lunatic_mp.cluster.transport import SharedMemory
from lunatic_mp.errors import PlatformError


def fake_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    """A root directory with /proc/self/cgroup and cgroup files, as a container would have."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for name, text in files.items():
        path = tmp_path / "sys/fs/cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_cgroup_v2_quota_is_the_smallest_along_the_path(tmp_path: Path) -> None:
    root = fake_root(
        tmp_path,
        "0::/a/b\n",
        {"a/b/cpu.max": "150000 100000\n", "a/cpu.max": "max 100000\n", "cpu.max": "300000 100000\n"},
    )
    assert cpu_quota(root) == 1.5
    assert default_worker_count(root) == min(len(os.sched_getaffinity(0)), 2)


def test_cgroup_v2_without_a_quota(tmp_path: Path) -> None:
    root = fake_root(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert cpu_quota(root) is None
    assert default_worker_count(root) == len(os.sched_getaffinity(0))


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    root = fake_root(
        tmp_path,
        "5:memory:/x\n4:cpu,cpuacct:/x\n",
        {"cpu,cpuacct/x/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/x/cpu.cfs_period_us": "100000\n"},
    )
    assert cpu_quota(root) == 0.5
    assert default_worker_count(root) == 1  # never fewer than one worker
    (root / "sys/fs/cgroup/cpu,cpuacct/x/cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert cpu_quota(root) is None


def test_no_cgroup_information_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path) is None


def test_the_platform_is_named_where_it_is_not_supported() -> None:
    assert platform_problem("linux", "x86_64") is None
    problem = platform_problem("linux", "aarch64")
    assert problem is not None
    assert "needs Linux on x86-64" in problem and "linux on aarch64" in problem
    assert "darwin on arm64" in (platform_problem("darwin", "arm64") or "")


def test_a_runtime_refuses_to_start_on_another_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostenv.platform, "machine", lambda: "aarch64")
    with pytest.raises(PlatformError, match=r"needs Linux on x86-64.*linux on aarch64"):
        Runtime(workers=1, discover_plugins=False)


def test_a_runtime_whose_rings_do_not_fit_in_dev_shm_fails_at_start() -> None:
    before = set(os.listdir("/dev/shm"))
    with pytest.raises(PlatformError) as raised:
        Runtime(workers=1, ring_capacity=1 << 44, discover_plugins=False)  # 6 rings of 16 TiB
    message = str(raised.value)
    space = shm_space()
    assert space is not None
    assert message.startswith("/dev/shm has ") and "free of" in message
    assert "6 rings of 16,777,216.0 MiB" in message
    assert "--shm-size" in message
    assert set(os.listdir("/dev/shm")) <= before  # nothing left behind


def test_check_shm_space_passes_what_fits() -> None:
    check_shm_space(2, 4096)
    with pytest.raises(PlatformError, match="does not exist"):
        check_shm_space(1, 1, directory="/nonexistent-shm")


def test_a_segment_is_reserved_when_created_and_a_full_dev_shm_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"lunatic-mp-test-{secrets.token_hex(4)}"
    reserved: list[tuple[int, int]] = []
    real = os.posix_fallocate

    def fallocate(fd: int, offset: int, length: int) -> None:
        reserved.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", fallocate)
    shm = SharedMemory(name, create=True, size=1 << 16)
    try:
        assert reserved == [(0, 1 << 16)]
        assert os.stat(f"/dev/shm/{name}").st_blocks * 512 >= 1 << 16  # the pages are allocated
    finally:
        shm.close()
        shm.unlink()

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(PlatformError, match=rf"/dev/shm has .* free of .*the segment {name} need 1.0 MiB"):
        SharedMemory(name, create=True, size=1 << 20)
    assert not os.path.exists(f"/dev/shm/{name}")


def test_without_an_affinity_mask_every_cpu_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")  # as on macOS
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert hostenv.usable_cpus() == 8
    assert default_worker_count(Path("/nonexistent")) == 8
