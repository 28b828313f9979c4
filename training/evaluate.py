"""ReasonSeg-style evaluation: a reasoner checkpoint + a SAM2 backend over an evaluation set → gIoU and cIoU.

``python -m training.evaluate --reasoner PATH --data synthetic|DIR|FILE|ID [--split val,test] [--limit N] [--json]
[--out DIR]`` (also ``segzero eval ...``). Answers are parsed as the reference evaluation parses them unless
``--lenient``; a sample that fails (unparsable answer, no mask) counts I = 0, U = |gt|. ``--out`` gets
``samples_<split>.jsonl`` (per sample: goal, reasoning, raw answer, targets, I, U, IoU) and ``summary.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.metrics import EMPTY_RULES, ciou_from_counts, giou_from_counts, intersection_union

LOG = logging.getLogger("segzero.eval")

SYNTHETIC_SEEDS = {"train": 0, "val": 1, "test": 2}  # the synthetic splits never share scenes
SYNTHETIC_DEFAULT_SIZE = 50


def load_eval_rows(data: str, split: str, limit: int | None, protocol: str = "segzero") -> list[dict[str, Any]]:
    """Rows with ``image`` (original size), ``problem`` and ``mask``: the synthetic set, or ReasonSeg."""
    from training import data as D

    if data == "synthetic":
        if split not in SYNTHETIC_SEEDS:
            raise DatasetError(f"the synthetic set has no split {split!r} (it has {', '.join(SYNTHETIC_SEEDS)})")
        return D.synthetic_rows(limit or SYNTHETIC_DEFAULT_SIZE, SYNTHETIC_SEEDS[split], protocol, resize=False)
    if not Path(data).expanduser().exists():
        from segzero_ros.hub import HubUnreachable, is_repo_id, local_only

        if not is_repo_id(data):
            raise DatasetError(f"no such dataset: {data!r} is neither a local folder or file nor a hub id (org/name)")

        try:
            local_only(data, repo_type="dataset")
        except HubUnreachable as exc:
            raise DatasetError(
                f"dataset {exc}; give a local copy (folder of parquet/JSON files) or use 'synthetic'"
            ) from None
    try:
        return D.load_reasonseg(data, split, limit)
    except ValueError as exc:  # the datasets library's "Unknown split" among them
        raise DatasetError(f"{data}: {' '.join(str(exc).split())[:300]}") from None


class DatasetError(ValueError):
    """An evaluation set that cannot be read: missing, or on a hub that cannot be reached."""


def summarise(counts: Sequence[tuple[int, int]], failed: int, empty: str) -> dict[str, Any]:
    """gIoU, cIoU, sample and failure counts of one set of (I, U) pairs."""
    return {
        "giou": giou_from_counts(counts, empty),
        "ciou": ciou_from_counts(counts),
        "n": len(counts),
        "failed": failed,
    }


def evaluate_rows(
    pipeline,
    rows: Sequence[dict[str, Any]],
    empty: str = "zero",
    on_sample: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``pipeline`` on every row; the summary (``giou``, ``ciou``, ``n``, ``failed``, ``seconds``)."""
    counts: list[tuple[int, int]] = []
    failed = 0
    start = time.perf_counter()
    for k, row in enumerate(rows, start=1):
        rgb = np.asarray(row["image"].convert("RGB"))
        result = pipeline.run(rgb, row["problem"], goal_id=str(row["id"]))
        pred = result.union() if result.ok else None
        inter, union = intersection_union(pred, row["mask"])
        counts.append((inter, union))
        failed += not result.ok
        if on_sample is not None:
            sample = result.to_dict()
            sample.update(intersection=inter, union=union, iou=inter / union if union else None)
            on_sample(sample)
        if k % 10 == 0 or k == len(rows):
            LOG.info("%d/%d samples, running gIoU %.4f", k, len(rows), giou_from_counts(counts, empty))
    return summarise(counts, failed, empty) | {"seconds": round(time.perf_counter() - start, 2), "counts": counts}


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Load the models once, evaluate every split of ``args.split``; the summary with per-split tables."""
    import segzero_ros.cli.options as options
    from segzero_ros import build

    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    values = options.values_from_args(args)
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    rows = {split: load_eval_rows(args.data, split, args.limit, values["reasoner.protocol"]) for split in splits}
    pipeline = build.build_pipeline(values)
    strict = values["reasoner.strict"]
    summary: dict[str, Any] = {"data": args.data, "empty": args.empty, "strict": strict, "splits": {}}
    all_counts: list[tuple[int, int]] = []
    all_failed = 0
    try:
        for split in splits:
            LOG.info("evaluating %s/%s: %d samples", args.data, split, len(rows[split]))
            sink = (out / f"samples_{split}.jsonl").open("w", encoding="utf-8") if out is not None else None
            try:
                write = (lambda sample, f=sink: f.write(json.dumps(sample) + "\n")) if sink is not None else None
                result = evaluate_rows(pipeline, rows[split], args.empty, write)
            finally:
                if sink is not None:
                    sink.close()
            all_counts += result.pop("counts")
            all_failed += result["failed"]
            summary["splits"][split] = result
        summary |= summarise(all_counts, all_failed, args.empty)
        summary["models"] = {"reasoner": pipeline.reasoner.config.model, "sam2": pipeline.segmenter.description}
    finally:
        pipeline.close()
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def print_table(summary: dict[str, Any]) -> None:
    """The per-split table, as the reference's evaluation prints it, plus failures."""
    print(f"{'split':<12}{'n':>6}{'failed':>8}{'gIoU':>9}{'cIoU':>9}")
    for split, row in summary["splits"].items():
        print(f"{split:<12}{row['n']:>6}{row['failed']:>8}{row['giou']:>9.4f}{row['ciou']:>9.4f}")
    if len(summary["splits"]) > 1:
        print(f"{'all':<12}{summary['n']:>6}{summary['failed']:>8}{summary['giou']:>9.4f}{summary['ciou']:>9.4f}")


def build_parser(prog: str = "python -m training.evaluate") -> argparse.ArgumentParser:
    from segzero_ros.cli.options import add_model_arguments

    p = argparse.ArgumentParser(prog=prog, description="gIoU / cIoU of a reasoner + SAM2 on an evaluation set.")
    p.add_argument(
        "--data",
        default="synthetic",
        help="'synthetic' (generated, offline), a ReasonSeg folder/parquet, or a hub id (Ricky06662/ReasonSeg_val)",
    )
    p.add_argument("--split", default="val", help="comma-separated splits (val,test)")
    p.add_argument("--limit", type=int, default=None, help="samples per split (synthetic default 50)")
    p.add_argument("--empty", default="zero", choices=EMPTY_RULES, help="score of samples with an empty union")
    p.add_argument(
        "--lenient", dest="reasoner.strict", action="store_false", help="repair answers the reference would fail"
    )
    p.add_argument("--out", default=None, help="folder for samples_<split>.jsonl and summary.json")
    p.add_argument("--json", action="store_true", help="print one JSON object (giou, ciou, n, failed, splits)")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    add_model_arguments(p)
    p.set_defaults(**{"reasoner.strict": True})  # parse as the reference evaluation does
    return p


def main(argv: Sequence[str] | None = None, prog: str = "python -m training.evaluate") -> int:
    args = build_parser(prog).parse_args(argv)
    # Our own loggers say what happens; libraries' INFO chatter (sam2 logs every embedding) stays out.
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s", stream=sys.stderr)
    for name in ("segzero", "segzero_ros", "training"):
        logging.getLogger(name).setLevel(logging.WARNING if args.quiet else logging.INFO)
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"--limit must be at least 1, got {args.limit}")
    from segzero_ros.build import ModelLoadError

    try:
        summary = evaluate(args)
    except ModelLoadError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 3
    except DatasetError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary))
    else:
        print_table(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
