"""Shared pytest fixtures: the tiny offline models (built once per cache, see segzero_ros.tiny)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_reasoner_dir() -> Path:
    from segzero_ros.tiny import tiny_reasoner_path

    return tiny_reasoner_path()


@pytest.fixture(scope="session")
def tiny_sam2_config():
    from segzero_ros.tiny import tiny_segmenter_config

    return tiny_segmenter_config()
