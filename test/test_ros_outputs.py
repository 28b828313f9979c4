"""The node's messages and output topics without a running graph: what each answer and each tracked frame
publishes, with which header, in which order (``ros/messages.py``, ``ros/outputs.py``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from std_msgs.msg import Header

from segzero_ros.image_codec import image_to_numpy
from segzero_ros.instances import tracked_instances
from segzero_ros.pipeline import Result
from segzero_ros.protocol import Target
from segzero_ros.ros.detections import MISSING, VISION_MSGS
from segzero_ros.ros.messages import mask_messages, result_json, segmentation_msg, without_images
from segzero_ros.ros.outputs import Outputs
from segzero_ros.tracking_loop import TrackUpdate
from segzero_ros.worker import Frame

MODELS = {"reasoner": "tiny-reasoner", "segmenter": "tiny-sam2"}


def header(sec: int = 7, nanosec: int = 5, frame_id: str = "camera_color_optical_frame") -> Header:
    out = Header(frame_id=frame_id)
    out.stamp.sec, out.stamp.nanosec = sec, nanosec
    return out


def ok_result(width: int = 8, height: int = 6) -> Result:
    mask = np.zeros((height, width), bool)
    mask[1:4, 2:6] = True
    return Result(
        goal="the red cup",
        goal_id="g1",
        protocol="segzero",
        image_wh=(width, height),
        think="a cup",
        targets=[Target(bbox=(2, 1, 6, 4), points=[(3, 2)])],
        masks=[mask],
        scores=[0.9],
        timings_ms={"total_ms": 12.0},
    )


class Recorder:
    """A publisher that keeps what it is given."""

    def __init__(self, log: list, topic: str, subscribers: int) -> None:
        self.log, self.topic, self.subscribers = log, topic, subscribers

    def publish(self, msg) -> None:
        self.log.append((self.topic, msg))

    def get_subscription_count(self) -> int:
        return self.subscribers

    def wait_for_all_acked(self, _timeout) -> bool:
        return True


class FakeNode:
    def __init__(self, overlay_subscribers: int = 1) -> None:
        self.log: list = []
        self.destroyed: list = []
        self.overlay_subscribers = overlay_subscribers

    def create_lifecycle_publisher(self, _kind, topic, _qos):
        return Recorder(self.log, topic, self.overlay_subscribers if topic == "overlay" else 1)

    def destroy_lifecycle_publisher(self, publisher) -> None:
        self.destroyed.append(publisher.topic)


def test_result_json_and_typed_result_carry_the_frames_header_and_the_answer():
    result = ok_result()
    data = json.loads(result_json(result, header(), MODELS, reacquired=True))
    assert (data["id"], data["status"], data["reacquired"]) == ("g1", "ok", True)
    assert data["stamp"] == {"sec": 7, "nanosec": 5} and data["frame_id"] == "camera_color_optical_frame"
    assert data["models"] == MODELS and data["targets"][0]["bbox"] == [2, 1, 6, 4]
    typed = segmentation_msg(result, header(), MODELS)
    assert (typed.goal_id, typed.status, typed.header.stamp.sec) == ("g1", "ok", 7)
    assert len(typed.targets) == 1 and typed.reasoner_model == "tiny-reasoner"


def test_a_cancelled_goal_is_cancelled_in_the_typed_result_and_an_error_in_the_json():
    result = Result(goal="x", goal_id="c", protocol="segzero", image_wh=(0, 0), error="cancelled", cancelled=True)
    assert segmentation_msg(result, None, MODELS).status == "cancelled"
    assert json.loads(result_json(result, None, MODELS))["status"] == "error"


def test_mask_and_labels_images_from_a_label_image():
    labels = np.zeros((6, 8), np.uint16)
    labels[1:3, 1:3], labels[4, 5], labels[5, 7] = 1, 2, 300
    mask, label_msg = mask_messages(labels, header())
    assert (mask.encoding, label_msg.encoding, mask.header.stamp.sec) == ("mono8", "mono16", 7)
    assert np.array_equal(image_to_numpy(mask), (labels > 0).astype(np.uint8) * 255)
    assert np.array_equal(image_to_numpy(label_msg), labels) and image_to_numpy(label_msg).dtype == np.uint16
    _, mono8 = mask_messages(labels, header(), "mono8")  # for viewers: values past 255 are capped
    assert mono8.encoding == "mono8" and np.array_equal(image_to_numpy(mono8), np.minimum(labels, 255))
    typed = segmentation_msg(ok_result(), header(), MODELS, mask, label_msg)
    assert without_images(typed).mask.width == 0 and without_images(typed).goal_id == "g1"
    assert (typed.targets[0].id, typed.targets[0].label, typed.targets[0].mask_index) == ("g1:1", "the red cup", 1)


needs_vision_msgs = pytest.mark.skipif(VISION_MSGS is None, reason=MISSING)


@needs_vision_msgs
@pytest.mark.parametrize("overlay_subscribers", [1, 0])
def test_an_answer_publishes_images_then_reasoning_result_and_typed_result(overlay_subscribers):
    node = FakeNode(overlay_subscribers)
    outputs = Outputs(node, MODELS)
    frame = Frame(array=np.zeros((6, 8, 3), np.uint8), encoding="rgb8", header=header())
    typed, publish_ms = outputs.answer(frame, ok_result(), reacquired=False)
    topics = [topic for topic, _ in node.log]
    images = ["mask", "labels"] + ["overlay"] * overlay_subscribers  # the overlay only for someone who reads it
    assert topics == ["label_info", *images, "reasoning", "detections", "result", "segmentation"]
    stamped = [*images, "label_info", "detections"]
    assert all(msg.header.stamp.sec == 7 for topic, msg in node.log if topic in stamped)
    assert typed.status == "ok" and publish_ms is not None and publish_ms >= 0
    sent = dict(node.log)
    (detection,) = sent["detections"].detections
    assert (detection.id, detection.results[0].hypothesis.class_id) == ("g1:1", "the red cup")
    assert detection.results[0].hypothesis.score == pytest.approx(0.9)
    box = detection.bbox  # the result's box (2, 1, 6, 4) as centre and size
    assert (box.center.position.x, box.center.position.y, box.size_x, box.size_y) == (4.0, 2.5, 4.0, 3.0)
    names = {c.class_id: json.loads(c.class_name) if c.class_id else c.class_name for c in sent["label_info"].class_map}
    assert names == {0: "background", 1: {"id": "g1:1", "label": "the red cup"}}
    node.log.clear()
    outputs.answer(frame, ok_result(), reacquired=False)  # the same map again: label_info is not sent again
    assert "label_info" not in [topic for topic, _ in node.log]


def test_without_vision_msgs_the_other_outputs_are_unchanged(monkeypatch):
    """Where vision_msgs is missing: no detections or label_info publishers, everything else as before."""
    from segzero_ros.ros import outputs as outputs_module

    monkeypatch.setattr(outputs_module, "VISION_MSGS", None)
    node = FakeNode()
    outputs = Outputs(node, MODELS)
    frame = Frame(array=np.zeros((6, 8, 3), np.uint8), encoding="rgb8", header=header())
    outputs.answer(frame, ok_result())
    outputs.tracked(header(9, 1), TrackUpdate(labels=ok_result().labels(), status={"id": "g1", "state": "tracking"}))
    topics = [topic for topic, _ in node.log]
    answer = ["mask", "labels", "overlay", "reasoning", "result", "segmentation"]
    assert topics == [*answer, "mask", "labels", "tracking_status"]
    outputs.close()
    assert "detections" not in node.destroyed and len(node.destroyed) == 8


@needs_vision_msgs
def test_a_failed_answer_publishes_no_images_and_closing_destroys_every_publisher():
    node = FakeNode()
    outputs = Outputs(node, MODELS)
    failed = Result(goal="", goal_id="e", protocol="segzero", image_wh=(0, 0), error="empty goal")
    typed, publish_ms = outputs.answer(None, failed)
    assert [topic for topic, _ in node.log] == ["result", "segmentation"] and publish_ms is None
    assert typed.status == "error" and json.loads(node.log[0][1].data)["error"] == "empty goal"
    frame = Frame(array=np.zeros((6, 8, 3), np.uint8), encoding="rgb8", header=header())
    node.log.clear()
    outputs.answer(frame, Result(goal="x", goal_id="f", protocol="segzero", image_wh=(8, 6), error="garbled"))
    sent = dict(node.log)  # failed on a frame: no images, an empty detections array with the frame's header
    assert sorted(sent) == ["detections", "result", "segmentation"] and not sent["detections"].detections
    assert sent["detections"].header.stamp.sec == 7
    outputs.close()
    base = ["mask", "labels", "overlay", "reasoning", "reasoning_partial", "result", "segmentation", "tracking_status"]
    assert sorted(node.destroyed) == sorted([*base, "detections", "label_info"])


@needs_vision_msgs
def test_a_tracked_frame_publishes_its_masks_with_its_header_and_the_status():
    node = FakeNode()
    outputs = Outputs(node, MODELS)
    labels = np.zeros((6, 8), np.uint16)
    labels[2, 2:5] = 1
    instances = tracked_instances("g1", ["cup"], [labels == 1], [1.3])
    status = {"id": "g1", "state": "tracking", "targets": []}
    outputs.tracked(header(9, 1), TrackUpdate(labels=labels, status=status, instances=instances))
    topics = [topic for topic, _ in node.log]
    assert topics == ["mask", "labels", "detections", "tracking_status"]
    (detection,) = node.log[2][1].detections  # the mask's box; the score clipped to [0, 1]
    assert (detection.id, detection.bbox.center.position.x, detection.bbox.size_x) == ("g1:1", 3.0, 2.0)
    assert detection.results[0].hypothesis.score == 1.0 and node.log[2][1].header.stamp.sec == 9
    status = json.loads(node.log[-1][1].data)
    assert status["stamp"] == {"sec": 9, "nanosec": 1} and status["frame_id"] == "camera_color_optical_frame"
    node.log.clear()
    outputs.tracked(header(), TrackUpdate(labels=None, status={"id": "g1", "state": "ended", "reason": "cancelled"}))
    assert [topic for topic, _ in node.log] == ["tracking_status"]  # the end of a track: the status alone


def test_a_failing_lifecycle_transition_logs_its_traceback_and_still_fails():
    """rclpy turns an exception in a transition into ERROR and logs nothing; the node's transitions say why."""
    from segzero_ros.ros.node import logged_transition

    lines: list[str] = []

    class Logger:
        def error(self, line: str) -> None:
            lines.append(line)

    class FakeNode:
        logger = Logger()

        def get_logger(self) -> Logger:
            return self.logger

        @logged_transition
        def on_configure(self, state):
            raise AttributeError("'NoneType' object has no attribute 'schedule'")

    with pytest.raises(AttributeError):
        FakeNode().on_configure(None)
    (line,) = lines
    assert line.startswith("on_configure failed: Traceback (most recent call last):")
    assert line.endswith("AttributeError: 'NoneType' object has no attribute 'schedule'")
