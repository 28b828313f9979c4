"""The node's worker in virtual time, for replaying a recording: what the node would have done, frame by frame.

One job at a time. A pending goal goes first and runs on the newest frame at the moment it starts (a goal that
finds no frame, or only one older than ``image_max_age_s``, waits for the next, up to ``image_timeout_s``); with
nothing pending, a newer frame than the last one used is tracked (when a track is on). Past ``max_pending_goals``
the oldest pending goal is superseded, and a goal refused at intake is answered at once, as in
``worker.GoalWorker``; the answers' texts come from ``answering`` as the node's do.

Two clocks: ``realtime`` — a job lasts as long as it really took, frames that arrive meanwhile replace each
other and are skipped, as on the robot; otherwise (``all_frames``) a job takes no recorded time, so every
frame is processed. ROS-free: the replay command supplies the jobs.
"""

from __future__ import annotations

import collections
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from segzero_ros.answering import SUPERSEDED, camera_silent, no_image
from segzero_ros.goals import Goal

# The node's parameters a replay takes besides the models (same names, same meaning). The others cannot apply to a
# recording: autostart and the lifecycle, the transport (image_qos, compressed_input: the recording says what the
# camera sent, outputs_best_effort), live streaming (reasoning_partial_hz), diagnostics_period_s; preset is --tiny.
NODE_PARAMETERS = (
    "max_pending_goals",
    "image_timeout_s",
    "image_max_age_s",
    "max_goal_chars",
    "max_image_size",
    "publish_overlay",
    "tracking.enabled",
    "tracking.input_scale",
    "tracking.every_n",
    "tracking.min_score",
    "tracking.lost_frames",
    "tracking.reacquire",
)


@dataclass
class FrameEvent:
    """A camera frame of the recording: when it was recorded (s) and what the jobs need of it."""

    t: float
    frame: Any


@dataclass
class GoalEvent:
    """A goal of the recording (or of the command line) and when it arrives (s)."""

    t: float
    goal: Goal


@dataclass
class ScheduleStats:
    """What happened to the recording's frames and goals."""

    frames_read: int = 0
    frames_goal: int = 0  # frames a goal ran on
    frames_tracked: int = 0
    frames_skipped: int = 0  # replaced by a newer frame while the worker was busy
    frames_idle: int = 0  # not needed: no goal pending and no track on
    goals: int = 0
    goals_superseded: int = 0
    goals_without_image: int = 0
    goals_unanswered: int = 0  # still pending when the run was stopped
    stopped: bool = False  # ``stop()`` ended the run early
    jobs_s: list[float] = field(default_factory=list)  # real duration of every job


# A goal job: (goal, frame, start time) -> its real duration (s). A tracking job: (frame, start time) ->
# (duration, goals it asks to run again); None when no track is on.
GoalJob = Callable[[Goal, Any, float], float]
TrackJob = Callable[[Any, float], "tuple[float, list[Goal]] | None"]
FailJob = Callable[..., None]  # (goal, reason, time, ran=False): ran = the worker had taken the goal


class ReplaySchedule:
    """See the module docstring. ``run`` consumes the events in time order and calls the jobs."""

    def __init__(
        self,
        run_goal: GoalJob,
        track: TrackJob,
        fail_goal: FailJob,
        realtime: bool = False,
        max_pending_goals: int = 4,
        image_timeout_s: float = 5.0,
        max_frame_age_s: float = 0.0,
        image_source: str = "",
    ) -> None:
        self._run_goal, self._track, self._fail = run_goal, track, fail_goal
        self.realtime = realtime
        self.max_pending_goals = max_pending_goals
        self.image_timeout_s = image_timeout_s
        self.max_frame_age_s = max_frame_age_s  # 0: any frame, however old
        self.image_source = image_source  # named in "no image" answers
        self.stats = ScheduleStats()
        self._pending: collections.deque[GoalEvent] = collections.deque()
        self._newest: FrameEvent | None = None
        self._newest_used = True
        self._free_at = float("-inf")  # when the worker finishes its current job

    def run(
        self, frames: Iterable[FrameEvent], goals: Iterable[GoalEvent], stop: Callable[[], bool] = lambda: False
    ) -> ScheduleStats:
        """Every frame and goal, in time order (frames before goals at the same time); every goal answered. When
        ``stop()`` turns true, after the job in progress: nothing more is run (``stats.stopped``)."""
        frame_events = ((event.t, 0, k, event) for k, event in enumerate(frames))
        goal_events = sorted(((event.t, 1, k, event) for k, event in enumerate(goals)), key=lambda e: e[:3])
        for t, kind, _, event in heapq.merge(frame_events, goal_events, key=lambda e: e[:3]):
            if stop():
                break
            self._work(until=t)
            if kind == 0:
                self._take_frame(event)
            else:
                self._take_goal(event)
        self.stats.stopped = stop()
        if not self.stats.stopped:
            self._work(until=float("inf"))
        self.stats.goals_unanswered = len(self._pending)
        return self.stats

    def _take_frame(self, event: FrameEvent) -> None:
        self.stats.frames_read += 1
        if not self._newest_used:
            self.stats.frames_skipped += 1
        self._newest, self._newest_used = event, False

    def _take_goal(self, event: GoalEvent) -> None:
        self.stats.goals += 1
        if event.goal.error:  # refused at intake, as the node does: answered at once, never queued
            self._fail(event.goal, event.goal.error, event.t)
            return
        self._pending.append(event)
        while len(self._pending) > self.max_pending_goals:
            old = self._pending.popleft()
            self.stats.goals_superseded += 1
            self._fail(old.goal, SUPERSEDED, old.t)

    def _work(self, until: float) -> None:
        """Run the jobs the worker starts before ``until`` (the next event's time)."""
        while True:
            if self._pending:
                event = self._pending[0]
                start = max(self._free_at, event.t)
                deadline = start + self.image_timeout_s  # the goal waits this long for a usable frame
                newest = self._newest
                if newest is not None and newest.t > start:  # the goal waited for this frame
                    if newest.t > deadline:
                        self._pending.popleft()
                        self._no_image(event, newest, deadline)
                        continue
                    start = newest.t
                elif newest is None or self._stale(newest, start):  # it waits for a (newer) frame
                    if until < deadline:
                        return
                    self._pending.popleft()
                    self._no_image(event, newest, deadline)
                    continue
                if start > until:
                    return
                self._pending.popleft()
                self._newest_used = True
                self.stats.frames_goal += 1
                self._finish(start, self._run_goal(event.goal, newest.frame, start))
                continue
            if self._newest is None or self._newest_used:
                return
            start = max(self._free_at, self._newest.t)
            if start > until:
                return
            outcome = self._track(self._newest.frame, start)
            self._newest_used = True
            if outcome is None:  # no track on: the frame is not needed
                self.stats.frames_idle += 1
                return
            self.stats.frames_tracked += 1
            duration, again = outcome
            self._finish(start, duration)
            for goal in again:
                self._take_goal(GoalEvent(self._free_at, goal))

    def _stale(self, frame: FrameEvent, at: float) -> bool:
        return self.max_frame_age_s > 0 and at - frame.t > self.max_frame_age_s

    def _no_image(self, event: GoalEvent, newest: FrameEvent | None, deadline: float) -> None:
        """The goal found no usable frame by ``deadline``: none at all, or only a stale one (the node's texts)."""
        self.stats.goals_without_image += 1
        if newest is not None and newest.t <= deadline and self._stale(newest, deadline):
            reason = camera_silent(deadline - newest.t, self.max_frame_age_s)
        else:
            reason = no_image(self.image_timeout_s, self.image_source)
        self._fail(event.goal, reason, deadline, ran=True)

    def _finish(self, start: float, duration: float) -> None:
        self.stats.jobs_s.append(duration)
        self._free_at = start + (duration if self.realtime else 0.0)
