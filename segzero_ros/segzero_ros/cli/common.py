"""What the ``segzero`` subcommands share: reading and writing images, running the models once, printing results,
the NOTE on tiny models."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

import segzero_ros.cli.options as options

LOG = logging.getLogger("segzero")

TINY_REASONER_NOTE = (
    "the tiny reasoner is fitted to always give the same answer (a box on the demo scene's red cup), whatever the "
    "image and goal"
)
TINY_SAM2_NOTE = "the tiny SAM2 has random weights, so its masks carry no meaning"
REAL_MODELS_NOTE = (
    "For real results: segzero infer --image IMG --goal TEXT (downloads Ricky06662/Seg-Zero-7B and "
    "facebook/sam2-hiera-large, ~17 GB, a GPU with >= 24 GB recommended), or --reasoner/--sam2 with local paths."
)


def read_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise SystemExit(f"segzero: cannot read image {path!r}: {exc}") from None


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)
    LOG.info("wrote %s", path)


def tiny_note(reasoner: bool, segmenter: bool) -> str:
    """What the tiny models that ran mean (nothing), in one NOTE line; '' when none ran."""
    parts = [TINY_REASONER_NOTE] * reasoner + [TINY_SAM2_NOTE] * segmenter
    if not parts:
        return ""
    return f"NOTE: this ran tiny offline models: {'; '.join(parts)}. It checks the plumbing. {REAL_MODELS_NOTE}"


def note_tiny(values: dict, reasoner_ran: bool = True) -> None:
    from segzero_ros.build import TINY

    note = tiny_note(reasoner_ran and values["reasoner.model"] == TINY, values["segmenter.model"] == TINY)
    if note:
        print(note, file=sys.stderr)


def run_goal(args: argparse.Namespace, rgb: np.ndarray):
    """The models the options name, built, run once on ``rgb`` for ``args.goal``, released; (result, values)."""
    from segzero_ros import build

    values = options.values_from_args(args)
    pipeline = build.build_pipeline(values)
    try:
        return pipeline.run(rgb, args.goal), values
    finally:
        pipeline.close()


def save_result(result, rgb: np.ndarray, out: Path | None, as_json: bool) -> int:
    from segzero_ros.overlay import draw_overlay

    summary = result.to_dict()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_png(out / "overlay.png", draw_overlay(rgb, result.targets, result.masks))
        if result.ok:
            write_png(out / "mask.png", result.union().astype(np.uint8) * 255)
            for k, mask in enumerate(result.masks, start=1):
                write_png(out / f"mask_{k}.png", mask.astype(np.uint8) * 255)
        (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
        LOG.info("wrote %s", out / "result.json")
    if as_json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
    return 0 if result.ok else 1
