"""``segzero demo``: the whole pipeline offline on a generated scene, in-process or through the node."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import segzero_ros.cli.options as options
from segzero_ros import build
from segzero_ros.cli.common import (
    LOG,
    note_tiny,
    run_goal,
    save_result,
    write_png,
)


def cmd_demo(args: argparse.Namespace) -> int:
    from segzero_ros.scenes import demo_scene

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rgb, _ = demo_scene(1280, 720)
    write_png(out / "scene.png", rgb)
    if args.tiny:
        LOG.info("building or loading the tiny offline models (first run: a few minutes)")
    if args.node:
        return _demo_through_node(args, rgb, out)
    result, values = run_goal(args, rgb)
    code = save_result(result, rgb, out, args.json)
    note_tiny(values)
    if build.TINY in (values["reasoner.model"], values["segmenter.model"]):
        return 0  # the demo ran every stage; a tiny model's unusable answer is itself a shown outcome
    return code


def _node_params(args: argparse.Namespace) -> list[str]:
    """``--ros-args`` parameters that give the node the models the command line names (same names)."""
    values = options.given_from_args(args)
    if args.tiny:
        values = {"preset": build.TINY, **values}
    out = []
    for name, value in values.items():
        out += ["-p", f"{name}:={json.dumps(value) if isinstance(value, str | bool) else value}"]
    return out


def _demo_through_node(args: argparse.Namespace, rgb: np.ndarray, out: Path) -> int:
    """Start ``segzero_node`` as its own process, send it the scene and the goal over topics, save its answer."""
    import os
    import signal
    import subprocess

    from segzero_ros.ros.client import TopicClient, shutdown_rclpy

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # this demo talks to itself only
    log_path = out / "node.log"
    command = [sys.executable, "-m", "segzero_ros.ros.node", "--ros-args", *_node_params(args)]
    LOG.info("starting the node (log: %s): %s", log_path, " ".join(command[1:]))
    with open(log_path, "w") as log:  # its own session: a Ctrl-C in this terminal reaches the node through us
        node = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = TopicClient()
    try:
        failure = _wait_for_demo_node(client, node, log_path, args.node_timeout)
        if failure:
            print(f"segzero demo: {failure}", file=sys.stderr)
            return 3
        LOG.info("node active; streaming the scene on 'image' and sending %r on 'goal'", args.goal)
        answer = client.segment(rgb, args.goal, timeout=args.node_timeout)
    except TimeoutError as exc:
        print(f"segzero: {exc}; see {log_path}")
        return 1
    finally:
        client.close()
        shutdown_rclpy()
        node.send_signal(signal.SIGTERM)  # still importing, it ends at once; running, it shuts down cleanly
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            node.kill()
    (out / "result.json").write_text(json.dumps(answer.result, indent=2) + "\n")
    LOG.info("wrote %s (the node's 'result' message)", out / "result.json")
    if answer.mask is not None:
        write_png(out / "mask.png", answer.mask[:, :, 0] if answer.mask.ndim == 3 else answer.mask)
    if answer.overlay is not None:
        write_png(out / "overlay.png", answer.overlay)
    print(json.dumps(answer.result) if args.json else json.dumps(answer.result, indent=2))
    note_tiny(options.values_from_args(args))
    return 0 if args.tiny or answer.result.get("status") == "ok" else 1


def _wait_for_demo_node(client, node, log_path: Path, timeout: float) -> str:
    """Until the demo's node is active: '' then, else why not (the line its log gives, or that it is gone)."""
    import time

    deadline = time.monotonic() + timeout
    while not client.wait_for_node(1.0):
        failed = [line for line in log_path.read_text(errors="replace").splitlines() if "model loading failed" in line]
        if failed:
            return failed[0].split("]: ", 1)[-1] + f" (node log: {log_path})"
        if node.poll() is not None:
            return f"the node exited with code {node.returncode} before it was active; see {log_path}"
        if time.monotonic() > deadline:
            return f"the node did not become active in {timeout:.0f} s; see {log_path}"
    return ""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero demo`` and its options, on the ``segzero`` parser."""
    p = sub.add_parser("demo", help="run the whole pipeline offline on a generated scene")
    p.add_argument("--out", default="demo_out", help="folder for scene.png, overlay.png, mask*.png, result.json")
    p.add_argument("--goal", default="the red cup")
    p.add_argument("--json", action="store_true", help="print the result as one line of JSON")
    p.add_argument("--node", action="store_true", help="run it through segzero_node (ROS 2 topics) as robots do")
    p.add_argument("--node-timeout", type=float, default=900.0, help="seconds to wait for the node, then its result")
    options.add_model_arguments(p, tiny_default=True)
    p.set_defaults(func=cmd_demo)
