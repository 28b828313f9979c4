"""``segzero segment``: SAM2 alone on a box (and clicks)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import segzero_ros.cli.options as options
from segzero_ros import build
from segzero_ros.cli.common import (
    LOG,
    note_tiny,
    read_image,
    write_png,
)


def _parse_xy(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y, got {text!r}") from None
    return x, y


def _parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x1,y1,x2,y2, got {text!r}") from None
    if x2 <= x1 or y2 <= y1:
        raise argparse.ArgumentTypeError(f"box needs x1 < x2 and y1 < y2, got {text!r}")
    return x1, y1, x2, y2


def cmd_segment(args: argparse.Namespace) -> int:
    from segzero_ros.overlay import draw_overlay
    from segzero_ros.protocol import Target

    rgb = read_image(args.image)
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = args.box
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        LOG.warning(
            "the box %s reaches outside the %dx%d image; SAM2 takes it as it is (coordinates are image pixels)",
            ",".join(f"{v:g}" for v in args.box),
            width,
            height,
        )
    target = Target(bbox=args.box, points=list(args.points or []))
    values = options.values_from_args(args)
    segmenter = build.build_segmenter(values)
    segments = segmenter.segment(rgb, [target])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_png(out / "mask.png", segments[0].mask.astype(np.uint8) * 255)
    write_png(out / "overlay.png", draw_overlay(rgb, [target], [segments[0].mask]))
    print(
        json.dumps(
            {
                "bbox": list(target.bbox),
                "points": [list(p) for p in target.points],
                "area": int(segments[0].mask.sum()),
                "score": round(segments[0].score, 4),
            }
        )
    )
    note_tiny(values, reasoner_ran=False)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero segment`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser("segment", help="run SAM2 alone on a box (+ points) prompt")
    p.add_argument("--image", required=True)
    p.add_argument("--box", required=True, type=_parse_box, help="x1,y1,x2,y2 in image pixels")
    p.add_argument("--points", nargs="*", type=_parse_xy, help="positive clicks x,y ...")
    p.add_argument("--out", default="segment_out")
    options.add_model_arguments(p, only=("segmenter.", "reasoner.local_files_only"), multi=False)
    p.set_defaults(func=cmd_segment)
