"""The labelled frames of a ``segzero replay`` output: every ``labels`` image the node published, paired with the
answer (``segmentation``) or the tracked frame (``tracking_status``) it belongs to and the camera frame it was made
for (from the output when it was replayed ``--with-input``, else from the recording it names)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segzero_ros.image_codec import compressed_to_numpy, image_to_numpy, to_rgb8
from segzero_ros.labelled_data import LabelledFrame, LabelledTarget
from segzero_ros.ros.bags import BagError, BagInput

SUMMARY = "summary.json"


def is_replay_output(path: Path) -> bool:
    return (path / SUMMARY).is_file()


def _stamp(msg: Any) -> tuple[int, int]:
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)


def _topic(topics: dict[str, str], name: str) -> str | None:
    """The output's topic named ``name`` (under any namespace)."""
    found = [t for t in topics if t.rsplit("/", 1)[-1] == name]
    return found[0] if found else None


def _answer_targets(msg: Any) -> list[LabelledTarget]:
    return [
        LabelledTarget(
            int(t.mask_index), str(t.id), str(msg.goal_id), str(msg.goal), str(t.label), float(t.score), "answer"
        )
        for t in msg.targets
        if t.mask_index
    ]


def _tracked_targets(status: dict[str, Any], labels: dict[str, str]) -> list[LabelledTarget]:
    out = []
    for goal in status["goals"]:
        for t in goal.get("targets", []):
            if t["state"] == "tracking" and t.get("value"):
                label = labels.get(t["id"], goal["goal"])
                out.append(LabelledTarget(t["value"], t["id"], goal["id"], goal["goal"], label, t["score"], "tracked"))
    return out


def _labelled(bag: BagInput) -> Iterator[tuple[tuple[int, int], str, np.ndarray, list[LabelledTarget]]]:
    """(stamp, frame_id, labels, targets) of every labels image with its answer or tracked frame, in order."""
    names = {name: _topic(bag.topics, name) for name in ("labels", "segmentation", "tracking_status")}
    if names["labels"] is None:
        raise BagError(f"{bag.path}: no labels topic: not a segzero replay output")
    pending: dict[tuple[int, int], tuple[str, np.ndarray]] = {}
    target_labels: dict[str, str] = {}  # track id -> the model's label, from the answers
    for topic, msgtype, _, raw in bag.messages([t for t in names.values() if t is not None]):
        msg = bag.decode(raw, msgtype)
        if topic == names["labels"]:
            pending[_stamp(msg)] = (str(msg.header.frame_id), image_to_numpy(msg).astype(np.uint16))
        elif topic == names["segmentation"]:
            if msg.status != "ok" or _stamp(msg) not in pending:
                continue
            targets = _answer_targets(msg)
            target_labels.update({t.track_id: t.label for t in targets})
            frame_id, labels = pending.pop(_stamp(msg))
            yield _stamp(msg), frame_id, labels, targets
        else:
            status = json.loads(msg.data)
            stamp = status.get("stamp")
            key = (int(stamp["sec"]), int(stamp["nanosec"])) if stamp else None
            if key in pending:
                frame_id, labels = pending.pop(key)
                yield key, frame_id, labels, _tracked_targets(status, target_labels)


def _camera_frames(bag: BagInput, topic: str, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
    """The RGB images of ``topic`` whose stamps are ``wanted``."""
    out = {}
    for _, msgtype, _, raw in bag.messages([topic]):
        msg = bag.decode(raw, msgtype)
        if _stamp(msg) not in wanted or _stamp(msg) in out:
            continue
        if msgtype.endswith("CompressedImage"):
            array = compressed_to_numpy(msg)
            out[_stamp(msg)] = to_rgb8(array, "rgb8" if array.ndim == 3 else "mono8")
        else:
            out[_stamp(msg)] = to_rgb8(image_to_numpy(msg), msg.encoding)
    return out


def labelled_frames(replay_out: Path, every: int = 1) -> list[LabelledFrame]:
    """The frames of a replay output that carry an answer or a tracked mask (every ``every``-th of them; an answer's
    frame always), one per camera frame (its answer, when it also was tracked)."""
    summary = json.loads((replay_out / SUMMARY).read_text())
    output = BagInput(summary["output"])
    try:
        by_stamp: dict[tuple[int, int], tuple[str, np.ndarray, list[LabelledTarget]]] = {}
        for stamp, frame_id, labels, targets in _labelled(output):
            present = set(np.unique(labels).tolist())
            targets = [t for t in targets if t.value in present]  # a target without pixels carries no mask
            answered = stamp in by_stamp and by_stamp[stamp][2][0].source == "answer"
            if targets and not answered:
                by_stamp[stamp] = (frame_id, labels, targets)
        stamps = sorted(by_stamp)
        keep = [s for k, s in enumerate(stamps) if k % every == 0 or by_stamp[s][2][0].source == "answer"]
        image_topic = summary["image_topic"]
        source = output if image_topic in output.topics else None
        if source is None:
            source = BagInput(summary["bag"])
        try:
            images = _camera_frames(source, image_topic, set(keep))
        finally:
            if source is not output:
                source.close()
    finally:
        output.close()
    missing = [s for s in keep if s not in images]
    if missing:
        raise BagError(
            f"{summary['bag']}: no camera frame with the stamp {missing[0][0]}.{missing[0][1]:09d} of a mask"
        )
    return [LabelledFrame(s, by_stamp[s][0], images[s], by_stamp[s][1], by_stamp[s][2]) for s in keep]
