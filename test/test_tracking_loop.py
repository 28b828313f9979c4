"""The node's tracking state machine without ROS or SAM2: new frames only, every n-th, loss, reacquire, end."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segzero_ros.goals import Goal
from segzero_ros.protocol import Target
from segzero_ros.tracking_loop import TrackingLoop

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
    """Sees its one target until ``lose_after`` steps, then reports it lost; ``fail`` makes a step raise."""

    lose_after: int = 100
    fail: bool = False
    steps: list = field(default_factory=list)
    active: bool = False

    def start(self, rgb, targets):
        self.active, self.steps = True, []

    def step(self, rgb):
        if self.fail:
            raise ValueError("frame size changed")
        self.steps.append(rgb)
        lost = len(self.steps) >= self.lose_after
        mask = np.zeros((4, 4), bool)
        mask[1:3, 1:3] = True
        return FakeStep([mask], ["lost" if lost else "tracking"], [0.9], lost, len(self.steps))

    def stop(self):
        self.active = False


def frame():
    return np.zeros((4, 4, 3), np.uint8)


def test_tracks_only_new_frames_every_n_th():
    loop = TrackingLoop(FakeTracker(), every_n=2)
    goal = Goal("the red cup", id="g1")
    loop.start(goal, frame(), 10.0, [TARGET])
    assert loop.step(frame, 10.0, (4, 4)) is None  # the goal's own frame again
    assert loop.step(frame, 9.0, (4, 4)) is None  # an older frame
    assert loop.step(frame, 11.0, (4, 4)) is None  # the 1st new frame: not the 2nd
    update = loop.step(frame, 12.0, (4, 4))
    assert update.labels.sum() == 4 and update.status["state"] == "tracking" and update.status["id"] == "g1"
    assert update.status["targets"] == [{"score": 0.9, "state": "tracking", "area": 4}]
    assert len(loop.tracker.steps) == 1


def test_lost_targets_end_the_track_and_reacquire_the_goal_under_its_id():
    loop = TrackingLoop(FakeTracker(lose_after=2), reacquire=True)
    loop.start(Goal("the red cup", id="g2", multi=True), frame(), 0.0, [TARGET])
    assert loop.step(frame, 1.0, (4, 4)).reacquire is None
    update = loop.step(frame, 2.0, (4, 4))
    assert update.status["state"] == "lost" and update.labels.sum() == 0  # a lost target is not drawn
    again = update.reacquire
    assert (again.id, again.text, again.multi, again.reacquired) == ("g2", "the red cup", True, True)
    assert not loop.active and loop.step(frame, 3.0, (4, 4)) is None


def test_without_reacquire_a_lost_track_just_ends():
    loop = TrackingLoop(FakeTracker(lose_after=1), reacquire=False)
    loop.start(Goal("cup", id="g3"), frame(), 0.0, [TARGET])
    assert loop.step(frame, 1.0, (4, 4)).reacquire is None and not loop.active


def test_end_reports_once_and_a_failed_step_ends_the_track_with_the_reason():
    loop = TrackingLoop(FakeTracker())
    assert loop.end("cancelled") is None  # nothing tracked: nothing to report
    loop.start(Goal("cup", id="g4"), frame(), 0.0, [TARGET])
    assert loop.end("replaced by a new goal") == {"id": "g4", "state": "ended", "reason": "replaced by a new goal"}
    assert loop.end("again") is None and not loop.tracker.active
    loop.start(Goal("cup", id="g5"), frame(), 0.0, [TARGET])
    loop.tracker.fail = True
    update = loop.step(frame, 1.0, (4, 4))
    assert update.labels is None and update.status == {
        "id": "g5",
        "state": "ended",
        "reason": "tracking failed: frame size changed",
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
        loop.step(rgb, stamp, (4, 4))
    assert len(converted) == 1


def test_a_tracked_frame_lists_each_seen_target_with_its_answer_id_label_and_the_box_of_its_mask():
    loop = TrackingLoop(FakeTracker(lose_after=2))
    labelled = Target(bbox=(0, 0, 3, 3), points=[(1, 1)], label="mug")
    loop.start(Goal("something to drink from", id="g7"), frame(), 1.0, [labelled])
    (seen,) = loop.step(frame, 2.0, (4, 4)).instances
    assert (seen.value, seen.id, seen.label, seen.bbox, seen.score) == (1, "g7:1", "mug", (1.0, 1.0, 2.0, 2.0), 0.9)
    assert loop.step(frame, 3.0, (4, 4)).instances == []  # lost: not listed
    loop.start(Goal("the red cup", id="g8"), frame(), 4.0, [TARGET])  # no label from the model: the goal text
    assert [i.label for i in loop.step(frame, 5.0, (4, 4)).instances] == ["the red cup"]
