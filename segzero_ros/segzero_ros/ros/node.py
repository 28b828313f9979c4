"""ROS 2 managed node ``segzero``: camera frames and language goals in; masks, reasoning and results out.

Wiring only: goals are parsed by ``goals``, scheduled by ``worker.GoalWorker``, answered by ``answering.Answering``
(the models built by ``build``, the tracking decisions; the same core ``segzero replay`` runs); messages come from
``ros.messages``, QoS from ``ros.qos``, the ``segment`` action from ``ros.segment_action``. Models load on configure
and are released on cleanup; subscriptions exist and the worker runs only while active. Every goal gets exactly one
``result``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from segzero_interfaces.msg import SegmentationResult
from std_msgs.msg import Empty, String

from segzero_ros import build, params
from segzero_ros.answering import Answering, failure
from segzero_ros.goals import Goal, checked_goal_from_cdr
from segzero_ros.pipeline import Pipeline, Result
from segzero_ros.ros import process, qos
from segzero_ros.ros.detections import MISSING, VISION_MSGS
from segzero_ros.ros.diagnostics import node_status
from segzero_ros.ros.frame_intake import FrameIntake
from segzero_ros.ros.messages import segmentation_msg
from segzero_ros.ros.outputs import Outputs
from segzero_ros.ros.params import declare
from segzero_ros.ros.segment_action import SegmentAction
from segzero_ros.worker import Frame, GoalWorker

SHUTTING_DOWN = "node shutting down before the goal ran"
DEACTIVATED = "node deactivated before the goal ran"
SHUTDOWN_WAIT_S = 3.0  # how long shutdown waits for a running goal (launch escalates to SIGTERM after 5 s)


def logged_transition(callback: Callable[..., TransitionCallbackReturn]) -> Callable[..., TransitionCallbackReturn]:
    """A lifecycle callback whose exception reaches the log with its traceback (rclpy turns it into ERROR and
    says nothing)."""

    @functools.wraps(callback)
    def transition(node: SegZeroNode, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return callback(node, state)
        except Exception as exc:
            node.get_logger().error(f"{callback.__name__} failed: {process.describe_exception(exc)}")
            raise

    return transition


class SegZeroNode(LifecycleNode):
    """Managed node: see the module docstring and the README's topic table."""

    def __init__(self, name: str = "segzero", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        declare(self, params.PARAMETERS, self._apply_live)
        self._max_image_size = int(self.value("max_image_size"))  # read per frame: kept out of the parameter API
        self.pipeline: Pipeline | None = None
        self.outputs: Outputs | None = None
        self.worker: GoalWorker | None = None
        self.answering: Answering | None = None  # the models, outputs and track (configure to cleanup)
        self.action: SegmentAction | None = None  # from the first activation to cleanup
        self.intake: FrameIntake | None = None  # the camera subscription (while active)
        self._subs: list[Any] = []  # goal and cancel subscriptions (while active)
        self._state, self._error = "unconfigured", ""
        self._models: dict[str, str] = {}
        self._callback_errors, self._last_callback_error = 0, ""
        # Diagnostics run in every lifecycle state, so a node whose models failed to load says why.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.value("diagnostics_period_s"), self._publish_diagnostics)

    def value(self, name: str) -> Any:
        return self.get_parameter(name).value

    def values(self) -> dict[str, Any]:
        return {p.name: self.value(p.name) for p in params.PARAMETERS}

    def _apply_live(self, name: str, value: Any) -> None:
        """A validated parameter change reaches what uses it, as the parameter table says (``Param.applies_to``);
        read-only ones never get here, and what is configured later reads the parameter then."""
        target = params.BY_NAME[name].applies_to
        if not target:
            return  # read each time it is used
        owner_name, _, attribute = target.partition(".")
        tracking = self.answering.tracking if self.answering is not None else None
        owner = {
            "node": self,
            "schedule": self.worker.schedule if self.worker is not None else None,
            "pipeline": self.pipeline,
            "reasoner": self.pipeline.reasoner if self.pipeline is not None else None,
            "tracking": tracking,
            "tracker": tracking.tracker if tracking is not None else None,
        }[owner_name]
        if owner is None:
            return
        if owner_name == "reasoner":
            owner.update({attribute: value})
        elif owner_name in ("tracking", "tracker"):  # the worker thread's state: changed there, between two steps
            self.worker.call_soon(lambda: setattr(owner, attribute, value))
        else:
            setattr(owner, attribute, type(getattr(owner, attribute))(value))

    # --- process (ros.process.run) ----------------------------------------------------------------

    def start(self) -> None:
        """With ``autostart``: configure and activate (a failed configure leaves the node unconfigured)."""
        if not self.value("autostart"):
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error(
                "configure failed; the node stays unconfigured. The model parameters are read-only: restart the node "
                "with other ones (e.g. -p reasoner.model:=/path/to/model), or fix the cause and "
                f"ros2 lifecycle set {self.get_fully_qualified_name()} configure"
            )
        else:
            self.trigger_activate()

    def finish(self, spin: Callable[[float, Callable[[], bool]], None]) -> None:
        """The lifecycle shutdown (every owed goal answered, models released), then the callbacks that send the
        action results, while the context is still valid."""
        if self._state_machine.current_state[0] != State.PRIMARY_STATE_FINALIZED:
            self.trigger_shutdown()
        spin(2.0, lambda: self.action is None or not self.action.in_flight)
        spin(0.2, lambda: False)  # the action server's own result responses

    def destroy_node(self) -> None:
        """The action server and the lifecycle state machine too: rclpy's ``destroy_node`` leaves both, and each
        keeps the DDS participant alive, whose shared-memory segment (35 MB) would then outlive the process."""
        if self.action is not None:
            self.action.destroy()
            self.action = None
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()

    def callback_failed(self, exc: BaseException) -> None:
        """A callback raised: log it with its traceback, count it; the node keeps serving."""
        self._callback_errors += 1
        self._last_callback_error = f"{type(exc).__name__}: {exc}"[:300]
        self.get_logger().error(f"a callback failed (the node keeps serving): {process.describe_exception(exc)}")

    # --- lifecycle -------------------------------------------------------------------------------

    @logged_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self.values()
        self._state = "loading"
        try:
            models = build.resolve(build.given_in(values), values["preset"])
            self.get_logger().info(
                f"loading models: reasoner {models['reasoner.model']} ({models['reasoner.backend']}), SAM2 "
                f"{models['segmenter.model']} ({models['segmenter.backend']})"
                + (" — the tiny ones are built on first use (minutes)" if build.TINY in models.values() else "")
            )
            self.pipeline = build.build_pipeline(models, values["max_goal_chars"])
        except Exception as exc:
            self._state, self._error = "error", f"model loading failed: {exc}"
            self.get_logger().error(self._error)
            return TransitionCallbackReturn.FAILURE
        reasoner, segmenter = self.pipeline.reasoner, self.pipeline.segmenter
        if getattr(reasoner, "health", None) is not None:  # a reasoner on a server: watch it for diagnostics
            reasoner.health.start()
        self._models = {"reasoner": reasoner.config.model, "segmenter": segmenter.description}
        self.get_logger().info(f"models ready: reasoner {reasoner.description}, segmenter: {segmenter.description}")
        self.outputs = Outputs(self, self._models, values["outputs_best_effort"], values["labels_encoding"])
        if VISION_MSGS is None:
            self.get_logger().warning(MISSING)
        tracking = None
        if values["tracking.enabled"]:
            min_score = build.tracking_min_score(models, values["tracking.min_score"])
            if min_score != values["tracking.min_score"]:
                self.set_parameters([Parameter("tracking.min_score", value=min_score)])
                self.get_logger().info(f"tiny SAM2: tracking.min_score {min_score:g} (its scores mean nothing)")
            try:
                tracking = build.build_tracking({**values, **models}, min_score)
                size, goals = tracking.tracker.model.image_size, tracking.max_goals
                self.get_logger().info(f"tracking ready: SAM2 memory at a {size}² input, up to {goals} goals at once")
            except Exception as exc:  # tracking is an extra: the node serves goals without it
                self.get_logger().warning(f"tracking disabled: its SAM2 did not load ({exc})")
        self.answering = Answering(self.pipeline, self.outputs, tracking, lambda: self.value("reasoner.protocol"))
        self.worker = GoalWorker(
            self._run,
            self._publish_result,
            max_pending_goals=values["max_pending_goals"],
            image_timeout_s=values["image_timeout_s"],
            on_idle_frame=self._track_frame,
            max_frame_age_s=values["image_max_age_s"],
            after_goal=self._after_goal,
            image_source=lambda: self.intake.describe() if self.intake is not None else "no image subscription",
            failure=self.answering.failure,
        )
        self._state, self._error = "ready", ""
        return super().on_configure(state)

    @logged_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        image_qos = qos.SENSOR_DATA if self.value("image_qos") == "sensor_data" else qos.RELIABLE_LATEST
        compressed = self.value("compressed_input")
        self.intake = FrameIntake(self, self.worker, compressed, image_qos, lambda: self._max_image_size)
        # Raw: goal bytes are decoded here, so invalid UTF-8 becomes an error result instead of an exception.
        self._subs.append(self.create_subscription(String, "goal", self._on_goal, qos.GOAL_QOS, raw=True))
        self._subs.append(self.create_subscription(Empty, "cancel", self._on_cancel, qos.GOAL_QOS))
        self._subs.append(self.create_subscription(String, "end_track", self._on_end_track, qos.GOAL_QOS))
        if self.action is None:  # kept while inactive, so results of goals answered then still go out
            limits = lambda: (int(self.value("max_goal_chars")), self._max_image_size)  # noqa: E731
            self.action = SegmentAction(self, limits, self._submit_action, self._cancel_goal, self._refusal)
        self.action.accepting = True
        self.worker.start()
        image, goal, action = (self.resolve_topic_name(n) for n in (self.intake.topic, "goal", "segment"))
        self.get_logger().info(f"active: waiting for images on {image} and goals on {goal} or the {action} action")
        return super().on_activate(state)

    @logged_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing(DEACTIVATED)
        name = self.get_fully_qualified_name()
        self.get_logger().info(f"inactive: no frames or goals taken (ros2 lifecycle set {name} activate resumes)")
        return super().on_deactivate(state)

    @logged_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("unconfigured: models released")
        if self.action is not None:
            self.action.destroy()
            self.action = None
        return super().on_cleanup(state)

    @logged_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        # The action server stays until the node is destroyed: results of the goals answered here still go out.
        self._stop_processing(SHUTTING_DOWN, timeout=SHUTDOWN_WAIT_S)
        self._release()
        return super().on_shutdown(state)

    def _stop_processing(self, reason: str, timeout: float = 30.0) -> None:
        """Stop taking work and answer every goal owed an answer with ``reason``: goals already delivered to the
        goal subscription but not yet taken, queued goals, and the running goal if it outlasts ``timeout``."""
        if self.action is not None:
            self.action.accepting = False
        if self.intake is not None:
            self.destroy_subscription(self.intake.subscription)
            self.intake = None
        for sub in self._subs:
            self._drain(sub)
            self.destroy_subscription(sub)
        self._subs = []
        if self.worker is not None:
            self.worker.stop(timeout=timeout, reason=reason)  # answers pending goals, action goals included

    def _drain(self, sub: Any) -> None:
        """Run ``sub``'s callback on every message its reader already holds (so none is lost with it)."""
        while True:
            try:
                with sub.handle:
                    taken = sub.handle.take_message(sub.msg_type, sub.raw)
            except Exception as exc:
                self.callback_failed(exc)
                return
            if taken is None:
                return
            sub.callback(taken[0])

    def _release(self) -> None:
        if self.outputs is not None:
            self.outputs.close()  # answers just sent reach their readers before the writers go
            self.outputs = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self.answering, self.worker, self._state = None, None, "unconfigured"

    # --- goals and cancels ----------------------------------------------------------------------

    def _on_goal(self, data: bytes) -> None:
        goal = checked_goal_from_cdr(data, int(self.value("max_goal_chars")))  # never raises: errors are answers
        self.get_logger().info(goal.describe())
        self.worker.submit(goal)

    def _on_cancel(self, _msg: Empty) -> None:
        self.worker.call_soon(lambda: self._end_track("cancelled"))
        dropped = self.worker.cancel()
        self.get_logger().info(f"cancel: {len(dropped)} pending goal(s) dropped")

    def _on_end_track(self, msg: String) -> None:
        goal_id = msg.data.strip() or None  # empty: every track
        self.worker.call_soon(lambda: self._end_track("ended on request", goal_id))

    # --- the `segment` action (ros.segment_action): the same worker and rules as topic goals -------

    def _submit_action(self, goal: Goal) -> bool:
        worker = self.worker
        if worker is None:
            return False
        waiting = goal.frame is None and worker.newest_frame() is None
        self.action.feedback(goal, "waiting_for_image" if waiting else "queued")
        worker.submit(goal)
        return True

    def _cancel_goal(self, goal: Goal) -> bool:
        """Drop ``goal`` while queued; once it runs, its answer stands and its targets are not tracked."""
        if self.worker is None:
            return False
        if self.worker.cancel(goal):
            return True
        goal.untracked = True
        self.worker.call_soon(lambda: self._end_track("cancelled", goal.id))
        return True

    def _refusal(self, goal: Goal) -> SegmentationResult:
        error = goal.error or DEACTIVATED
        result = self.answering.failure(goal, error) if self.answering else failure(goal, error)
        return segmentation_msg(result, None, self._models)

    # --- worker thread: goals through the answering core (answering.Answering) ---------------------------

    def _run(self, frame: Frame, goal: Goal) -> Result:
        stage = self.action.feedback if self.action is not None else (lambda *_: None)
        return self.answering.run(
            frame,
            goal,
            on_stage=lambda name: stage(goal, name),
            on_text=self.outputs.partial_reasoning(
                goal.id, float(self.value("reasoning_partial_hz")), lambda think: stage(goal, "reasoning", think)
            ),
        )

    def _publish_result(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        typed, publish_ms = self.answering.publish(goal, frame, result, self.value("publish_overlay"))
        if publish_ms is not None:
            self.worker.stats.publish_ms.append(publish_ms)
        if self.action is not None:
            self.action.resolve(goal, typed)
        summary = f"goal {result.goal_id}: {result.status}" + (f" ({result.error})" if result.error else "")
        summary += f" in {result.timings_ms.get('total_ms', 0):.0f} ms"
        if result.ok:  # one call site per severity: rclpy refuses to change a call site's severity
            self.get_logger().info(summary)
        else:
            self.get_logger().warning(summary)

    # --- tracking: owned by the worker thread; other threads hand it worker.call_soon ------------------------

    def _after_goal(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        """After the answer of a goal the worker ran (never a refused, superseded or cancelled one)."""
        failed = self.answering.answered(goal, frame, result)
        if failed:
            self.get_logger().warning(f"goal {goal.id}: tracking not started ({failed})")
        self.worker.idle_frames = self.answering.tracking_active

    def _end_track(self, why: str, goal_id: str | None = None) -> None:
        if self.answering is not None and self.answering.end_track(why, goal_id):
            self.get_logger().info(f"track of {goal_id or 'every goal'} ended: {why}")
        if self.worker is not None:
            self.worker.idle_frames = self.answering is not None and self.answering.tracking_active

    def _track_frame(self, frame: Frame) -> None:
        """One tracking step on a new camera frame: mask, labels and ``tracking_status`` with its header."""
        update = self.answering.track(frame)
        if not self.answering.tracking_active:
            self.worker.idle_frames = False
        if update is None:
            return
        self.answering.publish_tracked(frame, update)
        for goal in update.reacquire:
            self.get_logger().info(f"goal {goal.id}: targets lost, reasoning again on the newest frame")
            self.worker.submit(goal)

    # --- diagnostics -----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        self._diag_pub.publish(node_status(self))


def main(argv: list[str] | None = None) -> NoReturn:
    """Console script ``segzero_node``: run the node until SIGINT or SIGTERM, answer what it owes, exit."""
    process.run(SegZeroNode, argv)


if __name__ == "__main__":
    main()
