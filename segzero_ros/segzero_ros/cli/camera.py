"""``segzero camera``: an image file (or the demo scene) published as a camera stream."""

from __future__ import annotations

import argparse

from segzero_ros.cli.common import (
    LOG,
    read_image,
)


def cmd_camera(args: argparse.Namespace) -> int:
    """An image file (or the demo scene) published as a camera stream, until Ctrl-C or ``--seconds``."""
    from segzero_ros.ros.client import shutdown_rclpy, stream_image
    from segzero_ros.scenes import demo_scene

    rgb = read_image(args.image) if args.image else demo_scene(1280, 720)[0]
    LOG.info(
        "publishing %s (%dx%d rgb8) on '%s' at %g Hz; Ctrl-C stops",
        args.image or "the demo scene",
        rgb.shape[1],
        rgb.shape[0],
        args.topic,
        args.rate,
    )
    try:
        sent = stream_image(rgb, args.topic, args.rate, args.frame_id, args.seconds, args.namespace)
    finally:
        shutdown_rclpy()
    LOG.info("sent %d frames", sent)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero camera`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser("camera", help="publish an image file (default: the demo scene) as a camera stream")
    p.add_argument("--image", default=None, help="image file (default: the generated 1280x720 demo scene)")
    p.add_argument("--topic", default="image")
    p.add_argument("--rate", type=float, default=5.0, help="frames per second")
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until Ctrl-C)")
    p.add_argument("--namespace", default="")
    p.set_defaults(func=cmd_camera)
