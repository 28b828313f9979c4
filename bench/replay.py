"""Replay throughput: frames per second through ``segzero replay`` on CPU with the tiny models, tracking on and off.

    python bench/replay.py [--frames 150] [--width 640] [--height 480] [--json]

Writes a recording (``test/recordings.py``: a moving demo scene at 30 Hz, two goals), replays it in all-frames
mode twice in one run (tracking on: every frame after the first goal is a tracking step; off: only the goals
run), and reports frames read per second of replay (model loading excluded), processed frames per second, how
much faster than the recording's own time it ran, and the ratio of the two runs' times.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test"))


def run(frames: int, width: int, height: int) -> dict:
    from recordings import json_goal, write_recording

    from segzero_ros import build
    from segzero_ros.params import BY_NAME
    from segzero_ros.replay_schedule import NODE_PARAMETERS
    from segzero_ros.ros.replay import Replay, ReplayOptions

    folder = Path(tempfile.mkdtemp(prefix="segzero_replay_bench_"))
    bag = folder / "session"
    goals = [(0.2, json_goal("first")), (frames / 60.0, json_goal("second"))]
    write_recording(bag, "mcap", frames=frames, rate_hz=30.0, size=(width, height), goals=goals)
    models = build.resolve({}, build.TINY)
    report = {"frames": frames, "image": f"{width}x{height}", "recording_s": round(frames / 30.0, 2)}
    for tracking in (True, False):
        node = {name: BY_NAME[name].default for name in NODE_PARAMETERS}
        node.update({"tracking.enabled": tracking, "tracking.min_score": 0.0})  # the random tiny SAM2 keeps its track
        options = ReplayOptions(bag=bag, out=folder / f"out_{tracking}", progress=False)
        summary = Replay(options, models, node).run()
        seconds = summary["seconds"]  # the replay itself, models loaded
        key = "tracking_on" if tracking else "tracking_off"
        report[key] = {
            "seconds": round(seconds, 2),
            "frames_read_per_s": round(summary["frames"]["read"] / seconds, 1),
            "processed": summary["frames"]["processed"],
            "processed_per_s": round(summary["frames"]["processed"] / seconds, 1),
            "realtime_factor": round(report["recording_s"] / seconds, 2),
        }
    report["ratio_off_vs_on"] = round(report["tracking_on"]["seconds"] / report["tracking_off"]["seconds"], 2)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(args.frames, args.width, args.height)
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
