"""Goal scheduling for the node, free of ROS: the newest frame, a bounded goal queue, one worker thread.

Callbacks only call ``offer_frame`` / ``submit`` / ``cancel`` (cheap, never block on a model). The worker
thread takes the oldest pending goal, waits up to ``image_timeout_s`` for a frame if none has arrived,
runs the pipeline on the newest frame and hands every goal exactly one ``Result`` through ``on_result``.
"""

from __future__ import annotations

import collections
import json
import logging
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
class Goal:
    """A request: text, id, optional protocol choice (multi) and when it arrived."""

    text: Any
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    multi: bool | None = None
    received: float = field(default_factory=time.monotonic)
    error: str | None = None  # set when the goal was malformed before it reached the queue
    frame: Frame | None = None  # the image to use instead of the newest camera frame (action goals)
    reacquired: bool = False  # run again by the tracker after its targets were lost


@dataclass
class WorkerStats:
    """Counters for diagnostics."""

    frames_received: int = 0
    frames_dropped: int = 0
    goals_received: int = 0
    goals_ok: int = 0
    goals_failed: int = 0
    latencies_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    callback_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))
    publish_ms: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))

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
        failure: Callable[[Goal, str], Result] | None = None,
        on_idle_frame: Callable[[Frame], None] | None = None,
    ) -> None:
        self._run = run
        self._on_result = on_result
        # Called in the worker thread with each new frame while no goal is pending and ``idle_frames`` is set
        # (the node tracks its last goal's targets this way); frames that come faster are skipped, never queued.
        self._on_idle_frame = on_idle_frame
        self.idle_frames = False
        self._failure = failure or _failed_result
        self.max_pending_goals = max_pending_goals
        self.image_timeout_s = image_timeout_s
        self.stats = WorkerStats()
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._frame_used = True
        self._goals: collections.deque[Goal] = collections.deque()
        self._busy: Goal | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- called from callbacks (cheap) ----------------------------------------------------------

    def offer_frame(self, frame: Frame) -> None:
        """Keep ``frame`` as the newest; a frame replaced before any goal used it counts as dropped."""
        with self._cond:
            self.stats.frames_received += 1
            if not self._frame_used:
                self.stats.frames_dropped += 1
            self._frame, self._frame_used = frame, False
            self._cond.notify_all()

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
            self._finish(old, None, self._failure(old, "superseded by newer goals (queue full)"))

    def cancel(self, goal: Goal | None = None) -> list[Goal]:
        """Drop ``goal``, or every pending goal, each answered "cancelled"; a running goal finishes."""
        with self._cond:
            dropped = [g for g in self._goals if goal is None or g is goal]
            self._goals = collections.deque(g for g in self._goals if not any(g is d for d in dropped))
        for goal in dropped:
            self._finish(goal, None, self._failure(goal, "cancelled"))
        return dropped

    def pending_goals(self) -> list[Goal]:
        with self._cond:
            return list(self._goals)

    def is_running(self, goal: Goal) -> bool:
        return self._busy is goal

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

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="segzero-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread; pending goals are answered "node shutting down"."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._cond:
            left = list(self._goals)
            self._goals.clear()
        for goal in left:
            self._finish(goal, None, self._failure(goal, "node deactivated before the goal ran"))

    # --- worker thread ---------------------------------------------------------------------------

    def _idle_frame_ready(self) -> bool:
        return self._on_idle_frame is not None and self.idle_frames and not self._frame_used

    def wake(self) -> None:
        """Re-check for work (after ``idle_frames`` changed)."""
        with self._cond:
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._goals and not self._stop and not self._idle_frame_ready():
                    self._cond.wait()
                if self._stop:
                    return
                if not self._goals:
                    frame, self._frame_used = self._frame, True
                    goal = None
                else:
                    goal = self._goals.popleft()
                    self._busy = goal
            if goal is None:
                try:
                    self._on_idle_frame(frame)
                except Exception:  # a failed tracking step must not stop goals
                    LOG.exception("idle-frame work failed")
                continue
            try:
                self._handle(goal)
            except Exception as exc:  # the worker must survive anything a goal does
                LOG.exception("worker failed on goal %s", goal.id)
                self._finish(goal, None, self._failure(goal, f"internal error: {type(exc).__name__}: {exc}"))
            finally:
                self._busy = None

    def _handle(self, goal: Goal) -> None:
        if goal.error:
            self._finish(goal, None, self._failure(goal, goal.error))
            return
        if goal.frame is not None:
            self._finish(goal, goal.frame, self._run(goal.frame, goal))
            return
        deadline = time.monotonic() + self.image_timeout_s
        with self._cond:
            while self._frame is None and not self._stop and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            frame = self._frame
            self._frame_used = True
        if frame is None:
            self._finish(goal, None, self._failure(goal, f"no image received within {self.image_timeout_s:g} s"))
            return
        self._finish(goal, frame, self._run(frame, goal))

    def _finish(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        if result.ok:
            self.stats.goals_ok += 1
        else:
            self.stats.goals_failed += 1
        self.stats.latencies_ms.append((time.monotonic() - goal.received) * 1e3)
        try:
            self._on_result(goal, frame, result)
        except Exception:
            LOG.exception("publishing the result of goal %s failed", goal.id)


def _failed_result(goal: Goal, reason: str) -> Result:
    text = goal.text if isinstance(goal.text, str) else repr(goal.text)
    return Result(
        goal=text, goal_id=goal.id, protocol="multi" if goal.multi else "segzero", image_wh=(0, 0), error=reason
    )


GOAL_FIELDS = {"id", "text", "multi"}


def goal_from_message(data: str, max_chars: int = 10_000) -> Goal:
    """A ``Goal`` from a goal topic's text: plain text, or JSON ``{"id", "text", "multi"}``.

    A malformed message still gives a ``Goal`` (with ``error`` set), so it is answered like any other.
    """
    if len(data) > max_chars:
        return Goal(text=data[:80] + "…", error=f"goal message too long: {len(data)} characters (limit {max_chars})")
    stripped = data.strip()
    if not stripped.startswith("{"):
        return Goal(text=data)
    try:
        fields = json.loads(stripped)
    except ValueError as exc:
        return Goal(text=data, error=f"malformed JSON goal: {exc}")
    if not isinstance(fields, dict):
        return Goal(text=data, error="JSON goal must be an object")
    goal_id = fields.get("id")
    goal = Goal(text=fields.get("text", ""), id=str(goal_id) if goal_id not in (None, "") else uuid.uuid4().hex[:12])
    multi = fields.get("multi")
    if multi is not None and not isinstance(multi, bool):
        goal.error = f"'multi' must be true or false, got {multi!r:.40}"
    goal.multi = multi if isinstance(multi, bool) else None
    unknown = sorted(set(fields) - GOAL_FIELDS)
    if unknown:
        goal.error = goal.error or f"unknown goal field(s): {', '.join(map(str, unknown))[:200]}"
    return goal


def string_from_cdr(data: bytes) -> bytes:
    """The payload bytes of a serialized ``std_msgs/String`` (CDR: 4-byte header, uint32 length, bytes, NUL)."""
    if len(data) < 8 or data[0] != 0 or data[1] not in (0, 1):
        raise ValueError("not a CDR-serialized string")
    (length,) = struct.unpack_from("<I" if data[1] == 1 else ">I", data, 4)
    if length == 0 or 8 + length > len(data):
        raise ValueError("CDR string length out of range")
    return bytes(data[8 : 8 + length - 1])


def goal_from_cdr(data: bytes, max_chars: int = 10_000) -> Goal:
    """A ``Goal`` from a serialized goal message, so that invalid UTF-8 gives an error result, not a crash."""
    try:
        payload = string_from_cdr(data)
    except ValueError as exc:
        return Goal(text="", error=f"malformed goal message: {exc}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Goal(text=payload[:80].decode("utf-8", "replace"), error=f"goal is not valid UTF-8: {exc.reason}")
    return goal_from_message(text, max_chars)
