"""The node's tracking state machine without ROS or SAM2: new frames only, every n-th, loss, reacquire, end, and
several goals at once (max_goals, label values, ending one)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from segzero_ros.goals import Goal
from segzero_ros.protocol import Target
from segzero_ros.tracking_loop import REPLACED, TrackingLoop, TrackLog

TARGET = Target(bbox=(1, 1, 3, 3), points=[(2, 2)])


@dataclass
class FakeStep:
    masks: list
    states: list
    scores: list
    lost: bool
    frame_index: int


@dataclass
class FakeTracker:
    """Sees each track's targets (one pixel block per target, at the track's place) until ``lose_after`` steps of
    that track, then reports them lost; ``fail`` makes a step raise. ``lose`` lists keys lost at once."""

    lose_after: int = 100
    fail: bool = False
    steps: list = field(default_factory=list)
    tracks: dict = field(default_factory=dict)  # key -> [targets, steps taken]
    lose: set = field(default_factory=set)

    @property
    def active(self):
        return bool(self.tracks)

    def add(self, key, rgb, targets):
        self.tracks.pop(key, None)
        self.tracks[key] = [targets, 0]

    def remove(self, key):
        self.tracks.pop(key, None)

    def step_all(self, rgb):
        if self.fail:
            raise ValueError("frame size changed")
        self.steps.append(rgb)
        out = {}
        for place, (key, track) in enumerate(self.tracks.items()):
            track[1] += 1
            lost = track[1] >= self.lose_after or key in self.lose
            masks = []
            for k, _ in enumerate(track[0]):
                mask = np.zeros((4, 8), bool)
                mask[place % 4, k] = True  # every target of every track a pixel of its own
                masks.append(mask)
            states = ["lost" if lost else "tracking"] * len(masks)
            out[key] = FakeStep(masks, states, [0.9] * len(masks), lost, track[1])
        return out


def frame():
    return np.zeros((4, 8, 3), np.uint8)


SHAPE = (4, 8)


def test_tracks_only_new_frames_every_n_th():
    loop = TrackingLoop(FakeTracker(), every_n=2)
    goal = Goal("the red cup", id="g1")
    loop.start(goal, frame(), 10.0, [TARGET])
    assert loop.step(frame, 10.0, SHAPE) is None  # the goal's own frame again
    assert loop.step(frame, 9.0, SHAPE) is None  # an older frame
    assert loop.step(frame, 11.0, SHAPE) is None  # the 1st new frame: not the 2nd
    update = loop.step(frame, 12.0, SHAPE)
    assert update.labels.sum() == 1
    (entry,) = update.status["goals"]
    assert (entry["id"], entry["goal"], entry["state"], entry["frame"]) == ("g1", "the red cup", "tracking", 1)
    assert entry["targets"] == [{"id": "g1:1", "value": 1, "score": 0.9, "state": "tracking", "area": 1}]
    assert len(loop.tracker.steps) == 1


def test_lost_targets_end_the_track_and_reacquire_the_goal_under_its_id():
    loop = TrackingLoop(FakeTracker(lose_after=2), reacquire=True)
    loop.start(Goal("the red cup", id="g2", multi=True), frame(), 0.0, [TARGET])
    assert loop.step(frame, 1.0, SHAPE).reacquire == []
    update = loop.step(frame, 2.0, SHAPE)
    assert update.status["goals"][0]["state"] == "lost" and update.labels.sum() == 0  # a lost target is not drawn
    (again,) = update.reacquire
    assert (again.id, again.text, again.multi, again.reacquired) == ("g2", "the red cup", True, True)
    assert not loop.active and loop.step(frame, 3.0, SHAPE) is None


def test_without_reacquire_a_lost_track_just_ends():
    loop = TrackingLoop(FakeTracker(lose_after=1), reacquire=False)
    loop.start(Goal("cup", id="g3"), frame(), 0.0, [TARGET])
    assert loop.step(frame, 1.0, SHAPE).reacquire == [] and not loop.active


def test_end_reports_once_and_a_failed_step_ends_every_track_with_the_reason():
    loop = TrackingLoop(FakeTracker(), max_goals=2)
    assert loop.end("cancelled") == []  # nothing tracked: nothing to report
    loop.start(Goal("cup", id="g4"), frame(), 0.0, [TARGET])
    assert loop.end("cancelled") == [{"id": "g4", "goal": "cup", "state": "ended", "reason": "cancelled"}]
    assert loop.end("again") == [] and not loop.tracker.active
    loop.start(Goal("cup", id="g5"), frame(), 0.0, [TARGET])
    loop.start(Goal("bowl", id="g6"), frame(), 0.0, [TARGET])
    loop.tracker.fail = True
    update = loop.step(frame, 1.0, SHAPE)
    reason = "tracking failed: frame size changed"
    assert update.labels is None and update.status == {
        "goals": [
            {"id": "g5", "goal": "cup", "state": "ended", "reason": reason},
            {"id": "g6", "goal": "bowl", "state": "ended", "reason": reason},
        ]
    }
    assert not loop.active


def test_frames_are_converted_only_when_tracked():
    loop = TrackingLoop(FakeTracker(), every_n=3)
    loop.start(Goal("cup"), frame(), 0.0, [TARGET])
    converted = []

    def rgb():
        converted.append(1)
        return frame()

    for stamp in (1.0, 2.0, 3.0):
        loop.step(rgb, stamp, SHAPE)
    assert len(converted) == 1


def test_a_tracked_frame_lists_each_seen_target_with_its_answer_id_label_and_the_box_of_its_mask():
    loop = TrackingLoop(FakeTracker(lose_after=2))
    labelled = Target(bbox=(0, 0, 3, 3), points=[(1, 1)], label="mug")
    loop.start(Goal("something to drink from", id="g7"), frame(), 1.0, [labelled])
    (seen,) = loop.step(frame, 2.0, SHAPE).instances
    assert (seen.value, seen.id, seen.label, seen.bbox, seen.score) == (1, "g7:1", "mug", (0.0, 0.0, 0.0, 0.0), 0.9)
    assert loop.step(frame, 3.0, SHAPE).instances == []  # lost: not listed
    loop.start(Goal("the red cup", id="g8"), frame(), 4.0, [TARGET])  # no label from the model: the goal text
    assert [i.label for i in loop.step(frame, 5.0, SHAPE).instances] == ["the red cup"]


def test_with_one_goal_at_a_time_a_new_goal_replaces_the_track_and_keeps_the_values_one_to_n():
    loop = TrackingLoop(FakeTracker(), max_goals=1)
    loop.start(Goal("cup", id="a"), frame(), 0.0, [TARGET, TARGET])
    assert loop.values_for("b", 3) == [1, 2, 3]  # "a" leaves when "b" starts
    ended = loop.start(Goal("bowl", id="b"), frame(), 1.0, [TARGET])
    assert ended == [{"id": "a", "goal": "cup", "state": "ended", "reason": REPLACED}]
    assert loop.goal_ids == ["b"] and list(loop.tracker.tracks) == ["b"]


def test_several_goals_are_tracked_together_with_distinct_stable_values():
    loop = TrackingLoop(FakeTracker(), max_goals=3)
    loop.start(Goal("the mug", id="a"), frame(), 0.0, [TARGET, TARGET])
    assert loop.values_for("b", 2) == [3, 4]
    assert loop.start(Goal("the spoon", id="b"), frame(), 1.0, [TARGET, TARGET], loop.values_for("b", 2)) == []
    update = loop.step(frame, 2.0, SHAPE)
    assert [g["id"] for g in update.status["goals"]] == ["a", "b"]
    assert sorted(np.unique(update.labels).tolist()) == [0, 1, 2, 3, 4]
    assert [(i.id, i.value) for i in update.instances] == [("a:1", 1), ("a:2", 2), ("b:1", 3), ("b:2", 4)]
    assert json.loads(update.names[3]) == {"id": "b:1", "label": "the spoon"} and update.names[0] == "background"
    # Ending "a" frees its values; "b" keeps its own, and a new goal takes the free ones.
    assert loop.end("ended on request", "a") == [
        {"id": "a", "goal": "the mug", "state": "ended", "reason": "ended on request"}
    ]
    update = loop.step(frame, 3.0, SHAPE)
    assert [(i.id, i.value) for i in update.instances] == [("b:1", 3), ("b:2", 4)]
    assert loop.values_for("c", 3) == [1, 2, 5]


def test_beyond_max_goals_the_oldest_track_ends_and_a_lower_limit_applies_at_the_next_frame():
    loop = TrackingLoop(FakeTracker(), max_goals=2)
    for n, goal_id in enumerate(("a", "b")):
        loop.start(Goal(goal_id, id=goal_id), frame(), float(n), [TARGET])
    ended = loop.start(Goal("c", id="c"), frame(), 2.0, [TARGET])
    assert ended == [
        {"id": "a", "goal": "a", "state": "ended", "reason": "more than tracking.max_goals (2) goals tracked"}
    ]
    assert loop.goal_ids == ["b", "c"]
    loop.max_goals = 1  # a live parameter change
    update = loop.step(frame, 3.0, SHAPE)
    assert [(g["id"], g["state"]) for g in update.status["goals"]] == [("b", "ended"), ("c", "tracking")]
    assert loop.goal_ids == ["c"]


def test_the_same_goal_id_again_replaces_its_own_track_only():
    loop = TrackingLoop(FakeTracker(), max_goals=3)
    loop.start(Goal("the mug", id="a"), frame(), 0.0, [TARGET])
    loop.start(Goal("the spoon", id="b"), frame(), 1.0, [TARGET])
    ended = loop.start(Goal("the red mug", id="a"), frame(), 2.0, [TARGET])
    assert [(e["id"], e["reason"]) for e in ended] == [("a", "replaced by a new goal with the same id")]
    assert loop.goal_ids == ["b", "a"]


def test_one_goal_lost_is_reacquired_alone_and_the_other_goes_on():
    tracker = FakeTracker()
    loop = TrackingLoop(tracker, reacquire=True, max_goals=2)
    loop.start(Goal("the mug", id="a"), frame(), 0.0, [TARGET])
    loop.start(Goal("the spoon", id="b"), frame(), 0.0, [TARGET])
    tracker.lose = {"b"}
    update = loop.step(frame, 1.0, SHAPE)
    assert [(g["id"], g["state"]) for g in update.status["goals"]] == [("a", "tracking"), ("b", "lost")]
    assert [g.id for g in update.reacquire] == ["b"] and loop.goal_ids == ["a"]
    assert [i.id for i in update.instances] == ["a:1"]


def test_the_track_log_lists_each_goals_track():
    log = TrackLog()
    loop = TrackingLoop(FakeTracker(lose_after=3), max_goals=2)
    loop.start(Goal("the mug", id="a"), frame(), 0.0, [TARGET])
    for t in (1.0, 2.0):
        log.record(loop.step(frame, t, SHAPE).status, t)
    loop.start(Goal("the spoon", id="b"), frame(), 2.0, [TARGET])
    log.record(loop.step(frame, 3.0, SHAPE).status, 3.0)  # "a" lost at its 3rd step
    log.record({"goals": loop.end("cancelled")}, 4.0)
    assert log.summary() == [
        {"id": "a", "goal": "the mug", "first_s": 1.0, "frames": 3, "ended": "lost", "last_s": 3.0},
        {"id": "b", "goal": "the spoon", "first_s": 3.0, "frames": 1, "ended": "cancelled", "last_s": 4.0},
    ]
    assert log.losses == 1


def test_a_goal_on_frames_of_another_size_ends_every_other_track_and_says_why():
    loop = TrackingLoop(FakeTracker(), max_goals=4)
    loop.start(Goal("the mug", id="a"), frame(), 0.0, [TARGET])
    ended = loop.start(Goal("the spoon", id="b"), np.zeros((8, 16, 3), np.uint8), 1.0, [TARGET])
    assert ended == [{"id": "a", "goal": "the mug", "state": "ended", "reason": "the camera's frame size changed"}]
    assert loop.goal_ids == ["b"]
