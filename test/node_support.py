"""What the tests that run the node as a process share: frames, goals, waits, parameters, a node with test hooks
(on top of ``ros_harness``'s process and probe)."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ros_harness import ROOT, NodeProcess, Probe, isolate_ros_domain

HOOKED_NODE = [sys.executable, str(ROOT / "test" / "hooked_node.py")]
START_TIMEOUT = 600.0  # torch import + tiny model load on a slow 2-core machine
GOAL_TIMEOUT = 180.0


def make_frame(
    width=640, height=480, encoding="rgb8", sec=17, nanosec=42, frame_id="camera_color_optical_frame", pad=0
):
    """A sensor_msgs/Image of the demo scene in ``encoding`` with ``pad`` bytes of row padding."""
    from sensor_msgs.msg import Image

    from segzero_ros.scenes import demo_scene

    rgb, _ = demo_scene(width, height)
    array = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    rows = np.zeros((height, width * 3 + pad), np.uint8)
    rows[:, : width * 3] = array.reshape(height, -1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=width * 3 + pad)
    msg.data = rows.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    return msg


def result_for(probe, goal_id, node):
    probe.wait_for(lambda: any(r["id"] == goal_id for r in probe.results()), GOAL_TIMEOUT, f"result {goal_id}", node)
    matches = [r for r in probe.results() if r["id"] == goal_id]
    assert len(matches) == 1, f"goal {goal_id} answered {len(matches)} times"
    return matches[0]


def send_goal(probe, goal_id, text="the red cup", **fields):
    probe.send_goal(json.dumps({"id": goal_id, "text": text, **fields}))


def goal_on_frame(probe, frame, goal_id, node, text="the red cup"):
    """Publish ``frame`` until the node's diagnostics count it, send the goal, serve the frame until the result."""
    probe.wait_for(lambda: probe.diagnostic("frames_received") is not None, 60, "diagnostics", node)
    before = int(probe.diagnostic("frames_received"))
    serve_frames_until(probe, frame, lambda: int(probe.diagnostic("frames_received")) > before, node, "frame")
    send_goal(probe, goal_id, text)
    serve_frames_until(probe, frame, lambda: any(r["id"] == goal_id for r in probe.results()), node, goal_id)
    return result_for(probe, goal_id, node)


def serve_frames_until(probe, frame, predicate, node, what, timeout=GOAL_TIMEOUT):
    """Publish ``frame`` at up to ~5 Hz until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe.send_frame(frame)
        if predicate():
            return
        assert node.alive(), node.log()[-4000:]
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{node.log()[-4000:]}")


def call_service(probe, srv_type, name, request, timeout=60.0):
    client = probe.node.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert future.done(), f"{name} did not answer"
        return future.result()
    finally:
        probe.node.destroy_client(client)


def set_param(probe, name, value):
    """Set one parameter of the node through its service; the SetParametersResult."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    if isinstance(value, bool):
        pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    elif isinstance(value, str):
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    elif isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    request = SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
    return call_service(probe, SetParameters, "/segzero/set_parameters", request).results[0]


NODE_PARAMS = {
    "preset": "tiny",
    "image_qos": "reliable",
    "image_timeout_s": 2.0,
    "image_max_age_s": 0.0,
    "reasoner.max_new_tokens": 96,
    "max_pending_goals": 4,
    "tracking.enabled": False,
}
TIMEOUT = 120.0


def start_node(log_path, **params) -> tuple[Probe, NodeProcess]:
    node = NodeProcess(log_path, {**NODE_PARAMS, **params}, command=HOOKED_NODE)
    probe = Probe()
    probe.wait_for_node(node, START_TIMEOUT)
    return probe, node


def answered(probe, ids) -> bool:
    return {r["id"] for r in probe.results()} >= set(ids)


@contextlib.contextmanager
def running_node(
    log_path: Path, params: dict[str, Any], probe_images: bool = True, timeout: float = START_TIMEOUT, **process: Any
) -> Iterator[tuple[Probe, NodeProcess]]:
    """A module's node: its own process on this run's DDS domain and a probe that found it (``probe_images``: the
    probe also publishes on ``image``); on exit the probe closes, the node is stopped (its log checked for faults)
    and rclpy is shut down."""
    isolate_ros_domain()
    import rclpy

    node = NodeProcess(log_path, params, **process)
    probe = Probe(publishes_images=probe_images)
    try:
        probe.wait_for_node(node, timeout)
        yield probe, node
    finally:
        probe.close()
        node.stop()
        rclpy.try_shutdown()
