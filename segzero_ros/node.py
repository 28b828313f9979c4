"""ROS 2 managed node ``segzero``: camera frames and language goals in; masks, reasoning and results out.

The node only converts messages, schedules work (``worker.GoalWorker``) and publishes; the models live in
``pipeline.Pipeline``. Models load on configure and are released on cleanup; subscriptions exist and the
worker runs only while active. Every goal gets exactly one message on ``result``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Empty, String

from segzero_ros import params
from segzero_ros.image_codec import ImageConversionError, compressed_to_numpy, image_to_numpy, numpy_to_image, to_rgb8
from segzero_ros.overlay import draw_overlay
from segzero_ros.pipeline import Pipeline, Result
from segzero_ros.worker import Frame, Goal, GoalWorker, goal_from_cdr

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)


def _descriptor(param: params.Param) -> ParameterDescriptor:
    text = param.description + (f" (one of: {', '.join(map(repr, param.choices))})" if param.choices else "")
    desc = ParameterDescriptor(description=text, read_only=param.read_only)
    if param.low is not None and isinstance(param.default, int) and not isinstance(param.default, bool):
        desc.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=int(param.step))]
    elif param.low is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    return desc


def build_pipeline(values: dict[str, Any]) -> Pipeline:
    """Load the models the parameters name (``preset: tiny`` → the offline tiny models)."""
    from segzero_ros.reasoner import Reasoner, ReasonerConfig
    from segzero_ros.segmenter import SegmenterConfig, make_segmenter

    tiny = values["preset"] == "tiny"
    if tiny:
        from segzero_ros.tiny import tiny_reasoner_path, tiny_segmenter_config

        reasoner_model, seg_config = str(tiny_reasoner_path()), tiny_segmenter_config(device="cpu")
    else:
        reasoner_model = values["reasoner.model"]
        seg_config = SegmenterConfig(
            backend=values["segmenter.backend"],
            model=values["segmenter.model"],
            config=values["segmenter.config"] or None,
            device=values["segmenter.device"],
            local_files_only=values["reasoner.local_files_only"],
        )
    reasoner = Reasoner(
        ReasonerConfig(
            model=reasoner_model,
            protocol=values["reasoner.protocol"],
            strict=values["reasoner.strict"],
            image_size=values["reasoner.image_size"],
            max_new_tokens=values["reasoner.max_new_tokens"],
            device="cpu" if tiny else values["reasoner.device"],
            dtype=values["reasoner.dtype"],
            local_files_only=tiny or values["reasoner.local_files_only"],
        )
    )
    return Pipeline(reasoner, make_segmenter(seg_config), max_goal_chars=values["max_goal_chars"])


def result_json(result: Result, header: Any, models: dict[str, str]) -> str:
    """The ``result`` topic's JSON: the pipeline summary plus the source frame's stamp and frame id."""
    summary = result.to_dict()
    if header is not None:
        summary["stamp"] = {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec}
        summary["frame_id"] = header.frame_id
    else:
        summary["stamp"], summary["frame_id"] = None, None
    summary["models"] = models
    return json.dumps(summary)


class SegZeroNode(LifecycleNode):
    """Managed node: see the module docstring and the README's topic table."""

    def __init__(self, name: str = "segzero", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        for param in params.PARAMETERS:
            self.declare_parameter(param.name, param.default, _descriptor(param))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pipeline: Pipeline | None = None
        self.worker: GoalWorker | None = None
        self._subs: list[Any] = []
        self._pubs: dict[str, Any] = {}
        self._diag_timer = None
        self._state = "unconfigured"
        self._models: dict[str, str] = {}
        # Test-only fault injection: a goal whose text equals this variable makes the run raise.
        self._fault_goal = os.environ.get("SEGZERO_FAULT_INJECTION_GOAL") or None

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
        if self.worker is not None and name == "image_timeout_s":
            self.worker.image_timeout_s = float(value)
        if self.worker is not None and name == "max_pending_goals":
            self.worker.max_pending_goals = int(value)
        if self.pipeline is not None:
            if name == "reasoner.protocol":
                self.pipeline.reasoner.config.protocol = value
            elif name == "reasoner.strict":
                self.pipeline.reasoner.config.strict = bool(value)
            elif name == "reasoner.max_new_tokens":
                self.pipeline.reasoner.config.max_new_tokens = int(value)
            elif name == "max_goal_chars":
                self.pipeline.max_goal_chars = int(value)

    # --- lifecycle -------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self.values()
        self._state = "loading"
        self.get_logger().info(
            f"loading models: reasoner {'tiny' if values['preset'] == 'tiny' else values['reasoner.model']} "
            f"(device {values['reasoner.device']}), SAM2 {values['segmenter.model']} ({values['segmenter.backend']})"
        )
        try:
            self.pipeline = build_pipeline(values)
        except Exception as exc:
            self._state = "error"
            self.get_logger().error(f"model loading failed: {type(exc).__name__}: {exc}")
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
            "reasoning": self.create_lifecycle_publisher(String, "reasoning", RELIABLE),
            "result": self.create_lifecycle_publisher(String, "result", RELIABLE),
        }
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diag_timer = self.create_timer(values["diagnostics_period_s"], self._publish_diagnostics)
        self.worker = GoalWorker(
            self._run,
            self._publish_result,
            max_pending_goals=values["max_pending_goals"],
            image_timeout_s=values["image_timeout_s"],
        )
        self._state = "ready"
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.value("compressed_input"):
            self._subs.append(
                self.create_subscription(
                    CompressedImage, "image/compressed", self._on_compressed, qos_profile_sensor_data
                )
            )
        else:
            self._subs.append(self.create_subscription(Image, "image", self._on_image, qos_profile_sensor_data))
        # Raw: goal bytes are decoded here, so invalid UTF-8 becomes an error result instead of an exception.
        self._subs.append(self.create_subscription(String, "goal", self._on_goal, RELIABLE, raw=True))
        self._subs.append(self.create_subscription(Empty, "cancel", self._on_cancel, RELIABLE))
        self.worker.start()
        self.get_logger().info("active: waiting for images on 'image' and goals on 'goal'")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        return super().on_shutdown(state)

    def _stop_processing(self) -> None:
        """Drop the subscriptions and stop the worker (pending goals are answered)."""
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self.worker is not None:
            self.worker.stop()

    def _release(self) -> None:
        for pub in self._pubs.values():
            self.destroy_lifecycle_publisher(pub)
        self._pubs = {}
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self.destroy_publisher(self._diag_pub)
            self._diag_timer = None
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
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
        try:
            array, encoding = decode(msg, self.value("max_image_size"))
        except ImageConversionError as exc:
            self._drop_frame(str(exc))
            return
        self.worker.offer_frame(Frame(array=array, encoding=encoding, header=msg.header))

    def _drop_frame(self, reason: str) -> None:
        self.worker.stats.frames_dropped += 1
        self.get_logger().warning(f"dropped a frame: {reason}", throttle_duration_sec=5.0)

    def _on_goal(self, data: bytes) -> None:
        goal = goal_from_cdr(data)
        self.get_logger().info(f"goal {goal.id}: {str(goal.text)[:120]!r}" + (f" ({goal.error})" if goal.error else ""))
        self.worker.submit(goal)

    def _on_cancel(self, _msg: Empty) -> None:
        dropped = self.worker.cancel()
        self.get_logger().info(f"cancel: {len(dropped)} pending goal(s) dropped")

    # --- worker thread ---------------------------------------------------------------------------

    def _run(self, frame: Frame, goal: Goal) -> Result:
        if self._fault_goal is not None and goal.text == self._fault_goal:
            raise RuntimeError("fault injected for testing")
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
        return self.pipeline.run(rgb, goal.text, goal_id=goal.id, multi=goal.multi)

    def _publish_result(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        header = frame.header if frame is not None else None
        if result.ok and frame is not None:
            t0 = time.perf_counter()
            self._pubs["mask"].publish(numpy_to_image(result.union().astype("uint8") * 255, "mono8", header))
            self._pubs["labels"].publish(numpy_to_image(result.labels(), "mono8", header))
            overlay = self._pubs["overlay"]
            if self.value("publish_overlay") and overlay.get_subscription_count() > 0:
                rgb = to_rgb8(frame.array, frame.encoding)
                overlay.publish(numpy_to_image(draw_overlay(rgb, result.targets, result.masks), "rgb8", header))
            result.timings_ms["publish_ms"] = (time.perf_counter() - t0) * 1e3
        if result.think is not None:
            self._pubs["reasoning"].publish(String(data=result.think))
        self._pubs["result"].publish(String(data=result_json(result, header, self._models)))
        level = self.get_logger().info if result.ok else self.get_logger().warning
        level(
            f"goal {result.goal_id}: {result.status}"
            + (f" ({result.error})" if result.error else "")
            + f" in {result.timings_ms.get('total_ms', 0):.0f} ms"
        )

    # --- diagnostics -----------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        worker = self.worker
        if worker is None:
            return
        stats = worker.stats
        state = "busy" if worker.busy else self._state
        p50, p95 = stats.latency_percentile(50), stats.latency_percentile(95)
        values = {
            "state": state,
            "reasoner": self._models.get("reasoner", ""),
            "segmenter": self._models.get("segmenter", ""),
            "frames_received": stats.frames_received,
            "frames_dropped": stats.frames_dropped,
            "goals_received": stats.goals_received,
            "goals_ok": stats.goals_ok,
            "goals_failed": stats.goals_failed,
            "goals_pending": worker.pending,
            "latency_p50_ms": "" if p50 is None else f"{p50:.0f}",
            "latency_p95_ms": "" if p95 is None else f"{p95:.0f}",
        }
        level = DiagnosticStatus.ERROR if state == "error" else DiagnosticStatus.OK
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: segzero",
            hardware_id="segzero",
            message=state,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def main(argv: list[str] | None = None) -> int:
    """Console script ``segzero_node``: run the node until Ctrl-C."""
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = SegZeroNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if node.value("autostart"):
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error("configure failed; the node stays unconfigured (fix and reconfigure)")
            else:
                node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node.worker is not None:
            node.worker.stop(timeout=5.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
