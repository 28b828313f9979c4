"""Messages of the ``segzero`` node built from a pipeline ``Result``: the ``result`` JSON, the typed
``SegmentationResult``, the ``mask``/``labels``/``overlay`` images, and the ``tracking_status`` JSON."""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np
from segzero_interfaces.msg import SegmentationResult
from segzero_interfaces.msg import Target as TargetMsg
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segzero_ros.image_codec import image_to_numpy, numpy_to_image, to_rgb8
from segzero_ros.instances import answer_instances
from segzero_ros.overlay import paint_overlay
from segzero_ros.pipeline import Result

LABEL_CAP = {"mono16": 65535, "mono8": 255}  # the largest target value each labels encoding holds


def result_json(result: Result, header: Any, models: dict[str, str], reacquired: bool = False) -> str:
    """The ``result`` topic's JSON: the pipeline summary plus the source frame's stamp and frame id."""
    summary = result.to_dict()
    if reacquired:
        summary["reacquired"] = True
    if header is not None:
        summary["stamp"] = {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}
        summary["frame_id"] = header.frame_id
    else:
        summary["stamp"], summary["frame_id"] = None, None
    summary["models"] = models
    return json.dumps(summary)


def segmentation_msg(
    result: Result,
    header: Any,
    models: dict[str, str],
    mask: Image | None = None,
    labels: Image | None = None,
    labels_encoding: str = "mono16",
) -> SegmentationResult:
    """The ``segmentation`` topic's typed result: the source frame's header, targets, mask and labels.

    ``mask`` / ``labels``: the images already published for this result (made here when not given)."""
    msg = SegmentationResult(
        goal_id=result.goal_id,
        goal=result.goal,
        status="cancelled" if result.cancelled else result.status,
        error=result.error or "",
        reasoning=result.think or "",
        answer=result.text,
        protocol=result.protocol,
        reason_ms=float(result.timings_ms.get("reason_ms", 0.0)),
        segment_ms=float(result.timings_ms.get("segment_ms", 0.0)),
        total_ms=float(result.timings_ms.get("total_ms", 0.0)),
        reasoner_model=models.get("reasoner", ""),
        segmenter_model=models.get("segmenter", ""),
    )
    if header is not None:
        msg.header = header
    cap = LABEL_CAP[labels_encoding]
    instances = answer_instances(result)
    for k, (instance, target) in enumerate(zip(instances, result.targets, strict=True), start=1):
        has_mask = k <= len(result.masks)
        x1, y1, x2, y2 = instance.bbox
        msg.targets.append(
            TargetMsg(
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                points=[float(v) for point in target.points for v in point],
                score=float(result.scores[k - 1]) if has_mask else 0.0,
                area=int(result.masks[k - 1].sum()) if has_mask else 0,
                mask_index=min(instance.value, cap),
                label=instance.label,
                id=instance.id,
            )
        )
    if result.ok and result.masks:
        if mask is None or labels is None:
            mask, labels = mask_messages(result.labels(), header, labels_encoding)
        msg.mask, msg.labels = mask, labels
    return msg


def without_images(msg: SegmentationResult) -> SegmentationResult:
    """``msg`` with empty ``mask`` and ``labels`` (a small action result for terminals)."""
    out = SegmentationResult()
    for name in msg.get_fields_and_field_types():
        if name not in ("mask", "labels"):
            setattr(out, name, getattr(msg, name))
    return out


def mask_messages(labels: np.ndarray, header: Any, encoding: str = "mono16") -> tuple[Image, Image]:
    """``mask`` (mono8 255 on every target, 0 elsewhere) and ``labels`` (``encoding``: mono16 k on target k, or
    mono8 capped at 255) from a label image, both with the source frame's header."""
    cap = LABEL_CAP[encoding]
    values = np.minimum(labels, cap) if int(labels.max(initial=0)) > cap else labels
    labels_msg = numpy_to_image(
        values.astype(np.uint16 if encoding == "mono16" else np.uint8, copy=False), encoding, header
    )
    mask_msg = numpy_to_image(np.empty(labels.shape, np.uint8), "mono8", header)
    cv2.compare(labels, 0, cv2.CMP_NE, dst=image_to_numpy(mask_msg))  # written into the message's own buffer
    return mask_msg, labels_msg


def overlay_message(array: np.ndarray, encoding: str, header: Any, result: Result) -> Image:
    """The ``overlay`` image: the frame as rgb8 with the result's masks, boxes and points drawn in the message's
    own buffer (one copy of the frame)."""
    message = numpy_to_image(to_rgb8(array, encoding), "rgb8", header)
    paint_overlay(image_to_numpy(message), result.targets, result.masks)
    return message


def json_message(data: dict[str, Any]) -> String:
    return String(data=json.dumps(data))


def stamp_dict(header: Any) -> dict[str, int]:
    return {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}
