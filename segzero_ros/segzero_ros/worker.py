"""Goal scheduling for the node, free of ROS: the newest frame, a bounded goal queue, one worker thread.

Callbacks only call ``offer_frame`` / ``submit`` / ``cancel`` / ``call_soon`` (cheap, never block on a model).
Which goal runs on which frame, and when, is ``scheduling.Schedule`` (the policy replay shares); this module
supplies the thread and the monotonic clock, runs the steps and hands every goal exactly one ``Result`` through
``on_result``, whatever happens: supersession, cancel, stop, a failing run. State that the worker's jobs use
(the node's track) is owned by the worker thread: other threads change it with ``call_soon``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segzero_ros.answering import CANCELLED, failure
from segzero_ros.goals import Goal
from segzero_ros.pipeline import Result
from segzero_ros.scheduling import NoImage, Run, Schedule, Track, Wait

LOG = logging.getLogger(__name__)


@dataclass
class Frame:
    """A camera frame as received: the decoded array, its encoding and the message header (opaque here)."""

    array: np.ndarray
    encoding: str
    header: Any = None
    received: float = field(default_factory=time.monotonic)


@dataclass
class WorkerStats:
    """Counters for diagnostics."""

    frames_received: int = 0
    frames_replaced: int = 0  # replaced by a newer frame before a goal used it (normal: goals are rarer than frames)
    frames_rejected: int = 0  # unusable (malformed, unsupported encoding): a fault
    last_drop: str = ""  # why the last rejected frame was rejected
    last_drop_at: float = -1e9  # when (monotonic)
    goals_received: int = 0
    goals_ok: int = 0
    goals_failed: int = 0
    latencies_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    callback_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))
    publish_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    receive_latency_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))

    def latency_percentile(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)


def percentile(values: collections.deque, q: float) -> float | None:
    """The ``q``-th percentile of a window of timings, None when empty."""
    return float(np.percentile(list(values), q)) if values else None


RunFn = Callable[[Frame, Goal], Result]
ResultFn = Callable[[Goal, Frame | None, Result], None]


class GoalWorker:
    """One background thread answering goals on the newest frame; see the module docstring."""

    def __init__(
        self,
        run: RunFn,
        on_result: ResultFn,
        max_pending_goals: int = 4,
        image_timeout_s: float = 5.0,
        on_idle_frame: Callable[[Frame], None] | None = None,
        max_frame_age_s: float = 0.0,
        after_goal: ResultFn | None = None,
        image_source: Callable[[], str] = lambda: "",
        failure: Callable[..., Result] = failure,
    ) -> None:
        self._run = run
        self._on_result = on_result
        # Called in the worker thread after the answer of every goal the worker took from the queue and ran
        # (refused, superseded and cancelled goals never get here): the node ends or starts its track there.
        self._after_goal = after_goal
        self._failure = failure  # (goal, reason, cancelled=False) -> the goal's failed Result (answering.failure)
        # Called in the worker thread with each new frame while no goal is pending and ``idle_frames`` is set
        # (the node tracks its last goal's targets this way); frames that come faster are skipped, never queued.
        # Set ``idle_frames`` from the worker thread only (a job, ``after_goal`` or a ``call_soon`` request).
        self._on_idle_frame = on_idle_frame
        self.idle_frames = False
        # The policy; its limits (max_pending_goals, image_timeout_s, max_frame_age_s) may be set from any thread.
        self.schedule = Schedule(max_pending_goals, image_timeout_s, max_frame_age_s, image_source)
        self.stats = WorkerStats()
        self._cond = threading.Condition()
        self._answer_lock = threading.Lock()
        self._requests: collections.deque[Callable[[], None]] = collections.deque()
        self._busy: Goal | None = None
        self._stop = False
        self._stop_reason = ""
        self._thread: threading.Thread | None = None

    # --- called from callbacks (cheap) ----------------------------------------------------------

    def offer_frame(self, frame: Frame) -> None:
        """Keep ``frame`` as the newest; a frame replaced before any goal used it counts as replaced."""
        with self._cond:
            self.stats.frames_received += 1
            if self.schedule.offer_frame(frame, frame.received):
                self.stats.frames_replaced += 1
            self._cond.notify_all()

    def note_dropped(self, reason: str) -> None:
        """Count a frame that could not be used (malformed, unsupported encoding); goals that then find no
        image say why."""
        with self._cond:
            self.stats.frames_rejected += 1
            self.stats.last_drop, self.stats.last_drop_at = reason, time.monotonic()

    def submit(self, goal: Goal) -> None:
        """Queue ``goal``; past ``max_pending_goals`` the oldest pending goal is answered "superseded".

        A goal already known to be malformed (``goal.error``) is answered at once and never queued.
        """
        with self._cond:
            self.stats.goals_received += 1
            answer_now = self.schedule.submit(goal)
            self._cond.notify_all()
        for old, reason in answer_now:
            self._finish(old, None, self._failure(old, reason))

    def cancel(self, goal: Goal | None = None) -> list[Goal]:
        """Drop ``goal``, or every pending goal, each answered "cancelled"; a running goal finishes."""
        with self._cond:
            dropped = self.schedule.cancel(goal)
        for goal in dropped:
            self._finish(goal, None, self._failure(goal, CANCELLED, cancelled=True))
        return dropped

    def call_soon(self, request: Callable[[], None]) -> None:
        """Run ``request`` on the worker thread before its next job (what the jobs use is changed there only);
        at once when no worker thread runs."""
        with self._cond:
            if self._thread is not None:
                self._requests.append(request)
                self._cond.notify_all()
                return
        self._run_requests([request])

    def pending_goals(self) -> list[Goal]:
        with self._cond:
            return list(self.schedule.goals)

    @property
    def busy(self) -> bool:
        return self._busy is not None

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self.schedule.goals)

    def newest_frame(self) -> Frame | None:
        with self._cond:
            return self.schedule.frame

    def frame_age_s(self) -> float | None:
        """Seconds since the newest frame arrived (None before the first)."""
        frame = self.newest_frame()
        return None if frame is None else time.monotonic() - frame.received

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="segzero-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0, reason: str = "node deactivated before the goal ran") -> None:
        """Stop the thread and answer every goal still owed an answer with ``reason``: the queued ones at once,
        the running one when it does not finish within ``timeout`` (its late result is then never sent)."""
        with self._cond:
            self._stop, self._stop_reason = True, reason
            left = self.schedule.cancel()
            self._cond.notify_all()
        for goal in left:
            self._finish(goal, None, self._failure(goal, reason))
        thread = self._thread
        if thread is None:
            return
        thread.join(timeout)
        running = self._busy
        with self._cond:  # until here, call_soon still queues for the thread: it may be in a job
            self._thread = None
            requests = [] if thread.is_alive() else list(self._requests)
            self._requests.clear()
        self._run_requests(requests)
        if thread.is_alive() and running is not None:
            LOG.warning("goal %s still running after %.0f s; answering it now", running.id, timeout)
            self._finish(running, None, self._failure(running, reason))

    # --- worker thread ---------------------------------------------------------------------------

    def _next(self) -> tuple[list[Callable[[], None]], Run | NoImage | Track | None]:
        """Wait for the next thing to do: requests, a step of the schedule, or (both empty) stop."""
        with self._cond:
            while not self._stop:
                if self._requests:
                    requests = list(self._requests)
                    self._requests.clear()
                    return requests, None
                now = time.monotonic()
                step = self.schedule.next_step(now, self._on_idle_frame is not None and self.idle_frames)
                if isinstance(step, Wait):
                    self._busy = step.goal
                    self._cond.wait(step.deadline - now)
                elif step is None:
                    self._cond.wait()
                else:
                    self._busy = getattr(step, "goal", None)
                    return [], step
            waiting = self.schedule.release_waiting()
        if waiting is not None:  # stopped while it waited for a frame
            self._answer_ran(waiting, None, self._failure(waiting, self._stop_reason))
        self._busy = None
        return [], None

    def _loop(self) -> None:
        while True:
            requests, step = self._next()
            if requests:
                self._run_requests(requests)
            elif step is None:
                return
            elif isinstance(step, Track):
                try:
                    self._on_idle_frame(step.frame)
                except Exception:  # a failed tracking step must not stop goals
                    LOG.exception("idle-frame work failed")
            else:
                try:
                    self._handle(step)
                except Exception as exc:  # the worker must survive anything a goal does
                    LOG.exception("worker failed on goal %s", step.goal.id)
                    error = f"internal error: {type(exc).__name__}: {exc}"
                    self._answer_ran(step.goal, None, self._failure(step.goal, error))
                finally:
                    self._busy = None

    @staticmethod
    def _run_requests(requests: list[Callable[[], None]]) -> None:
        for request in requests:
            try:
                request()
            except Exception:  # a failed request must not stop goals
                LOG.exception("worker request failed")

    def _handle(self, step: Run | NoImage) -> None:
        if isinstance(step, Run):
            self._answer_ran(step.goal, step.frame, self._run(step.frame, step.goal))
            return
        reason = step.reason
        stats, window = self.stats, 2 * self.schedule.image_timeout_s
        if step.no_frame and stats.last_drop and stats.last_drop_at >= time.monotonic() - window:
            reason += f"; frames arrive but are dropped: {stats.last_drop}"
        self._answer_ran(step.goal, None, self._failure(step.goal, reason))

    def _answer_ran(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        """The answer of a goal the worker took from the queue, then ``after_goal`` (unless ``stop`` answered the
        goal already: its track state is being released)."""
        if self._finish(goal, frame, result) and self._after_goal is not None:
            self._after_goal(goal, frame, result)

    def _finish(self, goal: Goal, frame: Frame | None, result: Result) -> bool:
        """Send ``goal``'s one answer; any later one (a run that outlived ``stop``) is dropped here (False)."""
        with self._answer_lock:
            if goal.answered:
                LOG.info("goal %s was already answered; its late result is not sent", goal.id)
                return False
            goal.answered = True
        if result.ok:
            self.stats.goals_ok += 1
        else:
            self.stats.goals_failed += 1
        self.stats.latencies_ms.append((time.monotonic() - goal.received) * 1e3)
        try:
            self._on_result(goal, frame, result)
        except Exception:
            LOG.exception("publishing the result of goal %s failed", goal.id)
        return True
