"""The ``segzero`` node's output topics: their lifecycle publishers, and what goes out for a goal's answer, for
the reasoning as it is written, and for each tracked frame (README topic table)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rclpy.duration import Duration
from segzero_interfaces.msg import SegmentationResult
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segzero_ros.instances import answer_instances, label_names
from segzero_ros.pipeline import Result
from segzero_ros.protocol import partial_think
from segzero_ros.ros import qos
from segzero_ros.ros.detections import VISION_MSGS, detection_2d_array, label_info
from segzero_ros.ros.messages import (
    json_message,
    mask_messages,
    overlay_message,
    result_json,
    segmentation_msg,
    stamp_dict,
)
from segzero_ros.tracking_loop import TrackUpdate

TOPICS = {  # topic -> (type, QoS; None: the image QoS chosen by outputs_best_effort)
    "mask": (Image, None),
    "labels": (Image, None),
    "overlay": (Image, None),
    "reasoning": (String, qos.RELIABLE_ANSWERS),
    "reasoning_partial": (String, qos.RELIABLE_ANSWERS),
    "result": (String, qos.RELIABLE_ANSWERS),
    "segmentation": (SegmentationResult, qos.RELIABLE),
    "tracking_status": (String, qos.RELIABLE_ANSWERS),
}
VISION_TOPICS = {  # with vision_msgs only (ros.detections)
    "detections": ("Detection2DArray", qos.RELIABLE),
    "label_info": ("LabelInfo", qos.LATCHED),
}
ANSWER_FLUSH_S = 1.0  # how long closing waits for the last answers to be acknowledged by their readers


class Outputs:
    """Lifecycle publishers of every output topic (created on configure, closed on cleanup or shutdown)."""

    def __init__(
        self, node: Any, models: dict[str, str], images_best_effort: bool = False, labels_encoding: str = "mono16"
    ) -> None:
        self._node = node
        self.models = models
        self.labels_encoding = labels_encoding
        image_qos = qos.BEST_EFFORT if images_best_effort else qos.RELIABLE
        self._pubs = {
            topic: node.create_lifecycle_publisher(kind, topic, profile or image_qos)
            for topic, (kind, profile) in TOPICS.items()
        }
        if VISION_MSGS is not None:
            for topic, (kind, profile) in VISION_TOPICS.items():
                self._pubs[topic] = node.create_lifecycle_publisher(getattr(VISION_MSGS, kind), topic, profile)
        self._label_names: dict[int, str] | None = None  # what label_info last said

    def answer(
        self,
        frame: Any,
        result: Result,
        reacquired: bool = False,
        overlay: bool = True,
        tracked_names: dict[int, str] | None = None,
    ) -> tuple[SegmentationResult, float | None]:
        """Publish one goal's answer: ``label_info`` (when its map changes; with ``tracked_names``, the targets
        tracked beside it), ``mask``/``labels``/``overlay`` (when it succeeded on a frame), ``reasoning``,
        ``detections`` (when it ran on a frame), ``result`` and ``segmentation``; the typed result and the image
        publishing time (ms)."""
        header = frame.header if frame is not None else None
        mask = labels = publish_ms = None
        instances = answer_instances(result) if result.ok else []
        if result.ok and frame is not None:
            t0 = time.perf_counter()
            mask, labels = mask_messages(result.labels(), header, self.labels_encoding)
            self._label_info(header, {**(tracked_names or {}), **label_names(instances)})
            self._pubs["mask"].publish(mask)
            self._pubs["labels"].publish(labels)
            if overlay and self._pubs["overlay"].get_subscription_count() > 0:
                self._pubs["overlay"].publish(overlay_message(frame.array, frame.encoding, header, result))
            publish_ms = (time.perf_counter() - t0) * 1e3
            result.timings_ms["publish_ms"] = publish_ms
        if result.think is not None:
            self._pubs["reasoning"].publish(String(data=result.think))
        if frame is not None and "detections" in self._pubs:
            self._pubs["detections"].publish(detection_2d_array(header, instances))
        self._pubs["result"].publish(String(data=result_json(result, header, self.models, reacquired)))
        typed = segmentation_msg(result, header, self.models, mask, labels, self.labels_encoding)
        self._pubs["segmentation"].publish(typed)
        return typed, publish_ms

    def partial_reasoning(
        self, goal_id: str, hz: float, also: Callable[[str], None] | None = None
    ) -> Callable[[str], None] | None:
        """A callback for the answer text generated so far: its ``<think>`` part on ``reasoning_partial`` (and to
        ``also``), at most ``hz`` times a second; None when ``hz`` is 0."""
        if hz <= 0:
            return None
        period, last = 1.0 / hz, [-1e9]

        def publish(text: str) -> None:
            now = time.monotonic()
            if now - last[0] < period:
                return
            last[0] = now
            think = partial_think(text)
            self._pubs["reasoning_partial"].publish(json_message({"id": goal_id, "text": think}))
            if also is not None:
                also(think)

        return publish

    def tracked(self, header: Any, update: TrackUpdate) -> None:
        """One tracked frame's ``label_info`` (when its map changed), ``mask``/``labels``/``detections`` (with that
        frame's header) and ``tracking_status``; or the status alone when every track ended instead."""
        status = update.status
        if update.labels is not None:
            mask, labels = mask_messages(update.labels, header, self.labels_encoding)
            if update.names:
                self._label_info(header, update.names)
            self._pubs["mask"].publish(mask)
            self._pubs["labels"].publish(labels)
            if "detections" in self._pubs:
                self._pubs["detections"].publish(detection_2d_array(header, update.instances))
            status = {"stamp": stamp_dict(header), "frame_id": header.frame_id} | status
        self.track_status(status)

    def _label_info(self, header: Any, names: dict[int, str]) -> None:
        """``label_info`` when the map of label values changes (sent before the ``labels`` it describes)."""
        if "label_info" in self._pubs and names != self._label_names:
            self._pubs["label_info"].publish(label_info(header, names))
            self._label_names = names

    def track_status(self, status: dict[str, Any]) -> None:
        self._pubs["tracking_status"].publish(json_message(status))

    def close(self) -> None:
        """Wait (a bounded time) until the last answers are acknowledged, then destroy the publishers."""
        deadline = time.monotonic() + ANSWER_FLUSH_S
        for name in ("result", "segmentation"):
            left = max(deadline - time.monotonic(), 0.0)
            self._pubs[name].wait_for_all_acked(Duration(nanoseconds=int(left * 1e9)))
        for pub in self._pubs.values():
            self._node.destroy_lifecycle_publisher(pub)
        self._pubs = {}
