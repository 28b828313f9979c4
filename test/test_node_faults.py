"""Fault scenarios against ``segzero_node`` as its own process: no message crashes it, and every goal, topic or
action, gets exactly one answer on every path (bursts, deactivate, SIGINT, SIGTERM)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from node_support import (
    NODE_PARAMS,
    START_TIMEOUT,
    TIMEOUT,
    answered,
    call_service,
    make_frame,
    result_for,
    send_goal,
    serve_frames_until,
    set_param,
    start_node,
)
from ros_harness import NodeProcess, Probe, isolate_ros_domain

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def ros(tmp_path_factory, tiny_fitted_reasoner_dir, tiny_sam2_config):
    isolate_ros_domain()
    import rclpy

    probe, node = start_node(tmp_path_factory.mktemp("faults") / "segzero_node.log")
    try:
        yield probe, node
    finally:
        probe.close()
        node.stop()
        rclpy.try_shutdown()


@pytest.fixture(scope="module")
def action_client(ros):
    from segzero_ros.ros.client import SegmentClient

    client = SegmentClient()
    assert client.wait_for_server(60)
    yield client
    client.close()


def test_dropped_frames_are_named_when_a_goal_finds_no_image(ros):
    """Runs first: the node has had no usable frame yet."""
    probe, node = ros
    frame = make_frame(64, 48)
    frame.encoding = "bayer_rggb16"  # not decoded: every frame dropped
    for _ in range(3):
        probe.send_frame(frame)
        time.sleep(0.1)
    send_goal(probe, "no-usable-image")
    result = result_for(probe, "no-usable-image", node)
    prefix = "no image received within 2 s on /image (1 publisher); frames arrive but are dropped:"
    assert result["error"].startswith(prefix), result["error"]
    assert "unsupported encoding 'bayer_rggb16'" in result["error"]


@pytest.mark.parametrize("encoding", ["yuv422", "yuyv", "bayer_grbg8"])
def test_yuv_and_bayer_cameras_are_read(ros, encoding):
    from sensor_msgs.msg import Image

    probe, node = ros
    probe.clear()
    channels = 2 if "yu" in encoding else 1
    data = np.random.default_rng(0).integers(0, 256, (240, 320 * channels), dtype=np.uint8)
    msg = Image(height=240, width=320, encoding=encoding, step=320 * channels, data=data.tobytes())
    msg.header.stamp.sec = 31
    goal_id = f"camera-{encoding}"
    serve_frames_until(probe, msg, lambda: probe.diagnostic("frame_age_s") not in (None, ""), node, "frame")
    send_goal(probe, goal_id)
    serve_frames_until(probe, msg, lambda: answered(probe, [goal_id]), node, goal_id)
    result = result_for(probe, goal_id, node)
    assert result["status"] == "ok" and result["image"] == {"width": 320, "height": 240}, result


def test_nested_json_goal_is_answered_and_the_node_lives(ros):
    probe, node = ros
    probe.clear()
    probe.send_goal('{"text": ' + "[" * 1000 + "]" * 1000 + "}")  # raised RecursionError out of the executor
    probe.send_goal('{"id": "bomb", "text": ' + "[" * 1000 + "]" * 1000 + "}")
    probe.wait_for(lambda: len(probe.results()) >= 2, TIMEOUT, "two answers", node)
    results = probe.results()
    assert all(r["error"].startswith("malformed JSON goal: must be a flat object") for r in results)
    assert "bomb" in {r["id"] for r in results}
    send_goal(probe, "after-bomb")
    serve_frames_until(probe, make_frame(), lambda: answered(probe, ["after-bomb"]), node, "after-bomb")
    assert result_for(probe, "after-bomb", node)["status"] == "ok"


def test_refused_goals_are_answered_under_their_own_id_with_the_live_limit(ros):
    probe, node = ros
    probe.clear()
    probe.send_goal(json.dumps({"text": "x" * 200_000, "id": "huge"}))
    result = result_for(probe, "huge", node)
    assert result["error"].startswith("goal message too long")
    assert set_param(probe, "max_goal_chars", 50).successful
    try:
        send_goal(probe, "over-50", "the red cup " * 5)
        assert result_for(probe, "over-50", node)["error"] == "goal too long: 59 characters (limit 50)"
    finally:
        assert set_param(probe, "max_goal_chars", 20_000).successful
    send_goal(probe, "long-ok", "the red cup " + "x" * 11_000)  # above the old fixed 10000 limit
    serve_frames_until(probe, make_frame(), lambda: answered(probe, ["long-ok"]), node, "long-ok")
    assert "too long" not in (result_for(probe, "long-ok", node)["error"] or "")
    assert set_param(probe, "max_goal_chars", 2000).successful


def test_a_silent_camera_fails_the_goal_with_the_frame_age(ros):
    probe, node = ros
    probe.clear()
    assert set_param(probe, "image_max_age_s", 1.0).successful
    try:
        serve_frames_until(probe, make_frame(), lambda: probe.diagnostic("frame_age_s") is not None, node, "f")
        time.sleep(1.5)  # the camera stops
        send_goal(probe, "stale")
        result = result_for(probe, "stale", node)
        assert result["error"].startswith("camera silent for ") and "image_max_age_s = 1 s" in result["error"]
        age = float(probe.diagnostic("frame_age_s"))
        assert age > 1.0
    finally:
        assert set_param(probe, "image_max_age_s", 0.0).successful


def _send_action_burst(client, n, prefix, image):
    """``n`` action goals sent at once; (goal id → its result response) for each, waited for."""
    ids = [f"{prefix}-{i}" for i in range(n)]
    futures = {k: client.send_async("the red cup", image=image, goal_id=k) for k in ids}
    deadline = time.monotonic() + TIMEOUT
    handles = {k: client.wait_future(f, deadline, f"acceptance of {k}") for k, f in futures.items()}
    assert all(h.accepted for h in handles.values())
    results = {k: h.get_result_async() for k, h in handles.items()}
    return {k: client.wait_future(f, deadline, f"result of {k}") for k, f in results.items()}


def test_bursts_of_action_goals_are_all_answered(ros, action_client):
    from action_msgs.msg import GoalStatus

    _, node = ros
    image = make_frame(64, 48)
    for burst in range(3):
        responses = _send_action_burst(action_client, 20, f"act{burst}", image)
        assert node.alive(), node.log()[-3000:]
        statuses = {k: (r.status, r.result.result.status, r.result.result.error) for k, r in responses.items()}
        assert len(statuses) == 20
        for status, result_status, error in statuses.values():
            assert (status, result_status) == (GoalStatus.STATUS_SUCCEEDED, "ok") or (
                status == GoalStatus.STATUS_ABORTED and "superseded" in error
            ), statuses
    assert "callback failed" not in node.log(), node.log()[-3000:]


def test_a_burst_from_a_client_with_rclpys_default_queues_is_answered_in_full(ros):
    """rclpy's default action QoS keeps 10 requests; the node's deep queues still take and answer all 20."""
    from rclpy.action import ActionClient
    from segzero_interfaces.action import Segment

    probe, node = ros
    client = ActionClient(probe.node, Segment, "segment")
    try:
        assert client.wait_for_server(timeout_sec=30)
        image = make_frame(64, 48)
        sent = [client.send_goal_async(Segment.Goal(goal="the red cup", image=image)) for _ in range(20)]
        deadline = time.monotonic() + TIMEOUT
        probe.wait_for(lambda: all(f.done() for f in sent), TIMEOUT, "20 acceptance responses", node)
        results = [f.result().get_result_async() for f in sent]
        probe.wait_for(lambda: all(r.done() for r in results), max(deadline - time.monotonic(), 1), "20 results", node)
        assert all(f.result().accepted for f in sent)
    finally:
        client.destroy()


def _lifecycle(probe, transition_id):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    request = ChangeState.Request(transition=Transition(id=transition_id))
    assert call_service(probe, ChangeState, "/segzero/change_state", request, timeout=300).success


def test_deactivate_answers_every_goal_delivered_before_it(ros, action_client):
    from action_msgs.msg import GoalStatus
    from lifecycle_msgs.msg import Transition

    probe, node = ros
    probe.clear()
    send_goal(probe, "deact-slow", "slow:2 the red cup")
    ids = [f"deact-{i}" for i in range(30)]
    for goal_id in ids:
        send_goal(probe, goal_id)
    action_futures = [action_client.send_async("the red cup", image=make_frame(64, 48)) for _ in range(5)]
    deadline = time.monotonic() + TIMEOUT
    handles = [action_client.wait_future(f, deadline, "acceptance") for f in action_futures]
    results = [h.get_result_async() for h in handles]
    _lifecycle(probe, Transition.TRANSITION_DEACTIVATE)
    try:
        probe.wait_for(lambda: answered(probe, [*ids, "deact-slow"]), TIMEOUT, "31 answers", node)
        time.sleep(0.5)
        got = [r["id"] for r in probe.results() if r["id"].startswith("deact")]
        assert sorted(got) == sorted([*ids, "deact-slow"])  # each exactly once
        outcomes = [action_client.wait_future(f, deadline, "action result") for f in results]
        assert all(o.status in (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED) for o in outcomes)
        with pytest.raises(RuntimeError, match=r"rejected the goal: not active \(ros2 lifecycle set /segzero activate"):
            action_client.send("the red cup", image=make_frame(64, 48), timeout=30)  # refused, not dropped
        assert "inactive: no frames or goals taken (ros2 lifecycle set /segzero activate resumes)" in node.log()
    finally:
        _lifecycle(probe, Transition.TRANSITION_ACTIVATE)
    probe.wait_for(lambda: probe.goal_pub.get_subscription_count() > 0, 30, "active again", node)


def test_diagnostics_name_the_node_with_its_namespace():
    isolate_ros_domain()
    import rclpy

    from segzero_ros.ros.node import SegZeroNode

    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    node = SegZeroNode(namespace="left")
    try:
        sent = []
        node._diag_pub.publish = sent.append
        node._publish_diagnostics()
        assert sent[0].status[0].name == "/left/segzero: segzero"
    finally:
        node.destroy_node()
        if owned:
            rclpy.try_shutdown()


def test_a_failing_callback_is_logged_and_spinning_goes_on():
    isolate_ros_domain()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from segzero_ros.ros.process import spin_until

    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    node = rclpy.create_node("spin_until_probe")
    calls, errors = [], []

    def tick():
        calls.append(1)
        if len(calls) == 1:
            raise RecursionError("a callback that fails")

    node.create_timer(0.01, tick)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_until(executor, lambda: len(calls) >= 3, errors.append)
        assert len(calls) >= 3 and [type(e) for e in errors] == [RecursionError]
    finally:
        executor.remove_node(node)
        node.destroy_node()
        if owned:
            rclpy.try_shutdown()


def test_an_image_topic_nobody_publishes_is_flagged(ros, tmp_path):
    """Launched with a wrong camera topic: the log and diagnostics name the resolved topic, and goals say why."""
    main_probe, _ = ros
    node = NodeProcess(
        tmp_path / "wrong_topic.log",
        {**NODE_PARAMS, "diagnostics_period_s": 0.5},
        ros_args=("-r", "__ns:=/wrong", "-r", "image:=/nobody/image"),
    )
    probe = Probe(namespace="wrong", publishes_images=False)
    try:
        probe.wait_for_node(node, START_TIMEOUT)
        assert "active: waiting for images on /nobody/image and goals on /wrong/goal" in node.log()

        def status():
            for array in reversed(probe.take("diagnostics")):
                for entry in array.status:
                    if entry.name == "/wrong/segzero: segzero":
                        return entry
            return None

        from diagnostic_msgs.msg import DiagnosticStatus

        warned = lambda: status() is not None and status().level == DiagnosticStatus.WARN  # noqa: E731
        probe.wait_for(warned, 30, "a WARN", node)
        assert status().message.startswith("ready; no publisher on /nobody/image for ")
        values = {kv.key: kv.value for kv in status().values}
        assert values["image_topic"] == "/nobody/image" and values["image_publishers"] == "0"
        assert node.log().count("no publisher on /nobody/image for") == 1  # one line, not one per period
        send_goal(probe, "blind")
        result = result_for(probe, "blind", node)
        assert result["error"] == "no image received within 2 s on /nobody/image (0 publishers)"
    finally:
        probe.close()
        node.stop()
    assert main_probe.node.context.ok()
