"""``segzero bench``: SAM2 backends and reasoner generation paths side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_bench(args: argparse.Namespace) -> int:
    from segzero_ros.benchmarks.sam2 import bench_sam2, format_table

    result = bench_sam2(args.config, args.backends.split(","), args.repeats, args.device, args.image_size)
    return _report(result, args, lambda: format_table(args.config, result, args.repeats))


def cmd_bench_reasoner(args: argparse.Namespace) -> int:
    from segzero_ros.benchmarks.reasoner import bench_reasoner, format_reasoner_table

    model = "tiny" if args.tiny else args.model
    paths = args.paths.split(",") if args.paths else None
    result = bench_reasoner(model, paths, args.new_tokens, args.repeats, args.device, args.dtype)
    return _report(result, args, lambda: format_reasoner_table(result))


def _report(result: dict, args: argparse.Namespace, table) -> int:
    """Write ``result`` to ``--out`` when asked; print it as one JSON object (``--json``) or a table."""
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result) if args.json else table())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero bench sam2`` and ``segzero bench reasoner`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", required=True)
    p = bench.add_parser("sam2", help="SAM2 backends side by side: encoder/decoder ms, speed-up, mask IoU")
    p.add_argument(
        "--config", default="sam2.1_hiera_t", help="'tiny' or a sam2 config: sam2.1_hiera_t, sam2_hiera_l, or its path"
    )
    p.add_argument(
        "--backends", default="torch,onnx", help="comma-separated, the reference first (torch = eager fp32; torch:bf16)"
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--image-size", type=int, default=None, help="SAM2 input side (default the config's, 1024)")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by backend")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("reasoner", help="reasoner generation paths: prefill ms, decode tokens/s, same tokens")
    p.add_argument("--model", default="tiny", choices=("tiny", "7b", "3b"), help="tiny, or a random 7b/3b (GPU)")
    p.add_argument("--tiny", action="store_true", help="the tiny model (the default)")
    p.add_argument("--paths", default=None, help="comma-separated: default,static,static+compile (all)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens generated per run (forced length)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32")
    p.add_argument("--json", action="store_true", help="print one JSON object (paths, same_tokens)")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(func=cmd_bench_reasoner)
