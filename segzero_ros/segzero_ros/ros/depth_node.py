"""ROS 2 node ``segzero_depth``: each segmentation result + the aligned depth image of its frame → 3D targets.

Subscribes to ``segmentation`` (segzero_interfaces/SegmentationResult from the ``segzero`` node), ``depth``
(16UC1 millimetres or 32FC1 metres, aligned to the colour camera) and ``camera_info``; pairs each result with
the depth image nearest to its frame's stamp (within ``depth.max_skew_s``, from a bounded buffer) and
publishes, per result, ``target_3d`` (JSON: every target's centroid or why there is none), ``target_point``
(the first target's centroid), ``target_cloud`` (the targets' masked points) and, with vision_msgs,
``detections_3d`` (every target's oriented box). All in the depth camera's optical frame, the result's header.
The geometry is ``segzero_ros.depth`` and ``segzero_ros.boxes3d``; this node converts messages and pairs them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
from rclpy.duration import Duration
from rclpy.node import Node
from segzero_interfaces.msg import SegmentationResult
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import String

from segzero_ros.boxes3d import fit_box
from segzero_ros.depth import DEPTH_UNITS_M, StampBuffer, masked_points, target_centroid
from segzero_ros.image_codec import ImageConversionError, image_to_numpy, stamp_seconds
from segzero_ros.instances import unit_score
from segzero_ros.params import DEPTH_PARAMETERS
from segzero_ros.ros import process
from segzero_ros.ros.detections import MISSING, VISION_MSGS, detection_3d
from segzero_ros.ros.diagnostics import StreamMonitor, diagnostic_array, level_of
from segzero_ros.ros.params import declare
from segzero_ros.ros.qos import RELIABLE, SENSOR_DATA


def point_cloud(points: np.ndarray, header: Any) -> PointCloud2:
    """An unorganised xyz float32 ``PointCloud2`` of N×3 points."""
    points = np.ascontiguousarray(points, dtype=np.float32).reshape(-1, 3)
    msg = PointCloud2(header=header, height=1, width=len(points), is_bigendian=sys.byteorder == "big")
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate("xyz")]
    msg.point_step, msg.row_step, msg.is_dense = 12, 12 * len(points), True
    msg.data = points.tobytes()
    return msg


class DepthNode(Node):
    """See the module docstring."""

    def __init__(self, name: str = "segzero_depth", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        declare(self, DEPTH_PARAMETERS)
        self.max_skew_s = float(self.value("depth.max_skew_s"))
        self.wait_s = float(self.value("depth.wait_s"))
        self.depths = StampBuffer(int(self.value("depth.buffer_size")))
        self.camera_info: CameraInfo | None = None
        self.pending: list[tuple[float, SegmentationResult]] = []  # (arrival time, result) waiting for depth
        self.pub_json = self.create_publisher(String, "target_3d", RELIABLE)
        self.pub_point = self.create_publisher(PointStamped, "target_point", RELIABLE)
        self.pub_cloud = self.create_publisher(PointCloud2, "target_cloud", RELIABLE)
        self.pub_boxes = None
        if VISION_MSGS is not None:
            self.pub_boxes = self.create_publisher(VISION_MSGS.Detection3DArray, "detections_3d", RELIABLE)
        else:
            self.get_logger().warning(MISSING)
        self.create_subscription(SegmentationResult, "segmentation", self._on_result, RELIABLE)
        self.depth_monitor: StreamMonitor | None = None
        if self.value("depth.enabled"):
            self.depth_monitor = StreamMonitor(self, "depth")
            events = self.depth_monitor.event_callbacks()
            self.create_subscription(Image, "depth", self._on_depth, SENSOR_DATA, event_callbacks=events)
            self.create_subscription(CameraInfo, "camera_info", self._on_info, SENSOR_DATA)
        self.create_timer(0.05, self._expire)
        self.answered = {"ok": 0, "error": 0}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self.get_logger().info("waiting for results on 'segmentation' and depth on 'depth' + 'camera_info'")

    def value(self, name: str) -> Any:
        return self.get_parameter(name).value

    # --- process (ros.process.run) ------------------------------------------------------------------

    def start(self) -> None:
        """Nothing to bring up: subscriptions exist from construction."""

    def finish(self, spin: Callable[[float, Callable[[], bool]], None]) -> None:
        """Answer results still waiting for depth (without 3D), so each result gets its ``target_3d``."""
        for _, msg in self.pending:
            self._publish(msg, [], None, "segzero_depth shutting down")
        self.pending = []
        self.pub_json.wait_for_all_acked(Duration(seconds=1.0))

    def callback_failed(self, exc: BaseException) -> None:
        self.get_logger().error(f"a callback failed (the node keeps serving): {process.describe_exception(exc)}")

    # --- callbacks ---------------------------------------------------------------------------------

    def _on_depth(self, msg: Image) -> None:
        if self.depth_monitor is not None:
            self.depth_monitor.frame()
        self.depths.add(stamp_seconds(msg.header), msg)
        self._retry_pending()

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _on_result(self, msg: SegmentationResult) -> None:
        if msg.status != "ok" or not self.value("depth.enabled"):
            reason = f"segmentation {msg.status}: {msg.error}" if msg.status != "ok" else "depth disabled"
            self._publish(msg, [], None, reason)
            return
        if not self._try(msg):
            self.pending.append((time.monotonic(), msg))

    def _retry_pending(self) -> None:
        self.pending = [(t, m) for t, m in self.pending if not self._try(m)]

    def _expire(self) -> None:
        """Answer results that waited ``depth.wait_s`` for a depth image of their frame."""
        now, keep = time.monotonic(), []
        for arrived, msg in self.pending:
            if now - arrived < self.wait_s:
                keep.append((arrived, msg))
                continue
            newest = self.depths.newest_stamp
            seen = "no depth image yet" if newest is None else f"nearest depth stamp {newest:.3f} s"
            reason = f"no depth image within {self.max_skew_s:g} s of the frame ({seen})"
            self._publish(msg, [], None, reason)
        self.pending = keep

    # --- geometry -----------------------------------------------------------------------------------

    def _try(self, msg: SegmentationResult) -> bool:
        """Publish the 3D targets of ``msg`` when its depth image is here; False to keep waiting."""
        paired = self.depths.nearest(stamp_seconds(msg.header), self.max_skew_s)
        if paired is None:
            return False
        depth_msg, skew = paired
        try:
            targets, points, detections = self._targets(msg, depth_msg)
        except (ImageConversionError, ValueError) as exc:
            self._publish(msg, [], skew, str(exc))
            return True
        self._publish(msg, targets, skew, "", points, detections)
        return True

    def _targets(self, msg: SegmentationResult, depth_msg: Image) -> tuple[list[dict[str, Any]], np.ndarray, list]:
        """Every target's centroid (``target_3d`` entries), the targets' points, and their ``Detection3D``s."""
        if self.camera_info is None:
            raise ValueError("no camera_info received yet")
        unit = DEPTH_UNITS_M.get(depth_msg.encoding)
        if unit is None:
            raise ValueError(f"depth encoding {depth_msg.encoding!r} (expected 16UC1 millimetres or 32FC1 metres)")
        depth = image_to_numpy(depth_msg)
        labels = image_to_numpy(msg.labels)
        if depth.shape[:2] != labels.shape[:2]:
            raise ValueError(
                f"depth {depth.shape[1]}x{depth.shape[0]} differs from the mask {labels.shape[1]}x{labels.shape[0]}"
                " (the depth image must be aligned to the colour camera)"
            )
        k, erode, stride = self.camera_info.k, int(self.value("depth.erode_px")), int(self.value("depth.cloud_stride"))
        targets, clouds, detections = [], [], []
        for index, target in enumerate(msg.targets):
            mask = labels == target.mask_index if target.mask_index else np.zeros(labels.shape, bool)
            centroid = target_centroid(mask, depth, k, unit, erode)
            box = fit_box(mask, depth, k, unit) if self.pub_boxes is not None and centroid.xyz is not None else None
            entry = {
                "index": index,
                "id": target.id,
                "xyz": None if centroid.xyz is None else [round(float(v), 5) for v in centroid.xyz],
                "valid_pixels": centroid.valid_pixels,
                "reason": centroid.reason,
            }
            if box is not None:
                entry["box"] = {
                    "center": [round(float(v), 5) for v in box.center],
                    "size": [round(float(v), 5) for v in box.size],
                    "orientation": [round(v, 6) for v in box.quaternion()],  # x, y, z, w
                }
                score = unit_score(float(target.score))
                detections.append(detection_3d(msg.header, target.id, target.label, score, box, centroid.xyz))
            targets.append(entry)
            clouds.append(masked_points(mask, depth, k, unit, stride))
        points = np.concatenate(clouds) if clouds else np.empty((0, 3), np.float32)
        return targets, points, detections

    def _publish(
        self,
        msg: SegmentationResult,
        targets: list[dict[str, Any]],
        skew: float | None,
        error: str,
        points: np.ndarray | None = None,
        detections: list | None = None,
    ) -> None:
        ok = not error and any(t["xyz"] is not None for t in targets)
        summary = {
            "id": msg.goal_id,
            "stamp": {"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec},
            "frame_id": msg.header.frame_id,
            "status": "ok" if ok else "error",
            "error": error or (None if ok else "no target has valid depth"),
            "depth_skew_s": None if skew is None else round(skew, 4),
            "targets": targets,
        }
        self.pub_json.publish(String(data=json.dumps(summary)))
        self.answered[summary["status"]] += 1
        if targets and targets[0]["xyz"] is not None:  # target_point is the first target's, when it has one
            point = PointStamped(header=msg.header)
            point.point.x, point.point.y, point.point.z = targets[0]["xyz"]
            self.pub_point.publish(point)
        if points is not None and len(points):
            self.pub_cloud.publish(point_cloud(points, msg.header))
        if self.pub_boxes is not None:  # one array per result, empty when no target has a box
            self.pub_boxes.publish(VISION_MSGS.Detection3DArray(header=msg.header, detections=detections or []))
        self.get_logger().info(f"goal {msg.goal_id}: 3D {summary['status']}" + (f" ({error})" if error else ""))

    def _publish_diagnostics(self) -> None:
        monitor = self.depth_monitor
        verdict = monitor.check() if monitor is not None else None
        level, warning = level_of([verdict])
        values = {
            "results_ok": self.answered["ok"],
            "results_error": self.answered["error"],
            "results_waiting_for_depth": len(self.pending),
            "camera_info": "received" if self.camera_info is not None else "none yet",
            **(monitor.values("depth") if monitor is not None else {}),
        }
        self._diag_pub.publish(diagnostic_array(self, "depth", level, warning or "ok", values))


def main(argv: list[str] | None = None) -> NoReturn:
    """Console script ``segzero_depth``: run until SIGINT or SIGTERM."""
    process.run(DepthNode, argv)


if __name__ == "__main__":
    main()
