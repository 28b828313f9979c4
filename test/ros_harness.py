"""Real ROS 2 for tests: an isolated DDS domain, the node as a separate process, a probe node in this process."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_PROFILE = ROOT / "segzero_ros" / "config" / "fastdds_shm.xml"
ACTIVE_LINE = "]: active: waiting for images on "  # what the node logs when it has activated
# What a node's log shows only when something went wrong inside it (a defect, unless a test injected it).
FAULT_MARKERS = (
    "Traceback (most recent call last)",
    "idle-frame work failed",
    "worker failed on goal",
    "worker request failed",
    "publishing the result of goal",
    "a callback failed",
    "shutdown incomplete",
)


def log_faults(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """The fault entries of a node log (a marker line and what follows up to the next ``[LEVEL]`` log line), less
    those that mention one of the ``allowed`` strings (faults a test injects on purpose)."""
    faults, block = [], None
    for line in text.splitlines():
        if block is not None and line.startswith("["):
            faults.append("\n".join(block))
            block = None
        if block is None and any(marker in line for marker in FAULT_MARKERS):
            block = []
        if block is not None:
            block.append(line)
    if block is not None:
        faults.append("\n".join(block))
    return [f for f in faults if not any(a in f for a in allowed)]


def isolate_ros_domain() -> None:
    """A domain id of this test run's own, localhost-only discovery (set before rclpy.init and node starts)."""
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


class NodeProcess:
    """``segzero_node`` started as its own process with ``--ros-args`` parameters; its log in a file."""

    def __init__(
        self,
        log_path: Path,
        params: dict[str, Any],
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        allowed_faults: tuple[str, ...] = (),
        ros_args: tuple[str, ...] = (),
    ) -> None:
        self.allowed_faults = allowed_faults
        args = [*(command or [sys.executable, "-m", "segzero_ros.ros.node"]), "--ros-args", *ros_args]
        for name, value in params.items():
            args += ["-p", f"{name}:={json.dumps(value) if isinstance(value, str) else value}"]
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "RCUTILS_LOGGING_BUFFERED_STREAM": "0", **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        """Resident memory of the node process, MiB (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def faults(self) -> list[str]:
        """Tracebacks and worker failures in the log so far, less the ones the test injected (``allowed_faults``)."""
        return log_faults(self.log(), self.allowed_faults)

    def stop(self, timeout: float = 30.0, check_log: bool = True) -> int:
        """Ctrl-C, as a user would; returns the exit code. Fails when the log shows a fault nobody injected."""
        if self.alive():
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        faults = self.faults() if check_log else []
        assert not faults, f"the node's log ({self.log_path}) shows {len(faults)} fault(s):\n" + "\n".join(faults)
        return self.proc.returncode


class Probe:
    """A test-side node: publishes frames and goals, collects every output of the segzero node."""

    def __init__(self, namespace: str = "", publishes_images: bool = True) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from segzero_interfaces.msg import SegmentationResult
        from sensor_msgs.msg import Image
        from std_msgs.msg import Empty, String

        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node("segzero_test_probe", namespace=namespace)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        # Reliable frames: best-effort multi-hundred-KB frames are lost in bulk on a loaded test machine.
        # Without ``publishes_images`` the node's image topic has only the publishers a test starts itself.
        self.image_pub = self.node.create_publisher(Image, "image", reliable) if publishes_images else None
        self.goal_pub = self.node.create_publisher(String, "goal", reliable)
        self.cancel_pub = self.node.create_publisher(Empty, "cancel", reliable)
        self.end_track_pub = self.node.create_publisher(String, "end_track", reliable)
        self.lock = threading.Lock()
        self.arrived: dict[str, list[float]] = {}
        self.received: dict[str, list[Any]] = {
            k: []
            for k in (
                "result",
                "segmentation",
                "mask",
                "labels",
                "overlay",
                "reasoning",
                "reasoning_partial",
                "tracking_status",
                "diagnostics",
            )
        }
        self._subs = [
            self.node.create_subscription(String, "result", self._keep("result"), reliable),
            self.node.create_subscription(SegmentationResult, "segmentation", self._keep("segmentation"), reliable),
            self.node.create_subscription(Image, "mask", self._keep("mask"), reliable),
            self.node.create_subscription(Image, "labels", self._keep("labels"), reliable),
            self.node.create_subscription(Image, "overlay", self._keep("overlay"), reliable),
            self.node.create_subscription(String, "reasoning", self._keep("reasoning"), reliable),
            self.node.create_subscription(String, "reasoning_partial", self._keep("reasoning_partial"), reliable),
            self.node.create_subscription(String, "tracking_status", self._keep("tracking_status"), reliable),
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._keep("diagnostics"), 10),
        ]
        try:  # the node's vision_msgs outputs, where vision_msgs is installed
            from vision_msgs.msg import Detection2DArray

            self.received["detections"] = []
            self._subs.append(
                self.node.create_subscription(Detection2DArray, "detections", self._keep("detections"), reliable)
            )
        except ImportError:
            pass
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _keep(self, key: str) -> Callable[[Any], None]:
        def callback(msg: Any) -> None:
            with self.lock:
                self.received[key].append(msg)
                self.arrived.setdefault(key, []).append(time.monotonic())

        return callback

    def results(self) -> list[dict]:
        with self.lock:
            return [json.loads(m.data) for m in self.received["result"]]

    def result_arrivals(self) -> dict[str, float]:
        """Goal id → when its result arrived here (monotonic clock)."""
        with self.lock:
            pairs = zip(self.received["result"], self.arrived.get("result", []), strict=True)
            return {json.loads(m.data)["id"]: t for m, t in pairs}

    def take(self, key: str) -> list[Any]:
        with self.lock:
            return list(self.received[key])

    def clear(self) -> None:
        with self.lock:
            for value in [*self.received.values(), *self.arrived.values()]:
                value.clear()

    def diagnostic(self, key: str) -> str | None:
        """The newest value of ``key`` in the node's ``/diagnostics`` received so far."""
        for array in reversed(self.take("diagnostics")):
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                if key in values:
                    return values[key]
        return None

    def fresh_diagnostic(self, key: str, node: NodeProcess | None = None, timeout: float = 30.0) -> str:
        """``key`` from a ``/diagnostics`` message that arrives after this call (what came before is forgotten)."""
        self.clear()
        self.wait_for(lambda: self.diagnostic(key) is not None, timeout, f"diagnostics with {key}", node)
        return self.diagnostic(key)

    def send_goal(self, text: str) -> None:
        from std_msgs.msg import String

        self.goal_pub.publish(String(data=text))

    def send_raw_goal(self, payload: bytes) -> None:
        """Publish a std_msgs/String whose bytes are ``payload`` as they are (e.g. invalid UTF-8)."""
        cdr = b"\x00\x01\x00\x00" + struct.pack("<I", len(payload) + 1) + payload + b"\x00"
        self.goal_pub.publish(cdr)

    def send_frame(self, image_msg: Any) -> None:
        self.image_pub.publish(image_msg)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str, node: NodeProcess | None = None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if node is not None and not node.alive():
                raise AssertionError(f"node exited while waiting for {what}:\n{node.log()[-4000:]}")
            time.sleep(0.05)
        log = f"\nnode log:\n{node.log()[-4000:]}" if node is not None else ""
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{log}")

    def wait_for_node(self, node: NodeProcess, timeout: float) -> None:
        """Until the segzero node has logged that it is active and subscribes to this probe's goals and images (the
        one wait of every test that starts a node; the subscriptions match before the line is written)."""
        images = self.image_pub

        def active() -> bool:
            log = node.log()
            if "]: configure failed" in log:  # it stays unconfigured: waiting longer cannot help
                raise AssertionError(f"the node failed to configure:\n{log[-4000:]}")
            subscribed = self.goal_pub.get_subscription_count() > 0
            return subscribed and (images is None or images.get_subscription_count() > 0) and ACTIVE_LINE in log

        self.wait_for(active, timeout, "the node to activate", node)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def start_camera(
    seconds: float,
    qos: str,
    profile: bool,
    width: int = 1280,
    height: int = 720,
    rate: float = 30.0,
    topic: str = "image",
) -> subprocess.Popen:
    """A camera driver as its own process (``test/image_stream.py publish``): rgb8 frames at ``rate``; with
    ``profile`` its environment names the shipped Fast DDS profile, without it Fast DDS runs with its defaults."""
    env = {k: v for k, v in os.environ.items() if "PROFILES_FILE" not in k and k != "SEGZERO_FASTDDS_PROFILE"}
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(SHIPPED_PROFILE)
    args = ["publish", "--qos", qos, "--seconds", str(seconds), "--rate", str(rate), "--topic", topic]
    args += ["--width", str(width), "--height", str(height)]
    command = [sys.executable, str(ROOT / "test" / "image_stream.py"), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)


def camera_published(camera: subprocess.Popen, timeout: float = 600.0) -> int:
    """Wait for a camera from ``start_camera`` to finish; how many frames it published."""
    out, _ = camera.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])["published"]
