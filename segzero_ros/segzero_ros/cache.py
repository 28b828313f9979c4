"""The on-disk cache of things built on first use (tiny models, ONNX exports), safe across processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    """Where built artefacts (tiny models, ONNX exports) live: ``$SEGZERO_CACHE`` or ``~/.cache/segzero_ros``."""
    root = Path(os.environ.get("SEGZERO_CACHE", Path.home() / ".cache" / "segzero_ros"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An inter-process lock, so parallel tests and nodes build a model once."""
    with open(cache_dir() / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_once(name: str, build) -> Path:
    """``cache/name``, built by ``build(tmp_dir)`` into a temporary folder and renamed when complete."""
    target = cache_dir() / name
    if (target / ".complete").exists():
        return target
    with locked(name):
        if (target / ".complete").exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir()))
        try:
            build(tmp)
            (tmp / ".complete").touch()
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target
