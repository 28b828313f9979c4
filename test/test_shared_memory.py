"""Fast DDS shared-memory files of ended processes reclaimed; files a live process holds kept (no ROS needed)."""

from __future__ import annotations

import fcntl
import os
import time

from segzero_ros.ros.shared_memory import reclaim_stale


def touch(path, size: int = 0, age_s: float = 60.0) -> None:
    path.write_bytes(b"\0" * size)
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_only_files_no_live_process_holds_are_removed(tmp_path):
    for base, size in (
        ("fastdds_0123456789abcdef", 1000),
        ("fastdds_fedcba9876543210", 2000),
        ("fastdds_port7411", 50),
    ):
        touch(tmp_path / base, size)
        touch(tmp_path / f"{base}_el")
    touch(tmp_path / "sem.fastdds_port7411_mutex", 32)
    touch(tmp_path / "fastdds_port7413", 50)  # no lock file: live processes keep some ports that way
    touch(tmp_path / "sem.fastdds_port7413_mutex", 32)
    touch(tmp_path / "fastdds_aaaaaaaaaaaaaaaa", 10, age_s=0.0)  # just created: its lock may not be taken yet
    touch(tmp_path / "fastdds_aaaaaaaaaaaaaaaa_el", age_s=0.0)
    touch(tmp_path / "lttng-ust-wait-6", 4096)  # not Fast DDS's
    held = os.open(tmp_path / "fastdds_fedcba9876543210_el", os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_SH)  # a live process's segment (its readers hold the lock)
    try:
        reclaimed = reclaim_stale(tmp_path)
    finally:
        os.close(held)
    assert (reclaimed.segments, reclaimed.ports, reclaimed.files) == (1, 1, 5)
    assert reclaimed.bytes == 1000 + 50 + 32
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fastdds_aaaaaaaaaaaaaaaa",
        "fastdds_aaaaaaaaaaaaaaaa_el",
        "fastdds_fedcba9876543210",
        "fastdds_fedcba9876543210_el",
        "fastdds_port7413",
        "lttng-ust-wait-6",
        "sem.fastdds_port7413_mutex",
    ]
    assert "1 Fast DDS shared-memory segment(s) and 1 port(s)" in reclaimed.describe()


def test_a_missing_directory_reclaims_nothing(tmp_path):
    assert reclaim_stale(tmp_path / "absent").files == 0
