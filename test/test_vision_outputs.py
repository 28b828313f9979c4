"""The node's grasp-ready outputs as their consumers read them, node as its own process (tiny preset, tracking on):
``detections`` (vision_msgs Detection2DArray) whose boxes are the result's, 16-bit ``labels`` with the frame's
stamp, a latched ``label_info`` a late subscriber still gets, and a consumer that reads colour, depth and labels
the way Contact-GraspNet's ROS 2 wrapper does (approximate-time sync within 0.1 s, labels decoded as 16-bit)."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
from node_support import GOAL_TIMEOUT, NODE_PARAMS, goal_on_frame, make_frame, result_for, running_node, send_goal

from segzero_ros.image_codec import image_to_numpy, stamp_seconds
from segzero_ros.ros.detections import MISSING, VISION_MSGS

needs_vision_msgs = pytest.mark.skipif(VISION_MSGS is None, reason=MISSING)

SLOP_S = 0.1  # Contact-GraspNet's wrapper: ApproximateTimeSynchronizer(..., slop=0.1)
PERIOD_S = 0.1  # the camera: 10 Hz, each frame with its own stamp


class Camera:
    """Colour frames on ``image`` (the probe's publisher) and an aligned 16UC1 depth image on ``depth``, same stamps."""

    def __init__(self, probe) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.probe = probe
        self.depth_pub = probe.node.create_publisher(
            Image, "depth", QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.colour = make_frame()
        depth = np.full((self.colour.height, self.colour.width), 1000, np.uint16)
        self.depth = Image(height=depth.shape[0], width=depth.shape[1], encoding="16UC1", step=depth.shape[1] * 2)
        self.depth.data = depth.tobytes()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            for msg in (self.colour, self.depth):
                msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + n // 10, (n % 10) * 100_000_000
                msg.header.frame_id = "camera_color_optical_frame"
            self.probe.send_frame(self.colour)
            self.depth_pub.publish(self.depth)
            n += 1
            time.sleep(PERIOD_S)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


class GraspConsumer:
    """Subscribes to colour, depth and labels (what Contact-GraspNet's wrapper reads) in its own node."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = rclpy.create_node("grasp_consumer")
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.streams: dict[str, list] = {"image": [], "depth": [], "labels": []}
        for topic in self.streams:
            self.node.create_subscription(Image, topic, self._keep(topic), qos)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _keep(self, topic):
        def keep(msg) -> None:
            with self.lock:
                self.streams[topic].append(msg)

        return keep

    def synced(self) -> list[tuple]:
        """(colour, depth, labels) whose stamps are within SLOP_S of each other, one per labels message."""
        with self.lock:
            streams = {k: list(v) for k, v in self.streams.items()}
        out = []
        for labels in streams["labels"]:
            t = stamp_seconds(labels.header)
            match = [
                min(streams[k], key=lambda m: abs(stamp_seconds(m.header) - t), default=None)
                for k in ("image", "depth")
            ]
            if all(m is not None and abs(stamp_seconds(m.header) - t) <= SLOP_S for m in match):
                out.append((match[0], match[1], labels))
        return out

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def late_label_info(timeout: float = 10.0):
    """A subscriber that joins now: the last ``label_info`` (reliable, transient local)."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    node = rclpy.create_node("late_label_info_reader")
    got = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(VISION_MSGS.LabelInfo, "label_info", got.append, qos)
    deadline = time.monotonic() + timeout
    try:
        while not got and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
    assert got, "no label_info for a subscriber that joined after it was published"
    return got[-1]


def box_of(detection) -> tuple[float, float, float, float]:
    c, w, h = detection.bbox.center.position, detection.bbox.size_x, detection.bbox.size_y
    return (c.x - w / 2, c.y - h / 2, c.x + w / 2, c.y + h / 2)


def same_stamp(msg, stamp: dict) -> bool:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec) == (stamp["sec"], stamp["nanosec"])


@needs_vision_msgs
def test_detections_labels_and_label_info_as_grasp_stacks_read_them(tmp_path):
    params = {**NODE_PARAMS, "tracking.enabled": True, "image_max_age_s": 3.0}
    with running_node(tmp_path / "node.log", params) as (probe, node):
        consumer = GraspConsumer()
        camera = Camera(probe)
        try:
            probe.wait_for(lambda: probe.diagnostic("frames_received") not in (None, "0"), 60, "frames", node)
            send_goal(probe, "cup", "the red cup")
            result = result_for(probe, "cup", node)
            assert result["status"] == "ok", result
            tracked = lambda: sum("stamp" in json.loads(m.data) for m in probe.take("tracking_status"))  # noqa: E731
            probe.wait_for(lambda: tracked() >= 3, GOAL_TIMEOUT, "three tracked frames", node)
        finally:
            camera.close()
        time.sleep(0.5)  # the last frames' outputs arrive
        consumer.close()

        # detections: the answer's boxes, ids <goal_id>:<k>, the goal text as class, the frame's stamp.
        answer_detections = [d for d in probe.take("detections") if same_stamp(d, result["stamp"])]
        assert answer_detections, "no detections with the answer frame's stamp"
        detections = answer_detections[0].detections
        assert [d.id for d in detections] == [t["id"] for t in result["targets"]] == ["cup:1"]
        for detection, target in zip(detections, result["targets"], strict=True):
            assert box_of(detection) == pytest.approx(tuple(target["bbox"]))
            assert detection.results[0].hypothesis.class_id == "the red cup"
            assert 0.0 <= detection.results[0].hypothesis.score <= 1.0

        # labels: mono16, the frame's stamp, the target's pixels where the result says.
        answer_labels = [m for m in probe.take("labels") if same_stamp(m, result["stamp"])]
        assert answer_labels and answer_labels[0].encoding == "mono16"
        labels = image_to_numpy(answer_labels[0])
        assert labels.dtype == np.uint16 and int((labels == 1).sum()) == result["targets"][0]["area"]

        # label_info for a subscriber that joins late: every value in labels, named.
        info = late_label_info()
        names = {c.class_id: c.class_name for c in info.class_map}
        assert names[0] == "background" and json.loads(names[1]) == {"id": "cup:1", "label": "the red cup"}
        assert set(np.unique(labels).tolist()) <= set(names)

        # The grasp consumer: colour, depth and labels synced within 0.1 s; labels read as 16-bit hold the pixels of
        # every target that frame's detections list (the tiny tracker may lose the cup on a frame: then neither has it).
        synced = consumer.synced()
        assert len(synced) >= 3, f"{len(synced)} synced triples"
        detections_at = {stamp_seconds(d.header): d.detections for d in probe.take("detections")}
        found = 0
        for colour, depth, label_msg in synced:
            assert label_msg.encoding == "mono16" and label_msg.step == 2 * label_msg.width
            values = np.frombuffer(bytes(label_msg.data), np.uint16).reshape(label_msg.height, label_msg.width)
            assert (colour.height, colour.width) == values.shape == (depth.height, depth.width)
            listed = detections_at.get(stamp_seconds(label_msg.header))
            assert listed is not None, "a labels image without its detections"
            for detection in listed:
                target = values == int(detection.id.rpartition(":")[2])
                assert target.any(), f"{detection.id} listed but none of its pixels in labels"
                assert (image_to_numpy(depth)[target] == 1000).all()
                found += 1
        assert found >= 1, "the consumer never found the target"

        # Tracked frames: a detections array with each frame's stamp, listing exactly the targets whose pixels are in
        # that frame's labels, each with the box of its pixels and the answer's id (the tiny SAM2's masks may be empty:
        # then the array is). The boxes of real masks: test_tracking_loop.py.
        tracked_labels = [m for m in probe.take("labels") if not same_stamp(m, result["stamp"])]
        assert len(tracked_labels) >= 3
        for label_msg in tracked_labels:
            listed = detections_at.get(stamp_seconds(label_msg.header))
            assert listed is not None, "a tracked frame's labels without its detections"
            values = image_to_numpy(label_msg)
            assert sorted(d.id for d in listed) == [f"cup:{v}" for v in np.unique(values) if v]
            for detection in listed:
                target = values == int(detection.id.rpartition(":")[2])
                rows, cols = np.flatnonzero(target.any(axis=1)), np.flatnonzero(target.any(axis=0))
                assert box_of(detection) == pytest.approx((cols[0], rows[0], cols[-1], rows[-1]))


def test_without_vision_msgs_the_node_says_so_once_and_answers_as_before(tmp_path):
    """A ROS install without vision_msgs (here: the package hidden from the node's process): one line says how to
    get the three topics; the answer, mask and 16-bit labels go out as before."""
    hidden = tmp_path / "no_vision_msgs" / "vision_msgs"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'vision_msgs'\")\n")
    path = os.pathsep.join([str(hidden.parent), os.environ.get("PYTHONPATH", "")])
    with running_node(tmp_path / "node.log", NODE_PARAMS, env={"PYTHONPATH": path}) as (probe, node):
        frame = make_frame()
        result = goal_on_frame(probe, frame, "plain", node)
        assert result["status"] == "ok" and result["targets"][0]["id"] == "plain:1"
        probe.wait_for(lambda: probe.take("labels"), 30, "labels", node)
        assert probe.take("labels")[-1].encoding == "mono16"
        assert node.log().count("vision_msgs is not installed") == 1
        assert "the detections, label_info and detections_3d topics are off" in node.log()
        assert not probe.node.get_publishers_info_by_topic("/detections")
