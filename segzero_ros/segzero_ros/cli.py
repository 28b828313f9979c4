"""The ``segzero`` command: demo, infer, segment, ask, camera, export-onnx, build-engine, eval, bench."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

import numpy as np

LOG = logging.getLogger("segzero")

TINY_REASONER_NOTE = (
    "the tiny reasoner is fitted to always give the same answer (a box on the demo scene's red cup), whatever the "
    "image and goal"
)
TINY_SAM2_NOTE = "the tiny SAM2 has random weights, so its masks carry no meaning"
REAL_MODELS_NOTE = (
    "For real results: segzero infer --image IMG --goal TEXT (downloads Ricky06662/Seg-Zero-7B and "
    "facebook/sam2-hiera-large, ~17 GB, a GPU with >= 24 GB recommended), or --reasoner/--sam2 with local paths."
)


def _read_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise SystemExit(f"segzero: cannot read image {path!r}: {exc}") from None


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array).save(path)
    LOG.info("wrote %s", path)


def tiny_note(reasoner: bool, segmenter: bool) -> str:
    """What the tiny models that ran mean (nothing), in one NOTE line; '' when none ran."""
    parts = [TINY_REASONER_NOTE] * reasoner + [TINY_SAM2_NOTE] * segmenter
    if not parts:
        return ""
    return f"NOTE: this ran tiny offline models: {'; '.join(parts)}. It checks the plumbing. {REAL_MODELS_NOTE}"


def _note_tiny(values: dict, reasoner_ran: bool = True) -> None:
    from segzero_ros.build import TINY

    note = tiny_note(reasoner_ran and values["reasoner.model"] == TINY, values["segmenter.model"] == TINY)
    if note:
        print(note, file=sys.stderr)


def _run_goal(args: argparse.Namespace, rgb: np.ndarray):
    """The models the options name, built, run once on ``rgb`` for ``args.goal``, released; (result, values)."""
    from segzero_ros import build

    values = build.values_from_args(args)
    pipeline = build.build_pipeline(values)
    try:
        return pipeline.run(rgb, args.goal), values
    finally:
        pipeline.close()


def _save_result(result, rgb: np.ndarray, out: Path | None, as_json: bool) -> int:
    from segzero_ros.overlay import draw_overlay

    summary = result.to_dict()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        _write_png(out / "overlay.png", draw_overlay(rgb, result.targets, result.masks))
        if result.ok:
            _write_png(out / "mask.png", result.union().astype(np.uint8) * 255)
            for k, mask in enumerate(result.masks, start=1):
                _write_png(out / f"mask_{k}.png", mask.astype(np.uint8) * 255)
        (out / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
        LOG.info("wrote %s", out / "result.json")
    if as_json:
        print(json.dumps(summary))
    else:
        print(json.dumps(summary, indent=2))
    return 0 if result.ok else 1


def cmd_infer(args: argparse.Namespace) -> int:
    rgb = _read_image(args.image)
    result, values = _run_goal(args, rgb)
    code = _save_result(result, rgb, Path(args.out) if args.out else None, args.json)
    _note_tiny(values)
    return code


def _parse_xy(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y, got {text!r}") from None
    return x, y


def _parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x1,y1,x2,y2, got {text!r}") from None
    if x2 <= x1 or y2 <= y1:
        raise argparse.ArgumentTypeError(f"box needs x1 < x2 and y1 < y2, got {text!r}")
    return x1, y1, x2, y2


def cmd_segment(args: argparse.Namespace) -> int:
    from segzero_ros import build
    from segzero_ros.overlay import draw_overlay
    from segzero_ros.protocol import Target

    rgb = _read_image(args.image)
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = args.box
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        LOG.warning(
            "the box %s reaches outside the %dx%d image; SAM2 takes it as it is (coordinates are image pixels)",
            ",".join(f"{v:g}" for v in args.box),
            width,
            height,
        )
    target = Target(bbox=args.box, points=list(args.points or []))
    values = build.values_from_args(args)
    segmenter = build.build_segmenter(values)
    segments = segmenter.segment(rgb, [target])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_png(out / "mask.png", segments[0].mask.astype(np.uint8) * 255)
    _write_png(out / "overlay.png", draw_overlay(rgb, [target], [segments[0].mask]))
    print(
        json.dumps(
            {
                "bbox": list(target.bbox),
                "points": [list(p) for p in target.points],
                "area": int(segments[0].mask.sum()),
                "score": round(segments[0].score, 4),
            }
        )
    )
    _note_tiny(values, reasoner_ran=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from segzero_ros import build
    from segzero_ros.scenes import demo_scene

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rgb, _ = demo_scene(1280, 720)
    _write_png(out / "scene.png", rgb)
    if args.tiny:
        LOG.info("building or loading the tiny offline models (first run: a few minutes)")
    if args.node:
        return _demo_through_node(args, rgb, out)
    result, values = _run_goal(args, rgb)
    code = _save_result(result, rgb, out, args.json)
    _note_tiny(values)
    if build.TINY in (values["reasoner.model"], values["segmenter.model"]):
        return 0  # the demo ran every stage; a tiny model's unusable answer is itself a shown outcome
    return code


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from segzero_ros.segmenter import SegmenterConfig
    from segzero_ros.segmenter.onnx import export_config
    from segzero_ros.tiny import tiny_segmenter_config

    if args.tiny:
        config = tiny_segmenter_config(multimask_output=not args.single_mask)
    else:
        from segzero_ros.build import check_hub_model

        check_hub_model("segmenter", args.checkpoint, args.local_files_only)
        config = SegmenterConfig(
            model=args.checkpoint,
            config=args.config,
            overrides=list(args.override),
            multimask_output=not args.single_mask,
            local_files_only=args.local_files_only,
        )
    info = export_config(config, args.out)
    print(json.dumps({"out": str(args.out), **info.__dict__}))
    if args.tiny:
        print(tiny_note(reasoner=False, segmenter=True), file=sys.stderr)
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from segzero_ros.devices import resolve_device
    from segzero_ros.segmenter.base import BackendUnavailable
    from segzero_ros.segmenter.tensorrt import build_engines, machine_spec, tensorrt_module

    try:
        trt = tensorrt_module()
        spec = machine_spec(trt, resolve_device(args.device), args.onnx, args.fp16, args.workspace, args.max_points)
    except BackendUnavailable as exc:
        raise SystemExit(f"segzero build-engine: {exc}") from None
    build_engines(trt, args.onnx, args.out, spec)
    print(json.dumps({"out": str(args.out), **asdict(spec)}))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from segzero_ros.benchmarks.sam2 import bench_sam2, format_table

    result = bench_sam2(args.config, args.backends.split(","), args.repeats, args.device, args.image_size)
    return _report(result, args, lambda: format_table(args.config, result, args.repeats))


def cmd_bench_reasoner(args: argparse.Namespace) -> int:
    from segzero_ros.benchmarks.reasoner import bench_reasoner, format_reasoner_table

    model = "tiny" if args.tiny else args.model
    paths = args.paths.split(",") if args.paths else None
    result = bench_reasoner(model, paths, args.new_tokens, args.repeats, args.device, args.dtype)
    return _report(result, args, lambda: format_reasoner_table(result))


def _report(result: dict, args: argparse.Namespace, table) -> int:
    """Write ``result`` to ``--out`` when asked; print it as one JSON object (``--json``) or a table."""
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result) if args.json else table())
    return 0


def _node_params(args: argparse.Namespace) -> list[str]:
    """``--ros-args`` parameters that give the node the models the command line names (same names)."""
    from segzero_ros import build

    values = build.given_from_args(args)
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

    from segzero_ros import build
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
        _write_png(out / "mask.png", answer.mask[:, :, 0] if answer.mask.ndim == 3 else answer.mask)
    if answer.overlay is not None:
        _write_png(out / "overlay.png", answer.overlay)
    print(json.dumps(answer.result) if args.json else json.dumps(answer.result, indent=2))
    _note_tiny(build.values_from_args(args))
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


def cmd_ask(args: argparse.Namespace) -> int:
    """One goal to a running node through its ``segment`` action; prints what came back."""
    from segzero_ros.image_codec import image_to_numpy
    from segzero_ros.overlay import colour_labels
    from segzero_ros.ros.client import SegmentClient, result_summary, shutdown_rclpy

    image = _read_image(args.image) if args.image else None
    client = SegmentClient(namespace=args.namespace)
    try:
        try:
            client.require_node(args.wait)
            result = client.segment(
                args.goal, image=image, multi=args.multi, timeout=args.timeout, omit_images=args.out is None
            )
        except (TimeoutError, RuntimeError) as exc:
            print(f"segzero ask: {exc}", file=sys.stderr)
            return 2
    finally:
        client.close()
        shutdown_rclpy()
    summary = result_summary(result)
    if args.out and result.mask.width:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _write_png(out / "mask.png", image_to_numpy(result.mask))
        labels = image_to_numpy(result.labels)
        _write_png(out / "labels.png", labels)  # the node's label image as it is (0 background, k target k)
        _write_png(out / "labels_colour.png", colour_labels(labels[..., 0] if labels.ndim == 3 else labels))
        summary["mask_file"] = str(out / "mask.png")
    if args.json:
        print(json.dumps(summary))
    else:
        print(_readable(summary))
    return 0 if result.status == "ok" else 1


def _readable(summary: dict) -> str:
    """``segzero ask``'s answer for a person: status, frame, reasoning, targets, timings."""
    frame = summary["frame"]
    lines = [
        f"goal {summary['id']} ({summary['goal']!r}): {summary['status']}"
        + (f": {summary['error']}" if summary["error"] else ""),
        f"frame: {frame['frame_id'] or '-'} at {frame['stamp']['sec']}.{frame['stamp']['nanosec']:09d}"
        + (f", {frame['width']}x{frame['height']}" if frame["width"] else ""),
    ]
    if summary["reasoning"]:
        lines.append(f"reasoning: {summary['reasoning']}")
    for k, target in enumerate(summary["targets"], start=1):
        lines.append(
            f"target {k}: box {target['bbox']}, points {target['points']}, score {target['score']}, "
            f"area {target['area']} px"
        )
    t = summary["timings_ms"]
    lines.append(f"time: {t['total']:.0f} ms (reasoning {t['reason']:.0f} ms, segmentation {t['segment']:.0f} ms)")
    if "mask_file" in summary:
        lines.append(f"mask: {summary['mask_file']}")
    return "\n".join(lines)


def cmd_camera(args: argparse.Namespace) -> int:
    """An image file (or the demo scene) published as a camera stream, until Ctrl-C or ``--seconds``."""
    from segzero_ros.ros.client import shutdown_rclpy, stream_image
    from segzero_ros.scenes import demo_scene

    rgb = _read_image(args.image) if args.image else demo_scene(1280, 720)[0]
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


def cmd_replay(args: argparse.Namespace) -> int:
    """A recording through the node's code: outputs as an MCAP recording, summary.json, optionally a video."""
    from itertools import zip_longest

    from segzero_ros import build
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
    options = ReplayOptions(
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
    models = build.values_from_args(args)
    args.stop.raises = False  # Ctrl-C stops after the frame in progress; the outputs so far are kept readable
    try:
        summary = Replay(options, models, build.parameter_values(args, NODE_PARAMETERS)).run()
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


def training_module(name: str):
    """``training.<name>`` of this source tree (the sam2 wheel installs an unrelated top-level ``training``)."""
    root = Path(__file__).resolve().parents[2]  # the repository: segzero_ros/segzero_ros/cli.py
    if not (root / "training" / "__init__.py").is_file():
        raise SystemExit(f"segzero: no training/ in {root}; segzero eval runs from a source checkout")
    cached = sys.modules.get("training")
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve().parent != root / "training":
        for key in [k for k in sys.modules if k == "training" or k.startswith("training.")]:
            del sys.modules[key]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    elif sys.path.index(str(root)) > 0:
        sys.path.remove(str(root))
        sys.path.insert(0, str(root))
    return importlib.import_module(f"training.{name}")


class _Parser(argparse.ArgumentParser):
    """Usage errors in two lines (what is wrong, where the options are) instead of the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    from segzero_ros import build
    from segzero_ros.segmenter.base import SAM2_LARGE

    parser = _Parser(prog="segzero", description="Reasoning segmentation (Seg-Zero) tools.")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole pipeline offline on a generated scene")
    p.add_argument("--out", default="demo_out", help="folder for scene.png, overlay.png, mask*.png, result.json")
    p.add_argument("--goal", default="the red cup")
    p.add_argument("--json", action="store_true", help="print the result as one line of JSON")
    p.add_argument("--node", action="store_true", help="run it through segzero_node (ROS 2 topics) as robots do")
    p.add_argument("--node-timeout", type=float, default=900.0, help="seconds to wait for the node, then its result")
    build.add_model_arguments(p, tiny_default=True)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("infer", help="segment what a goal asks for in an image")
    p.add_argument("--image", required=True)
    p.add_argument("--goal", required=True)
    p.add_argument("--out", default=None, help="folder for overlay.png, mask*.png, result.json")
    p.add_argument("--json", action="store_true", help="print the result as one line of JSON")
    build.add_model_arguments(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("segment", help="run SAM2 alone on a box (+ points) prompt")
    p.add_argument("--image", required=True)
    p.add_argument("--box", required=True, type=_parse_box, help="x1,y1,x2,y2 in image pixels")
    p.add_argument("--points", nargs="*", type=_parse_xy, help="positive clicks x,y ...")
    p.add_argument("--out", default="segment_out")
    build.add_model_arguments(p, only=("segmenter.", "reasoner.local_files_only"), multi=False)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("export-onnx", help="export SAM2 to ONNX (encoder.onnx + decoder.onnx + export.json)")
    p.add_argument("--checkpoint", default=SAM2_LARGE, help="Hugging Face id or local SAM2 checkpoint")
    p.add_argument("--config", default=None, help="sam2 config (default: from the id or the file name)")
    p.add_argument("--override", action="append", default=[], help="hydra override of the config (repeatable)")
    p.add_argument("--single-mask", action="store_true", help="decoder gives one mask instead of SAM2's three")
    p.add_argument("--out", required=True, help="folder for the graphs")
    p.add_argument("--tiny", action="store_true", help="export the tiny offline SAM2")
    p.add_argument("--local-files-only", action="store_true", help="never contact the Hugging Face hub")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("build-engine", help="build TensorRT engines from an ONNX export (needs tensorrt and a GPU)")
    p.add_argument("--onnx", required=True, help="folder written by segzero export-onnx")
    p.add_argument("--out", required=True, help="folder for encoder.engine, decoder.engine, engine.json")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="fp16 kernels (default on)")
    p.add_argument("--workspace", type=float, default=4.0, help="builder workspace, GB")
    p.add_argument("--max-points", type=int, default=34, help="most prompt points (box corners + clicks)")
    p.add_argument("--device", default="cuda", help="cuda or cuda:N")
    p.set_defaults(func=cmd_build_engine)

    p = sub.add_parser("ask", help="send one goal to a running node (its 'segment' action); print the answer")
    p.add_argument("goal", help="what to segment, in plain language")
    p.add_argument("--image", default=None, help="segment this image file instead of the node's newest camera frame")
    p.add_argument("--multi", action="store_true", help="every object the goal names (multi protocol)")
    p.add_argument("--out", default=None, help="folder for mask.png, labels.png and labels_colour.png (to look at)")
    p.add_argument("--namespace", default="", help="the node's namespace")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the node's action server")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer (then cancel)")
    p.add_argument("--json", action="store_true", help="print the answer as one line of JSON")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("camera", help="publish an image file (default: the demo scene) as a camera stream")
    p.add_argument("--image", default=None, help="image file (default: the generated 1280x720 demo scene)")
    p.add_argument("--topic", default="image")
    p.add_argument("--rate", type=float, default=5.0, help="frames per second")
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until Ctrl-C)")
    p.add_argument("--namespace", default="")
    p.set_defaults(func=cmd_camera)

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
    build.add_model_arguments(p)
    node_options = p.add_argument_group("node parameters (the node's names)")
    from segzero_ros.params import BY_NAME
    from segzero_ros.replay_schedule import NODE_PARAMETERS

    for name in NODE_PARAMETERS:
        build.add_parameter_option(node_options, BY_NAME[name])
    p.set_defaults(func=cmd_replay, realtime=False)

    sub.add_parser(
        "eval",
        add_help=False,
        help="gIoU/cIoU of a reasoner + SAM2 on an evaluation set (training/evaluate.py; segzero eval --help)",
    )

    p = sub.add_parser("bench", help="benchmarks")
    bench = p.add_subparsers(dest="bench", required=True)
    p = bench.add_parser("sam2", help="SAM2 backends side by side: encoder/decoder ms, speed-up, mask IoU")
    p.add_argument(
        "--config", default="sam2.1_hiera_t", help="'tiny' or a sam2 config: sam2.1_hiera_t, sam2_hiera_l, or its path"
    )
    p.add_argument(
        "--backends", default="torch,onnx", help="comma-separated, the reference first (torch = eager fp32; torch:bf16)"
    )
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--image-size", type=int, default=None, help="SAM2 input side (default the config's, 1024)")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by backend")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(func=cmd_bench)
    p = bench.add_parser("reasoner", help="reasoner generation paths: prefill ms, decode tokens/s, same tokens")
    p.add_argument("--model", default="tiny", choices=("tiny", "7b", "3b"), help="tiny, or a random 7b/3b (GPU)")
    p.add_argument("--tiny", action="store_true", help="the tiny model (the default)")
    p.add_argument("--paths", default=None, help="comma-separated: default,static,static+compile (all)")
    p.add_argument("--new-tokens", type=int, default=64, help="tokens generated per run (forced length)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32")
    p.add_argument("--json", action="store_true", help="print one JSON object (paths, same_tokens)")
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.set_defaults(func=cmd_bench_reasoner)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "eval":
        return training_module("evaluate").main(rest + (["--quiet"] if args.quiet else []), prog="segzero eval")
    if rest:
        command = f"{parser.prog} {args.command}" + (f" {args.bench}" if args.command == "bench" else "")
        parser.exit(2, f"{command}: error: unrecognized arguments: {' '.join(rest)}\n({command} --help lists them)\n")
    # Our own loggers say what happens; libraries' INFO chatter (sam2 logs every embedding) stays out.
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(name)s: %(message)s", stream=sys.stderr)
    for name in ("segzero", "segzero_ros", "training"):
        logging.getLogger(name).setLevel(logging.WARNING if args.quiet else logging.INFO)
    from segzero_ros.build import ModelLoadError
    from segzero_ros.ros.transport import TransportConfigError
    from segzero_ros.segmenter.base import BackendUnavailable
    from segzero_ros.stop_signals import StopSignals

    with StopSignals() as args.stop:
        try:
            return int(args.func(args) or 0)
        except (ModelLoadError, BackendUnavailable, TransportConfigError) as exc:
            print(f"segzero {args.command}: {exc}", file=sys.stderr)
            return 3
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the command cleaned up on its way out
            print(f"segzero {args.command}: stopped by {args.stop.name or 'SIGINT'}", file=sys.stderr)
            return args.stop.exit_code


if __name__ == "__main__":
    sys.exit(main())
