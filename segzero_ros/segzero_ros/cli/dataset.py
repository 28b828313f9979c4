"""``segzero export`` and ``segzero import``: a replay's masks as a labelled dataset (COCO, Label Studio, GRPO
training rows), and corrected COCO annotations back into training rows."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

FORMATS = ("coco", "labelstudio", "grpo")


class _ReplayOptions(argparse.ArgumentParser):
    """The replay options after ``--``: a usage error in two lines."""

    def error(self, message: str):
        self.exit(2, f"segzero export: error in the replay options after --: {message}\n(segzero replay --help)\n")


def _replay_first(args: argparse.Namespace, out: Path) -> tuple[Path, int]:
    """``args.source`` replayed into ``out/replay`` with the options after ``--`` (and ``--with-input``); the
    replay output and the replay's exit code (not 0: it said why, or it was interrupted)."""
    import segzero_ros.cli.replay as replay_command

    parser = _ReplayOptions(prog="segzero export")
    replay_command.add_parser(parser.add_subparsers(dest="command", required=True))
    replay_out = out / "replay"
    argv = ["replay", str(args.source), "--out", str(replay_out), "--with-input", "--overwrite", *args.passthrough]
    replay_args = parser.parse_args(argv)
    replay_args.stop, replay_args.quiet = args.stop, args.quiet
    return replay_out, int(replay_args.func(replay_args) or 0)


def cmd_export(args: argparse.Namespace) -> int:
    """A replay output's (or a recording's, replayed now) answered and tracked frames as a dataset in ``--out``."""
    from segzero_ros.labelled_data import write_coco, write_labelstudio, write_previews
    from segzero_ros.ros.bags import BagError
    from segzero_ros.ros.replay_output import is_replay_output, labelled_frames

    source, out = Path(args.source), Path(args.out)
    if not source.exists():
        print(f"segzero export: {source}: no such file or folder", file=sys.stderr)
        return 2
    if args.every < 1:
        print("segzero export: --every must be 1 or more", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if not is_replay_output(source):
        source, code = _replay_first(args, out)
        if code:
            return code
    elif args.passthrough:
        print(
            f"segzero export: {source} is a replay output already: the options after -- are for a recording",
            file=sys.stderr,
        )
        return 2
    try:
        frames = labelled_frames(source, args.every)
    except BagError as exc:
        print(f"segzero export: {exc}", file=sys.stderr)
        return 2
    if args.preview:
        write_previews(frames, out)
    if args.format == "coco":
        written = write_coco(frames, out)
    elif args.format == "labelstudio":
        written = write_labelstudio(frames, out, args.image_root)
    else:
        from segzero_ros.cli.evaluate import training_module

        data = training_module("data")
        samples = ((f.rgb, t.goal, f.mask(t)) for f in frames for t in f.targets)
        written = data.write_rows(data.rows_from_masks(samples, args.protocol, id_prefix="export", resize=False), out)
    targets = sum(len(f.targets) for f in frames)
    print(json.dumps({"format": args.format, "frames": len(frames), "targets": targets, "written": str(written)}))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """COCO annotations (a labelling tool's export, or edits of ``segzero export``'s) as training rows."""
    from segzero_ros.cli.evaluate import training_module

    annotations, images = Path(args.annotations), Path(args.images)
    for path in (annotations, images):
        if not path.exists():
            print(f"segzero import: {path}: no such file or folder", file=sys.stderr)
            return 2
    data = training_module("data")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints its progress; stdout is the report
            rows = data.coco_rows(annotations, images, args.protocol, resize=False)
    except (KeyError, ValueError, OSError) as exc:
        print(f"segzero import: {annotations}: cannot read it ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    written = data.write_rows(rows, Path(args.out))
    print(json.dumps({"rows": len(rows), "written": str(written)}))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """``segzero export`` and ``segzero import`` and their options, on the ``segzero`` parser."""
    p = sub.add_parser(
        "export",
        help="a replay's masks as a dataset: COCO, Label Studio tasks or GRPO training rows",
        description="SOURCE: a `segzero replay` output, or a recording replayed first with the replay options "
        "given after -- (e.g. -- --tiny --goal 'the red cup').",
    )
    p.add_argument("source", help="a segzero replay output (its --out folder) or a recording")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", required=True, help="folder for the dataset (images/ and the annotation file)")
    p.add_argument("--every", type=int, default=1, help="every n-th labelled frame (an answer's frame always)")
    p.add_argument("--protocol", default="segzero", choices=("segzero", "multi"), help="grpo: the answer protocol")
    p.add_argument("--image-root", default="", help="labelstudio: prefix of the image paths in the tasks")
    p.add_argument("--preview", action="store_true", help="also each frame with its masks drawn, in preview/")
    p.set_defaults(func=cmd_export)
    q = sub.add_parser("import", help="COCO annotations (e.g. corrected in a labelling tool) as GRPO training rows")
    q.add_argument("annotations", help="a COCO annotation file (the goal from caption/goal, else the category)")
    q.add_argument("--images", required=True, help="the folder the file names are relative to")
    q.add_argument("--out", required=True, help="folder for the training rows (train.parquet)")
    q.add_argument("--protocol", default="segzero", choices=("segzero", "multi"), help="the answer protocol")
    q.set_defaults(func=cmd_import)
