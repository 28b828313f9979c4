"""The ``segzero`` commands' model options, generated from the node's parameter table: the same names
(``--reasoner.model``, ``--segmenter.backend``, ...), types, choices, defaults and descriptions, plus short
spellings; and the values the models are built from (``build``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from segzero_ros import build, params

# Short spellings of the command line, kept for people used to them; each is the same option as its dotted name.
CLI_ALIASES: dict[str, tuple[str, ...]] = {
    "reasoner.model": ("--reasoner",),
    "reasoner.strict": ("--strict",),
    "reasoner.max_new_tokens": ("--max-new-tokens",),
    "reasoner.image_size": ("--image-size",),
    "reasoner.local_files_only": ("--local-files-only",),
    "segmenter.model": ("--sam2",),
    "segmenter.config": ("--sam2-config",),
    "segmenter.backend": ("--sam2-backend",),
    "segmenter.precision": ("--sam2-precision",),
}


def add_model_arguments(
    parser: argparse.ArgumentParser,
    tiny_default: bool = False,
    only: Iterable[str] = build.MODEL_PREFIXES,
    multi: bool = True,
) -> None:
    """One option per model parameter (``--reasoner.model``, ``--segmenter.backend``, ...: the node's names, its
    choices and meaning; short aliases such as ``--reasoner``), plus ``--tiny``, ``--device`` and ``--multi``."""
    group = parser.add_argument_group("models (the node's parameters of the same names)")
    if tiny_default:
        group.add_argument("--real", dest="tiny", action="store_false", help="the real models instead of tiny ones")
    group.add_argument(
        "--tiny",
        action="store_true",
        default=tiny_default,
        help="offline tiny models for every model not named explicitly (as the node's preset: tiny)",
    )
    group.add_argument("--device", default=None, help="device of both models unless set apart: auto, cpu, cuda:N")
    if multi:
        group.add_argument(
            "--multi",
            dest="reasoner.protocol",
            action="store_const",
            const="multi",
            help="the multi-object protocol (same as --reasoner.protocol multi)",
        )
    for param in build.MODEL_PARAMETERS:
        if param.name.startswith(tuple(only)):
            add_parameter_option(group, param, CLI_ALIASES.get(param.name, ()))


def add_parameter_option(group: Any, param: params.Param, aliases: Iterable[str] = ()) -> None:
    """``--NAME`` for node parameter ``param``: its type, choices and description; default None (= not given)."""
    names = (f"--{param.name}", *aliases)
    text = param.description + (" (or 'tiny')" if param.name.endswith(".model") else "")
    kwargs: dict[str, Any] = {"dest": param.name, "default": None, "help": f"{text} [default: {param.default!r}]"}
    if isinstance(param.default, bool):  # --NAME, --NAME true|false (the node's spelling), --no-NAME
        kwargs.update(nargs="?", const=True, type=parse_bool, metavar="true|false")
        off = [f"--no-{name.removeprefix('--')}" for name in names]
        group.add_argument(*off, dest=param.name, action="store_false", default=None, help=argparse.SUPPRESS)
    else:
        kwargs["type"] = type(param.default)
        if param.choices:
            kwargs["choices"] = param.choices
    group.add_argument(*names, **kwargs)


def parse_bool(text: str) -> bool:
    """A boolean as ROS parameters and shells write it: true/false, 1/0, yes/no, on/off (any case)."""
    value = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}
    try:
        return value[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}") from None


def parameter_values(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """Node parameters ``names`` from options of ``add_parameter_option``: given, else their defaults."""
    values = {}
    for name in names:
        given = getattr(args, name, None)
        values[name] = params.BY_NAME[name].default if given is None else given
        reason = params.validate(name, values[name])
        if reason:
            raise SystemExit(f"segzero: {reason}")
    return values


def given_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The model parameters given on the command line (``--device`` for both models unless set apart)."""
    given = {p.name: getattr(args, p.name) for p in build.MODEL_PARAMETERS if getattr(args, p.name, None) is not None}
    if getattr(args, "device", None):
        given.setdefault("reasoner.device", args.device)
        given.setdefault("segmenter.device", args.device)
    return given


def values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Resolved model parameters from the options of ``add_model_arguments``."""
    try:
        return build.resolve(given_from_args(args), build.TINY if getattr(args, "tiny", False) else "")
    except ValueError as exc:
        raise SystemExit(f"segzero: {exc}") from None
