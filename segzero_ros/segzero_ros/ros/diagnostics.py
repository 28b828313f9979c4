"""Diagnostics shared by the nodes: the health of a subscribed stream, and one ``DiagnosticArray`` builder."""

from __future__ import annotations

import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.event_handler import SubscriptionEventCallbacks

from segzero_ros.stream_health import WARN, StreamHealth, StreamVerdict
from segzero_ros.worker import percentile


class StreamMonitor:
    """``StreamHealth`` of one subscription, fed by its callback and its message-lost event; warns once per
    episode in the node's log when frames stop flowing, and says so again when they flow."""

    def __init__(self, node: Any, topic: str) -> None:
        self.node = node
        self.health = StreamHealth(node.resolve_topic_name(topic))
        self.verdict: StreamVerdict | None = None

    def event_callbacks(self) -> SubscriptionEventCallbacks:
        """Pass to ``create_subscription``: the middleware's lost-sample counts reach the health."""
        return SubscriptionEventCallbacks(message_lost=self._on_lost)

    def _on_lost(self, info: Any) -> None:
        self.health.lost(info.total_count, time.monotonic())

    def frame(self) -> None:
        self.health.frame(time.monotonic())

    def check(self) -> StreamVerdict:
        """The verdict now (publishers counted from the ROS graph); logs a change between ok and warn."""
        verdict = self.health.check(self.node.count_publishers(self.health.topic), time.monotonic())
        was_warning = self.verdict is not None and self.verdict.level == WARN
        if verdict.level == WARN and not was_warning:
            self.node.get_logger().warning(verdict.message)
        elif verdict.level != WARN and was_warning:
            self.node.get_logger().info(f"{self.health.topic}: frames arrive again ({verdict.rate_hz:.1f} Hz)")
        self.verdict = verdict
        return verdict

    def values(self, prefix: str) -> dict[str, Any]:
        """Diagnostic key/values of the last verdict."""
        verdict = self.verdict
        if verdict is None:
            return {}
        return {
            f"{prefix}_topic": self.health.topic,
            f"{prefix}_publishers": verdict.publishers,
            f"{prefix}_rate_hz": f"{verdict.rate_hz:.1f}",
            f"{prefix}_lost_in_transport": verdict.lost,
        }


def diagnostic_array(node: Any, name: str, level: int, message: str, values: dict[str, Any]) -> DiagnosticArray:
    """One status named ``<node's full name>: <name>`` (namespaced nodes never share a status)."""
    status = DiagnosticStatus(
        level=level,
        name=f"{node.get_fully_qualified_name()}: {name}",
        hardware_id="segzero",
        message=message,
        values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
    )
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


def worker_values(worker: Any) -> dict[str, Any]:
    """Diagnostic key/values of a ``GoalWorker``: frames, goals, latencies and per-frame costs."""
    stats = worker.stats
    return {
        "frames_received": stats.frames_received,
        "frames_replaced": stats.frames_replaced,
        "frames_rejected": stats.frames_rejected,
        "last_frame_drop": stats.last_drop,
        "frame_age_s": format_ms(worker.frame_age_s(), 2),
        "goals_received": stats.goals_received,
        "goals_ok": stats.goals_ok,
        "goals_failed": stats.goals_failed,
        "goals_pending": worker.pending,
        "latency_p50_ms": format_ms(stats.latency_percentile(50), 0),
        "latency_p95_ms": format_ms(stats.latency_percentile(95), 0),
        **{
            f"{name}_{label}_ms": format_ms(percentile(window, q))
            for name, window in (
                ("callback", stats.callback_ms),
                ("publish", stats.publish_ms),
                ("frame_latency", stats.receive_latency_ms),
            )
            for label, q in (("p50", 50), ("p99", 99))
        },
    }


def format_ms(value: float | None, digits: int = 3) -> str:
    """A figure for diagnostics: fixed digits, empty when nothing was measured yet."""
    return "" if value is None else f"{value:.{digits}f}"


def level_of(verdicts: list[StreamVerdict | None]) -> tuple[int, str]:
    """WARN and the warnings' messages when any stream warns, else OK and ''."""
    warnings = [v.message for v in verdicts if v is not None and v.level == WARN]
    return (DiagnosticStatus.WARN, "; ".join(warnings)) if warnings else (DiagnosticStatus.OK, "")


def node_status(node: Any) -> DiagnosticArray:
    """The ``segzero`` node's status: its state, models, reasoner server, worker and camera stream."""
    worker = node.worker
    if worker is None:  # unconfigured, or loading failed
        level = DiagnosticStatus.ERROR if node._state == "error" else DiagnosticStatus.OK
        values = {"state": node._state, "error": node._error}
        return diagnostic_array(node, "segzero", level, node._error or node._state, values)
    monitor = node.intake.monitor if node.intake is not None else None
    state = "busy" if worker.busy else node._state
    level, warning = level_of([monitor.check() if monitor is not None else None])
    health = getattr(node.pipeline.reasoner, "health", None) if node.pipeline is not None else None
    if health is not None and health.warning():
        level, warning = DiagnosticStatus.WARN, "; ".join(w for w in (warning, health.warning()) if w)
    values = {
        "state": state,
        "reasoner": node._models.get("reasoner", ""),
        "segmenter": node._models.get("segmenter", ""),
        **(health.values() if health is not None else {}),
        **worker_values(worker),
        **(monitor.values("image") if monitor is not None else {}),
        "callback_errors": node._callback_errors,
        "last_callback_error": node._last_callback_error,
    }
    message = f"{state}; {warning}" if warning else state
    return diagnostic_array(node, "segzero", level, message, values)
