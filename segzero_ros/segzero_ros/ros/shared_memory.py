"""Fast DDS shared-memory files left by processes that ended without closing them: found and removed.

Fast DDS keeps each participant's segment in ``/dev/shm/fastdds_<16 characters>`` (about 35 MB with the shipped
profile) and each listening port in ``fastdds_port<N>`` (plus ``sem.fastdds_port<N>_mutex``). Beside each, an
``_el`` or ``_sl`` file is locked (``flock``) by every live process that has it open. A process killed by a signal
never unlinks its files; where no live process holds the lock, nobody uses them any more: the test Fast DDS's own
``fastdds shm clean`` makes (port files without a lock file are left alone: live processes keep some that way).
Our processes run this before ``rclpy.init``.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

SHM_DIR = Path("/dev/shm")
LOCK_FILE = re.compile(r"^(?P<base>(?:fastdds|fastrtps)_(?:[0-9a-z]{16}|port\d{1,5}))_(?:el|sl)$")
MIN_AGE_S = 2.0  # younger files may belong to a process still setting them up (it locks them at once)


@dataclass
class Reclaimed:
    """What ``reclaim_stale`` removed."""

    segments: int = 0
    ports: int = 0
    files: int = 0
    bytes: int = 0

    def describe(self) -> str:
        return (
            f"reclaimed {self.segments} Fast DDS shared-memory segment(s) and {self.ports} port(s) "
            f"({self.bytes / 2**20:.1f} MB)"
        )


def _in_use(lock_file: Path) -> bool:
    """True while a live process holds ``lock_file`` (or it cannot be checked)."""
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def reclaim_stale(directory: Path = SHM_DIR, min_age_s: float = MIN_AGE_S) -> Reclaimed:
    """Remove the Fast DDS segments and ports in ``directory`` that no live process holds."""
    reclaimed = Reclaimed()
    try:
        names = os.listdir(directory)
    except OSError:  # no /dev/shm (not Linux): Fast DDS keeps its files elsewhere
        return reclaimed
    now = time.time()
    for name in names:
        match, lock = LOCK_FILE.match(name), directory / name
        if match is None:
            continue
        try:
            young = now - lock.stat().st_mtime < min_age_s
        except OSError:
            continue
        if young or _in_use(lock):
            continue
        base = match["base"]
        if "_port" in base:
            reclaimed.ports += 1
        else:
            reclaimed.segments += 1
        for path in (directory / base, lock, directory / f"sem.{base}_mutex"):
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            reclaimed.files += 1
            reclaimed.bytes += size
    return reclaimed
