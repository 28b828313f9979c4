"""``segzero ask``: one goal to a running node through its ``segment`` action."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from segzero_ros.cli.common import (
    read_image,
    write_png,
)


def cmd_ask(args: argparse.Namespace) -> int:
    """One goal to a running node through its ``segment`` action; prints what came back."""
    from segzero_ros.image_codec import image_to_numpy
    from segzero_ros.overlay import colour_labels
    from segzero_ros.ros.client import SegmentClient, shutdown_rclpy

    image = read_image(args.image) if args.image else None
    client = SegmentClient(namespace=args.namespace)
    try:
        try:
            client.require_node(args.wait)
            result = client.segment(
                args.goal, image=image, multi=args.multi, timeout=args.timeout, omit_images=args.out is None
            )
        except (TimeoutError, RuntimeError) as exc:
            print(f"segzero ask: {exc}", file=sys.stderr)
            return 2
    finally:
        client.close()
        shutdown_rclpy()
    summary = result_summary(result)
    if args.out and result.mask.width:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_png(out / "mask.png", image_to_numpy(result.mask))
        labels = image_to_numpy(result.labels)
        write_png(out / "labels.png", labels)  # the node's label image as it is (0 background, k target k)
        write_png(out / "labels_colour.png", colour_labels(labels[..., 0] if labels.ndim == 3 else labels))
        summary["mask_file"] = str(out / "mask.png")
    if args.json:
        print(json.dumps(summary))
    else:
        print(_readable(summary))
    return 0 if result.status == "ok" else 1


def result_summary(msg: Any) -> dict[str, Any]:
    """A ``SegmentationResult`` as a JSON-ready dict (no image pixels): what ``segzero ask`` prints."""
    return {
        "id": msg.goal_id,
        "goal": msg.goal,
        "status": msg.status,
        "error": msg.error or None,
        "frame": {
            "frame_id": msg.header.frame_id,
            "stamp": {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec},
            "width": msg.mask.width,
            "height": msg.mask.height,
        },
        "reasoning": msg.reasoning,
        "targets": [
            {
                "id": t.id,
                "label": t.label,
                "bbox": [round(float(v), 1) for v in (t.x1, t.y1, t.x2, t.y2)],
                "points": [[round(float(x), 1), round(float(y), 1)] for x, y in np.reshape(t.points, (-1, 2))],
                "score": round(float(t.score), 4),
                "area": int(t.area),
            }
            for t in msg.targets
        ],
        "detections": detections_of(msg),
        "timings_ms": {
            "reason": round(msg.reason_ms, 1),
            "segment": round(msg.segment_ms, 1),
            "total": round(msg.total_ms, 1),
        },
        "models": {"reasoner": msg.reasoner_model, "segmenter": msg.segmenter_model},
    }


def detections_of(msg: Any) -> list[dict[str, Any]]:
    """The result's targets as the node's ``detections`` topic gives them (vision_msgs ``Detection2D``: box centre
    and size in pixels, id, class and score)."""
    from segzero_ros.instances import unit_score

    out = []
    for t in msg.targets:
        center = [round((float(t.x1) + float(t.x2)) / 2, 1), round((float(t.y1) + float(t.y2)) / 2, 1)]
        size = [round(float(t.x2) - float(t.x1), 1), round(float(t.y2) - float(t.y1), 1)]
        score = round(unit_score(float(t.score)), 4)
        out.append({"id": t.id, "class_id": t.label, "score": score, "center": center, "size": size})
    return out


def _readable(summary: dict) -> str:
    """``segzero ask``'s answer for a person: status, frame, reasoning, targets, timings."""
    frame = summary["frame"]
    lines = [
        f"goal {summary['id']} ({summary['goal']!r}): {summary['status']}"
        + (f": {summary['error']}" if summary["error"] else ""),
        f"frame: {frame['frame_id'] or '-'} at {frame['stamp']['sec']}.{frame['stamp']['nanosec']:09d}"
        + (f", {frame['width']}x{frame['height']}" if frame["width"] else ""),
    ]
    if summary["reasoning"]:
        lines.append(f"reasoning: {summary['reasoning']}")
    for target, detection in zip(summary["targets"], summary["detections"], strict=True):
        lines.append(
            f"target {target['id']} ({target['label']!r}): box {target['bbox']}, points {target['points']}, "
            f"score {target['score']}, area {target['area']} px"
        )
        lines.append(f"  detection: centre {detection['center']}, size {detection['size']}, score {detection['score']}")
    t = summary["timings_ms"]
    lines.append(f"time: {t['total']:.0f} ms (reasoning {t['reason']:.0f} ms, segmentation {t['segment']:.0f} ms)")
    if "mask_file" in summary:
        lines.append(f"mask: {summary['mask_file']}")
    return "\n".join(lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero ask`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser("ask", help="send one goal to a running node (its 'segment' action); print the answer")
    p.add_argument("goal", help="what to segment, in plain language")
    p.add_argument("--image", default=None, help="segment this image file instead of the node's newest camera frame")
    p.add_argument("--multi", action="store_true", help="every object the goal names (multi protocol)")
    p.add_argument("--out", default=None, help="folder for mask.png, labels.png and labels_colour.png (to look at)")
    p.add_argument("--namespace", default="", help="the node's namespace")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the node's action server")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer (then cancel)")
    p.add_argument("--json", action="store_true", help="print the answer as one line of JSON")
    p.set_defaults(func=cmd_ask)
