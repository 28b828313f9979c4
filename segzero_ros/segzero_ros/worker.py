"""Goal scheduling for the node, free of ROS: the newest frame, a bounded goal queue, one worker thread.

Callbacks only call ``offer_frame`` / ``submit`` / ``cancel`` / ``call_soon`` (cheap, never block on a model).
The worker thread takes the oldest pending goal, waits up to ``image_timeout_s`` for a frame no older than
``max_frame_age_s`` if there is none, runs the pipeline on the newest frame and hands every goal exactly one
``Result`` through ``on_result``, whatever happens: supersession, cancel, stop, a failing run. State that the
worker's jobs use (the node's track) is owned by the worker thread: other threads change it with ``call_soon``.
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

from segzero_ros.answering import CANCELLED, SUPERSEDED, camera_silent, failure, no_image
from segzero_ros.goals import Goal
from segzero_ros.pipeline import Result

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
        image_source: Callable[[], str] | None = None,
        failure: Callable[..., Result] = failure,
    ) -> None:
        self._run = run
        self._on_result = on_result
        # Called in the worker thread after the answer of every goal the worker took from the queue and ran
        # (refused, superseded and cancelled goals never get here): the node ends or starts its track there.
        self._after_goal = after_goal
        self._image_source = image_source  # where frames come from, for "no image" answers (e.g. topic, publishers)
        self._failure = failure  # (goal, reason, cancelled=False) -> the goal's failed Result (answering.failure)
        # Called in the worker thread with each new frame while no goal is pending and ``idle_frames`` is set
        # (the node tracks its last goal's targets this way); frames that come faster are skipped, never queued.
        # Set ``idle_frames`` from the worker thread only (a job, ``after_goal`` or a ``call_soon`` request).
        self._on_idle_frame = on_idle_frame
        self.idle_frames = False
        self.max_pending_goals = max_pending_goals
        self.image_timeout_s = image_timeout_s
        self.max_frame_age_s = max_frame_age_s  # 0: any frame, however old
        self.stats = WorkerStats()
        self._cond = threading.Condition()
        self._answer_lock = threading.Lock()
        self._frame: Frame | None = None
        self._frame_used = True
        self._goals: collections.deque[Goal] = collections.deque()
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
            if not self._frame_used:
                self.stats.frames_replaced += 1
            self._frame, self._frame_used = frame, False
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
        if goal.error:
            with self._cond:
                self.stats.goals_received += 1
            self._finish(goal, None, self._failure(goal, goal.error))
            return
        superseded = []
        with self._cond:
            self.stats.goals_received += 1
            self._goals.append(goal)
            while len(self._goals) > self.max_pending_goals:
                superseded.append(self._goals.popleft())
            self._cond.notify_all()
        for old in superseded:
            self._finish(old, None, self._failure(old, SUPERSEDED))

    def cancel(self, goal: Goal | None = None) -> list[Goal]:
        """Drop ``goal``, or every pending goal, each answered "cancelled"; a running goal finishes."""
        with self._cond:
            dropped = [g for g in self._goals if goal is None or g is goal]
            self._goals = collections.deque(g for g in self._goals if not any(g is d for d in dropped))
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
            return list(self._goals)

    @property
    def busy(self) -> bool:
        return self._busy is not None

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._goals)

    def newest_frame(self) -> Frame | None:
        with self._cond:
            return self._frame

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
            left = list(self._goals)
            self._goals.clear()
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

    def _idle_frame_ready(self) -> bool:
        return self._on_idle_frame is not None and self.idle_frames and not self._frame_used

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._requests and not self._goals and not self._stop and not self._idle_frame_ready():
                    self._cond.wait()
                if self._stop:
                    return
                requests, goal, frame = list(self._requests), None, None
                self._requests.clear()
                if not requests and self._goals:
                    goal = self._busy = self._goals.popleft()
                elif not requests:
                    frame, self._frame_used = self._frame, True
            if requests:
                self._run_requests(requests)
            elif goal is not None:
                try:
                    self._handle(goal)
                except Exception as exc:  # the worker must survive anything a goal does
                    LOG.exception("worker failed on goal %s", goal.id)
                    error = f"internal error: {type(exc).__name__}: {exc}"
                    self._answer_ran(goal, None, self._failure(goal, error))
                finally:
                    self._busy = None
            else:
                try:
                    self._on_idle_frame(frame)
                except Exception:  # a failed tracking step must not stop goals
                    LOG.exception("idle-frame work failed")

    @staticmethod
    def _run_requests(requests: list[Callable[[], None]]) -> None:
        for request in requests:
            try:
                request()
            except Exception:  # a failed request must not stop goals
                LOG.exception("worker request failed")

    def _fresh(self, frame: Frame | None) -> bool:
        return frame is not None and (
            self.max_frame_age_s <= 0 or time.monotonic() - frame.received <= self.max_frame_age_s
        )

    def _handle(self, goal: Goal) -> None:
        if goal.frame is not None:
            self._answer_ran(goal, goal.frame, self._run(goal.frame, goal))
            return
        start = time.monotonic()
        deadline = start + self.image_timeout_s
        with self._cond:
            while not self._fresh(self._frame) and not self._stop and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            frame = self._frame
            fresh = self._fresh(frame)
            if fresh:
                self._frame_used = True
        if not fresh:
            reason = self._stop_reason if self._stop else self._no_image_reason(frame, start)
            self._answer_ran(goal, None, self._failure(goal, reason))
            return
        self._answer_ran(goal, frame, self._run(frame, goal))

    def _answer_ran(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        """The answer of a goal the worker took from the queue, then ``after_goal`` (unless ``stop`` answered the
        goal already: its track state is being released)."""
        if self._finish(goal, frame, result) and self._after_goal is not None:
            self._after_goal(goal, frame, result)

    def _no_image_reason(self, frame: Frame | None, since: float) -> str:
        if frame is not None:
            return camera_silent(time.monotonic() - frame.received, self.max_frame_age_s)
        reason = no_image(self.image_timeout_s, self._image_source() if self._image_source is not None else "")
        stats = self.stats
        if stats.last_drop and stats.last_drop_at >= since - self.image_timeout_s:
            reason += f"; frames arrive but are dropped: {stats.last_drop}"
        return reason

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
