"""The node's worker in virtual time, for replaying a recording: what the node would have done, frame by frame.

The policy is the node's own (``scheduling.Schedule``: newest fresh frame, ``image_max_age_s``,
``image_timeout_s``, the bounded queue, supersede, refusal at intake, tracking when idle); this module supplies
virtual time: it plays the recording's frames and goals in time order and, between two events, runs the steps
the worker would have started.

Two clocks: ``realtime`` — a job lasts as long as it really took, frames that arrive meanwhile replace each
other and are skipped, as on the robot; otherwise (``all_frames``) a job takes no recorded time, so every
frame is processed. ROS-free: the replay command supplies the jobs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from segzero_ros.goals import Goal
from segzero_ros.scheduling import NoImage, Run, Schedule, Track, Wait

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
    "labels_encoding",
    "tracking.enabled",
    "tracking.input_scale",
    "tracking.every_n",
    "tracking.min_score",
    "tracking.lost_frames",
    "tracking.reacquire",
    "tracking.max_goals",
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
# (duration, goals it asks to run again).
GoalJob = Callable[[Goal, Any, float], float]
TrackJob = Callable[[Any, float], "tuple[float, list[Goal]]"]
FailJob = Callable[..., None]  # (goal, reason, time, ran=False): ran = the worker had taken the goal


class ReplaySchedule:
    """See the module docstring. ``run`` consumes the events in time order and calls the jobs; ``tracking()``
    says whether a track is on (new frames are then tracked when no goal waits)."""

    def __init__(
        self,
        run_goal: GoalJob,
        track: TrackJob,
        fail_goal: FailJob,
        tracking: Callable[[], bool] = lambda: False,
        realtime: bool = False,
        max_pending_goals: int = 4,
        image_timeout_s: float = 5.0,
        max_frame_age_s: float = 0.0,
        image_source: str = "",
    ) -> None:
        self._run_goal, self._track, self._fail, self._tracking = run_goal, track, fail_goal, tracking
        self.realtime = realtime
        self.schedule = Schedule(max_pending_goals, image_timeout_s, max_frame_age_s, lambda: image_source)
        self.stats = ScheduleStats()
        self._t = float("-inf")  # the time of the last event taken (or deadline reached)
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
            self._t = max(self._t, t)
            if kind == 0:
                self._take_frame(event)
            else:
                self._take_goal(event.goal, event.t)
        self.stats.stopped = stop()
        if not self.stats.stopped:
            self._work(until=float("inf"))
        self.stats.goals_unanswered = len(self.schedule.goals) + (self.schedule.waiting is not None)
        return self.stats

    def _take_frame(self, event: FrameEvent) -> None:
        self.stats.frames_read += 1
        if self.schedule.offer_frame(event.frame, event.t):  # the frame before it was never used
            if self._free_at > event.t:
                self.stats.frames_skipped += 1  # the worker was busy
            else:
                self.stats.frames_idle += 1  # nothing needed it

    def _take_goal(self, goal: Goal, t: float) -> None:
        self.stats.goals += 1
        for answered, reason in self.schedule.submit(goal):  # refused at intake, or superseded
            self.stats.goals_superseded += answered is not goal
            self._fail(answered, reason, t)

    def _work(self, until: float) -> None:
        """Run the steps the worker starts before ``until`` (the next event's time)."""
        while True:
            now = max(self._free_at, self._t)
            if now > until:
                return
            step = self.schedule.next_step(now, self._tracking())
            if isinstance(step, Wait):
                if step.deadline > until:
                    return  # it waits for the next event (a frame may come)
                self._t = step.deadline
            elif isinstance(step, Run):
                self.stats.frames_goal += 1
                self._finish(now, self._run_goal(step.goal, step.frame, now))
            elif isinstance(step, NoImage):
                self.stats.goals_without_image += 1
                self._fail(step.goal, step.reason, now, ran=True)
            elif isinstance(step, Track):
                self.stats.frames_tracked += 1
                duration, again = self._track(step.frame, now)
                self._finish(now, duration)
                for goal in again:
                    self._take_goal(goal, self._free_at)
            else:
                return

    def _finish(self, start: float, duration: float) -> None:
        self.stats.jobs_s.append(duration)
        self._free_at = start + (duration if self.realtime else 0.0)
