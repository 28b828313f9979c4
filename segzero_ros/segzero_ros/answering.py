"""How a goal is answered, for the live node and for ``segzero replay`` alike (no ROS here).

The node (ROS time, a worker thread, publishers) and replay (virtual time, a bag writer) both hand their goals
and frames to one ``Answering``: it runs the models on a frame, builds every failure result (one place, the
configured protocol), publishes each answer through the outputs it is given, and makes the tracking decisions
(a successful goal's targets join the tracked set, the oldest goal leaving it beyond ``tracking.max_goals``; a
failed goal ends nothing; every newer frame is tracked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from segzero_ros.goals import Goal
from segzero_ros.image_codec import ImageConversionError, stamp_seconds, to_rgb8
from segzero_ros.pipeline import Result
from segzero_ros.tracking_loop import TrackingLoop, TrackUpdate

SUPERSEDED = "superseded by newer goals (queue full)"
CANCELLED = "cancelled"


class AnswerOutputs(Protocol):
    """Where answers go: ``ros.outputs.Outputs`` (publishers of the node, or of replay's output bag)."""

    def answer(
        self, frame: Any, result: Result, reacquired: bool = False, overlay: bool = True, tracked_names=None
    ) -> tuple[Any, Any]:
        """Publish one goal's answer (``tracked_names``: the ``label_info`` entries of the goals tracked beside it);
        (the typed result, the image publishing time in ms or None)."""

    def tracked(self, header: Any, update: TrackUpdate) -> None:
        """Publish one tracked frame's masks and status."""

    def track_status(self, status: dict[str, Any]) -> None:
        """Publish a ``tracking_status`` (e.g. a track ended)."""


def failure(goal: Goal, reason: str, protocol: str = "segzero", image_wh=(0, 0), cancelled: bool = False) -> Result:
    """The result of a goal that was not answered by the models: refused, superseded, cancelled, no image, ...;
    its protocol is the goal's (``multi``) or the configured one."""
    text = goal.text if isinstance(goal.text, str) else repr(goal.text)
    return Result(
        goal=text,
        goal_id=goal.id,
        protocol="multi" if goal.multi else protocol,
        image_wh=image_wh,
        error=reason,
        cancelled=cancelled,
    )


class Answering:
    """The models, the outputs and the track of one node (or replay); see the module docstring.

    Not thread-safe by itself: the node calls ``run``, ``answered``, ``track`` and ``end_track`` from its worker
    thread only (other threads hand it work through the worker), replay from its one loop.
    """

    def __init__(
        self,
        pipeline: Any,
        outputs: AnswerOutputs,
        tracking: TrackingLoop | None = None,
        protocol: Callable[[], str] = lambda: "segzero",
    ) -> None:
        self.pipeline, self.outputs, self.tracking = pipeline, outputs, tracking
        self._protocol = protocol  # the configured reasoner.protocol, read when a failure is built

    def failure(self, goal: Goal, reason: str, image_wh=(0, 0), cancelled: bool = False) -> Result:
        return failure(goal, reason, self._protocol(), image_wh, cancelled)

    def run(self, frame: Any, goal: Goal, on_stage=None, on_text=None) -> Result:
        """The models on ``frame`` (a ``worker.Frame``) for ``goal``; a frame that cannot be read is a failure."""
        try:
            rgb = to_rgb8(frame.array, frame.encoding)
        except ImageConversionError as exc:
            return self.failure(goal, str(exc), (frame.array.shape[1], frame.array.shape[0]))
        return self.pipeline.run(rgb, goal.text, goal_id=goal.id, multi=goal.multi, on_stage=on_stage, on_text=on_text)

    def _will_track(self, goal: Goal, frame: Any, result: Result) -> bool:
        tracked = self.tracking is not None and not goal.untracked
        return tracked and result.ok and frame is not None and bool(result.targets)

    def publish(self, goal: Goal, frame: Any, result: Result, overlay: bool = True) -> tuple[Any, Any]:
        """Publish ``result`` (with ``frame``'s header and images when it ran on one); (typed result, publish ms).
        An answer about to be tracked carries the ``labels`` values its targets keep while tracked."""
        tracked_names: dict[int, str] = {}
        if self._will_track(goal, frame, result):
            if result.label_values is None:
                result.label_values = self.tracking.values_for(goal.id, len(result.targets))
            tracked_names = self.tracking.label_names(starting=goal.id)
        return self.outputs.answer(frame, result, goal.reacquired, overlay, tracked_names)

    def answered(self, goal: Goal, frame: Any, result: Result) -> str | None:
        """After the answer of a goal that was run: a successful one joins the tracked goals (the oldest leaves
        beyond ``max_goals``); a failed one ends nothing. Refused, superseded and cancelled goals never come here.
        Why tracking did not start when it should have (None otherwise)."""
        if not self._will_track(goal, frame, result):
            return None
        try:
            rgb = to_rgb8(frame.array, frame.encoding)
        except ImageConversionError as exc:
            return str(exc)
        ended = self.tracking.make_room(goal.id, rgb.shape[:2])
        if ended:
            self.outputs.track_status({"goals": ended})
        try:
            self.tracking.start(goal, rgb, stamp_seconds(frame.header), result.targets, result.label_values)
        except Exception as exc:  # SAM2 could not take the frame: the answer stands, untracked
            return f"{type(exc).__name__}: {exc}"
        return None

    @property
    def tracking_active(self) -> bool:
        return self.tracking is not None and self.tracking.active

    def end_track(self, why: str, goal_id: str | None = None) -> bool:
        """End ``goal_id``'s track (None: every track), its ``ended`` status published; whether one ran."""
        ended = self.tracking.end(why, goal_id) if self.tracking is not None else []
        if ended:
            self.outputs.track_status({"goals": ended})
        return bool(ended)

    def track(self, frame: Any) -> TrackUpdate | None:
        """One tracking step on a newer camera frame; the update (its ``reacquire`` goal to run when every target
        was lost), None when the frame is not tracked. ``publish_tracked`` sends it."""
        if self.tracking is None:
            return None
        rgb = lambda: to_rgb8(frame.array, frame.encoding)  # noqa: E731 - converted only when the frame is tracked
        return self.tracking.step(rgb, stamp_seconds(frame.header), frame.array.shape[:2])

    def publish_tracked(self, frame: Any, update: TrackUpdate) -> None:
        """The tracked frame's ``mask``, ``labels`` (with its header) and ``tracking_status``."""
        self.outputs.tracked(frame.header, update)


def no_image(timeout_s: float, source: str = "") -> str:
    """Why a goal failed: no usable frame arrived within ``image_timeout_s`` (from ``source``, when known)."""
    return f"no image received within {timeout_s:g} s" + (f" on {source}" if source else "")


def camera_silent(age_s: float, max_age_s: float) -> str:
    """Why a goal failed: the newest frame is older than ``image_max_age_s`` and no newer one came in time."""
    return f"camera silent for {age_s:.1f} s (no frame newer than image_max_age_s = {max_age_s:g} s)"
