"""``segzero infer``: what a goal asks for in an image, segmented."""

from __future__ import annotations

import argparse
from pathlib import Path

import segzero_ros.cli.options as options
from segzero_ros.cli.common import (
    note_tiny,
    read_image,
    run_goal,
    save_result,
)


def cmd_infer(args: argparse.Namespace) -> int:
    rgb = read_image(args.image)
    result, values = run_goal(args, rgb)
    code = save_result(result, rgb, Path(args.out) if args.out else None, args.json)
    note_tiny(values)
    return code


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero infer`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser("infer", help="segment what a goal asks for in an image")
    p.add_argument("--image", required=True)
    p.add_argument("--goal", required=True)
    p.add_argument("--out", default=None, help="folder for overlay.png, mask*.png, result.json")
    p.add_argument("--json", action="store_true", help="print the result as one line of JSON")
    options.add_model_arguments(p)
    p.set_defaults(func=cmd_infer)
