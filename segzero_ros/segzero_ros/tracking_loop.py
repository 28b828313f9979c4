"""The node's tracking between goals, free of ROS: which goals' targets are followed (up to ``max_goals`` at once,
each its own SAM2 track), which camera frames are new enough to track, when a goal's track ends (more goals than
``max_goals``, ``end``, a failure, every target lost) and which goal to reason again. Each tracked target keeps one
value in ``labels`` while it is tracked, distinct across every tracked goal. The node turns each ``TrackUpdate`` into
``mask``/``labels``, ``detections`` and a ``tracking_status`` message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segzero_ros.goals import Goal
from segzero_ros.instances import (
    MAX_LABEL,
    Instance,
    instance_id,
    target_labels,
    tracked_instances,
    value_names,
)
from segzero_ros.pipeline import label_image
from segzero_ros.protocol import Target

REPLACED = "replaced by a new goal"  # the one tracked goal, when the next is answered (max_goals 1)
SAME_ID = "replaced by a new goal with the same id"
RESIZED = "the camera's frame size changed"


def over_max_goals(max_goals: int) -> str:
    """Why the oldest goal's track ended: a newer goal needed its place."""
    return REPLACED if max_goals == 1 else f"more than tracking.max_goals ({max_goals}) goals tracked"


@dataclass
class TrackUpdate:
    """What one tracked frame gives: its label image (``None`` when every track ended instead), the
    ``tracking_status`` JSON (``{"goals": [...]}``: every goal tracked on the frame, and those that ended there),
    and the goals to run again (their targets were all lost and ``reacquire`` is on)."""

    labels: np.ndarray | None
    status: dict[str, Any]
    reacquire: list[Goal] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)  # the targets seen on the frame (``detections``)
    names: dict[int, str] = field(default_factory=dict)  # ``label_info``: every tracked target's value


@dataclass
class GoalTrack:
    """One tracked goal: its targets' labels (the model's names, else the goal text) and values in ``labels``."""

    goal: Goal
    labels: list[str]
    values: list[int]

    def ended(self, reason: str) -> dict[str, Any]:
        return {"id": self.goal.id, "goal": goal_text(self.goal), "state": "ended", "reason": reason}


def goal_text(goal: Goal) -> str:
    return goal.text if isinstance(goal.text, str) else ""


class TrackingLoop:
    """Up to ``max_goals`` tracks around one ``tracker.Tracker`` (keys: goal ids); see the module docstring."""

    def __init__(self, tracker: Any, every_n: int = 1, reacquire: bool = False, max_goals: int = 1) -> None:
        self.tracker = tracker
        self.every_n = every_n
        self.reacquire = reacquire
        self.max_goals = max_goals  # may change between two steps (a live parameter): applied at the next step
        self.tracks: dict[str, GoalTrack] = {}  # the tracked goals, oldest first
        self._stamp: float | None = None  # the newest frame tracked (seconds)
        self._frames = 0  # new frames seen since the last goal started
        self._shape: tuple[int, int] | None = None  # (height, width) of the tracked frames

    @property
    def active(self) -> bool:
        return bool(self.tracks) and self.tracker.active

    @property
    def goal_ids(self) -> list[str]:
        return list(self.tracks)

    def _leaving(self, goal_id: str, shape: tuple[int, int] | None = None) -> list[str]:
        """The goals whose tracks end when ``goal_id`` starts: beyond ``max_goals`` the oldest, and every other one
        when the frame size changed."""
        others = [k for k in self.tracks if k != goal_id]
        if shape is not None and self._shape is not None and shape != self._shape:
            return others
        return others[: max(len(others) - (max(self.max_goals, 1) - 1), 0)]

    def values_for(self, goal_id: str, count: int) -> list[int]:
        """The ``labels`` values ``count`` targets of ``goal_id`` get when it starts: the smallest ones no goal
        that stays tracked holds (1..count with one goal at a time; 0 past ``MAX_LABEL``)."""
        leaving = set(self._leaving(goal_id))
        used = {v for k, t in self.tracks.items() if k != goal_id and k not in leaving for v in t.values}
        values, value = [], 1
        while len(values) < count:
            if value not in used:
                values.append(value if value <= MAX_LABEL else 0)
            value += 1
        return values

    def start(
        self, goal: Goal, rgb: np.ndarray, stamp: float | None, targets: list[Target], values: list[int] | None = None
    ) -> list[dict[str, Any]]:
        """Follow ``targets`` of ``goal`` from the frame it was answered on, with ``values`` in ``labels``
        (``values_for``'s by default); the goals whose tracks ended for it (their ``ended`` entries). Raises when
        SAM2 cannot start (the tracks that had to end for it have ended)."""
        shape = rgb.shape[:2]
        values = values if values is not None else self.values_for(goal.id, len(targets))
        ended = self.make_room(goal.id, shape)
        self.tracker.add(goal.id, rgb, targets)
        labels = target_labels(goal_text(goal), targets)
        self.tracks[goal.id] = GoalTrack(goal, labels, list(values))
        self._shape, self._frames = shape, 0
        self._stamp = stamp  # the newest frame when the goal ran: what came before (even stamped later) is past
        return ended

    def make_room(self, goal_id: str, shape: tuple[int, int]) -> list[dict[str, Any]]:
        """End the tracks that ``goal_id`` starting on a frame of ``shape`` replaces (``start`` does it first);
        their ``ended`` entries."""
        resized = self._shape is not None and shape != self._shape
        reason = RESIZED if resized else over_max_goals(self.max_goals)
        ended = [self._end(k, reason) for k in self._leaving(goal_id, shape)]
        if goal_id in self.tracks:
            ended.append(self._end(goal_id, SAME_ID))
        return ended

    def _end(self, goal_id: str, reason: str) -> dict[str, Any]:
        track = self.tracks.pop(goal_id)
        self.tracker.remove(goal_id)
        return track.ended(reason)

    def end(self, reason: str, goal_id: str | None = None) -> list[dict[str, Any]]:
        """Stop following ``goal_id`` (None: every goal); the ``ended`` entries of the tracks that were running."""
        ids = list(self.tracks) if goal_id is None else [goal_id] if goal_id in self.tracks else []
        return [self._end(k, reason) for k in ids]

    def step(self, rgb: Callable[[], np.ndarray], stamp: float | None, shape: tuple[int, int]) -> TrackUpdate | None:
        """Track a camera frame (``rgb`` converts it, only when it is tracked); None when it is not tracked: no
        track, an old or repeated frame, or not the ``every_n``-th."""
        if not self.active:
            return None
        if stamp is not None and self._stamp is not None and stamp <= self._stamp:
            return None  # the same (or an older) camera frame again: nothing new to track
        self._stamp = stamp
        self._frames += 1
        if self._frames % self.every_n:
            return None
        entries = [self._end(k, over_max_goals(self.max_goals)) for k in list(self.tracks)[: -max(self.max_goals, 1)]]
        try:
            steps = self.tracker.step_all(rgb())
        except ValueError as exc:  # a frame SAM2 cannot take (ImageConversionError included)
            return TrackUpdate(labels=None, status={"goals": entries + self.end(f"tracking failed: {exc}")})
        masks: list[np.ndarray | None] = []
        values: list[int] = []
        update = TrackUpdate(labels=None, status={})
        for goal_id, track in list(self.tracks.items()):
            step = steps[goal_id]
            seen = [m if state == "tracking" else None for m, state in zip(step.masks, step.states, strict=True)]
            masks += seen
            values += track.values
            entries.append(
                {
                    "id": goal_id,
                    "goal": goal_text(track.goal),
                    "frame": step.frame_index,
                    "state": "lost" if step.lost else "tracking",
                    "targets": [
                        {"id": instance_id(goal_id, k), "value": value, "score": round(score, 4), "state": state}
                        | {"area": int(m.sum())}
                        for k, (value, score, state, m) in enumerate(
                            zip(track.values, step.scores, step.states, step.masks, strict=True), start=1
                        )
                    ],
                }
            )
            update.instances += tracked_instances(goal_id, track.labels, seen, step.scores, track.values)
            if step.lost:
                self._end(goal_id, "lost")
                if self.reacquire:
                    goal = track.goal
                    update.reacquire.append(Goal(text=goal.text, id=goal.id, multi=goal.multi, reacquired=True))
        update.labels = label_image(masks, shape, values)
        update.status = {"goals": entries}
        update.names = self.label_names()
        return update

    def label_names(self, starting: str | None = None) -> dict[int, str]:
        """``label_info``'s map of every tracked target: value → ``{"id", "label"}``; with ``starting``, of those
        that stay tracked when that goal starts."""
        leaving = set() if starting is None else {starting, *self._leaving(starting)}
        return value_names(
            (value, instance_id(goal_id, k), label)
            for goal_id, track in self.tracks.items()
            if goal_id not in leaving
            for k, (value, label) in enumerate(zip(track.values, track.labels, strict=True), start=1)
        )


class TrackLog:
    """Each goal's track as the ``tracking_status`` messages tell it (``segzero replay``'s summary): frames
    tracked, frames where every target was lost, and how it ended (None: still tracked at the end)."""

    def __init__(self) -> None:
        self.tracks: dict[str, dict[str, Any]] = {}

    def record(self, status: dict[str, Any], t: float) -> None:
        """One ``tracking_status`` message, published at ``t`` (seconds)."""
        for entry in status.get("goals", []):
            track = self.tracks.setdefault(
                entry["id"],
                {"id": entry["id"], "goal": entry.get("goal", ""), "first_s": round(t, 6), "frames": 0, "ended": None},
            )
            track["last_s"] = round(t, 6)
            if entry["state"] in ("tracking", "lost"):
                track["frames"] += 1
            if entry["state"] == "lost":
                track["ended"] = "lost"
            elif entry["state"] == "ended":
                track["ended"] = entry.get("reason", "ended")

    @property
    def losses(self) -> int:
        return sum(track["ended"] == "lost" for track in self.tracks.values())

    def summary(self) -> list[dict[str, Any]]:
        return list(self.tracks.values())
