"""The node's tracking between goals, free of ROS: which goal's targets are followed, which camera frames are
new enough to track, when a track ends (a new goal, a cancel, a failure, every target lost) and when to reason
again. The node turns each ``TrackUpdate`` into ``mask``/``labels``, ``detections`` and a ``tracking_status``
message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segzero_ros.goals import Goal
from segzero_ros.instances import Instance, target_labels, tracked_instances
from segzero_ros.pipeline import label_image
from segzero_ros.protocol import Target


@dataclass
class TrackUpdate:
    """What one tracked frame gives: its label image (``None`` when the track ended instead), the
    ``tracking_status`` JSON, and the goal to run again when every target was lost and ``reacquire`` is on."""

    labels: np.ndarray | None
    status: dict[str, Any]
    reacquire: Goal | None = None
    instances: list[Instance] = field(default_factory=list)  # the targets seen on the frame (``detections``)


class TrackingLoop:
    """One track at a time around a ``tracker.Tracker``; see the module docstring."""

    def __init__(self, tracker: Any, every_n: int = 1, reacquire: bool = False) -> None:
        self.tracker = tracker
        self.every_n = every_n
        self.reacquire = reacquire
        self.goal: Goal | None = None  # the goal whose targets are followed
        self._stamp: float | None = None  # the newest frame tracked (seconds)
        self._frames = 0  # new frames seen since the goal
        self._labels: list[str] = []  # each target's label (the model's name for it, else the goal text)

    @property
    def active(self) -> bool:
        return self.goal is not None and self.tracker.active

    def start(self, goal: Goal, rgb: np.ndarray, stamp: float | None, targets: list[Target]) -> None:
        """Follow ``targets`` of ``goal`` from the frame it was answered on (raises when SAM2 cannot start)."""
        self.tracker.start(rgb, targets)
        self.goal, self._stamp, self._frames = goal, stamp, 0
        self._labels = target_labels(goal.text if isinstance(goal.text, str) else "", targets)

    def end(self, reason: str) -> dict[str, Any] | None:
        """Stop following; the ``ended`` status when a track was running."""
        goal, self.goal = self.goal, None
        if goal is None:
            return None
        self.tracker.stop()
        return {"id": goal.id, "state": "ended", "reason": reason}

    def step(self, rgb: Callable[[], np.ndarray], stamp: float | None, shape: tuple[int, int]) -> TrackUpdate | None:
        """Track a camera frame (``rgb`` converts it, only when it is tracked); None when it is not tracked: no
        track, an old or repeated frame, or not the ``every_n``-th."""
        goal = self.goal
        if goal is None or not self.tracker.active:
            return None
        if stamp is not None and self._stamp is not None and stamp <= self._stamp:
            return None  # the same (or an older) camera frame again: nothing new to track
        self._stamp = stamp
        self._frames += 1
        if self._frames % self.every_n:
            return None
        try:
            step = self.tracker.step(rgb())
        except ValueError as exc:  # a frame SAM2 cannot take (ImageConversionError included)
            return TrackUpdate(labels=None, status=self.end(f"tracking failed: {exc}") or {})
        seen = [m if state == "tracking" else None for m, state in zip(step.masks, step.states, strict=True)]
        status = {
            "id": goal.id,
            "frame": step.frame_index,
            "state": "lost" if step.lost else "tracking",
            "targets": [
                {"score": round(score, 4), "state": state, "area": int(mask.sum())}
                for score, state, mask in zip(step.scores, step.states, step.masks, strict=True)
            ],
        }
        instances = tracked_instances(goal.id, self._labels, seen, step.scores)
        update = TrackUpdate(labels=label_image(seen, shape), status=status, instances=instances)
        if step.lost:
            self.goal = None
            self.tracker.stop()
            if self.reacquire:
                update.reacquire = Goal(text=goal.text, id=goal.id, multi=goal.multi, reacquired=True)
        return update
