"""ROS 2 managed node ``segzero``: camera frames and language goals in; masks, reasoning and results out.

The node only converts messages, schedules work (``worker.GoalWorker``) and publishes; the models live in
``pipeline.Pipeline``. Models load on configure and are released on cleanup; subscriptions exist and the
worker runs only while active. Every goal gets exactly one message on ``result``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, NoReturn

import cv2
import numpy as np
import rclpy
import rclpy.task
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from segzero_interfaces.action import Segment
from segzero_interfaces.msg import SegmentationResult
from segzero_interfaces.msg import Target as TargetMsg
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Empty, String

from segzero_ros import params
from segzero_ros.goals import Goal, goal_from_cdr
from segzero_ros.image_codec import (
    ImageConversionError,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_image,
    stamp_seconds,
    to_rgb8,
)
from segzero_ros.overlay import paint_overlay
from segzero_ros.pipeline import GoalError, Pipeline, Result, check_goal, label_image
from segzero_ros.reasoner import partial_think
from segzero_ros.ros import process
from segzero_ros.ros.diagnostics import StreamMonitor, diagnostic_array, level_of
from segzero_ros.ros.process import describe_exception
from segzero_ros.worker import Frame, GoalWorker, percentile

CANCELLED = "cancelled"  # the error of a goal dropped by a cancel before it ran
SHUTTING_DOWN = "node shutting down before the goal ran"
DEACTIVATED = "node deactivated before the goal ran"
SHUTDOWN_WAIT_S = 3.0  # how long shutdown waits for a running goal (launch escalates to SIGTERM after 5 s)
ANSWER_FLUSH_S = 1.0  # how long releasing the publishers waits for the last answers to be acknowledged
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Small answers (result JSON, reasoning): a history deep enough for a burst of superseded goals' answers.
RELIABLE_ANSWERS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Goals: a deep reader history, so a burst of goals is queued in full and each one gets its result.
GOAL_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
RELIABLE_LATEST = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
# The action's services: a request queue as deep as the goal topic's, so a burst of requests is never cut.
ACTION_SERVICE_QOS = GOAL_QOS
# The action's goal status: transient local as rclpy's default, but a history of 100 instead of 1. With depth 1,
# a burst of status changes under Fast DDS's asynchronous publication made publish fail ("cannot publish data":
# the one sample still in flight cannot be replaced) and the goal being accepted was lost.
ACTION_STATUS_QOS = QoSProfile(
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)


def _descriptor(param: params.Param) -> ParameterDescriptor:
    text = param.description + (f" (one of: {', '.join(map(repr, param.choices))})" if param.choices else "")
    desc = ParameterDescriptor(description=text, read_only=param.read_only)
    if param.low is not None and isinstance(param.default, int) and not isinstance(param.default, bool):
        desc.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=int(param.step))]
    elif param.low is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    return desc


def segmenter_config(values: dict[str, Any]):
    """The SAM2 the parameters name (``preset: tiny`` → the offline tiny SAM2)."""
    from segzero_ros.segmenter import SegmenterConfig

    if values["preset"] == "tiny":
        from segzero_ros.tiny import tiny_segmenter_config

        return tiny_segmenter_config(
            device="cpu", backend=values["segmenter.backend"], precision=values["segmenter.precision"]
        )
    return SegmenterConfig(
        backend=values["segmenter.backend"],
        precision=values["segmenter.precision"],
        model=values["segmenter.model"],
        config=values["segmenter.config"] or None,
        device=values["segmenter.device"],
        local_files_only=values["reasoner.local_files_only"],
    )


def build_tracker(values: dict[str, Any]):
    """SAM2 built for video, wrapped in a ``Tracker`` (PyTorch whatever the segmenter backend)."""
    from segzero_ros.reasoner import resolve_device
    from segzero_ros.tracker import Tracker, load_tracking_model

    config = segmenter_config(values)
    model = load_tracking_model(config, resolve_device(config.device), values["tracking.input_scale"])
    return Tracker(model, min_score=values["tracking.min_score"], lost_frames=values["tracking.lost_frames"])


def build_pipeline(values: dict[str, Any]) -> Pipeline:
    """Load the models the parameters name (``preset: tiny`` → the offline tiny models)."""
    from segzero_ros.reasoner import Reasoner, ReasonerConfig
    from segzero_ros.segmenter import make_segmenter

    tiny = values["preset"] == "tiny"
    remote = values["reasoner.backend"] == "openai"
    seg_config = segmenter_config(values)
    if tiny:
        from segzero_ros.tiny import TINY_IMAGE_SIZE, tiny_reasoner_path

        reasoner_model = "" if remote else str(tiny_reasoner_path())
        image_size = TINY_IMAGE_SIZE  # the size the tiny reasoner was fitted at
    else:
        reasoner_model, image_size = values["reasoner.model"], values["reasoner.image_size"]
    segmenter = make_segmenter(seg_config)  # first: the quicker of the two to fail on a bad configuration
    config = ReasonerConfig(
        model=values["reasoner.model"] if remote else reasoner_model,
        protocol=values["reasoner.protocol"],
        strict=values["reasoner.strict"],
        image_size=values["reasoner.image_size"] if remote else image_size,
        max_new_tokens=values["reasoner.max_new_tokens"],
        stop_at_answer=values["reasoner.stop_at_answer"],
        attn_implementation=values["reasoner.attn_implementation"],
        cache=values["reasoner.cache"],
        compile=values["reasoner.compile"],
        device="cpu" if tiny else values["reasoner.device"],
        dtype=values["reasoner.dtype"],
        local_files_only=tiny or values["reasoner.local_files_only"],
    )
    if remote:  # the reasoner on a shared server; preset tiny then only picks the tiny SAM2
        from segzero_ros.remote_reasoner import RemoteConfig, RemoteReasoner

        reasoner = RemoteReasoner(
            config,
            RemoteConfig(
                endpoint=values["reasoner.endpoint"],
                model=values["reasoner.api_model"],
                timeout_s=values["reasoner.timeout_s"],
                retries=values["reasoner.retries"],
                api_key_env=values["reasoner.api_key_env"],
            ),
        )
    else:
        reasoner = Reasoner(config)
    return Pipeline(reasoner, segmenter, max_goal_chars=values["max_goal_chars"])


def _ms(value: float | None, digits: int = 3) -> str:
    """A timing for diagnostics: fixed digits, empty when nothing was measured yet."""
    return "" if value is None else f"{value:.{digits}f}"


def result_json(result: Result, header: Any, models: dict[str, str], reacquired: bool = False) -> str:
    """The ``result`` topic's JSON: the pipeline summary plus the source frame's stamp and frame id."""
    summary = result.to_dict()
    if reacquired:
        summary["reacquired"] = True
    if header is not None:
        summary["stamp"] = {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}
        summary["frame_id"] = header.frame_id
    else:
        summary["stamp"], summary["frame_id"] = None, None
    summary["models"] = models
    return json.dumps(summary)


def segmentation_msg(
    result: Result, header: Any, models: dict[str, str], mask: Image | None = None, labels: Image | None = None
) -> SegmentationResult:
    """The ``segmentation`` topic's typed result: the source frame's header, targets, mask and labels.

    ``mask`` / ``labels``: the images already published for this result (made here when not given)."""
    msg = SegmentationResult(
        goal_id=result.goal_id,
        goal=result.goal,
        status="cancelled" if result.error == CANCELLED else result.status,
        error=result.error or "",
        reasoning=result.think or "",
        answer=result.text,
        protocol=result.protocol,
        reason_ms=float(result.timings_ms.get("reason_ms", 0.0)),
        segment_ms=float(result.timings_ms.get("segment_ms", 0.0)),
        total_ms=float(result.timings_ms.get("total_ms", 0.0)),
        reasoner_model=models.get("reasoner", ""),
        segmenter_model=models.get("segmenter", ""),
    )
    if header is not None:
        msg.header = header
    for k, target in enumerate(result.targets, start=1):
        has_mask = k <= len(result.masks)
        x1, y1, x2, y2 = (float(v) for v in target.bbox)
        msg.targets.append(
            TargetMsg(
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                points=[float(v) for point in target.points for v in point],
                score=float(result.scores[k - 1]) if has_mask else 0.0,
                area=int(result.masks[k - 1].sum()) if has_mask else 0,
                mask_index=min(k, 255) if has_mask else 0,
            )
        )
    if result.ok and result.masks:
        if mask is None or labels is None:
            mask, labels = mask_messages(result.labels(), header)
        msg.mask, msg.labels = mask, labels
    return msg


def without_images(msg: SegmentationResult) -> SegmentationResult:
    """``msg`` with empty ``mask`` and ``labels`` (a small action result for terminals)."""
    out = SegmentationResult()
    for name in msg.get_fields_and_field_types():
        if name not in ("mask", "labels"):
            setattr(out, name, getattr(msg, name))
    return out


def mask_messages(labels: np.ndarray, header: Any) -> tuple[Image, Image]:
    """``mask`` (mono8 255 on every target, 0 elsewhere) and ``labels`` (mono8 k on target k) from a label
    image, both with the source frame's header; each message's buffer is written once (no temporaries)."""
    labels_msg = numpy_to_image(labels, "mono8", header)
    mask_msg = numpy_to_image(labels, "mono8", header)
    view = image_to_numpy(mask_msg)  # a writable view of the message's own buffer
    cv2.threshold(view, 0, 255, cv2.THRESH_BINARY, dst=view)
    return mask_msg, labels_msg


class SegZeroNode(LifecycleNode):
    """Managed node: see the module docstring and the README's topic table."""

    def __init__(self, name: str = "segzero", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for param in params.PARAMETERS:
            self.declare_parameter(param.name, param.default, _descriptor(param))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._drop_logged: dict[str, float] = {}
        self._max_image_size = int(self.value("max_image_size"))  # read per frame: kept out of the parameter API
        self.pipeline: Pipeline | None = None
        self.worker: GoalWorker | None = None
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._action_server: ActionServer | None = None
        self.tracker: Any = None
        self._tracked: dict[str, Any] | None = None  # the goal whose targets are being tracked
        # Action goals in flight: the worker's Goal (by identity) -> (its goal handle, the future of its result).
        self._action_goals: dict[int, tuple[Any, rclpy.task.Future]] = {}
        self._state = "unconfigured"
        self._error = ""
        self._models: dict[str, str] = {}
        self._accepting = False  # action goals are accepted only while active
        self._image_monitor: StreamMonitor | None = None  # whether camera frames arrive (while active)
        self._callback_errors = 0
        self._last_callback_error = ""
        # Diagnostics run in every lifecycle state, so a node whose models failed to load says why.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(self.value("diagnostics_period_s"), self._publish_diagnostics)

    # --- parameters ------------------------------------------------------------------------------

    def value(self, name: str) -> Any:
        return self.get_parameter(name).value

    def values(self) -> dict[str, Any]:
        return {p.name: self.value(p.name) for p in params.PARAMETERS}

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        for change in changes:
            reason = params.validate(change.name, change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for change in changes:
            self._apply_live(change.name, change.value)
        return SetParametersResult(successful=True)

    def _apply_live(self, name: str, value: Any) -> None:
        if name == "max_image_size":
            self._max_image_size = int(value)
        if self.worker is not None and name == "image_timeout_s":
            self.worker.image_timeout_s = float(value)
        if self.worker is not None and name == "image_max_age_s":
            self.worker.max_frame_age_s = float(value)
        if self.worker is not None and name == "max_pending_goals":
            self.worker.max_pending_goals = int(value)
        if self.pipeline is not None:
            if name == "reasoner.protocol":
                self.pipeline.reasoner.config.protocol = value
            elif name == "reasoner.strict":
                self.pipeline.reasoner.config.strict = bool(value)
            elif name == "reasoner.max_new_tokens":
                self.pipeline.reasoner.config.max_new_tokens = int(value)
            elif name == "reasoner.stop_at_answer":
                self.pipeline.reasoner.config.stop_at_answer = bool(value)
            elif name == "max_goal_chars":
                self.pipeline.max_goal_chars = int(value)
            elif name == "tracking.min_score" and self.tracker is not None:
                self.tracker.min_score = float(value)
            elif name == "tracking.lost_frames" and self.tracker is not None:
                self.tracker.lost_frames = int(value)
            elif name in ("reasoner.timeout_s", "reasoner.retries") and hasattr(self.pipeline.reasoner, "remote"):
                setattr(self.pipeline.reasoner.remote, name.split(".")[1], value)

    # --- process (ros.process.run) ----------------------------------------------------------------

    def start(self) -> None:
        """With ``autostart``: configure and activate (a failed configure leaves the node unconfigured)."""
        if not self.value("autostart"):
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error("configure failed; the node stays unconfigured (fix and reconfigure)")
        else:
            self.trigger_activate()

    def finish(self, spin: Callable[[float, Callable[[], bool]], None]) -> None:
        """The lifecycle shutdown (every owed goal answered, models released), then the callbacks that send the
        action results, while the context is still valid."""
        if self._state_machine.current_state[0] != State.PRIMARY_STATE_FINALIZED:
            self.trigger_shutdown()
        spin(2.0, lambda: not self._action_goals)
        spin(0.2, lambda: False)  # the action server's own result responses

    def callback_failed(self, exc: BaseException) -> None:
        """A callback raised: log it with its traceback, count it; the node keeps serving."""
        self._callback_errors += 1
        self._last_callback_error = f"{type(exc).__name__}: {exc}"[:300]
        self.get_logger().error(f"a callback failed (the node keeps serving): {describe_exception(exc)}")

    # --- lifecycle -------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self.values()
        self._state = "loading"
        if values["preset"] == "tiny":
            self.get_logger().info("loading the offline tiny models (preset tiny; built on first use, minutes)")
        else:
            self.get_logger().info(
                f"loading models: reasoner {values['reasoner.model']} (device {values['reasoner.device']}), "
                f"SAM2 {values['segmenter.model']} ({values['segmenter.backend']}, device {values['segmenter.device']})"
            )
        try:
            self.pipeline = build_pipeline(values)
        except Exception as exc:
            self._state, self._error = "error", f"model loading failed: {type(exc).__name__}: {exc}"
            self.get_logger().error(self._error)
            return TransitionCallbackReturn.FAILURE
        reasoner, segmenter = self.pipeline.reasoner, self.pipeline.segmenter
        self._models = {"reasoner": reasoner.config.model, "segmenter": segmenter.description}
        self.get_logger().info(
            f"models ready: reasoner on {reasoner.device} ({reasoner.dtype}), segmenter: {segmenter.description}"
        )
        out_qos = BEST_EFFORT if values["outputs_best_effort"] else RELIABLE
        self._pubs = {
            "mask": self.create_lifecycle_publisher(Image, "mask", out_qos),
            "labels": self.create_lifecycle_publisher(Image, "labels", out_qos),
            "overlay": self.create_lifecycle_publisher(Image, "overlay", out_qos),
            "reasoning": self.create_lifecycle_publisher(String, "reasoning", RELIABLE_ANSWERS),
            "reasoning_partial": self.create_lifecycle_publisher(String, "reasoning_partial", RELIABLE_ANSWERS),
            "result": self.create_lifecycle_publisher(String, "result", RELIABLE_ANSWERS),
            "segmentation": self.create_lifecycle_publisher(SegmentationResult, "segmentation", RELIABLE),
            "tracking_status": self.create_lifecycle_publisher(String, "tracking_status", RELIABLE_ANSWERS),
        }
        if values["tracking.enabled"]:
            try:
                self.tracker = build_tracker(values)
                self.get_logger().info(f"tracking ready: SAM2 memory at a {self.tracker.model.image_size}² input")
            except Exception as exc:  # tracking is an extra: the node serves goals without it
                self.get_logger().warning(f"tracking disabled: its SAM2 did not load ({type(exc).__name__}: {exc})")
        self.worker = GoalWorker(
            self._run,
            self._publish_result,
            max_pending_goals=values["max_pending_goals"],
            image_timeout_s=values["image_timeout_s"],
            on_idle_frame=self._track_frame,
            max_frame_age_s=values["image_max_age_s"],
        )
        self._state, self._error = "ready", ""
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        image_qos = qos_profile_sensor_data if self.value("image_qos") == "sensor_data" else RELIABLE_LATEST
        topic, msg_type, callback = (
            ("image/compressed", CompressedImage, self._on_compressed)
            if self.value("compressed_input")
            else ("image", Image, self._on_image)
        )
        self._image_monitor = StreamMonitor(self, topic)
        events = self._image_monitor.event_callbacks()
        self._subs.append(self.create_subscription(msg_type, topic, callback, image_qos, event_callbacks=events))
        # Raw: goal bytes are decoded here, so invalid UTF-8 becomes an error result instead of an exception.
        self._subs.append(self.create_subscription(String, "goal", self._on_goal, GOAL_QOS, raw=True))
        self._subs.append(self.create_subscription(Empty, "cancel", self._on_cancel, GOAL_QOS))
        if self._action_server is None:  # kept while inactive, so results of goals answered then still go out
            self._action_server = ActionServer(
                self,
                Segment,
                "segment",
                execute_callback=self._execute_segment,
                goal_callback=self._on_action_request,
                cancel_callback=self._on_action_cancel,
                goal_service_qos_profile=ACTION_SERVICE_QOS,
                result_service_qos_profile=ACTION_SERVICE_QOS,
                cancel_service_qos_profile=ACTION_SERVICE_QOS,
                status_pub_qos_profile=ACTION_STATUS_QOS,
            )
        self._accepting = True
        self.worker.start()
        self.get_logger().info("active: waiting for images on 'image' and goals on 'goal' or the 'segment' action")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing(DEACTIVATED)
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        if self._action_server is not None:
            self._action_server.destroy()
            self._action_server = None
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        # The action server stays until the node is destroyed: results of the goals answered here still go out.
        self._stop_processing(SHUTTING_DOWN, timeout=SHUTDOWN_WAIT_S)
        self._release()
        return super().on_shutdown(state)

    def _stop_processing(self, reason: str, timeout: float = 30.0) -> None:
        """Stop taking work and answer every goal owed an answer with ``reason``: goals already delivered to the
        goal subscription but not yet taken, queued goals, and the running goal if it outlasts ``timeout``."""
        self._accepting = False
        self._image_monitor = None
        for sub in self._subs:
            if sub.msg_type is not Image and sub.msg_type is not CompressedImage:
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
        deadline = time.monotonic() + ANSWER_FLUSH_S
        for name in ("result", "segmentation"):  # answers just sent reach their readers before the writers go
            if name in self._pubs:
                left = max(deadline - time.monotonic(), 0.0)
                self._pubs[name].wait_for_all_acked(Duration(nanoseconds=int(left * 1e9)))
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self.tracker, self._tracked = None, None
        self.worker = None
        self._state = "unconfigured"

    # --- callbacks: convert and store, nothing more ----------------------------------------------

    def _on_image(self, msg: Image) -> None:
        self._offer(msg, lambda m, size: (image_to_numpy(m, max_size=size), m.encoding))

    def _on_compressed(self, msg: CompressedImage) -> None:
        def decode(m: CompressedImage, size: int) -> tuple[Any, str]:
            array = compressed_to_numpy(m, max_size=size)
            return array, "rgb8" if array.ndim == 3 else "mono8"

        self._offer(msg, decode)

    def _offer(self, msg: Any, decode: Any) -> None:
        """Decode ``msg`` into the worker's newest frame, or drop it with the reason."""
        t0 = time.perf_counter()
        try:
            array, encoding = decode(msg, self._max_image_size)
        except ImageConversionError as exc:
            self._drop_frame(str(exc))
            return
        self.worker.offer_frame(Frame(array=array, encoding=encoding, header=msg.header))
        if self._image_monitor is not None:
            self._image_monitor.frame()
        stamp = stamp_seconds(msg.header)
        if stamp:  # stamped by the camera's clock: transport latency as far as the two clocks agree
            self.worker.stats.receive_latency_ms.append((time.time() - stamp) * 1e3)
        self.worker.stats.callback_ms.append((time.perf_counter() - t0) * 1e3)

    def _drop_frame(self, reason: str) -> None:
        """Count the drop; log each distinct reason at most once per 5 s (a broken camera repeats itself)."""
        self.worker.note_dropped(reason)
        now = time.monotonic()
        if now - self._drop_logged.get(reason, -1e9) >= 5.0:
            if len(self._drop_logged) > 64:
                self._drop_logged.clear()
            self._drop_logged[reason] = now
            self.get_logger().warning(f"dropped a frame: {reason}")

    def _on_goal(self, data: bytes) -> None:
        max_chars = int(self.value("max_goal_chars"))
        goal = goal_from_cdr(data, max_chars)
        try:
            if goal.error is None:
                try:  # refuse unusable text now rather than after waiting in the queue
                    check_goal(goal.text, max_chars)
                except GoalError as exc:
                    goal.error = str(exc)
            self.get_logger().info(
                f"goal {goal.id}: {str(goal.text)[:120]!r}" + (f" ({goal.error})" if goal.error else "")
            )
        except Exception as exc:  # whatever went wrong, the goal is answered
            self.callback_failed(exc)
            goal.error = goal.error or f"internal error: {type(exc).__name__}: {exc}"
        self.worker.submit(goal)

    def _on_cancel(self, _msg: Empty) -> None:
        self._end_track("cancelled")
        dropped = self.worker.cancel()
        self.get_logger().info(f"cancel: {len(dropped)} pending goal(s) dropped")

    # --- the `segment` action: the same worker and rules as topic goals ----------------------------

    def _on_action_request(self, _request: Any) -> GoalResponse:
        """Accept while active (every accepted goal gets a result); refuse while inactive."""
        return GoalResponse.ACCEPT if self._accepting else GoalResponse.REJECT

    def _action_goal(self, request: Any) -> Goal:
        """A worker ``Goal`` from a ``Segment`` goal; an explicit image becomes its frame."""
        goal = Goal(text=request.goal, multi=True if request.multi else None)
        if request.goal_id:
            goal.id = request.goal_id
        try:
            check_goal(goal.text, int(self.value("max_goal_chars")))
        except GoalError as exc:
            goal.error = str(exc)
        if request.image.width or request.image.height or request.image.data:
            try:
                array = image_to_numpy(request.image, max_size=self._max_image_size)
                goal.frame = Frame(array=array, encoding=request.image.encoding, header=request.image.header)
            except ImageConversionError as exc:
                goal.error = goal.error or f"bad image in the goal: {exc}"
        return goal

    async def _execute_segment(self, handle: Any) -> Any:
        goal = self._action_goal(handle.request)
        worker = self.worker
        if worker is None or not self._accepting:  # deactivated between acceptance and execution
            goal.error = goal.error or DEACTIVATED
            msg = segmentation_msg(self._failure_result(goal), None, self._models)
        else:
            future = rclpy.task.Future(executor=self.executor)
            future.add_done_callback(lambda _f: None)  # a done callback makes set_result (worker thread) wake us
            self._action_goals[id(goal)] = (handle, future)
            waiting = goal.frame is None and worker.newest_frame() is None
            self._feedback(goal, "waiting_for_image" if waiting else "queued")
            self.get_logger().info(
                f"action goal {goal.id}: {str(goal.text)[:120]!r}" + (f" ({goal.error})" if goal.error else "")
            )
            worker.submit(goal)
            msg = await future
        if handle.request.omit_images:
            msg = without_images(msg)
        try:
            if msg.status == "ok":
                handle.succeed()
            elif msg.status == "cancelled" and handle.is_cancel_requested:
                handle.canceled()
            else:
                handle.abort()
        except Exception as exc:  # the goal's status could not be published; its result still goes out
            self.callback_failed(exc)
        return Segment.Result(result=msg)

    def _on_action_cancel(self, handle: Any) -> CancelResponse:
        """Accept while the goal waits in the queue; refuse once the models run on it (they cannot stop)."""
        for key, (pending, _) in list(self._action_goals.items()):
            if pending is handle:
                goal = next((g for g in self.worker.pending_goals() if id(g) == key), None)
                if goal is None:
                    return CancelResponse.REJECT
                self.worker.cancel(goal)
                return CancelResponse.ACCEPT
        return CancelResponse.REJECT

    def _feedback(self, goal: Goal, stage: str, partial_reasoning: str = "") -> None:
        entry = self._action_goals.get(id(goal))
        if entry is not None:
            try:
                entry[0].publish_feedback(Segment.Feedback(stage=stage, partial_reasoning=partial_reasoning))
            except Exception as exc:  # feedback is best effort; the result still comes
                self.get_logger().debug(f"feedback for goal {goal.id} not sent: {exc}")

    # --- worker thread ---------------------------------------------------------------------------

    @staticmethod
    def _failure_result(goal: Goal) -> Result:
        return Result(goal=str(goal.text), goal_id=goal.id, protocol="segzero", image_wh=(0, 0), error=goal.error)

    def _run(self, frame: Frame, goal: Goal) -> Result:
        try:
            rgb = to_rgb8(frame.array, frame.encoding)
        except ImageConversionError as exc:
            return Result(
                goal=str(goal.text),
                goal_id=goal.id,
                protocol="segzero",
                image_wh=(frame.array.shape[1], frame.array.shape[0]),
                error=str(exc),
            )
        return self.pipeline.run(
            rgb,
            goal.text,
            goal_id=goal.id,
            multi=goal.multi,
            on_stage=lambda stage: self._feedback(goal, stage),
            on_text=self._partial_reasoning(goal),
        )

    def _partial_reasoning(self, goal: Goal) -> Callable[[str], None] | None:
        """A callback for the text generated so far: ``reasoning_partial`` and action feedback, throttled."""
        hz = float(self.value("reasoning_partial_hz"))
        if hz <= 0:
            return None
        period, last = 1.0 / hz, [-1e9]

        def publish(text: str) -> None:
            now = time.monotonic()
            if now - last[0] < period:
                return
            last[0] = now
            think = partial_think(text)
            self._pubs["reasoning_partial"].publish(String(data=json.dumps({"id": goal.id, "text": think})))
            self._feedback(goal, "reasoning", think)

        return publish

    def _publish_result(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        header = frame.header if frame is not None else None
        mask = labels = None
        if result.ok and frame is not None:
            t0 = time.perf_counter()
            mask, labels = mask_messages(result.labels(), header)
            self._pubs["mask"].publish(mask)
            self._pubs["labels"].publish(labels)
            overlay = self._pubs["overlay"]
            if self.value("publish_overlay") and overlay.get_subscription_count() > 0:
                message = numpy_to_image(to_rgb8(frame.array, frame.encoding), "rgb8", header)
                paint_overlay(image_to_numpy(message), result.targets, result.masks)  # drawn in the message
                overlay.publish(message)
            result.timings_ms["publish_ms"] = (time.perf_counter() - t0) * 1e3
            self.worker.stats.publish_ms.append(result.timings_ms["publish_ms"])
        if result.think is not None:
            self._pubs["reasoning"].publish(String(data=result.think))
        self._pubs["result"].publish(String(data=result_json(result, header, self._models, goal.reacquired)))
        typed = segmentation_msg(result, header, self._models, mask, labels)
        self._pubs["segmentation"].publish(typed)
        action = self._action_goals.pop(id(goal), None)
        if action is not None:
            action[1].set_result(typed)
        summary = (
            f"goal {result.goal_id}: {result.status}"
            + (f" ({result.error})" if result.error else "")
            + f" in {result.timings_ms.get('total_ms', 0):.0f} ms"
        )
        if result.ok:  # one call site per severity: rclpy refuses to change a call site's severity
            self.get_logger().info(summary)
        else:
            self.get_logger().warning(summary)
        # Last: starting a track embeds the frame once more, which must not delay any answer above.
        self._after_goal(goal, frame, result)

    # --- tracking (worker thread, between goals) ----------------------------------------------------

    def _after_goal(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        """A goal's answer ends the previous track; a successful one starts tracking its targets."""
        if self.tracker is None or result.error == CANCELLED:
            return
        self._end_track("replaced by a new goal")
        if not (result.ok and frame is not None and result.targets):
            return
        try:
            self.tracker.start(to_rgb8(frame.array, frame.encoding), result.targets)
        except Exception as exc:
            self.get_logger().warning(f"goal {goal.id}: tracking not started ({type(exc).__name__}: {exc})")
            return
        self._tracked = {"goal": goal, "stamp": stamp_seconds(frame.header), "frames": 0}
        self.worker.idle_frames = True

    def _end_track(self, why: str) -> None:
        tracked, self._tracked = self._tracked, None
        if self.worker is not None:
            self.worker.idle_frames = False
        if tracked is not None:
            self._pubs["tracking_status"].publish(
                String(data=json.dumps({"id": tracked["goal"].id, "state": "ended", "reason": why}))
            )

    def _track_frame(self, frame: Frame) -> None:
        """One tracking step on a new camera frame: mask, labels and ``tracking_status`` with its header."""
        tracked = self._tracked
        if tracked is None or self.tracker is None or not self.tracker.active:
            self.worker.idle_frames = False
            return
        stamp = stamp_seconds(frame.header)
        if stamp is not None and tracked["stamp"] is not None and stamp <= tracked["stamp"]:
            return  # the same (or an older) camera frame again: nothing new to track
        tracked["stamp"] = stamp
        tracked["frames"] += 1
        if tracked["frames"] % int(self.value("tracking.every_n")):
            return
        goal = tracked["goal"]
        try:
            step = self.tracker.step(to_rgb8(frame.array, frame.encoding))
        except (ValueError, ImageConversionError) as exc:
            self._end_track(f"tracking failed: {exc}")
            return
        seen = [m if state == "tracking" else None for m, state in zip(step.masks, step.states, strict=True)]
        mask, labels_msg = mask_messages(label_image(seen, frame.array.shape[:2]), frame.header)
        self._pubs["mask"].publish(mask)
        self._pubs["labels"].publish(labels_msg)
        status = {
            "id": goal.id,
            "stamp": {"sec": frame.header.stamp.sec, "nanosec": frame.header.stamp.nanosec},
            "frame_id": frame.header.frame_id,
            "frame": step.frame_index,
            "state": "lost" if step.lost else "tracking",
            "targets": [
                {"score": round(score, 4), "state": state, "area": int(mask.sum())}
                for score, state, mask in zip(step.scores, step.states, step.masks, strict=True)
            ],
        }
        self._pubs["tracking_status"].publish(String(data=json.dumps(status)))
        if step.lost:
            self._tracked = None
            self.worker.idle_frames = False
            self.tracker.stop()
            if self.value("tracking.reacquire"):
                self.get_logger().info(f"goal {goal.id}: targets lost, reasoning again on the newest frame")
                self.worker.submit(Goal(text=goal.text, id=goal.id, multi=goal.multi, reacquired=True))

    # --- diagnostics -----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        worker = self.worker
        if worker is None:  # unconfigured, or loading failed
            level = DiagnosticStatus.ERROR if self._state == "error" else DiagnosticStatus.OK
            values = {"state": self._state, "error": self._error}
            self._diag_pub.publish(diagnostic_array(self, "segzero", level, self._error or self._state, values))
            return
        stats = worker.stats
        state = "busy" if worker.busy else self._state
        monitor = self._image_monitor
        verdict = monitor.check() if monitor is not None else None
        level, warning = level_of([verdict])
        p50, p95 = stats.latency_percentile(50), stats.latency_percentile(95)
        values = {
            "state": state,
            "reasoner": self._models.get("reasoner", ""),
            "segmenter": self._models.get("segmenter", ""),
            "frames_received": stats.frames_received,
            "frames_dropped": stats.frames_dropped,
            **(monitor.values("image") if monitor is not None else {}),
            "goals_received": stats.goals_received,
            "goals_ok": stats.goals_ok,
            "goals_failed": stats.goals_failed,
            "goals_pending": worker.pending,
            "frame_age_s": _ms(worker.frame_age_s(), 2),
            "last_frame_drop": stats.last_drop,
            "callback_errors": self._callback_errors,
            "last_callback_error": self._last_callback_error,
            "latency_p50_ms": _ms(p50, 0),
            "latency_p95_ms": _ms(p95, 0),
            **{
                f"{name}_{label}_ms": _ms(percentile(window, q))
                for name, window in (
                    ("callback", stats.callback_ms),
                    ("publish", stats.publish_ms),
                    ("frame_latency", stats.receive_latency_ms),
                )
                for label, q in (("p50", 50), ("p99", 99))
            },
        }
        message = f"{state}; {warning}" if warning else state
        self._diag_pub.publish(diagnostic_array(self, "segzero", level, message, values))


def main(argv: list[str] | None = None) -> NoReturn:
    """Console script ``segzero_node``: run the node until SIGINT or SIGTERM, answer what it owes, exit."""
    process.run(SegZeroNode, argv)


if __name__ == "__main__":
    main()
