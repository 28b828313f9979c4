"""A camera and a plain image subscriber as processes of their own, for transport tests and benchmarks.

    python test/image_stream.py publish --width 1280 --height 720 --rate 30 --seconds 10 --qos best_effort
    python test/image_stream.py count --seconds 12 --qos best_effort

``publish`` streams rgb8 frames stamped with the wall clock on ``--topic`` (a camera driver as robots run it;
give it a Fast DDS profile through its environment, as README "Cameras and transport" says) and prints
``{"published": N}``. ``count`` subscribes and prints ``{"received": N, "latency_ms": {...}}`` (stamp to
callback). Both wait up to ``--match-timeout`` s for the other side before they start the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def qos_profile(name: str, depth: int = 5):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.RELIABLE if name == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(depth=depth, reliability=reliability, history=HistoryPolicy.KEEP_LAST)


def wait_until(predicate, timeout: float, node) -> bool:
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return False


def publish(args: argparse.Namespace) -> dict:
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node(f"camera_{os.getpid()}")
    pub = node.create_publisher(Image, args.topic, qos_profile(args.qos))
    wait_until(lambda: pub.get_subscription_count() >= args.subscribers, args.match_timeout, node)
    time.sleep(args.settle)  # discovery of the reverse direction (acks, SHM ports) completes
    channels = 3
    pixels = np.random.default_rng(0).integers(0, 256, (args.height, args.width * channels), dtype=np.uint8)
    msg = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * channels)
    msg.data = pixels.tobytes()
    msg.header.frame_id = "camera_color_optical_frame"
    published, start = 0, time.monotonic()
    next_frame = start
    while (now := time.monotonic()) < start + args.seconds:
        if now >= next_frame:
            stamp = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(stamp % 1 * 1e9)
            pub.publish(msg)
            published += 1
            next_frame = max(next_frame + 1.0 / args.rate, now)  # never catch up in a burst
        time.sleep(max(0.0, next_frame - time.monotonic()))
    time.sleep(args.linger)  # the last frames' fragments and retransmissions go out
    node.destroy_node()  # leave the graph now, not when the participant's lease runs out
    rclpy.try_shutdown()
    return {"published": published, "seconds": round(time.monotonic() - start, 2)}


def count(args: argparse.Namespace) -> dict:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node(f"image_counter_{os.getpid()}")
    from rclpy.event_handler import SubscriptionEventCallbacks

    latencies: list[float] = []
    lost = [0]

    def on_image(msg: Image) -> None:
        latencies.append((time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)) * 1e3)

    def on_lost(info) -> None:
        lost[0] = info.total_count

    events = SubscriptionEventCallbacks(message_lost=on_lost)
    node.create_subscription(Image, args.topic, on_image, qos_profile(args.qos), event_callbacks=events)
    wait_until(lambda: node.count_publishers(args.topic) > 0, args.match_timeout, node)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    ordered = sorted(latencies)
    return {
        "received": len(latencies),
        "lost_reported": lost[0],  # samples the middleware reported lost (message_lost events)
        "latency_ms": {
            "median": round(statistics.median(ordered), 1) if ordered else None,
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("publish", "count"):
        p = sub.add_parser(name)
        p.add_argument("--topic", default="image")
        p.add_argument("--qos", choices=("best_effort", "reliable"), default="best_effort")
        p.add_argument("--seconds", type=float, default=10.0)
        p.add_argument("--match-timeout", type=float, default=30.0)
    p = sub.choices["publish"]
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--subscribers", type=int, default=1, help="wait for this many subscriptions first")
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--linger", type=float, default=0.5)
    args = parser.parse_args()
    report = publish(args) if args.command == "publish" else count(args)
    print(json.dumps(report), flush=True)
    sys.stderr.flush()
    os._exit(0)  # skip the DDS teardown at interpreter exit (slow on a loaded machine)


if __name__ == "__main__":
    main()
