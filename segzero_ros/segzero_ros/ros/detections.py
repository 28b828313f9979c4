"""The vision_msgs outputs: ``detections`` (Detection2DArray) and ``label_info`` (LabelInfo) of the ``segzero`` node,
``detections_3d`` (Detection3DArray) of ``segzero_depth``, built from ``instances``.

vision_msgs is the ROS 2 package of that name (``ros-<distro>-vision-msgs`` on a robot). Where it is missing,
``VISION_MSGS`` is None and ``MISSING`` says, in one line, how to get it; the nodes then run without these topics.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from segzero_ros.boxes3d import Box3D
from segzero_ros.instances import Instance

try:
    import vision_msgs.msg as VISION_MSGS
except ImportError as exc:
    VISION_MSGS: ModuleType | None = None  # type: ignore[no-redef]
    _WHY = str(exc)
else:
    _WHY = ""

MISSING = (
    f"vision_msgs is not installed ({_WHY}): the detections, label_info and detections_3d topics are off; "
    "install it (apt install ros-$ROS_DISTRO-vision-msgs, or see the README's Set-up for a venv) and restart"
)
LABEL_THRESHOLD = 0.0  # label_info.threshold: no score threshold is applied to the answers' masks


def _hypothesis(instance_label: str, score: float) -> Any:
    out = VISION_MSGS.ObjectHypothesisWithPose()
    out.hypothesis.class_id, out.hypothesis.score = instance_label, float(score)
    return out


def detection_2d_array(header: Any, instances: Sequence[Instance]) -> Any:
    """One ``Detection2D`` per instance: its box (centre and size, source-image pixels), id, label and score."""
    out = VISION_MSGS.Detection2DArray(header=header)
    for instance in instances:
        x1, y1, x2, y2 = instance.bbox
        detection = VISION_MSGS.Detection2D(header=header, id=instance.id)
        detection.bbox.center.position.x, detection.bbox.center.position.y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        detection.bbox.size_x, detection.bbox.size_y = float(x2 - x1), float(y2 - y1)
        detection.results.append(_hypothesis(instance.label, instance.score))
        out.detections.append(detection)
    return out


def label_info(header: Any, names: dict[int, str]) -> Any:
    """``LabelInfo`` mapping each value of ``labels`` to its name (``instances.label_names``)."""
    out = VISION_MSGS.LabelInfo(header=header, threshold=LABEL_THRESHOLD)
    for value, name in sorted(names.items()):
        out.class_map.append(VISION_MSGS.VisionClass(class_id=value, class_name=name))
    return out


def detection_3d(header: Any, instance_id: str, label: str, score: float, box: Box3D, centroid: Any) -> Any:
    """One ``Detection3D``: the oriented box (``bbox``) and, as the hypothesis' pose, the target's robust centroid."""
    detection = VISION_MSGS.Detection3D(header=header, id=instance_id)
    center = detection.bbox.center
    center.position.x, center.position.y, center.position.z = (float(v) for v in box.center)
    qx, qy, qz, qw = box.quaternion()
    center.orientation.x, center.orientation.y, center.orientation.z, center.orientation.w = qx, qy, qz, qw
    detection.bbox.size.x, detection.bbox.size.y, detection.bbox.size.z = (float(v) for v in box.size)
    hypothesis = _hypothesis(label, score)
    position = hypothesis.pose.pose.position
    position.x, position.y, position.z = (float(v) for v in (centroid if centroid is not None else box.center))
    hypothesis.pose.pose.orientation.w = 1.0
    detection.results.append(hypothesis)
    return detection
