"""``segzero replay``: recordings written here (both storages, four image kinds, a goal topic) replayed with the
tiny models; the output read back with an independent reader (the ``mcap`` library and its ROS 2 decoder)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import pytest
from recordings import START_NS, json_goal, write_recording

from segzero_ros.cli import main
from segzero_ros.goals import Goal
from segzero_ros.replay_schedule import FrameEvent, GoalEvent, ReplaySchedule
from segzero_ros.ros.detections import VISION_MSGS

KEEP_TRACKING = ["--tracking.min_score", "0"]  # the random tiny SAM2 would otherwise lose its targets


def replay(bag: Path, out: Path, *extra: str, capsys=None) -> tuple[int, dict | None]:
    code = main(["-q", "replay", str(bag), "--out", str(out), "--tiny", "--json", *extra])
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    if capsys is not None:
        capsys.readouterr()
    return code, summary


def read_back(mcap: str) -> dict[str, list]:
    """Every message of the output, decoded from the file's own schemas: topic -> [(log time ns, message)]."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out: dict[str, list] = {}
    with open(mcap, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg"
            out.setdefault(channel.topic, []).append((message.log_time, decoded))
    return out


@pytest.mark.parametrize(
    ("storage", "encoding"), [("sqlite3", "rgb8"), ("mcap", "bgr8"), ("mcap", "mono8"), ("sqlite3", "jpeg")]
)
def test_a_recorded_session_replays_into_a_recording_of_the_nodes_outputs(
    storage, encoding, tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys
):
    bag = tmp_path / "session"
    stamps = write_recording(
        bag, storage, frames=24, encoding=encoding, goals=[(0.35, json_goal("first")), (1.45, json_goal("second"))]
    )
    code, summary = replay(bag, tmp_path / "out", *KEEP_TRACKING, "--with-input", capsys=capsys)
    assert code == 0
    assert [g["id"] for g in summary["goals"]] == ["first", "second"]  # the recorded goals, each answered once
    assert all(g["status"] == "ok" for g in summary["goals"]), summary["goals"]
    frames = summary["frames"]
    assert (frames["read"], frames["corrupt"], frames["skipped"]) == (24, 0, 0)
    assert frames["goal"] == 2 and frames["tracked"] == 20  # every frame after the first goal's frame is tracked

    topics = read_back(summary["output"])
    assert len(topics["/camera/image"]) == 24  # --with-input: the camera beside the outputs
    results = [json.loads(m.data) for _, m in topics["/result"]]
    assert [r["id"] for r in results] == ["first", "second"]
    typed = [m for _, m in topics["/segmentation"]]
    assert [m.goal_id for m in typed] == ["first", "second"] and all(m.status == "ok" for m in typed)
    # Every mask carries the header of the frame it was made for: a goal's frame, or a tracked frame.
    frame_stamps = set(stamps)
    for _, mask in topics["/mask"]:
        assert (mask.header.stamp.sec, mask.header.stamp.nanosec) in frame_stamps
        assert (mask.width, mask.height, mask.encoding) == (160, 120, "mono8")
    assert len(topics["/mask"]) == len(topics["/labels"]) == frames["processed"]
    # The goal ran on the newest frame at its time (0.35 s -> the frame at 0.3 s).
    assert (typed[0].header.stamp.sec, typed[0].header.stamp.nanosec) == stamps[3]
    assert results[0]["stamp"] == {"sec": stamps[3][0], "nanosec": stamps[3][1]}
    statuses = [json.loads(m.data) for _, m in topics["/tracking_status"]]
    states = Counter((entry["id"], entry["state"]) for s in statuses for entry in s["goals"])
    # With tracking.max_goals 4 both goals are tracked together once the second is answered; none ends. The
    # summary lists each goal's track.
    tracks = {t["id"]: t for t in summary["tracks"]}
    assert set(tracks) == {"first", "second"} and all(t["ended"] is None for t in tracks.values())
    assert tracks["first"]["frames"] == frames["tracked"]
    tracked_second = tracks["second"]["frames"]
    assert 8 <= tracked_second <= 10  # the frames after the second goal's (at 1.4 s) to the last (2.3 s)
    assert states == {("first", "tracking"): frames["tracked"], ("second", "tracking"): tracked_second}
    # All-frames mode: a goal's outputs logged when it arrived, a tracked frame's at the frame's recorded time.
    expected = [START_NS + round(t * 1e9) for t in (0.35, 1.45)] + [START_NS + k * 10**8 for k in range(4, 24)]
    assert sorted(t for t, _ in topics["/mask"]) == sorted(expected)
    # The grasp-ready outputs: 16-bit labels, a detections array per processed frame, label_info per new map.
    assert all(labels.encoding == "mono16" for _, labels in topics["/labels"])
    if VISION_MSGS is not None:
        assert len(topics["/detections"]) == frames["processed"]
        stamp = (typed[0].header.stamp.sec, typed[0].header.stamp.nanosec)
        first = next(d for _, d in topics["/detections"] if (d.header.stamp.sec, d.header.stamp.nanosec) == stamp)
        target = results[0]["targets"][0]
        assert [d.id for d in first.detections] == ["first:1"] and target["id"] == "first:1"
        c, size = (
            first.detections[0].bbox.center.position,
            (first.detections[0].bbox.size_x, first.detections[0].bbox.size_y),
        )
        x1, y1, x2, y2 = target["bbox"]
        assert (c.x, c.y, *size) == pytest.approx(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1))
        maps = [{c.class_id: c.class_name for c in m.class_map} for _, m in topics["/label_info"]]
        # The first answer's map, then the second's: its target's value (2) beside the first's, tracked on.
        named = [{value: json.loads(name)["id"] for value, name in m.items() if value} for m in maps]
        assert named == [{1: "first:1"}, {1: "first:1", 2: "second:1"}] and all(m[0] == "background" for m in maps)


def test_goals_from_the_command_line_and_the_overlay_video(
    tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys
):
    """The issue's case: 100 frames, two goals; an MCAP an independent reader decodes in full, and a video."""
    bag = tmp_path / "walk.mcap"
    stamps = write_recording(tmp_path / "walk", "mcap", frames=100, rate_hz=20.0)
    (tmp_path / "walk" / "walk.mcap").rename(bag)  # a single .mcap file, no metadata.yaml
    video = tmp_path / "out" / "overlay.mp4"
    args = ["--goal", "the red cup", "--at", "0.5", "--goal", '{"id": "late", "text": "the red cup"}', "--at", "3"]
    code, summary = replay(bag, tmp_path / "out", *args, *KEEP_TRACKING, "--video", str(video), capsys=capsys)
    assert code == 0 and len(summary["goals"]) == 2 and summary["goals"][1]["id"] == "late"
    topics = read_back(summary["output"])
    assert sum(len(v) for v in topics.values()) == sum(summary["output_topics"].values())
    assert {(m.header.stamp.sec, m.header.stamp.nanosec) for _, m in topics["/mask"]} <= set(stamps)
    capture = cv2.VideoCapture(str(video))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 100 == summary["video"]["frames"]


def test_realtime_skips_frames_the_busy_node_would_not_see(
    tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys
):
    bag = tmp_path / "fast"
    write_recording(bag, "mcap", frames=60, rate_hz=200.0, goals=[(0.0, "the red cup")])
    _, all_frames = replay(bag, tmp_path / "all", *KEEP_TRACKING, capsys=capsys)
    _, realtime = replay(bag, tmp_path / "rt", *KEEP_TRACKING, "--realtime", capsys=capsys)
    assert all_frames["frames"]["skipped"] == 0 and all_frames["frames"]["processed"] == 60
    assert realtime["frames"]["skipped"] > 0  # a goal takes far longer than the 5 ms between frames
    assert realtime["frames"]["processed"] + realtime["frames"]["skipped"] == 60
    assert realtime["mode"] == "realtime" and realtime["goals"][0]["status"] == "ok"


def test_corrupt_frames_are_skipped_and_counted(tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys):
    bag = tmp_path / "broken"
    write_recording(bag, "sqlite3", frames=10, corrupt=(2, 5), goals=[(0.0, "the red cup")])
    code, summary = replay(bag, tmp_path / "out", capsys=capsys)
    assert code == 0 and summary["frames"]["corrupt"] == 2 and summary["frames"]["read"] == 10
    assert list(summary["frames"]["corrupt_reasons"].values()) == [2]
    assert "data has" in next(iter(summary["frames"]["corrupt_reasons"]))


def test_the_nodes_frame_size_limit_and_overlay_switch_apply(
    tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys
):
    bag = tmp_path / "rec"
    write_recording(bag, "mcap", frames=6, size=(160, 120), goals=[(0.2, "the red cup")])
    code, summary = replay(bag, tmp_path / "small", "--max_image_size", "128", capsys=capsys)
    assert code == 0 and summary["frames"]["corrupt"] == 6  # every frame beyond the limit, as the node drops them
    assert "exceeds the 128" in next(iter(summary["frames"]["corrupt_reasons"]))
    code, summary = replay(bag, tmp_path / "quiet", "--publish_overlay", "false", capsys=capsys)
    assert code == 0 and summary["goals"][0]["status"] == "ok" and "/overlay" not in summary["output_topics"]


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    text = tmp_path / "notes.txt"
    text.write_text("not a recording")
    good = tmp_path / "good"
    write_recording(good, "mcap", frames=3, goals=[(0.0, "the red cup")])
    odd = tmp_path / "odd"
    write_recording(odd, "sqlite3", frames=3)
    metadata = odd / "metadata.yaml"
    metadata.write_text(metadata.read_text().replace("storage_identifier: sqlite3", "storage_identifier: parquet"))
    truncated = tmp_path / "truncated.mcap"
    data = next(good.glob("*.mcap")).read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    no_images = tmp_path / "no_images"
    write_recording(no_images, "mcap", frames=0, goals=[(0.0, "the red cup")])
    return {
        "missing": ([str(tmp_path / "nowhere")], "no such file or folder"),
        "not a recording": ([str(text)], "not a recording"),
        "unknown storage": ([str(odd), "--goal", "cup"], "cannot read it"),
        "truncated": ([str(truncated), "--goal", "cup"], "cannot read it"),
        "no frames": ([str(no_images)], "the image topic /camera/image has no frames"),
        "no image topic": ([str(good), "--image-topic", "/nothing"], "no topic '/nothing'"),
        "wrong type": ([str(good), "--image-topic", "/segzero/goal"], "is std_msgs/msg/String, not an image"),
        "no goals": ([str(odd.parent / "good"), "--goal-topic", "/nothing"], "no std_msgs/msg/String topic"),
    }


def test_bad_recordings_are_one_line_errors(tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys):
    for case, (args, reason) in _bad_inputs(tmp_path).items():
        code = main(["-q", "replay", *args, "--out", str(tmp_path / "out" / case.replace(" ", "_")), "--tiny"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (case, err)
        assert len(err) == 1 and err[0].startswith("segzero replay: ") and reason in err[0], (case, err)
        assert args[0] in err[0] or str(Path(args[0])) in err[0], (case, err)


def test_an_earlier_output_is_refused_before_loading_models_unless_overwritten(
    tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys
):
    bag = tmp_path / "rec"
    write_recording(bag, "mcap", frames=4, goals=[(0.0, "the red cup")])
    assert replay(bag, tmp_path / "out", capsys=capsys)[0] == 0
    code = main(["-q", "replay", str(bag), "--out", str(tmp_path / "out"), "--tiny"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "replay exists (an earlier replay's output)" in err[0], err
    assert "--overwrite" in err[0]
    code, summary = replay(bag, tmp_path / "out", "--overwrite", capsys=capsys)
    assert code == 0 and summary["goals_answered"] == 1 and len(read_back(summary["output"])["/result"]) == 1


def test_the_tiny_preset_keeps_its_track_and_a_lost_track_is_said(
    tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, capsys
):
    bag = tmp_path / "rec"
    write_recording(bag, "mcap", frames=30, goals=[(0.0, "the red cup")])
    code, summary = replay(bag, tmp_path / "kept", capsys=capsys)  # the tiny SAM2's scores mean nothing
    assert code == 0 and summary["tracking_losses"] == 0 and summary["frames"]["tracked"] == 29
    assert (
        main(
            [
                "-q",
                "replay",
                str(bag),
                "--out",
                str(tmp_path / "lost"),
                "--tiny",
                "--tracking.min_score",
                "0.99",
                "--tracking.lost_frames",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "tracking lost every target 1 time(s)" in printed, printed


# --- the schedule, without models -------------------------------------------------------------------------------


class Jobs:
    """Goal jobs last ``goal_s``, tracking jobs ``track_s`` (a track is on after the first goal)."""

    def __init__(self, goal_s: float, track_s: float) -> None:
        self.goal_s, self.track_s = goal_s, track_s
        self.log: list[tuple] = []
        self.tracking = False

    def run_goal(self, goal, frame, start):
        self.log.append(("goal", goal.id, frame, start))
        self.tracking = True
        return self.goal_s

    def track(self, frame, start):
        assert self.tracking, "a frame was tracked with no track on"
        self.log.append(("track", frame, start))
        return self.track_s, []

    def fail(self, goal, reason, t, ran=False):
        self.log.append(("fail", goal.id, reason))

    def schedule(self, **options) -> ReplaySchedule:
        return ReplaySchedule(self.run_goal, self.track, self.fail, lambda: self.tracking, **options)


def frames(n: int, dt: float = 0.1):
    return [FrameEvent(k * dt, k) for k in range(n)]


def test_schedule_all_frames_uses_every_frame_and_the_newest_frame_for_a_goal():
    jobs = Jobs(goal_s=0.25, track_s=0.05)
    stats = jobs.schedule().run(frames(10), [GoalEvent(0.35, Goal("x", id="g"))])
    assert jobs.log[0] == ("goal", "g", 3, 0.35)  # the frame at 0.3 s
    assert [entry[1] for entry in jobs.log[1:]] == [4, 5, 6, 7, 8, 9]
    assert (stats.frames_skipped, stats.frames_idle, stats.frames_tracked) == (0, 3, 6)  # 0-2: no goal, no track


def test_schedule_realtime_skips_frames_while_busy():
    jobs = Jobs(goal_s=0.3, track_s=0.05)
    schedule = jobs.schedule(realtime=True)
    stats = schedule.run(frames(10), [GoalEvent(0.35, Goal("x", id="g"))])
    # Busy from 0.35 to 0.65: frames 4, 5 and 6 arrive meanwhile; at 0.65 the newest is 6, tracked then.
    assert jobs.log[1] == ("track", 6, pytest.approx(0.65))
    assert stats.frames_skipped == 2 and stats.frames_tracked == 4


def test_schedule_answers_goals_that_find_no_frame_or_are_superseded():
    jobs = Jobs(goal_s=1.0, track_s=0.0)
    schedule = jobs.schedule(realtime=True, max_pending_goals=2)
    goals = [GoalEvent(0.0, Goal("x", id="early"))] + [GoalEvent(7.0, Goal("x", id=f"b{k}")) for k in range(4)]
    stats = schedule.run([FrameEvent(6.0, "late frame"), FrameEvent(7.5, "f2")], goals)
    fails = {entry[1]: entry[2] for entry in jobs.log if entry[0] == "fail"}
    assert fails["early"] == "no image received within 5 s"  # the first frame came 6 s after it
    # b0 starts at once (the worker is free); of b1..b3 queued behind it, the oldest beyond two is superseded.
    assert set(fails) == {"early", "b1"} and "superseded" in fails["b1"]
    assert [entry[1:] for entry in jobs.log if entry[0] == "goal"] == [
        ("b0", "late frame", 7.0),
        ("b2", "f2", 8.0),
        ("b3", "f2", 9.0),
    ]
    assert stats.goals == 5 and stats.goals_superseded == 1 and stats.goals_without_image == 1


def test_schedule_answers_refused_goals_at_intake_without_running_them():
    """As the node: a refused goal is answered when it arrives, even while a job runs, and runs nothing."""
    jobs = Jobs(goal_s=1.0, track_s=0.1)
    schedule = jobs.schedule(realtime=True)
    refused = Goal("", id="refused", error="empty goal")
    stats = schedule.run(frames(20), [GoalEvent(0.0, Goal("x", id="g")), GoalEvent(0.5, refused)])
    assert ("fail", "refused", "empty goal") in jobs.log and [e[1] for e in jobs.log if e[0] == "goal"] == ["g"]
    assert jobs.log.index(("fail", "refused", "empty goal")) == 1  # answered at 0.5 s, while the goal ran
    assert stats.frames_tracked > 0 and stats.goals_superseded == 0


def test_schedule_honours_image_max_age_as_the_node_does():
    """A goal after the camera went silent waits up to image_timeout_s for a newer frame, then fails with the node's
    'camera silent' text; a goal on a fresh enough frame runs; a frame arriving within the wait is used."""
    jobs = Jobs(goal_s=0.0, track_s=0.0)
    schedule = jobs.schedule(image_timeout_s=2.0, max_frame_age_s=3.0)
    stream = frames(10) + [FrameEvent(9.5 + k * 0.1, 100 + k) for k in range(3)]  # silent from 0.9 s to 9.5 s
    goals = [GoalEvent(2.0, Goal("x", id="fresh")), GoalEvent(5.0, Goal("x", id="silent"))]
    goals.append(GoalEvent(8.0, Goal("x", id="waits")))
    stats = schedule.run(stream, goals)
    fails = {entry[1]: entry[2] for entry in jobs.log if entry[0] == "fail"}
    assert fails == {"silent": "camera silent for 6.1 s (no frame newer than image_max_age_s = 3 s)"}
    ran = {entry[1]: (entry[2], entry[3]) for entry in jobs.log if entry[0] == "goal"}
    assert ran["fresh"] == (9, 2.0) and ran["waits"] == (100, 9.5)  # the first frame after the silence
    assert stats.goals_without_image == 1


def test_schedule_stops_when_asked_and_says_what_was_left():
    jobs = Jobs(goal_s=0.0, track_s=0.0)
    schedule = jobs.schedule()
    goals = [GoalEvent(0.0, Goal("x", id="a")), GoalEvent(5.0, Goal("x", id="b"))]
    stats = schedule.run(frames(100), goals, stop=lambda: len(jobs.log) >= 10)
    assert stats.stopped and len(jobs.log) == 10 and stats.goals == 1  # goal b (at 5 s) never came
    assert (stats.frames_read, stats.frames_tracked) == (11, 9)  # frame 10 arrived; its step never ran


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_replay_keeps_a_readable_recording_of_what_it_did(
    tmp_path, tiny_fitted_reasoner_dir, tiny_sam2_config, signum, code
):
    """Ctrl-C (or SIGTERM) on the command: it stops after the frame in progress, closes the MCAP, says so."""
    bag = tmp_path / "long"
    write_recording(bag, "mcap", frames=1500, rate_hz=30.0, size=(96, 72), goals=[(0.0, "the red cup")])
    out = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("segzero")), "replay", str(bag), "--out", str(out), "--tiny"]
    replaying = subprocess.Popen([*command, *KEEP_TRACKING], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "replay").exists():  # the models are loaded: frames are being replayed
        assert replaying.poll() is None and time.monotonic() < deadline, replaying.communicate()
        time.sleep(0.1)
    time.sleep(2.0)
    replaying.send_signal(signum)
    _, err = replaying.communicate(timeout=120)
    assert replaying.returncode == code, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("segzero")]
    assert "Traceback" not in err and lines[-1].startswith(f"segzero replay: stopped by {signal.Signals(signum).name}")
    summary = json.loads((out / "summary.json").read_text())
    processed = summary["frames"]["processed"]
    assert summary["interrupted"] is True and 0 < processed < 1500, summary["frames"]
    assert (out / "replay" / "metadata.yaml").exists()
    topics = read_back(summary["output"])  # the file's summary section is there: an independent reader takes it
    assert len(topics["/mask"]) == processed and [json.loads(m.data)["status"] for _, m in topics["/result"]] == ["ok"]


def test_schedule_a_goal_waiting_for_a_frame_is_not_superseded_and_fails_at_its_deadline_as_on_the_node():
    """The worker's policy in virtual time: the goal waiting for a frame is no longer pending (three later goals
    with max_pending_goals 2 supersede only the oldest of them), and at its deadline, with only a stale frame, it
    fails 'camera silent' though a frame comes later."""
    jobs = Jobs(goal_s=0.0, track_s=0.0)
    schedule = jobs.schedule(max_pending_goals=2, image_timeout_s=2.0, max_frame_age_s=1.0)
    goals = [GoalEvent(5.0, Goal("x", id="waits"))] + [GoalEvent(5.5, Goal("x", id=f"q{k}")) for k in range(3)]
    stats = schedule.run([FrameEvent(0.0, "old"), FrameEvent(10.0, "new")], goals)
    fails = {entry[1]: entry[2] for entry in jobs.log if entry[0] == "fail"}
    assert fails["waits"] == "camera silent for 7.0 s (no frame newer than image_max_age_s = 1 s)"
    assert "superseded" in fails["q0"]
    # q1 was taken at 7 s and failed at 9 s; q2 waited from 9 s and ran on the new frame at 10 s.
    assert fails["q1"].startswith("camera silent for 9.0 s") and set(fails) == {"waits", "q0", "q1"}
    assert [entry[1:] for entry in jobs.log if entry[0] == "goal"] == [("q2", "new", 10.0)]
    assert stats.goals_superseded == 1 and stats.goals_without_image == 2
