"""``segzero eval``: the evaluation of ``training/evaluate.py`` from the command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def training_module(name: str):
    """``training.<name>`` of this source tree (the sam2 wheel installs an unrelated top-level ``training``)."""
    root = Path(__file__).resolve().parents[3]  # the repository: segzero_ros/segzero_ros/cli/evaluate.py
    if not (root / "training" / "__init__.py").is_file():
        raise SystemExit(f"segzero: no training/ in {root}; segzero eval runs from a source checkout")
    cached = sys.modules.get("training")
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve().parent != root / "training":
        for key in [k for k in sys.modules if k == "training" or k.startswith("training.")]:
            del sys.modules[key]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    elif sys.path.index(str(root)) > 0:
        sys.path.remove(str(root))
        sys.path.insert(0, str(root))
    return importlib.import_module(f"training.{name}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero eval`` (its options are ``training/evaluate.py``'s) and its options, on the ``segzero`` parser."""
    sub.add_parser(
        "eval",
        add_help=False,
        help="gIoU/cIoU of a reasoner + SAM2 on an evaluation set (training/evaluate.py; segzero eval --help)",
    )
