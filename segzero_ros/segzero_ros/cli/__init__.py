"""The ``segzero`` command: one module per subcommand (``infer``, ``demo``, ``segment``, ``export`` (ONNX,
engines), ``ask``, ``camera``, ``replay``, ``dataset`` (export, import), ``serve``, ``evaluate``, ``bench``); their
model options come from the node's parameter table (``options``)."""

from __future__ import annotations

import argparse
import logging
import sys


class _Parser(argparse.ArgumentParser):
    """Usage errors in two lines (what is wrong, where the options are) instead of the whole usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    from segzero_ros.cli import ask, bench, camera, dataset, demo, evaluate, export, infer, replay, segment, serve

    parser = _Parser(prog="segzero", description="Reasoning segmentation (Seg-Zero) tools.")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (demo, infer, segment, export, ask, camera, replay, dataset, serve, evaluate, bench):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from segzero_ros.cli import evaluate

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `segzero serve ... -- VLLM ARGS`, `segzero export BAG ... -- REPLAY ARGS`
    passthrough = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args, rest = parser.parse_known_args(argv)
    if passthrough and args.command not in ("serve", "export"):
        parser.exit(
            2, f"{parser.prog} {args.command}: error: arguments after -- are for `segzero serve` and `export` only\n"
        )
    args.passthrough = passthrough
    if args.command == "eval":
        return evaluate.training_module("evaluate").main(
            rest + (["--quiet"] if args.quiet else []), prog="segzero eval"
        )
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
