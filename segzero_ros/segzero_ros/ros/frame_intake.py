"""The ``segzero`` node's camera subscription: each frame decoded (never a model), kept as the worker's newest,
or dropped with the reason (logged at most every 5 s per reason); the stream watched for transport losses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sensor_msgs.msg import CompressedImage, Image

from segzero_ros.image_codec import ImageConversionError, compressed_to_numpy, image_to_numpy, stamp_seconds
from segzero_ros.ros.diagnostics import StreamMonitor
from segzero_ros.worker import Frame, GoalWorker

DROP_LOG_PERIOD_S = 5.0


def _decode_raw(msg: Image, max_size: int) -> tuple[Any, str]:
    return image_to_numpy(msg, max_size=max_size), msg.encoding


def _decode_compressed(msg: CompressedImage, max_size: int) -> tuple[Any, str]:
    array = compressed_to_numpy(msg, max_size=max_size)
    return array, "rgb8" if array.ndim == 3 else "mono8"


class FrameIntake:
    """Subscribes to ``image`` (or ``image/compressed``) on ``node`` while it exists; see the module docstring."""

    def __init__(
        self, node: Any, worker: GoalWorker, compressed: bool, image_qos: Any, max_size: Callable[[], int]
    ) -> None:
        self._node, self._worker, self._max_size = node, worker, max_size
        topic, kind = ("image/compressed", CompressedImage) if compressed else ("image", Image)
        self.topic = topic
        self._decode = _decode_compressed if compressed else _decode_raw
        self.monitor = StreamMonitor(node, topic)
        events = self.monitor.event_callbacks()
        self.subscription = node.create_subscription(kind, topic, self._on_frame, image_qos, event_callbacks=events)
        self._drop_logged: dict[str, float] = {}

    def describe(self) -> str:
        """The resolved topic and how many publishers it has now, e.g. ``/camera/image (0 publishers)``."""
        topic = self.monitor.health.topic
        count = self._node.count_publishers(topic)
        return f"{topic} ({count} publisher{'' if count == 1 else 's'})"

    def _on_frame(self, msg: Any) -> None:
        t0 = time.perf_counter()
        try:
            array, encoding = self._decode(msg, self._max_size())
        except ImageConversionError as exc:
            self._drop(str(exc))
            return
        stats = self._worker.stats
        self._worker.offer_frame(Frame(array=array, encoding=encoding, header=msg.header))
        self.monitor.frame()
        stamp = stamp_seconds(msg.header)
        if stamp:  # stamped by the camera's clock: transport latency as far as the two clocks agree
            stats.receive_latency_ms.append((time.time() - stamp) * 1e3)
        stats.callback_ms.append((time.perf_counter() - t0) * 1e3)

    def _drop(self, reason: str) -> None:
        """Count the drop; log each distinct reason at most once per period (a broken camera repeats itself)."""
        self._worker.note_dropped(reason)
        now = time.monotonic()
        if now - self._drop_logged.get(reason, -1e9) >= DROP_LOG_PERIOD_S:
            if len(self._drop_logged) > 64:
                self._drop_logged.clear()
            self._drop_logged[reason] = now
            self._node.get_logger().warning(f"dropped a frame: {reason}")
