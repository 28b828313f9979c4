"""One recorded session through the live node and through ``segzero replay``: the node and replay answer through one
core (``answering``), so every goal gets the same answer both ways (status, error text, number of targets)."""

from __future__ import annotations

import json
import re
import time

import pytest
from recordings import frame_rgb, write_recording
from ros_harness import NodeProcess, Probe, isolate_ros_domain

pytestmark = pytest.mark.ros

SIZE = (160, 120)
NODE = {"image_timeout_s": 2.0, "image_max_age_s": 1.0, "max_pending_goals": 4}
# (seconds after the session's start, goal message); frames at 10 Hz from 1.0 s to 2.9 s, then the camera is silent
GOALS = [
    (0.0, {"id": "before-first-frame", "text": "the red cup"}),
    (1.5, {"id": "empty", "text": ""}),
    (1.6, '{"id": "malformed", "text": "the red cup"'),
    (1.7, {"id": "unknown-field", "text": "the red cup", "colour": "red"}),
    (2.0, {"id": "valid", "text": "the red cup"}),
    (2.4, {"id": "valid-multi", "text": "the red cup", "multi": True}),
    (6.0, {"id": "after-silence", "text": "the red cup"}),
]
FRAMES = [1.0 + k * 0.1 for k in range(20)]


def message(goal) -> str:
    return goal if isinstance(goal, str) else json.dumps(goal)


def comparable(answer: dict) -> tuple:
    """What must agree: status, the error text (its measured seconds rounded away), the number of targets."""
    error = re.sub(r"\d+\.\d+ s", "N s", answer.get("error") or "")
    return answer["status"], error, len(answer.get("targets") or [])


def live_answers(tmp_path) -> dict[str, dict]:
    """The session played into a node process at its recorded offsets; its ``result`` per goal id."""
    from segzero_ros.image_codec import numpy_to_image

    isolate_ros_domain()
    node = NodeProcess(tmp_path / "node.log", {"preset": "tiny", "image_qos": "reliable", **NODE})
    probe = Probe()
    try:
        probe.wait_for_node(node, 600)
        events = [(t, "goal", message(g)) for t, g in GOALS] + [(t, "frame", k) for k, t in enumerate(FRAMES)]
        start = time.monotonic() + 0.5
        for t, kind, what in sorted(events, key=lambda e: e[0]):
            time.sleep(max(0.0, start + t - time.monotonic()))
            if kind == "goal":
                probe.send_goal(what)
            else:
                msg = numpy_to_image(frame_rgb(what, *SIZE), "rgb8")
                stamp = 1_700_000_000 + what * 0.1
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), round(stamp % 1 * 1e9)
                probe.send_frame(msg)
        ids = [g["id"] if isinstance(g, dict) else "malformed" for _, g in GOALS]
        probe.wait_for(lambda: {r["id"] for r in probe.results()} >= set(ids), 120, "every answer", node)
        time.sleep(0.5)
        answers = {}
        for result in probe.results():
            assert result["id"] not in answers, f"goal {result['id']} answered twice"
            answers[result["id"]] = result
        return answers
    finally:
        probe.close()
        node.stop()


def replay_answers(tmp_path, capsys) -> dict[str, dict]:
    """The same session as a recording, through ``segzero replay --all-frames``; its answer per goal id."""
    from segzero_ros.cli import main

    bag = tmp_path / "session"
    first = FRAMES[0]
    write_recording(
        bag, "mcap", frames=len(FRAMES), rate_hz=10.0, size=SIZE, goals=[(t - first, message(g)) for t, g in GOALS]
    )
    node_options = [item for name, value in NODE.items() for item in (f"--{name}", str(value))]
    out = tmp_path / "replay"
    assert main(["-q", "replay", str(bag), "--out", str(out), "--tiny", "--all-frames", "--json", *node_options]) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    return {answer["id"]: answer for answer in summary["goals"]}


def test_replay_answers_every_goal_as_the_live_node_does(tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys):
    import rclpy

    try:
        live = live_answers(tmp_path)
    finally:
        rclpy.try_shutdown()
    replayed = replay_answers(tmp_path, capsys)
    assert set(live) == set(replayed)
    for goal_id in live:
        assert comparable(live[goal_id]) == comparable(replayed[goal_id]), (goal_id, live[goal_id], replayed[goal_id])
    # The session covers what it should: refusals, answers, and the silent camera (its age measured both ways).
    assert comparable(live["before-first-frame"])[0] == "ok" and comparable(live["valid"])[2] == 1
    assert live["empty"]["error"] == "empty goal" and live["unknown-field"]["error"].startswith("unknown goal field")
    assert live["malformed"]["error"].startswith("malformed JSON goal")
    silent = [float(re.search(r"(\d+\.\d+) s", a["after-silence"]["error"]).group(1)) for a in (live, replayed)]
    assert live["after-silence"]["error"].startswith("camera silent for") and abs(silent[0] - silent[1]) <= 0.3
