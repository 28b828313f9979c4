"""``segzero replay``: a recording through the node's own code, offline, into a recording of the node's outputs.

The same pieces as ``segzero_node``: goals parsed by ``goals`` (the recorded goal topic's raw messages, or the
command line's), frames decoded by ``image_codec``, answers by the models ``build`` makes, tracking by
``tracking_loop``, messages by ``ros.outputs`` (the node's publishers, here writing into the output bag); the
node's worker is ``replay_schedule.ReplaySchedule``: the node's scheduling policy in virtual time. No ROS graph
and no ROS install: recordings are read and written with ``rosbags`` (``ros.bags``).
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_ros import build
from segzero_ros.answering import Answering
from segzero_ros.goals import Goal, checked_goal_from_cdr, goal_from_message
from segzero_ros.image_codec import ImageConversionError, compressed_to_numpy, image_to_numpy, to_rgb8
from segzero_ros.pipeline import Result
from segzero_ros.replay_schedule import FrameEvent, GoalEvent, ReplaySchedule, ScheduleStats
from segzero_ros.ros.bags import BagError, BagInput, BagOutput
from segzero_ros.ros.detections import MISSING, VISION_MSGS
from segzero_ros.ros.outputs import Outputs
from segzero_ros.tracking_loop import TrackingLoop, TrackLog
from segzero_ros.worker import Frame

LOG = logging.getLogger(__name__)
OUTPUT_BAG = "replay"  # the output rosbag2 folder inside --out


@dataclass
class ReplayOptions:
    """What to replay and how (see ``segzero replay --help``)."""

    bag: Path
    out: Path
    image_topic: str | None = None
    goal_topic: str | None = None
    goals: list[tuple[str, float]] = field(default_factory=list)  # (text, seconds after the recording's start)
    realtime: bool = False
    with_input: bool = False
    video: Path | None = None
    namespace: str = ""
    progress: bool = True
    stop: Callable[[], bool] = lambda: False  # true once the user asked to stop (Ctrl-C, SIGTERM)


class BagPublisher:
    """What ``ros.outputs.Outputs`` publishes to, writing into the output bag at the replay's current time."""

    def __init__(self, replay: Replay, topic: str) -> None:
        self._replay, self.topic = replay, topic

    def publish(self, msg: Any) -> None:
        self._replay.output.write(self.topic, msg, self._replay.origin_ns + round(self._replay.now * 1e9))

    def get_subscription_count(self) -> int:
        return 1  # the recording always takes the overlay

    def wait_for_all_acked(self, _timeout: Any) -> bool:
        return True


class Replay:
    """One replay run; ``run()`` returns the summary (also written to ``summary.json``)."""

    def __init__(self, options: ReplayOptions, models: dict[str, Any], node: dict[str, Any]) -> None:
        self.options, self.models, self.node = options, models, node
        self.origin_ns = 0  # the recording's start; times below are seconds after it (exact to the nanosecond)
        self.now = 0.0  # the recorded time of what is published now
        self.answers: list[dict[str, Any]] = []
        self.shown: list[tuple[float, dict[str, Any]]] = []  # (time, what the overlay video shows from then on)
        self.frames_corrupt = 0
        self.corrupt_reasons: dict[str, int] = {}
        self.track_log = TrackLog()
        self.output: BagOutput | None = None

    # --- the node's publishers, writing into the bag ----------------------------------------------

    def create_lifecycle_publisher(self, _kind: Any, topic: str, _qos: Any) -> BagPublisher:
        prefix = "/" + self.options.namespace.strip("/") if self.options.namespace.strip("/") else ""
        return BagPublisher(self, f"{prefix}/{topic}")

    def destroy_lifecycle_publisher(self, _publisher: Any) -> None:
        pass

    def _outputs(self, models: dict[str, str]) -> Outputs:
        """The node's outputs, into the bag (vision_msgs' topics where it is installed, as on the node)."""
        if VISION_MSGS is None:
            print(f"segzero replay: {MISSING}", file=sys.stderr)
        outputs = Outputs(self, models, labels_encoding=self.node["labels_encoding"])
        publish_status = outputs.track_status

        def track_status(status: dict[str, Any]) -> None:  # every goal's track, for the summary
            publish_status(status)
            self.track_log.record(status, self.now)

        outputs.track_status = track_status
        return outputs

    # --- the run -------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        opts = self.options
        bag = BagInput(opts.bag)
        self.origin_ns = bag.start_ns
        try:
            image_topic = bag.image_topic(opts.image_topic)
            stats, seconds, mcap, models = self._replay(bag, image_topic)
            video_frames = self._video(bag, image_topic) if opts.video and not stats.stopped else None
        finally:
            bag.close()
        processed = stats.frames_goal + stats.frames_tracked
        summary = {
            "bag": str(opts.bag),
            "mode": "realtime" if opts.realtime else "all-frames",
            "image_topic": image_topic,
            "output": str(mcap),
            "output_topics": dict(sorted(self.output.counts.items())),
            "frames": {
                "read": stats.frames_read + self.frames_corrupt,
                "corrupt": self.frames_corrupt,
                "corrupt_reasons": self.corrupt_reasons,
                "goal": stats.frames_goal,
                "tracked": stats.frames_tracked,
                "processed": processed,
                "skipped": stats.frames_skipped,
                "idle": stats.frames_idle,
            },
            "goals": self.answers,
            "goals_answered": len(self.answers),
            "goals_superseded": stats.goals_superseded,
            "goals_without_image": stats.goals_without_image,
            "goals_unanswered": stats.goals_unanswered,
            "interrupted": stats.stopped or opts.stop(),
            "tracking_losses": self.track_log.losses,
            "tracks": self.track_log.summary(),
            "seconds": round(seconds, 2),
            "frames_per_second": round(processed / seconds, 2) if seconds > 0 else None,
            "job_ms_median": round(statistics.median(stats.jobs_s) * 1e3, 2) if stats.jobs_s else None,
            "models": models,
            "video": {"path": str(opts.video), "frames": video_frames} if video_frames is not None else None,
        }
        (opts.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _replay(self, bag: BagInput, image_topic: str) -> tuple[ScheduleStats, float, Path, dict[str, str]]:
        """The recording through the schedule into the output bag, which is closed (readable) however this ends;
        the schedule's stats, the seconds it took, the output MCAP file and the models' names."""
        opts = self.options
        goal_events = self._goals(bag)
        pipeline = build.build_pipeline(self.models, self.node["max_goal_chars"])
        try:
            tracking = self._tracking()
            opts.out.mkdir(parents=True, exist_ok=True)
            self.output = BagOutput(opts.out / OUTPUT_BAG)
            models = {"reasoner": pipeline.reasoner.config.model, "segmenter": pipeline.segmenter.description}
            protocol = self.models["reasoner.protocol"]
            jobs = _Jobs(self, Answering(pipeline, self._outputs(models), tracking, lambda: protocol))
            schedule = ReplaySchedule(
                jobs.run_goal,
                jobs.track,
                jobs.fail_goal,
                lambda: jobs.answering.tracking_active,
                realtime=opts.realtime,
                max_pending_goals=self.node["max_pending_goals"],
                image_timeout_s=self.node["image_timeout_s"],
                max_frame_age_s=self.node["image_max_age_s"],
                image_source=f"{image_topic} (recorded)",
            )
            start = time.perf_counter()
            stats = schedule.run(self._frames(bag, image_topic), goal_events, opts.stop)
            return stats, time.perf_counter() - start, self.output.close(), models
        finally:
            pipeline.close()
            if self.output is not None and not self.output.closed:
                self.output.close()

    def seconds(self, t_ns: int) -> float:
        """A recorded time in seconds after the recording's start."""
        return (t_ns - self.origin_ns) * 1e-9

    def _tracking(self) -> TrackingLoop | None:
        if not self.node["tracking.enabled"]:
            return None
        node = self.node
        min_score = build.tracking_min_score(self.models, node["tracking.min_score"])
        return build.build_tracking({**node, **self.models}, min_score)

    def _goals(self, bag: BagInput) -> list[GoalEvent]:
        """The command line's goals, else the recording's goal topic (parsed as the node parses them)."""
        limit = int(self.node["max_goal_chars"])
        if self.options.goals:
            return [GoalEvent(at, goal_from_message(text, limit).check(limit)) for text, at in self.options.goals]
        topic = bag.goal_topic(self.options.goal_topic)
        if topic is None:
            raise BagError(f"{bag.path}: no goals: give --goal TEXT, or --goal-topic (no std_msgs/String 'goal' topic)")
        return [GoalEvent(self.seconds(t), checked_goal_from_cdr(raw, limit)) for _, _, t, raw in bag.messages([topic])]

    def _frames(self, bag: BagInput, topic: str):
        """Decoded frames of ``topic`` (corrupt ones counted and skipped); input copied with ``--with-input``."""
        from tqdm import tqdm

        total = bag.counts.get(topic)
        for _, msgtype, t_ns, raw in tqdm(
            bag.messages([topic]), total=total, disable=not self.options.progress, unit="frame", desc="replay"
        ):
            if self.options.with_input:
                self.output.write_raw(topic, msgtype, raw, t_ns)
            frame = decode_frame(bag, raw, msgtype, int(self.node["max_image_size"]))
            if isinstance(frame, str):
                self.frames_corrupt += 1
                self.corrupt_reasons[frame] = self.corrupt_reasons.get(frame, 0) + 1
                continue
            yield FrameEvent(self.seconds(t_ns), frame)

    def _video(self, bag: BagInput, topic: str) -> int:
        """Every readable frame of the recording with what the node showed at that time: its masks, the goal and
        the reasoning's first line; the number of video frames."""
        import cv2

        from segzero_ros.overlay import draw_overlay

        times = [self.seconds(t) for _, _, t, _ in bag.messages([topic])]
        interval = float(statistics.median(np.diff(times))) if len(times) > 1 else 0.0
        fps = 1.0 / interval if interval > 0 else 10.0  # the camera's rate (10 Hz when it cannot be told)
        writer, written, shown, k = None, 0, {}, 0
        for _, msgtype, t_ns, raw in bag.messages([topic]):
            if self.options.stop():  # the video so far stays a playable file
                break
            frame, t = decode_frame(bag, raw, msgtype, int(self.node["max_image_size"])), self.seconds(t_ns)
            if isinstance(frame, str):
                continue
            while k < len(self.shown) and self.shown[k][0] <= t:
                shown = self.shown[k][1]
                k += 1
            rgb = to_rgb8(frame.array, frame.encoding)
            image = draw_overlay(rgb, shown.get("targets", []), shown.get("masks", [])) if shown else rgb.copy()
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            for row, line in enumerate(shown.get("lines", [])):
                y = 28 + 26 * row
                cv2.putText(bgr, line[:90], (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
                cv2.putText(bgr, line[:90], (10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
            if writer is None:
                self.options.video.parent.mkdir(parents=True, exist_ok=True)
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(str(self.options.video), fourcc, fps, (bgr.shape[1], bgr.shape[0]))
            writer.write(bgr)
            written += 1
        if writer is not None:
            writer.release()
        return written


def decode_frame(bag: BagInput, raw: bytes, msgtype: str, max_size: int) -> Frame | str:
    """A recorded image as a worker ``Frame`` (its header as rclpy's), or why it cannot be used (as the node's
    camera subscription decides: ``max_image_size`` included)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    try:
        msg = bag.decode(raw, msgtype)
        if msgtype.endswith("CompressedImage"):
            array = compressed_to_numpy(msg, max_size=max_size)
            encoding = "rgb8" if array.ndim == 3 else "mono8"
        else:
            array, encoding = image_to_numpy(msg, max_size=max_size), msg.encoding
    except ImageConversionError as exc:
        return str(exc)
    except Exception as exc:  # a message that does not deserialize
        return f"undecodable {msgtype} ({type(exc).__name__})"
    stamp = Time(sec=int(msg.header.stamp.sec), nanosec=int(msg.header.stamp.nanosec))
    return Frame(array=array, encoding=encoding, header=Header(stamp=stamp, frame_id=str(msg.header.frame_id)))


class _Jobs:
    """The node's work on one goal or one tracked frame (the answering core), publishing into the replay's output."""

    def __init__(self, replay: Replay, answering: Answering) -> None:
        self.replay, self.answering = replay, answering

    def _publish_at(self, start: float, duration: float) -> None:
        self.replay.now = start + duration if self.replay.options.realtime else start

    def run_goal(self, goal: Goal, frame: Frame, start: float) -> float:
        t0 = time.perf_counter()
        result = self.answering.run(frame, goal)
        duration = time.perf_counter() - t0
        self._publish_at(start, duration)
        self.answering.publish(goal, frame, result, self.replay.node["publish_overlay"])
        self._answered(goal, frame, result)
        self.answering.answered(goal, frame, result)
        return time.perf_counter() - t0

    def track(self, frame: Frame, start: float) -> tuple[float, list[Goal]]:
        t0 = time.perf_counter()
        update = self.answering.track(frame)
        duration = time.perf_counter() - t0
        if update is None:
            return duration, []
        self._publish_at(start, duration)
        self.answering.publish_tracked(frame, update)
        values = [] if update.labels is None else [v for v in np.unique(update.labels) if v]
        masks = [update.labels == v for v in values]
        self._show({"masks": masks, "lines": self.replay.shown[-1][1].get("lines", []) if self.replay.shown else []})
        return duration, update.reacquire

    def fail_goal(self, goal: Goal, reason: str, t: float, ran: bool = False) -> None:
        """A goal answered without the models; ``ran``: the worker had taken it (no image); as on the node, a
        failed goal ends no track."""
        self.replay.now = t
        result = self.answering.failure(goal, reason)
        self.answering.publish(goal, None, result)
        self._answered(goal, None, result)
        if ran:
            self.answering.answered(goal, None, result)

    def _answered(self, goal: Goal, frame: Frame | None, result: Result) -> None:
        summary = result.to_dict()
        summary["answered_at_s"] = round(self.replay.now, 6)
        summary["reacquired"] = goal.reacquired
        if frame is not None:
            summary["stamp"] = {"sec": frame.header.stamp.sec, "nanosec": frame.header.stamp.nanosec}
            summary["frame_id"] = frame.header.frame_id
        self.replay.answers.append(summary)
        lines = [f"goal: {result.goal}"[:90]]
        if result.think:
            lines.append(result.think.strip().splitlines()[0][:90])
        if not result.ok:
            lines.append(f"error: {result.error}"[:90])
        self._show({"targets": result.targets, "masks": result.masks, "lines": lines})

    def _show(self, shown: dict[str, Any]) -> None:
        self.replay.shown.append((self.replay.now, shown))
