"""The node's scheduling policy, free of clocks and threads: which goal runs on which frame, and when.

One policy for the live node (``worker.GoalWorker``: a thread, the monotonic clock) and for replay
(``replay_schedule.ReplaySchedule``: virtual time). Each keeps the newest frame and a bounded queue of goals here,
and asks ``next_step(now)`` what the worker does next:

- the oldest pending goal is taken and runs on the newest frame no older than ``max_frame_age_s`` (``Run``); with
  none, it waits for one (``Wait``) up to ``image_timeout_s`` after it was taken, then fails (``NoImage``: no image,
  or the camera went silent);
- with no goal, a frame newer than the last one used is tracked when a track is on (``Track``);
- otherwise there is nothing to do (None).

Intake (``submit``) refuses a goal already known to be malformed and supersedes the oldest pending goal past
``max_pending_goals``; the caller answers those at once. Not thread-safe: the worker calls it under its lock.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segzero_ros.answering import SUPERSEDED, camera_silent, no_image
from segzero_ros.goals import Goal


@dataclass
class Run:
    """Run ``goal`` on ``frame`` now."""

    goal: Goal
    frame: Any


@dataclass
class Wait:
    """``goal`` waits for a usable frame until ``deadline`` (a new frame may come sooner)."""

    goal: Goal
    deadline: float


@dataclass
class NoImage:
    """``goal`` found no usable frame by its deadline: answer it failed with ``reason``; ``no_frame``: none at all."""

    goal: Goal
    reason: str
    no_frame: bool


@dataclass
class Track:
    """Track the running track's targets on ``frame``."""

    frame: Any


Step = Run | Wait | NoImage | Track | None


class Schedule:
    """The newest frame, the pending goals and the goal waiting for a frame; see the module docstring."""

    def __init__(
        self,
        max_pending_goals: int = 4,
        image_timeout_s: float = 5.0,
        max_frame_age_s: float = 0.0,
        image_source: Callable[[], str] = lambda: "",
    ) -> None:
        self.max_pending_goals = max_pending_goals
        self.image_timeout_s = image_timeout_s
        self.max_frame_age_s = max_frame_age_s  # 0: any frame, however old
        self.image_source = image_source  # where frames come from, named in "no image" answers
        self.goals: collections.deque[Goal] = collections.deque()
        self.frame: Any = None  # the newest frame
        self.frame_t = 0.0  # when it arrived
        self.frame_used = True  # a goal ran on it or it was tracked
        self.waiting: tuple[Goal, float] | None = None  # the goal taken from the queue, and its deadline

    # --- intake -------------------------------------------------------------------------------------

    def offer_frame(self, frame: Any, t: float) -> bool:
        """``frame`` arrived at ``t`` and is the newest; whether it replaced one nothing used."""
        replaced = not self.frame_used
        self.frame, self.frame_t, self.frame_used = frame, t, False
        return replaced

    def submit(self, goal: Goal) -> list[tuple[Goal, str]]:
        """Queue ``goal``; the goals to answer failed at once, with why: ``goal`` itself when intake refused it
        (``goal.error``), else the oldest pending goals past ``max_pending_goals`` (superseded)."""
        if goal.error:
            return [(goal, goal.error)]
        self.goals.append(goal)
        superseded = []
        while len(self.goals) > self.max_pending_goals:
            superseded.append((self.goals.popleft(), SUPERSEDED))
        return superseded

    def cancel(self, goal: Goal | None = None) -> list[Goal]:
        """Drop ``goal``, or every pending goal; the dropped ones (a goal already taken is not pending)."""
        dropped = [g for g in self.goals if goal is None or g is goal]
        self.goals = collections.deque(g for g in self.goals if not any(g is d for d in dropped))
        return dropped

    def release_waiting(self) -> Goal | None:
        """Give up the goal waiting for a frame (the worker stops); it is owed an answer."""
        goal = self.waiting[0] if self.waiting is not None else None
        self.waiting = None
        return goal

    # --- the worker's next step ---------------------------------------------------------------------

    def fresh(self, now: float) -> bool:
        """Whether the newest frame may be used at ``now`` (``max_frame_age_s``)."""
        return self.frame is not None and (self.max_frame_age_s <= 0 or now - self.frame_t <= self.max_frame_age_s)

    def next_step(self, now: float, tracking: bool = False) -> Step:
        """What the worker does at ``now``; ``tracking``: a track is on (new frames are tracked when no goal waits).
        A goal in ``Run`` or ``NoImage``, and a frame in ``Run`` or ``Track``, are taken: the caller must act."""
        if self.waiting is None and self.goals:
            goal = self.goals.popleft()
            if goal.frame is not None:  # it brought its own image (an action goal)
                return Run(goal, goal.frame)
            self.waiting = (goal, now + self.image_timeout_s)
        if self.waiting is not None:
            goal, deadline = self.waiting
            if self.fresh(now):
                self.waiting, self.frame_used = None, True
                return Run(goal, self.frame)
            if now < deadline:
                return Wait(goal, deadline)
            self.waiting = None
            if self.frame is not None:
                return NoImage(goal, camera_silent(now - self.frame_t, self.max_frame_age_s), no_frame=False)
            return NoImage(goal, no_image(self.image_timeout_s, self.image_source()), no_frame=True)
        if tracking and not self.frame_used:
            self.frame_used = True
            return Track(self.frame)
        return None
