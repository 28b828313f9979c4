"""Tracking cost against full re-segmentation per frame, and memory over a long track, in one run.

    python bench/tracking.py [--config tiny|CONFIG] [--frames 600] [--input-scale 1.0] [--device cpu|cuda] [--json]
    python bench/tracking.py --goals 1,2,4 [--frames 60] ...   # several goals tracked at once

On a generated video (a red square sliding over a textured table, 1280x720) it times, per frame: a tracking
step (``Tracker.step``: SAM2 memory, no prompt, at ``--input-scale`` of SAM2's input side as the node's
``tracking.input_scale``) and a full re-segmentation on the same backend (PyTorch ``set_image`` + ``predict``
with the box and clicks, at SAM2's own input side, on the first ``--resegment-frames`` of the same frames,
interleaved), and reports their medians' ratio (tracking steps timed once SAM2 reads a full memory) and the
process RSS at the start and end of ``--frames`` tracking steps, and a whole goal (the tiny reasoner's reasoning +
this SAM2's segmentation, what tracking saves on every frame). The JSON is one object: ``track_ms``,
``resegment_ms``, ``ratio`` (resegment / track), ``goal_ms``, ``ratio_vs_goal`` (goal / track), ``rss_start_mb``,
``rss_end_mb``, ``frames`` (and ``input_scale``, ``track_image_size``, ``resegment_image_size``).

With ``--goals``: one tracking step with that many goals tracked at once (one target each; the image encoder runs
once per frame for all), per count: ``goals``, ``track_ms_by_goals``, ``ratio_to_one_goal``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segzero_ros"))


def frame(i: int, width: int = 1280, height: int = 720):
    from segzero_ros.scenes import textured_background

    rgb = textured_background(width, height, 0).copy()
    cx = 200 + (4 * i) % (width - 400)
    rgb[300:420, cx - 60 : cx + 60] = (220, 30, 30)
    return rgb


def run(
    config_name: str,
    frames: int,
    device: str,
    with_pipeline: bool = True,
    input_scale: float = 1.0,
    resegment_frames: int = 10,
) -> dict:
    import psutil
    import torch

    from segzero_ros import build
    from segzero_ros.benchmarks.sam2 import base_config
    from segzero_ros.pipeline import Pipeline
    from segzero_ros.protocol import Target
    from segzero_ros.segmenter import make_segmenter
    from segzero_ros.tiny import FIT_GOAL
    from segzero_ros.tracker import Tracker, load_tracking_model

    torch.set_grad_enabled(False)
    config = dataclasses.replace(base_config(config_name, device), backend="torch", precision="fp32")
    segmenter = make_segmenter(config)
    tracker = Tracker(load_tracking_model(config, device, input_scale))
    target = Target(bbox=(140, 300, 260, 420), points=[(200, 360), (220, 380)])
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        sync()
        return (time.perf_counter() - start) * 1e3

    video = [frame(i) for i in range(64)]  # made before timing; the track cycles through them
    timed(lambda: segmenter.segment(video[0], [target]))  # warm-up
    goal_ms = None
    if with_pipeline:
        reasoner = build.build_reasoner(build.resolve({"reasoner.max_new_tokens": 96}, build.TINY))
        pipeline = Pipeline(reasoner, segmenter)
        goal_ms = statistics.median(timed(lambda f=f: pipeline.run(f, FIT_GOAL)) for f in video[:4])
    tracker.start(video[0], [target])
    full = int(tracker.model.num_maskmem)  # steps before SAM2 reads a full set of memories (cheaper, not timed)
    process = psutil.Process()
    track, resegment, rss_start = [], [], None
    for i in range(1, frames + 1):
        current = video[i % len(video)]
        step_ms = timed(lambda f=current: tracker.step(f))
        if i >= full:
            track.append(step_ms)
            if len(resegment) < resegment_frames:  # interleaved, so a drift in machine speed hits both alike
                resegment.append(timed(lambda f=current: segmenter.segment(f, [target])))
        if i == min(20, frames):  # after warm-up and once SAM2's memory window is full
            rss_start = process.memory_info().rss / 2**20
    rss_end = process.memory_info().rss / 2**20
    if not track:
        raise ValueError(f"--frames must be at least {full} (SAM2's memory fills after {full - 1} steps)")
    track_ms, resegment_ms = statistics.median(track), statistics.median(resegment)
    result = {
        "config": config_name,
        "device": device,
        "frames": frames,
        "input_scale": input_scale,
        "track_image_size": int(tracker.model.image_size),
        "resegment_image_size": int(segmenter.image_size),
        "track_ms": round(track_ms, 2),
        "resegment_ms": round(resegment_ms, 2),
        "ratio": round(resegment_ms / track_ms, 3),
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "memory_frames": tracker.memory_frames,
    }
    if goal_ms is not None:
        result.update(goal_ms=round(goal_ms, 2), ratio_vs_goal=round(goal_ms / track_ms, 3))
    return result


def run_goals(config_name: str, counts: list[int], frames: int, device: str, input_scale: float = 1.0) -> dict:
    """Per-frame cost of one tracking step for several goals tracked at once (each its own track, one target,
    the image encoded once for all); medians over ``frames`` steps once SAM2 reads a full memory. Goal counts are
    interleaved frame by frame, so a drift in machine speed hits all alike."""
    import torch

    from segzero_ros.benchmarks.sam2 import base_config
    from segzero_ros.protocol import Target
    from segzero_ros.tracker import Tracker, load_tracking_model

    torch.set_grad_enabled(False)
    config = dataclasses.replace(base_config(config_name, device), backend="torch", precision="fp32")
    model = load_tracking_model(config, device, input_scale)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    video = [frame(i) for i in range(64)]
    trackers = {}
    for n in counts:
        trackers[n] = Tracker(model)
        for k in range(n):  # one target per goal, each somewhere else on the table
            x = 140 + 240 * k
            trackers[n].add(f"goal-{k}", video[0], [Target(bbox=(x, 300, x + 120, 420), points=[(x + 60, 360)])])
    full = int(model.num_maskmem)
    times: dict[int, list[float]] = {n: [] for n in counts}
    for i in range(1, full + frames):
        for n in counts:
            start = time.perf_counter()
            trackers[n].step_all(video[i % len(video)])
            sync()
            if i >= full:
                times[n].append((time.perf_counter() - start) * 1e3)
    track_ms = [round(statistics.median(times[n]), 2) for n in counts]
    return {
        "config": config_name,
        "device": device,
        "frames": frames,
        "input_scale": input_scale,
        "track_image_size": int(model.image_size),
        "goals": counts,
        "track_ms_by_goals": track_ms,
        "ratio_to_one_goal": [round(ms / track_ms[0], 3) for ms in track_ms],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="'tiny' or a sam2 config name (random weights)")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument(
        "--input-scale", type=float, default=1.0, help="tracking input side / SAM2's (the node's tracking.input_scale)"
    )
    parser.add_argument("--resegment-frames", type=int, default=10, help="frames also re-segmented (interleaved)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-pipeline", action="store_true", help="skip timing a whole goal (tiny reasoner + SAM2)")
    parser.add_argument(
        "--goals", default="", help="goal counts tracked at once, e.g. 1,2,4: per-step time per count instead"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.goals:
        counts = [int(n) for n in args.goals.split(",")]
        result = run_goals(args.config, counts, args.frames, args.device, args.input_scale)
        if args.json:
            print(json.dumps(result))
        else:
            by_goals = ", ".join(
                f"{n} goal(s) {ms:.1f} ms ({r:.2f}x)"
                for n, ms, r in zip(counts, result["track_ms_by_goals"], result["ratio_to_one_goal"], strict=True)
            )
            print(f"SAM2 {result['config']} on {result['device']}, one step for: {by_goals}")
        return 0
    result = run(args.config, args.frames, args.device, not args.no_pipeline, args.input_scale, args.resegment_frames)
    if args.json:
        print(json.dumps(result))
    else:
        goal = ""
        if "goal_ms" in result:
            goal = f", a whole goal {result['goal_ms']:.1f} ms ({result['ratio_vs_goal']:.2f}x)"
        print(
            f"SAM2 {result['config']} on {result['device']}: tracking step at {result['track_image_size']} "
            f"{result['track_ms']:.1f} ms, full re-segmentation at {result['resegment_image_size']} "
            f"{result['resegment_ms']:.1f} ms ({result['ratio']:.2f}x){goal}; RSS "
            f"{result['rss_start_mb']:.0f} -> {result['rss_end_mb']:.0f} MB over {result['frames']} frames"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
