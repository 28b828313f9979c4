"""Tracking through the real node: masks for every new frame after a goal, loss, reacquisition, cancel."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from node_support import HOOKED_NODE, make_frame, result_for, running_node, send_goal, set_param

pytestmark = pytest.mark.ros

TIMEOUT = 180.0


@pytest.fixture(scope="module")
def ros(tmp_path_factory, tiny_fitted_reasoner_dir, tiny_sam2_config):
    params = {
        "preset": "tiny",
        "image_qos": "reliable",
        "reasoner.max_new_tokens": 96,
        "tracking.min_score": 0.0,  # the random tiny SAM2 scores ~0.5: never lose it unless a test says so
    }
    log = tmp_path_factory.mktemp("tracking") / "segzero_node.log"
    with running_node(log, params, command=HOOKED_NODE) as running:  # hooks: a "slow:<s> ..." goal waits first
        yield running


def goal_then_stream(probe, node, goal_id: str, first_sec: int, frames: int, rate_hz: float = 15.0):
    """Send a goal on a frame stamped ``first_sec``, then stream ``frames`` newer frames at ``rate_hz``."""
    probe.clear()
    first = make_frame(320, 240, sec=first_sec)
    deadline = time.monotonic() + TIMEOUT
    send_goal(probe, goal_id)
    while not any(r["id"] == goal_id for r in probe.results()):
        assert time.monotonic() < deadline and node.alive(), node.log()[-3000:]
        probe.send_frame(first)
        time.sleep(0.1)
    result = result_for(probe, goal_id, node)
    for i in range(1, frames + 1):
        probe.send_frame(make_frame(320, 240, sec=first_sec + i))
        time.sleep(1.0 / rate_hz)
    return result


def status_messages(probe) -> list[dict]:
    return [json.loads(m.data) for m in probe.take("tracking_status")]


def statuses(probe, goal_id):
    """Every ``tracking_status`` entry of ``goal_id``, with its message's stamp when it has one (a tracked frame)."""
    out = []
    for message in status_messages(probe):
        stamp = {"stamp": message["stamp"]} if "stamp" in message else {}
        out += [{**entry, **stamp} for entry in message["goals"] if entry["id"] == goal_id]
    return out


def tracked_ids(message: dict) -> list[str]:
    return [entry["id"] for entry in message["goals"] if entry["state"] in ("tracking", "lost")]


def test_new_frames_after_a_goal_get_masks_from_tracking(ros):
    probe, node = ros
    result = goal_then_stream(probe, node, "track", 100, 15)
    assert result["status"] == "ok"
    probe.wait_for(lambda: len(statuses(probe, "track")) >= 5, 30, "tracking status", node)
    tracked = statuses(probe, "track")
    stamps = [s["stamp"]["sec"] for s in tracked]
    assert all(101 <= sec <= 115 for sec in stamps) and stamps == sorted(set(stamps))  # only newer frames, in order
    assert all(s["state"] == "tracking" and len(s["targets"]) == 1 for s in tracked)
    masks = {m.header.stamp.sec: m for m in probe.take("mask")}
    for status in tracked:  # each tracked frame's mask carries that frame's header and size
        mask = masks[status["stamp"]["sec"]]
        assert (mask.width, mask.height, mask.header.frame_id) == (320, 240, "camera_color_optical_frame")
    assert node.alive()


def test_cancel_ends_the_track(ros):
    probe, node = ros
    from std_msgs.msg import Empty

    goal_then_stream(probe, node, "to-cancel", 200, 3)
    probe.wait_for(lambda: statuses(probe, "to-cancel"), 30, "tracking", node)
    probe.cancel_pub.publish(Empty())
    probe.wait_for(lambda: any(s["state"] == "ended" for s in statuses(probe, "to-cancel")), 30, "end", node)
    ended_at = len(statuses(probe, "to-cancel"))
    for i in range(5):
        probe.send_frame(make_frame(320, 240, sec=300 + i))
        time.sleep(0.1)
    time.sleep(0.5)
    assert len(statuses(probe, "to-cancel")) == ended_at  # no tracking after the cancel


def test_lost_targets_are_reported_and_reacquired_with_the_same_goal_id(ros):
    probe, node = ros
    assert set_param(probe, "tracking.min_score", 1.0).successful  # nothing is ever seen well enough
    assert set_param(probe, "tracking.lost_frames", 2).successful
    assert set_param(probe, "tracking.reacquire", True).successful
    try:
        goal_then_stream(probe, node, "lose-me", 400, 6)
        probe.wait_for(lambda: any(s["state"] == "lost" for s in statuses(probe, "lose-me")), 30, "lost", node)
        lost = next(s for s in statuses(probe, "lose-me") if s["state"] == "lost")
        assert lost["targets"][0]["state"] == "lost" and lost["targets"][0]["score"] < 1.0
        probe.wait_for(lambda: len([r for r in probe.results() if r["id"] == "lose-me"]) >= 2, 60, "reacquire", node)
        first, again = [r for r in probe.results() if r["id"] == "lose-me"][:2]
        assert "reacquired" not in first and again["reacquired"] is True and again["status"] == "ok"
        assert again["stamp"]["sec"] > first["stamp"]["sec"]  # reasoned again on a newer frame
    finally:
        assert set_param(probe, "tracking.reacquire", False).successful
        assert set_param(probe, "tracking.min_score", 0.0).successful
        assert set_param(probe, "tracking.lost_frames", 5).successful


def answer_then_stream(probe, node, goal_id: str, first_sec: int, frames: int) -> dict:
    """``goal_then_stream`` without clearing what the probe kept."""
    first = make_frame(320, 240, sec=first_sec)
    send_goal(probe, goal_id)
    deadline = time.monotonic() + TIMEOUT
    while not any(r["id"] == goal_id for r in probe.results()):
        assert time.monotonic() < deadline and node.alive(), node.log()[-3000:]
        probe.send_frame(first)
        time.sleep(0.1)
    for i in range(1, frames + 1):
        probe.send_frame(make_frame(320, 240, sec=first_sec + i))
        time.sleep(0.1)
    return result_for(probe, goal_id, node)


def test_a_new_goal_replaces_the_track_with_max_goals_1(ros):
    probe, node = ros
    assert set_param(probe, "tracking.max_goals", 1).successful
    try:
        goal_then_stream(probe, node, "first", 500, 3)
        probe.wait_for(lambda: statuses(probe, "first"), 30, "tracking the first goal", node)
        answer_then_stream(probe, node, "second", 600, 3)
        probe.wait_for(lambda: any(s["state"] == "ended" for s in statuses(probe, "first")), 30, "first ended", node)
        ended = next(s for s in statuses(probe, "first") if s["state"] == "ended")
        assert ended["reason"] == "replaced by a new goal"
        probe.wait_for(lambda: statuses(probe, "second"), 30, "tracking the second goal", node)
        after = status_messages(probe)
        last_first = max(i for i, m in enumerate(after) if "first" in [e["id"] for e in m["goals"]])
        assert all(tracked_ids(m) == ["second"] for m in after[last_first + 1 :])  # the second goal alone
    finally:
        assert set_param(probe, "tracking.max_goals", 4).successful


def test_goals_are_tracked_together_end_track_ends_one_and_max_goals_ends_the_oldest(ros):
    """With max_goals 2: A and B in one status per frame with distinct label values; end_track A ends A alone;
    C joins B; D ends the oldest (B)."""
    from std_msgs.msg import String

    probe, node = ros
    probe.end_track_pub.publish(String(data=""))  # every earlier test's track ends
    assert set_param(probe, "tracking.max_goals", 2).successful
    try:
        probe.clear()
        answer_then_stream(probe, node, "A", 800, 2)
        answer_then_stream(probe, node, "B", 900, 4)
        both = lambda: [m for m in status_messages(probe) if tracked_ids(m) == ["A", "B"]]  # noqa: E731
        probe.wait_for(both, 30, "A and B tracked on one frame", node)
        frame_sec = both()[0]["stamp"]["sec"]
        labels = {m.header.stamp.sec: m for m in probe.take("labels")}[frame_sec]
        from segzero_ros.image_codec import image_to_numpy

        assert set(np.unique(image_to_numpy(labels)).tolist()) <= {0, 1, 2}  # A's target 1, B's target 2
        b_answer = next(m for m in probe.take("segmentation") if m.goal_id == "B")
        assert [t.mask_index for t in b_answer.targets] == [2]  # B's answer already carries its tracked value

        probe.end_track_pub.publish(String(data="A"))
        probe.wait_for(lambda: any(s["state"] == "ended" for s in statuses(probe, "A")), 30, "A ended", node)
        assert next(s for s in statuses(probe, "A") if s["state"] == "ended")["reason"] == "ended on request"
        for i in range(5, 9):
            probe.send_frame(make_frame(320, 240, sec=900 + i))
            time.sleep(0.1)
        probe.wait_for(lambda: [m for m in status_messages(probe) if tracked_ids(m) == ["B"]], 30, "B alone", node)
        assert not any(s["state"] == "ended" for s in statuses(probe, "B"))

        answer_then_stream(probe, node, "C", 1000, 3)
        probe.wait_for(lambda: [m for m in status_messages(probe) if tracked_ids(m) == ["B", "C"]], 30, "B+C", node)
        answer_then_stream(probe, node, "D", 1100, 3)
        probe.wait_for(lambda: any(s["state"] == "ended" for s in statuses(probe, "B")), 30, "B ended", node)
        ended = next(s for s in statuses(probe, "B") if s["state"] == "ended")
        assert ended["reason"] == "more than tracking.max_goals (2) goals tracked"
        probe.wait_for(lambda: [m for m in status_messages(probe) if tracked_ids(m) == ["C", "D"]], 30, "C+D", node)
        assert node.faults() == []
    finally:
        assert set_param(probe, "tracking.max_goals", 4).successful


def test_refused_goals_leave_the_running_track_alone(ros):
    """40 refused goals at 20 Hz while a 15 Hz camera streams: each answered once, the track goes on untouched."""
    probe, node = ros
    goal_then_stream(probe, node, "keep", 1700, 3)
    probe.wait_for(lambda: statuses(probe, "keep"), 30, "tracking", node)
    streaming = threading.Event()
    streaming.set()

    def camera():
        sec = 1704
        while streaming.is_set():
            probe.send_frame(make_frame(320, 240, sec=sec))
            sec += 1
            time.sleep(1 / 15)

    bad = [
        '{{"id": "{}", "text": ""}}',  # empty
        '{{"id": "{}", "text": "the red cup"',  # malformed JSON
        '{{"id": "{}", "text": "the red cup", "colour": "red"}}',  # unknown field
        '{{"id": "{}", "text": "the red\\u0007 cup"}}',  # a control character
    ]
    ids = [f"refused-{k}" for k in range(40)]
    thread = threading.Thread(target=camera, daemon=True)
    thread.start()
    try:
        for k, goal_id in enumerate(ids):
            probe.send_goal(bad[k % len(bad)].format(goal_id))
            time.sleep(1 / 20)
        probe.wait_for(lambda: {r["id"] for r in probe.results()} >= set(ids), 60, "every refused goal answered", node)
        burst_end = max(s["stamp"]["sec"] for s in statuses(probe, "keep") if "stamp" in s)
        probe.wait_for(
            lambda: any(s.get("stamp", {}).get("sec", 0) > burst_end + 3 for s in statuses(probe, "keep")),
            60,
            "tracking after the burst",
            node,
        )
    finally:
        streaming.clear()
        thread.join()
    time.sleep(0.5)
    answers = [r for r in probe.results() if r["id"] in set(ids)]
    assert sorted(r["id"] for r in answers) == sorted(ids)  # each exactly once
    assert all(r["status"] == "error" for r in answers)
    kept = statuses(probe, "keep")
    assert all(s["state"] == "tracking" for s in kept), [s for s in kept if s["state"] != "tracking"][:3]
    assert node.faults() == []  # no tracking step failed while the goals were refused


def test_an_action_goal_cancelled_while_it_runs_keeps_its_answer_and_is_not_tracked(ros):
    """The cancel is accepted, the answer stands (succeeded, ok), and its targets are not tracked; the same goal
    not cancelled is tracked."""
    from action_msgs.msg import GoalStatus
    from std_msgs.msg import String

    from segzero_ros.ros.client import SegmentClient

    probe, node = ros
    probe.end_track_pub.publish(String(data=""))
    client = SegmentClient()
    try:
        assert client.wait_for_server(60), "the node serves no 'segment' action"
        for goal_id, first_sec, cancel in (("act-cancelled", 2000, True), ("act-tracked", 2100, False)):
            probe.clear()
            handle = client.send("slow:1.5 the red cup", image=make_frame(320, 240, sec=first_sec), goal_id=goal_id)
            time.sleep(0.7)  # the worker took it: the models are on it
            cancelling = handle.cancel_goal_async() if cancel else None
            outcome = client.wait_future(handle.get_result_async(), time.monotonic() + TIMEOUT, "result")
            assert outcome.result.result.status == "ok" and outcome.status == GoalStatus.STATUS_SUCCEEDED
            if cancelling is not None:
                assert len(client.wait_future(cancelling, time.monotonic() + 30, "cancel").goals_canceling) == 1
            for i in range(1, 6):
                probe.send_frame(make_frame(320, 240, sec=first_sec + i))
                time.sleep(0.1)
            if cancel:
                time.sleep(1.0)
                assert [s for s in statuses(probe, goal_id) if s["state"] == "tracking"] == []
            else:
                probe.wait_for(lambda g=goal_id: statuses(probe, g), 30, "the goal not cancelled tracked", node)
    finally:
        client.close()
