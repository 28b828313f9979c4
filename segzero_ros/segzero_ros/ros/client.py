"""Python clients for a running ``segzero`` node (ROS side, like ``node.py``): topics, the ``segment`` action, and
a still image streamed as a camera.

``TopicClient(namespace).segment(rgb, "the red cup")`` streams the frame on ``image``, sends the goal on
``goal`` and returns the node's ``result`` JSON with the ``mask`` and ``overlay`` that carry the frame's
stamp. For grasp code and the ``segzero demo --node`` command; robots normally wire topics directly.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_msgs.msg import String

from segzero_ros.image_codec import image_to_numpy, numpy_to_image
from segzero_ros.ros import transport
from segzero_ros.ros.qos import ACTION_SERVICE_QOS, RELIABLE, RELIABLE_LATEST


class NodeNotFoundError(TimeoutError):
    """No ``segzero`` node answered on the names a client uses within its timeout."""


def not_found(names: list[str]) -> NodeNotFoundError:
    return NodeNotFoundError(
        f"no segzero node on {', '.join(names)} (is it running and active, in the same ROS_DOMAIN_ID?)"
    )


def inactive_node(client: Any, name: str = "segzero") -> str:
    """The full name of a node called ``name`` in ``client``'s namespace seen on the ROS graph, else ''."""
    namespace = client.get_namespace().rstrip("/")
    for node_name, node_namespace in client.get_node_names_and_namespaces():
        if node_name == name and node_namespace.rstrip("/") == namespace:
            return f"{namespace}/{name}"
    return ""


_started_rclpy = False  # whether init_rclpy started rclpy (then shutdown_rclpy ends it)
_open_clients: weakref.WeakSet = weakref.WeakSet()  # closed at exit when the program did not close them


def init_rclpy() -> None:
    """Start rclpy in this process, unless it runs already, with the transport settings the nodes use (the shipped
    Fast DDS profile: this process publishes camera-sized images too, which need a large shared-memory segment).

    rclpy installs no signal handler here: Ctrl-C raises KeyboardInterrupt in the caller as in any Python program.
    """
    global _started_rclpy
    if not rclpy.ok():
        transport.apply_defaults(os.environ)
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        _started_rclpy = True


def shutdown_rclpy() -> None:
    """Shut rclpy down if ``init_rclpy`` started it (its DDS participant and shared-memory segment go with it); a
    program that started rclpy itself keeps it. Close the clients first."""
    global _started_rclpy
    if _started_rclpy:
        rclpy.try_shutdown()
        _started_rclpy = False


def _close_at_exit() -> None:
    """Leave rclpy cleanly at exit: a spin thread still inside rclpy then aborts the process."""
    for client in list(_open_clients):
        client.close()
    shutdown_rclpy()


atexit.register(_close_at_exit)


class _SpinningClient:
    """A client node spun by its own executor thread; ``close`` (or leaving a ``with`` block) stops and joins it."""

    def __init__(self, name: str, namespace: str) -> None:
        init_rclpy()
        self.node = rclpy.create_node(f"{name}_{uuid.uuid4().hex[:6]}", namespace=namespace)
        self._executor = SingleThreadedExecutor()
        self._thread: threading.Thread | None = None
        _open_clients.add(self)

    def _spin(self) -> None:
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, name="segzero-client", daemon=True)
        self._thread.start()

    def _stop_spinning(self) -> None:
        """Stop the executor and wait for its thread to leave rclpy (exiting while it is inside aborts)."""
        self._executor.shutdown()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def close(self) -> None:
        """Stop spinning and destroy the node (rclpy keeps running: ``shutdown_rclpy`` ends it); once."""
        if self not in _open_clients:
            return
        _open_clients.discard(self)
        self._stop_spinning()
        self._destroy()

    def _destroy(self) -> None:
        self.node.destroy_node()

    def __enter__(self):
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass
class TopicAnswer:
    """The node's answer to one goal: its ``result`` JSON, and the mask/overlay of that frame when published."""

    result: dict[str, Any]
    mask: np.ndarray | None = None
    overlay: np.ndarray | None = None


class TopicClient(_SpinningClient):
    """Publishes frames and goals to a ``segzero`` node and collects its answers (own executor thread)."""

    def __init__(self, namespace: str = "", name: str = "segzero_client") -> None:
        super().__init__(name, namespace)
        # Reliable: matches both image QoS settings of the node (sensor_data and reliable).
        self._image_pub = self.node.create_publisher(Image, "image", RELIABLE_LATEST)
        self._goal_pub = self.node.create_publisher(String, "goal", RELIABLE)
        self._lock = threading.Lock()
        self._results: dict[str, dict[str, Any]] = {}
        self._images: dict[str, dict[tuple[int, int], Image]] = {"mask": {}, "overlay": {}}
        self._subs = [
            self.node.create_subscription(String, "result", self._on_result, RELIABLE),
            self.node.create_subscription(Image, "mask", lambda m: self._on_image("mask", m), RELIABLE),
            self.node.create_subscription(Image, "overlay", lambda m: self._on_image("overlay", m), RELIABLE),
        ]
        self._spin()

    def _on_result(self, msg: String) -> None:
        try:
            result = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            self._results[str(result.get("id"))] = result

    def _on_image(self, key: str, msg: Image) -> None:
        with self._lock:
            kept = self._images[key]
            kept[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
            while len(kept) > 8:  # only the newest few frames' images can still be claimed
                kept.pop(next(iter(kept)))

    def _names(self) -> list[str]:
        return [self.node.resolve_topic_name(topic) for topic in ("image", "goal", "result")]

    def wait_for_node(self, timeout: float) -> bool:
        """True once an active node is matched on every topic an answer travels (our frames and goals to it, its
        result, mask and overlay to us: a message sent before its reader matched is lost), False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            if (
                self._goal_pub.get_subscription_count() > 0
                and self._image_pub.get_subscription_count() > 0
                and all(sub.get_publisher_count() > 0 for sub in self._subs)
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def segment(
        self, rgb: np.ndarray, goal: str, timeout: float = 120.0, frame_id: str = "camera", rate_hz: float = 5.0
    ) -> TopicAnswer:
        """Wait for the node (within ``timeout``), stream ``rgb`` as rgb8 at ``rate_hz`` (each frame stamped when
        sent) and send ``goal``; the answer once it comes. Raises NodeNotFoundError when no node is found,
        TimeoutError when no answer comes in time."""
        deadline = time.monotonic() + timeout
        if not self.wait_for_node(timeout):
            raise not_found(self._names())
        goal_id = uuid.uuid4().hex[:12]
        msg = numpy_to_image(rgb, "rgb8")
        msg.header.frame_id = frame_id
        self._publish_frame(msg)
        self._goal_pub.publish(String(data=json.dumps({"id": goal_id, "text": goal})))
        while time.monotonic() < deadline:
            with self._lock:
                result = self._results.pop(goal_id, None)
            if result is not None:
                return self._answer(result)
            time.sleep(1.0 / rate_hz)
            self._publish_frame(msg)  # until answered: the node takes the newest frame when the goal starts
        raise TimeoutError(f"no result for goal {goal_id!r} within {timeout:.0f} s")

    def _publish_frame(self, msg: Image) -> None:
        stamp = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(stamp % 1 * 1e9)
        self._image_pub.publish(msg)

    def _answer(self, result: dict[str, Any]) -> TopicAnswer:
        """Attach the mask and overlay published for the result's frame (they precede the result; overlay may
        lag)."""
        answer = TopicAnswer(result)
        if result.get("status") != "ok" or not result.get("stamp"):
            return answer
        key = (result["stamp"]["sec"], result["stamp"]["nanosec"])
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with self._lock:
                mask, overlay = self._images["mask"].pop(key, None), self._images["overlay"].pop(key, None)
            if mask is not None:
                answer.mask = image_to_numpy(mask).copy()
            if overlay is not None:
                answer.overlay = image_to_numpy(overlay).copy()
            if answer.mask is not None and answer.overlay is not None:
                break
            time.sleep(0.05)
        return answer


class SegmentClient(_SpinningClient):
    """One-shot requests to a ``segzero`` node through its ``segment`` action (own executor thread).

    ``SegmentClient().segment("the red cup", timeout=30)`` returns the node's ``SegmentationResult`` (status
    "ok", "error" or "cancelled"); pass ``image`` (an RGB array or a ``sensor_msgs/Image``) to segment that
    image instead of the node's newest camera frame.
    """

    def __init__(self, namespace: str = "", action: str = "segment", name: str = "segzero_segment_client") -> None:
        from rclpy.action import ActionClient
        from segzero_interfaces.action import Segment

        super().__init__(name, namespace)
        self._segment_type = Segment
        self._action = action
        self._client = ActionClient(
            self.node,
            Segment,
            action,
            goal_service_qos_profile=ACTION_SERVICE_QOS,
            result_service_qos_profile=ACTION_SERVICE_QOS,
            cancel_service_qos_profile=ACTION_SERVICE_QOS,
        )
        self._spin()
        self.feedback: list[Any] = []  # every feedback message of the last goal (stage, partial reasoning)

    def wait_for_server(self, timeout: float) -> bool:
        """True once the node's action server is up (the node is active)."""
        return self._client.wait_for_server(timeout_sec=timeout)

    def require_node(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for the node's action server; NodeNotFoundError naming it when absent (and
        saying so when a ``segzero`` node runs there but is not active)."""
        if self.wait_for_server(timeout):
            return
        error = not_found([self.node.resolve_topic_name(self._action)])
        name = inactive_node(self.node)
        if name:
            error = NodeNotFoundError(
                f"{name} runs but serves no '{self._action}' action: it is not active (ros2 lifecycle get {name}; "
                f"ros2 lifecycle set {name} activate), or its models failed to load (its log says why)"
            )
        raise error

    def send_async(
        self,
        goal: str,
        image: np.ndarray | Image | None = None,
        multi: bool = False,
        goal_id: str = "",
        omit_images: bool = False,
    ) -> Any:
        """Send a goal without waiting: the future of its ``ClientGoalHandle`` (feedback goes to ``feedback``).

        ``omit_images``: the result comes without its mask and labels images (they still go out on topics)."""
        request = self._segment_type.Goal(goal=goal, multi=multi, goal_id=goal_id, omit_images=omit_images)
        if isinstance(image, np.ndarray):
            request.image = numpy_to_image(image, "rgb8")
        elif image is not None:
            request.image = image
        return self._client.send_goal_async(request, feedback_callback=lambda m: self.feedback.append(m.feedback))

    def send(
        self,
        goal: str,
        image: np.ndarray | Image | None = None,
        multi: bool = False,
        goal_id: str = "",
        timeout: float = 30.0,
        omit_images: bool = False,
    ) -> Any:
        """Wait for the node, send a goal; its ``ClientGoalHandle`` once accepted (``get_result_async``,
        ``cancel_goal_async``). NodeNotFoundError when no node serves the action within ``timeout``."""
        deadline = time.monotonic() + timeout
        self.require_node(timeout)
        self.feedback = []
        sent = self.send_async(goal, image, multi, goal_id, omit_images)
        handle = self.wait_future(sent, deadline, "the node to accept the goal")
        if not handle.accepted:
            name = inactive_node(self.node) or "/segzero"
            raise RuntimeError(f"the segzero node rejected the goal: not active (ros2 lifecycle set {name} activate)")
        return handle

    def segment(
        self,
        goal: str,
        image: np.ndarray | Image | None = None,
        multi: bool = False,
        timeout: float = 120.0,
        goal_id: str = "",
        omit_images: bool = False,
    ) -> Any:
        """Send ``goal`` and wait for its result; on ``timeout`` (or Ctrl-C) the goal is cancelled on the node and
        TimeoutError (KeyboardInterrupt) raised."""
        deadline = time.monotonic() + timeout
        handle = self.send(goal, image, multi, goal_id or uuid.uuid4().hex[:12], timeout, omit_images)
        try:
            return self.wait_future(handle.get_result_async(), deadline, "the result").result.result
        except (TimeoutError, KeyboardInterrupt):
            handle.cancel_goal_async()
            raise

    @staticmethod
    def wait_future(future: Any, deadline: float, what: str) -> Any:
        """The result of an rclpy future, polled until ``deadline`` (``time.monotonic()``), else TimeoutError."""
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.01)
        return future.result()

    def _destroy(self) -> None:
        self._client.destroy()
        self.node.destroy_node()


def stream_image(
    rgb: np.ndarray,
    topic: str = "image",
    rate_hz: float = 5.0,
    frame_id: str = "camera",
    seconds: float = 0.0,
    namespace: str = "",
) -> int:
    """Publish ``rgb`` as a camera would (rgb8, reliable, stamped now) at ``rate_hz`` until ``seconds`` pass
    (0: until Ctrl-C); the number of frames sent. For trying the node without a camera."""
    init_rclpy()
    node = rclpy.create_node(f"segzero_camera_{uuid.uuid4().hex[:6]}", namespace=namespace)
    publisher = node.create_publisher(Image, topic, RELIABLE_LATEST)
    msg = numpy_to_image(rgb, "rgb8")
    msg.header.frame_id = frame_id
    sent, start = 0, time.monotonic()
    try:
        while not seconds or time.monotonic() - start < seconds:
            stamp = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(stamp % 1 * 1e9)
            publisher.publish(msg)
            sent += 1
            time.sleep(max(0.0, start + sent / rate_hz - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
    return sent
