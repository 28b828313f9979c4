"""The segzero node as a real separate process on an isolated DDS domain, driven from this process.

One node process serves the whole module (starting one costs the torch import and the tiny models);
tests run in file order and each leaves the node serving.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
from hooked_node import FAULT_GOAL
from node_support import (
    GOAL_TIMEOUT,
    HOOKED_NODE,
    call_service,
    goal_on_frame,
    make_frame,
    result_for,
    running_node,
    send_goal,
    serve_frames_until,
    set_param,
)
from ros_harness import isolate_ros_domain

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def ros(tmp_path_factory, tiny_fitted_reasoner_dir, tiny_sam2_config):
    """(probe, node process): the node started with the tiny preset, active, discovered by the probe."""
    params = {
        "preset": "tiny",
        "image_qos": "reliable",
        "image_timeout_s": 5.0,
        "image_max_age_s": 0.0,  # the tests reuse their last frame for minutes; test_node_faults checks the age
        "reasoner.max_new_tokens": 96,
        "max_pending_goals": 4,
        "tracking.enabled": False,  # tracking has its own tests (test_tracking_node.py)
    }
    log = tmp_path_factory.mktemp("node") / "segzero_node.log"
    allowed = ("fault injected for testing",)  # test_pipeline_exception_is_an_error_result_...
    with running_node(log, params, command=HOOKED_NODE, allowed_faults=allowed) as running:
        yield running


def test_goal_before_any_image_fails_after_the_timeout(ros):
    probe, node = ros
    send_goal(probe, "early")
    result = result_for(probe, "early", node)
    assert result["status"] == "error"
    assert result["error"] == "no image received within 5 s on /image (1 publisher)"  # the probe's publisher
    probe.wait_for(lambda: any(m.goal_id == "early" for m in probe.take("segmentation")), 30, "segmentation", node)
    (typed,) = [m for m in probe.take("segmentation") if m.goal_id == "early"]
    assert typed.status == "error" and typed.error == result["error"] and not typed.targets
    assert (typed.mask.width, typed.mask.height, typed.header.frame_id) == (0, 0, "")


def test_mask_has_the_source_frame_header_and_size(ros):
    probe, node = ros
    probe.clear()
    frame = make_frame(sec=1234, nanosec=5678, frame_id="cam_optical")
    result = goal_on_frame(probe, frame, "aligned", node, "The red cup.")
    assert result["status"] == "ok", result
    assert result["goal"] == "The red cup." and result["error"] is None
    assert result["stamp"] == {"sec": 1234, "nanosec": 5678} and result["frame_id"] == "cam_optical"
    assert set(result["timings_ms"]) >= {"reason_ms", "segment_ms", "total_ms"}
    assert result["models"]["reasoner"] and "sam2" in result["models"]["segmenter"]
    (target,) = result["targets"]
    assert len(target["bbox"]) == 4 and len(target["points"]) == 2 and target["area"] >= 0
    probe.wait_for(lambda: probe.take("mask") and probe.take("labels"), 30, "mask and labels", node)
    mask, labels = probe.take("mask")[-1], probe.take("labels")[-1]
    for msg, encoding in ((mask, "mono8"), (labels, "mono16")):
        assert (msg.width, msg.height, msg.encoding) == (640, 480, encoding)
        assert msg.header.stamp.sec == 1234 and msg.header.stamp.nanosec == 5678
        assert msg.header.frame_id == "cam_optical"
    pixels = np.frombuffer(bytes(mask.data), np.uint8)
    assert set(np.unique(pixels)) <= {0, 255} and int((pixels == 255).sum()) == target["area"]
    # Topics are independent streams: `reasoning` may arrive after `result` even though it is published first.
    probe.wait_for(lambda: probe.take("reasoning"), 30, "reasoning", node)
    assert probe.take("reasoning")[-1].data.startswith("The goal names one object")

    # The typed result on `segmentation` says the same as the JSON, with the source frame's header.
    probe.wait_for(lambda: any(m.goal_id == "aligned" for m in probe.take("segmentation")), 30, "segmentation", node)
    (typed,) = [m for m in probe.take("segmentation") if m.goal_id == "aligned"]
    assert (typed.header.stamp.sec, typed.header.stamp.nanosec, typed.header.frame_id) == (1234, 5678, "cam_optical")
    assert (typed.status, typed.error, typed.goal, typed.protocol) == ("ok", "", "The red cup.", "segzero")
    assert typed.reasoning == probe.take("reasoning")[-1].data and typed.answer == result["answer"]
    (typed_target,) = typed.targets
    assert [typed_target.x1, typed_target.y1, typed_target.x2, typed_target.y2] == pytest.approx(target["bbox"])
    assert typed_target.points.tolist() == pytest.approx([v for point in target["points"] for v in point])
    assert (typed_target.area, typed_target.mask_index) == (target["area"], 1)
    assert bytes(typed.mask.data) == bytes(mask.data) and bytes(typed.labels.data) == bytes(labels.data)
    assert typed.mask.header.frame_id == "cam_optical" and typed.total_ms > 0


def test_overlay_is_published_to_a_subscriber(ros):
    probe, node = ros
    probe.clear()
    result = goal_on_frame(probe, make_frame(320, 240, sec=77), "overlay", node)
    probe.wait_for(lambda: bool(probe.take("overlay")), 30, "overlay", node)
    overlay = probe.take("overlay")[-1]
    assert overlay.encoding == "rgb8"
    assert {"width": overlay.width, "height": overlay.height} == result["image"]
    assert overlay.header.stamp.sec == result["stamp"]["sec"] == 77


def test_padded_bgr_frames_are_read_with_their_step(ros):
    probe, node = ros
    probe.clear()
    result = goal_on_frame(probe, make_frame(400, 300, encoding="bgr8", pad=16), "bgr", node)
    assert result["status"] == "ok" and result["image"] == {"width": 400, "height": 300}


def test_topic_client_gets_result_mask_and_overlay(ros):
    from segzero_ros.ros.client import TopicClient
    from segzero_ros.scenes import demo_scene

    _, node = ros
    client = TopicClient()
    try:
        assert client.wait_for_node(30)
        answer = client.segment(demo_scene(320, 240)[0], "the red cup", timeout=GOAL_TIMEOUT)
    finally:
        client.close()
    assert answer.result["status"] == "ok", (answer.result, node.log()[-3000:])
    assert answer.result["image"] == {"width": 320, "height": 240}
    mask = answer.mask.reshape(240, 320)
    assert int((mask == 255).sum()) == answer.result["targets"][0]["area"]
    assert answer.overlay.shape == (240, 320, 3)


def test_segzero_ask_prints_the_answer_and_saves_the_mask(ros, tmp_path, capsys):
    from PIL import Image as PILImage

    from segzero_ros import cli
    from segzero_ros.scenes import demo_scene

    _, node = ros
    PILImage.fromarray(demo_scene(320, 240)[0]).save(tmp_path / "scene.png")
    args = ["ask", "the red cup", "--image", str(tmp_path / "scene.png"), "--out", str(tmp_path / "out")]
    assert cli.main([*args, "--json"]) == 0, node.log()[-3000:]
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert answer["status"] == "ok" and answer["frame"]["width"] == 320 and len(answer["targets"]) == 1
    mask = np.asarray(PILImage.open(tmp_path / "out" / "mask.png"))
    assert mask.shape == (240, 320) and int((mask == 255).sum()) == answer["targets"][0]["area"]
    coloured = np.asarray(PILImage.open(tmp_path / "out" / "labels_colour.png"))
    assert coloured.shape == (240, 320, 3) and int(coloured.any(axis=2).sum()) == answer["targets"][0]["area"]
    assert cli.main(["ask", "   ", "--image", str(tmp_path / "scene.png")]) == 1  # a failed goal: exit code 1
    printed = capsys.readouterr().out
    assert printed.startswith("goal ") and ": error: empty goal" in printed.splitlines()[0]


def test_segzero_camera_streams_the_demo_scene_to_the_node(ros):
    from segzero_ros import cli

    probe, node = ros
    before = int(probe.fresh_diagnostic("frames_received", node, 60))
    assert cli.main(["-q", "camera", "--seconds", "2", "--rate", "5", "--frame-id", "still"]) == 0
    probe.wait_for(lambda: int(probe.diagnostic("frames_received")) >= before + 5, 30, "the frames", node)


def test_segzero_ask_without_a_node_says_so(ros, capsys):
    from segzero_ros import cli

    assert cli.main(["ask", "the red cup", "--namespace", "nobody_here", "--wait", "1"]) == 2
    assert "no segzero node on /nobody_here/segment (is it running" in capsys.readouterr().err


def _bad_frames():
    good = make_frame(64, 48)
    cases = {}
    msg = make_frame(64, 48)
    msg.encoding = "yuv422_yuy2_unknown"
    cases["unknown encoding"] = msg
    msg = make_frame(64, 48)
    msg.data = bytes(good.data)[:-5]
    cases["short data"] = msg
    msg = make_frame(64, 48)
    msg.step = 10
    cases["step too small"] = msg
    msg = make_frame(64, 48)
    msg.width, msg.height, msg.step, msg.data = 0, 0, 0, b""
    cases["zero size"] = msg
    msg = make_frame(64, 48)
    msg.width, msg.step = 9000, 27000
    msg.data = bytes(27000 * 48)
    cases["absurd size"] = msg
    return cases


def test_bad_frames_are_dropped_and_the_node_keeps_serving(ros):
    probe, node = ros
    before = int(probe.fresh_diagnostic("frames_rejected", node))
    for msg in _bad_frames().values():
        probe.send_frame(msg)
        time.sleep(0.1)
    probe.wait_for(lambda: int(probe.diagnostic("frames_rejected")) >= before + 5, 30, "5 rejected", node)
    log = node.log()
    for reason in ("unsupported encoding", "data has", "step 10 <", "empty image", "exceeds the 8192"):
        assert reason in log, reason
    send_goal(probe, "after-bad-frames")
    assert result_for(probe, "after-bad-frames", node)["status"] == "ok"  # the last good frame is still there
    diag = {kv.key: kv.value for kv in probe.take("diagnostics")[-1].status[0].values}
    assert diag["state"] in ("ready", "busy") and int(diag["goals_ok"]) >= 3


BAD_GOALS = {
    "empty": ("", "empty goal"),
    "huge": ("x" * 100_000, "too long"),
    "json-garbage": ('{"id": "x", "text": ', "malformed JSON goal"),
    "json-truncated": ('{"id": "x"', "malformed JSON goal"),
    "unknown-field": (json.dumps({"id": "unknown-field", "text": "cup", "colour": "red"}), "unknown goal field"),
    "bad-multi": (json.dumps({"id": "bad-multi", "text": "cup", "multi": "yes"}), "'multi' must be"),
    "empty-json-text": (json.dumps({"id": "empty-json-text", "text": "  "}), "empty goal"),
}


def test_bad_goals_each_get_one_error_result(ros):
    probe, node = ros
    probe.clear()
    for text, _ in BAD_GOALS.values():
        probe.send_goal(text)
    probe.send_raw_goal(b"the \xff\xfe cup")
    probe.wait_for(lambda: len(probe.results()) >= len(BAD_GOALS) + 1, GOAL_TIMEOUT, "bad goal results", node)
    results = probe.results()
    assert len(results) == len(BAD_GOALS) + 1
    assert all(r["status"] == "error" for r in results)
    errors = " | ".join(r["error"] for r in results)
    for _, reason in BAD_GOALS.values():
        assert reason in errors, reason
    assert "not valid UTF-8" in errors
    send_goal(probe, "after-bad-goals")
    assert result_for(probe, "after-bad-goals", node)["status"] == "ok"


def test_pipeline_exception_is_an_error_result_and_the_node_lives(ros):
    probe, node = ros
    send_goal(probe, "fault", FAULT_GOAL)
    result = result_for(probe, "fault", node)
    assert result["status"] == "error" and "fault injected" in result["error"]
    send_goal(probe, "after-fault")
    assert result_for(probe, "after-fault", node)["status"] == "ok"


def clear_and_send_goals(probe, prefix, n):
    """Forget what came before, send ``n`` goals at once; returns their ids."""
    probe.clear()
    ids = [f"{prefix}-{i}" for i in range(n)]
    for goal_id in ids:
        send_goal(probe, goal_id)
    return ids


def test_burst_of_20_goals_gets_exactly_one_result_each(ros):
    probe, node = ros
    ids = clear_and_send_goals(probe, "burst", 20)
    probe.wait_for(lambda: {r["id"] for r in probe.results()} >= set(ids), GOAL_TIMEOUT * 2, "20 results", node)
    time.sleep(1.0)  # nothing more may arrive
    results = probe.results()
    assert sorted(r["id"] for r in results) == sorted(ids)
    superseded = [r for r in results if r["status"] == "error"]
    assert all("superseded" in r["error"] for r in superseded)
    assert len(superseded) >= 20 - 4 - 2  # at most 4 queued + the running one (+1 taken meanwhile) ran


def test_cancel_answers_pending_goals_as_cancelled(ros):
    from std_msgs.msg import Empty

    probe, node = ros
    probe.clear()
    send_goal(probe, "cancel-running", "slow:2 the red cup")  # keeps the worker busy while the others wait
    ids = [f"cancel-{i}" for i in range(3)]
    for goal_id in ids:
        send_goal(probe, goal_id)
    time.sleep(0.5)
    probe.cancel_pub.publish(Empty())
    probe.wait_for(lambda: {r["id"] for r in probe.results()} >= {*ids, "cancel-running"}, GOAL_TIMEOUT, "4", node)
    by_id = {r["id"]: r for r in probe.results()}
    assert len(probe.results()) == 4
    assert by_id["cancel-running"]["status"] == "ok"  # a running goal finishes
    assert [by_id[i]["error"] for i in ids] == ["cancelled"] * 3


@pytest.fixture(scope="module")
def segment_client(ros):
    from segzero_ros.ros.client import SegmentClient

    client = SegmentClient()
    assert client.wait_for_server(60), "the node serves no 'segment' action"
    yield client
    client.close()


def _mask_pixels(image_msg) -> int:
    return int((np.frombuffer(bytes(image_msg.data), np.uint8) == 255).sum())


def test_action_segments_an_explicit_image_with_its_header(ros, segment_client):
    probe, node = ros
    image = make_frame(320, 240, sec=4242, nanosec=7, frame_id="arm_camera")
    result = segment_client.segment("the red cup", image=image, timeout=GOAL_TIMEOUT, goal_id="act-image")
    assert result.status == "ok", (result.error, node.log()[-3000:])
    assert (result.goal_id, result.header.stamp.sec, result.header.frame_id) == ("act-image", 4242, "arm_camera")
    assert (result.mask.width, result.mask.height, result.mask.header.frame_id) == (320, 240, "arm_camera")
    (target,) = result.targets
    assert target.area == _mask_pixels(result.mask) and target.mask_index == 1
    probe.wait_for(lambda: "segmenting" in [f.stage for f in segment_client.feedback], 10, "feedback", node)
    stages = [f.stage for f in segment_client.feedback]
    assert stages[0] == "queued" and stages[-1] == "segmenting" and set(stages[1:-1]) == {"reasoning"}
    # The reasoning streams while it is written: as feedback and on `reasoning_partial` (throttled; the first
    # piece always goes out), each piece the start of the final reasoning.
    partial = [f.partial_reasoning for f in segment_client.feedback if f.partial_reasoning]
    assert partial and all(result.reasoning.startswith(text) for text in partial)
    probe.wait_for(lambda: probe.take("reasoning_partial"), 10, "reasoning_partial", node)
    streamed = [json.loads(m.data) for m in probe.take("reasoning_partial")]
    mine = [m["text"] for m in streamed if m["id"] == "act-image"]
    assert mine and all(result.reasoning.startswith(text) for text in mine)
    # Topic subscribers see action goals too: one `segmentation` message and one `result`.
    probe.wait_for(lambda: any(r["id"] == "act-image" for r in probe.results()), 10, "result JSON", node)
    probe.wait_for(lambda: any(m.goal_id == "act-image" for m in probe.take("segmentation")), 10, "typed", node)
    time.sleep(0.5)  # a duplicate, if any, would be right behind
    assert [m.goal_id for m in probe.take("segmentation")].count("act-image") == 1


def test_action_without_an_image_uses_the_newest_camera_frame(ros, segment_client):
    probe, node = ros
    frame = make_frame(400, 300, sec=5151, frame_id="head_camera")
    probe.wait_for(lambda: probe.diagnostic("frames_received") is not None, 60, "diagnostics", node)
    before = int(probe.diagnostic("frames_received"))
    serve_frames_until(probe, frame, lambda: int(probe.diagnostic("frames_received")) > before, node, "frame")
    result = segment_client.segment("the red cup", timeout=GOAL_TIMEOUT)
    assert result.status == "ok", result.error
    assert (result.header.stamp.sec, result.header.frame_id) == (5151, "head_camera")
    assert (result.mask.width, result.mask.height) == (400, 300)


def test_action_bad_goals_get_error_results(ros, segment_client):
    _, node = ros
    empty = segment_client.segment("   ", image=make_frame(64, 48), timeout=GOAL_TIMEOUT)
    assert (empty.status, empty.error) == ("error", "empty goal")
    broken = make_frame(64, 48)
    broken.step = 10  # shorter than a row
    bad_image = segment_client.segment("the red cup", image=broken, timeout=GOAL_TIMEOUT)
    assert bad_image.status == "error" and bad_image.error.startswith("bad image in the goal"), bad_image.error
    assert node.alive()


def test_action_goal_cancelled_while_queued_and_client_timeout(ros, segment_client):
    from action_msgs.msg import GoalStatus

    probe, node = ros
    probe.clear()
    send_goal(probe, "busy", "slow:2 the red cup")  # the worker is busy for a while: the action goal waits in the queue
    handle = segment_client.send("the red cup", image=make_frame(64, 48), goal_id="act-cancel")
    cancel = handle.cancel_goal_async()
    outcome = segment_client.wait_future(handle.get_result_async(), time.monotonic() + GOAL_TIMEOUT, "cancelled result")
    assert cancel.result() is not None and len(cancel.result().goals_canceling) == 1
    assert outcome.status == GoalStatus.STATUS_CANCELED
    assert (outcome.result.result.status, outcome.result.result.error) == ("cancelled", "cancelled")

    # A client that gives up cancels its goal; the node still answers it exactly once.
    clear_and_send_goals(probe, "busy2", 3)
    send_goal(probe, "busy2-3", "slow:1 the red cup")
    with pytest.raises(TimeoutError):
        segment_client.segment("the red cup", image=make_frame(64, 48), timeout=0.05, goal_id="act-timeout")
    probe.wait_for(
        lambda: any(m.goal_id == "act-timeout" for m in probe.take("segmentation")), GOAL_TIMEOUT, "answer", node
    )
    answers = [m for m in probe.take("segmentation") if m.goal_id == "act-timeout"]
    assert len(answers) == 1 and answers[0].status in ("cancelled", "ok")
    probe.wait_for(lambda: {r["id"] for r in probe.results()} >= {f"busy2-{i}" for i in range(4)}, GOAL_TIMEOUT, "busy")


def test_generation_stops_at_the_answer_and_the_parameter_turns_it_off(ros):
    probe, node = ros
    frame = make_frame(320, 240, sec=99)
    stopped = goal_on_frame(probe, frame, "stop-on", node)
    assert set_param(probe, "reasoner.stop_at_answer", False).successful
    try:
        full = goal_on_frame(probe, frame, "stop-off", node)
    finally:
        assert set_param(probe, "reasoner.stop_at_answer", True).successful
    # Same answer; without the stop the model writes one more token (its end-of-turn) after "</answer>".
    assert stopped["status"] == full["status"] == "ok" and stopped["answer"] == full["answer"]
    assert stopped["answer"].endswith("</answer>")
    assert full["tokens"]["generated"] == stopped["tokens"]["generated"] + 1
    assert stopped["tokens"]["prompt"] == full["tokens"]["prompt"] > 0


def test_invalid_parameters_are_rejected_at_set_time(ros):
    probe, _ = ros
    bad = [
        ("reasoner.protocol", "yolo"),
        ("image_timeout_s", -1.0),
        ("max_pending_goals", 0),
        ("reasoner.model", "other/model"),
        ("max_pending_goals", "four"),
    ]
    for name, value in bad:
        result = set_param(probe, name, value)
        assert not result.successful, (name, value)
    assert "one of" in set_param(probe, "reasoner.protocol", "yolo").reason
    assert set_param(probe, "image_timeout_s", 3.0).successful
    assert set_param(probe, "reasoner.protocol", "multi").successful
    assert set_param(probe, "reasoner.protocol", "segzero").successful


def test_lifecycle_transitions_through_the_services(ros):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    probe, node = ros

    def state():
        return call_service(probe, GetState, "/segzero/get_state", GetState.Request()).current_state.label

    def change(transition_id):
        request = ChangeState.Request(transition=Transition(id=transition_id))
        assert call_service(probe, ChangeState, "/segzero/change_state", request, timeout=300).success

    assert state() == "active"
    change(Transition.TRANSITION_DEACTIVATE)
    assert state() == "inactive"
    probe.wait_for(lambda: probe.goal_pub.get_subscription_count() == 0, 30, "goal subscription gone", node)
    change(Transition.TRANSITION_CLEANUP)
    assert state() == "unconfigured"
    change(Transition.TRANSITION_CONFIGURE)
    change(Transition.TRANSITION_ACTIVATE)
    assert state() == "active"
    probe.wait_for(lambda: probe.goal_pub.get_subscription_count() > 0, 30, "goal subscription back", node)
    probe.clear()
    assert goal_on_frame(probe, make_frame(), "after-reconfigure", node)["status"] == "ok"


@pytest.fixture
def rclpy_context():
    """rclpy initialised in this process (by the module's probe, or here for this test alone)."""
    isolate_ros_domain()
    import rclpy

    owned = not rclpy.ok()
    if owned:
        rclpy.init()
    yield
    if owned:
        rclpy.try_shutdown()


def test_unavailable_backend_fails_configure_and_diagnostics_say_why(rclpy_context):
    """A node asked for TensorRT where there is none stays unconfigured; its diagnostics name the fallback."""

    from lifecycle_msgs.msg import State
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from segzero_ros.ros.node import SegZeroNode

    overrides = [Parameter("preset", value="tiny"), Parameter("segmenter.backend", value="tensorrt")]
    saved = sys.modules.get("tensorrt")
    sys.modules["tensorrt"] = None  # as on every machine here; set explicitly so a robot runs the same test
    node = SegZeroNode("segzero_no_tensorrt", parameter_overrides=overrides)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
        sent = []
        node._diag_pub.publish = sent.append
        node._publish_diagnostics()
        status = sent[0].status[0]
        assert status.level == status.ERROR and "tensorrt" in status.message and "'onnx'" in status.message
        assert {kv.key: kv.value for kv in status.values}["state"] == "error"
    finally:
        node.destroy_node()
        if saved is None:
            sys.modules.pop("tensorrt", None)
        else:
            sys.modules["tensorrt"] = saved


def test_ctrl_c_shuts_down_cleanly(ros):
    _, node = ros
    assert node.stop(timeout=180) == 0, node.log()[-3000:]
    log = node.log()
    after_signal = log[log.rindex("shutting down") :]
    assert "shut down in" in after_signal and "Traceback" not in after_signal, after_signal
