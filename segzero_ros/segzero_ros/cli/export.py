"""``segzero export-onnx`` and ``segzero build-engine``: SAM2 as ONNX graphs and TensorRT engines."""

from __future__ import annotations

import argparse
import json
import sys

from segzero_ros.cli.common import (
    tiny_note,
)


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from segzero_ros.segmenter import SegmenterConfig
    from segzero_ros.segmenter.onnx import export_config
    from segzero_ros.tiny import tiny_segmenter_config

    if args.tiny:
        config = tiny_segmenter_config(multimask_output=not args.single_mask)
    else:
        from segzero_ros.build import check_hub_model

        check_hub_model("segmenter", args.checkpoint, args.local_files_only)
        config = SegmenterConfig(
            model=args.checkpoint,
            config=args.config,
            overrides=list(args.override),
            multimask_output=not args.single_mask,
            local_files_only=args.local_files_only,
        )
    info = export_config(config, args.out)
    print(json.dumps({"out": str(args.out), **info.__dict__}))
    if args.tiny:
        print(tiny_note(reasoner=False, segmenter=True), file=sys.stderr)
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from segzero_ros.devices import resolve_device
    from segzero_ros.segmenter.base import BackendUnavailable
    from segzero_ros.segmenter.tensorrt import build_engines, machine_spec, tensorrt_module

    try:
        trt = tensorrt_module()
        spec = machine_spec(trt, resolve_device(args.device), args.onnx, args.fp16, args.workspace, args.max_points)
    except BackendUnavailable as exc:
        raise SystemExit(f"segzero build-engine: {exc}") from None
    build_engines(trt, args.onnx, args.out, spec)
    print(json.dumps({"out": str(args.out), **asdict(spec)}))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero export-onnx`` and ``segzero build-engine`` and its options, on the ``segzero`` parser."""
    from segzero_ros.segmenter.base import SAM2_LARGE

    p = sub.add_parser("export-onnx", help="export SAM2 to ONNX (encoder.onnx + decoder.onnx + export.json)")
    p.add_argument("--checkpoint", default=SAM2_LARGE, help="Hugging Face id or local SAM2 checkpoint")
    p.add_argument("--config", default=None, help="sam2 config (default: from the id or the file name)")
    p.add_argument("--override", action="append", default=[], help="hydra override of the config (repeatable)")
    p.add_argument("--single-mask", action="store_true", help="decoder gives one mask instead of SAM2's three")
    p.add_argument("--out", required=True, help="folder for the graphs")
    p.add_argument("--tiny", action="store_true", help="export the tiny offline SAM2")
    p.add_argument("--local-files-only", action="store_true", help="never contact the Hugging Face hub")
    p.set_defaults(func=cmd_export_onnx)
    p = sub.add_parser("build-engine", help="build TensorRT engines from an ONNX export (needs tensorrt and a GPU)")
    p.add_argument("--onnx", required=True, help="folder written by segzero export-onnx")
    p.add_argument("--out", required=True, help="folder for encoder.engine, decoder.engine, engine.json")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="fp16 kernels (default on)")
    p.add_argument("--workspace", type=float, default=4.0, help="builder workspace, GB")
    p.add_argument("--max-points", type=int, default=34, help="most prompt points (box corners + clicks)")
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")
    p.set_defaults(func=cmd_build_engine)
