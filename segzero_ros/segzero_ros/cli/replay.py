"""``segzero replay``: a recording through the node's answering core, offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import segzero_ros.cli.options as options


def cmd_replay(args: argparse.Namespace) -> int:
    """A recording through the node's code: outputs as an MCAP recording, summary.json, optionally a video."""
    from itertools import zip_longest

    from segzero_ros.replay_schedule import NODE_PARAMETERS
    from segzero_ros.ros.bags import BagError
    from segzero_ros.ros.replay import OUTPUT_BAG, Replay, ReplayOptions

    if len(args.at or []) > len(args.goal or []):
        raise SystemExit("segzero replay: more --at than --goal")
    earlier = Path(args.out) / OUTPUT_BAG
    if earlier.exists():
        if not args.overwrite:
            print(
                f"segzero replay: {earlier} exists (an earlier replay's output): give another --out, or --overwrite "
                "to replace it",
                file=sys.stderr,
            )
            return 2
        import shutil

        shutil.rmtree(earlier)
        (Path(args.out) / "summary.json").unlink(missing_ok=True)
    goals = [(text, at or 0.0) for text, at in zip_longest(args.goal or [], args.at or [])]
    what = ReplayOptions(
        bag=Path(args.bag),
        out=Path(args.out),
        image_topic=args.image_topic,
        goal_topic=args.goal_topic,
        goals=goals,
        realtime=args.realtime,
        with_input=args.with_input,
        video=Path(args.video) if args.video else None,
        namespace=args.namespace,
        progress=not (args.json or args.quiet),
        stop=args.stop.event.is_set,
    )
    models = options.values_from_args(args)
    args.stop.raises = False  # Ctrl-C stops after the frame in progress; the outputs so far are kept readable
    try:
        summary = Replay(what, models, options.parameter_values(args, NODE_PARAMETERS)).run()
    except BagError as exc:
        print(f"segzero replay: {exc}", file=sys.stderr)
        return 2
    code = args.stop.exit_code if summary["interrupted"] else 0
    if summary["interrupted"]:
        print(
            f"segzero replay: stopped by {args.stop.name} after {summary['frames']['processed']} processed frames; "
            f'the outputs so far are in {args.out} (summary.json says "interrupted": true)',
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(summary))
        return code
    frames = summary["frames"]
    print(
        f"{summary['bag']} ({summary['mode']}): {frames['read']} frames read, {frames['processed']} processed "
        f"({frames['goal']} for goals, {frames['tracked']} tracked), {frames['skipped']} skipped, "
        f"{frames['corrupt']} corrupt; {summary['frames_per_second']} frames/s"
    )
    for goal in summary["goals"]:
        print(
            f"  goal {goal['id']} {goal['goal']!r}: {goal['status']}" + (f" ({goal['error']})" if goal["error"] else "")
        )
    if summary["tracking_losses"]:
        print(
            f"tracking lost every target {summary['tracking_losses']} time(s) (tracking_status 'lost'; the masks stop "
            "there until the next goal: see tracking.min_score, tracking.lost_frames, tracking.reacquire)"
        )
    print(f"outputs: {summary['output']} ({', '.join(f'{t} {n}' for t, n in summary['output_topics'].items())})")
    if summary["video"]:
        print(f"video: {summary['video']['path']} ({summary['video']['frames']} frames)")
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return code


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero replay`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser("replay", help="run a recording (rosbag2 folder or .mcap) through the node's code offline")
    p.add_argument("bag", help="a rosbag2 folder (sqlite3 or MCAP storage) or a .mcap file")
    p.add_argument("--out", required=True, help="folder for the output recording (replay/), summary.json")
    p.add_argument("--image-topic", default=None, help="the camera topic (default: the recording's only image topic)")
    p.add_argument("--goal-topic", default=None, help="the recorded goal topic (default: a String topic named goal)")
    p.add_argument("--goal", action="append", help="a goal instead of the recorded ones (repeatable)")
    p.add_argument("--at", action="append", type=float, help="when the matching --goal arrives, s after the start")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--all-frames", action="store_false", dest="realtime", help="every frame processed (default)")
    timing.add_argument(
        "--realtime", action="store_true", help="frames arriving while the models are busy are skipped, as on the robot"
    )
    p.add_argument("--with-input", action="store_true", help="also write the input images into the output")
    p.add_argument("--video", default=None, help="the overlay as a video file (.mp4), goal and reasoning drawn in")
    p.add_argument("--namespace", default="", help="the node's namespace for the output topics")
    p.add_argument("--json", action="store_true", help="print the summary as one line of JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier replay's output in --out")
    options.add_model_arguments(p)
    node_options = p.add_argument_group("node parameters (the node's names)")
    from segzero_ros.params import BY_NAME
    from segzero_ros.replay_schedule import NODE_PARAMETERS

    for name in NODE_PARAMETERS:
        options.add_parameter_option(node_options, BY_NAME[name])
    p.set_defaults(func=cmd_replay, realtime=False)
