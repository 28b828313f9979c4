"""Models from one configuration: the node's parameters (``segzero_ros.params``), whoever fills them.

The node passes its ROS parameters, the ``segzero`` commands and the evaluation pass their command-line options
(``add_model_arguments``: one option per model parameter, same name and meaning), and every one of them builds its
reasoner, SAM2 and tracker here. A preset (``tiny``) fills only what was not given: an explicit model always wins.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from segzero_ros import params
from segzero_ros.pipeline import Pipeline
from segzero_ros.reasoner.base import ReasonerBackend, ReasonerConfig, backend_class, make_reasoner
from segzero_ros.segmenter.base import BackendUnavailable, Segmenter, SegmenterConfig, make_segmenter

LOG = logging.getLogger(__name__)

TINY = "tiny"  # as a model name: the offline tiny model of that kind (built on first use)
PRESETS = ("", TINY)
MODEL_PREFIXES = ("reasoner.", "segmenter.")
MODEL_PARAMETERS: tuple[params.Param, ...] = tuple(p for p in params.PARAMETERS if p.name.startswith(MODEL_PREFIXES))


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message (one line) names it, the cause and the ways out."""


def _load_hint(kind: str) -> str:
    if kind == "reasoner":
        return (
            "ways out: a local Qwen2.5-VL folder (--reasoner PATH / reasoner.model), the offline tiny models (--tiny / "
            "preset: tiny), or network access or a Hugging Face cache that holds it (HF_HOME)"
        )
    return (
        "ways out: a local SAM2 checkpoint (--sam2 PATH [--sam2-config NAME] / segmenter.model, segmenter.config), "
        "the offline tiny models (--tiny / preset: tiny), or network access or a Hugging Face cache that holds it"
    )


def _load_error(kind: str, label: str, exc: BaseException) -> ModelLoadError:
    """The one-line error of a failed load: what failed and why, with the ways out when they can help."""
    from segzero_ros.devices import DeviceUnavailable

    if isinstance(exc, DeviceUnavailable):  # no other model would load there either
        return ModelLoadError(f"{label} could not be loaded: {exc}")
    return ModelLoadError(f"{label} could not be loaded ({_one_line(exc)}); {_load_hint(kind)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# --- configuration ----------------------------------------------------------------------------------------------


def resolve(given: Mapping[str, Any], preset: str = "") -> dict[str, Any]:
    """Every model parameter's value: those ``given``, else the preset's, else the default; checked as the node
    checks its parameters (``ValueError`` with the reason)."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    values = {p.name: p.default for p in MODEL_PARAMETERS}
    for name, value in given.items():
        if name not in values:
            raise ValueError(f"not a model parameter: {name!r}")
        param = params.BY_NAME[name]
        if isinstance(param.default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        reason = None if value == TINY and name.endswith(".model") else params.validate(name, value)
        if reason:
            raise ValueError(reason)
        values[name] = value
    if preset == TINY:
        if "reasoner.model" not in given and values["reasoner.backend"] == "local":
            values["reasoner.model"] = TINY  # a remote reasoner stays remote: the preset picks the tiny SAM2 only
        if "segmenter.model" not in given:
            values["segmenter.model"] = TINY
    return values


def given_in(values: Mapping[str, Any]) -> dict[str, Any]:
    """The model parameters among ``values`` that differ from their defaults (what a ROS user set)."""
    return {p.name: values[p.name] for p in MODEL_PARAMETERS if p.name in values and values[p.name] != p.default}


def reasoner_config(values: Mapping[str, Any]) -> ReasonerConfig:
    """The ``ReasonerConfig`` of resolved values (``reasoner.model: tiny`` → the fitted tiny model, its 112² input
    unless ``reasoner.image_size`` was set, on the CPU unless a device was set)."""
    model, image_size, device = values["reasoner.model"], values["reasoner.image_size"], values["reasoner.device"]
    local_files_only = values["reasoner.local_files_only"]
    if model == TINY:
        from segzero_ros.tiny import TINY_IMAGE_SIZE, tiny_reasoner_path

        model = str(tiny_reasoner_path())
        image_size = TINY_IMAGE_SIZE if image_size == params.BY_NAME["reasoner.image_size"].default else image_size
        device = "cpu" if device == "auto" else device
        local_files_only = True
    return ReasonerConfig(
        model=model,
        backend=values["reasoner.backend"],
        protocol=values["reasoner.protocol"],
        strict=values["reasoner.strict"],
        image_size=image_size,
        max_new_tokens=values["reasoner.max_new_tokens"],
        stop_at_answer=values["reasoner.stop_at_answer"],
        attn_implementation=values["reasoner.attn_implementation"],
        cache=values["reasoner.cache"],
        compile=values["reasoner.compile"],
        device=device,
        dtype=values["reasoner.dtype"],
        local_files_only=local_files_only,
    )


def reasoner_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The backend's own settings (its ``OPTIONS``) from the ``reasoner.*`` parameters."""
    cls = backend_class(values["reasoner.backend"])
    return {name: values[f"reasoner.{name}"] for name in getattr(cls, "OPTIONS", ())}


def segmenter_config(values: Mapping[str, Any]) -> SegmenterConfig:
    """The ``SegmenterConfig`` of resolved values (``segmenter.model: tiny`` → the tiny test SAM2)."""
    common = {
        "backend": values["segmenter.backend"],
        "precision": values["segmenter.precision"],
        "device": values["segmenter.device"],
    }
    if values["segmenter.model"] == TINY:
        from segzero_ros.tiny import tiny_segmenter_config

        return tiny_segmenter_config(**{**common, "device": "cpu" if common["device"] == "auto" else common["device"]})
    return SegmenterConfig(
        model=values["segmenter.model"],
        config=values["segmenter.config"] or None,
        local_files_only=values["reasoner.local_files_only"],
        **common,
    )


# --- models -----------------------------------------------------------------------------------------------------


def check_hub(values: Mapping[str, Any], kinds: Iterable[str] = ("segmenter", "reasoner")) -> None:
    """Before anything heavy is imported: a model named by a hub id that is neither cached nor reachable fails at
    once, in one line naming it and the ways out (instead of minutes of retries)."""
    for kind in kinds:
        if kind == "segmenter" or values["reasoner.backend"] == "local":  # else: a server's model name
            check_hub_model(kind, values[f"{kind}.model"], values["reasoner.local_files_only"])


def check_hub_model(kind: str, model: str, local_files_only: bool = False) -> None:
    """``check_hub`` for one model (``kind`` "reasoner" or "segmenter") given by name, id or path."""
    from segzero_ros.hub import HubUnreachable, is_repo_id, local_only

    if model == TINY or Path(model).expanduser().exists() or not is_repo_id(model):
        return  # the offline models, a local path, or no hub id (its loader says what is wrong)
    try:
        local_only(model, local_files_only=local_files_only)
    except HubUnreachable as exc:
        label = "reasoner" if kind == "reasoner" else "SAM2"
        raise ModelLoadError(f"{label} {model!r} could not be loaded ({exc}); {_load_hint(kind)}") from None


def build_reasoner(values: Mapping[str, Any]) -> ReasonerBackend:
    check_hub(values, ("reasoner",))
    config = reasoner_config(values)
    try:
        local_path = config.backend == "local" and config.model.startswith(("/", "./", "../", "~"))
        if local_path and not Path(config.model).expanduser().is_dir():
            raise FileNotFoundError(f"no such folder: {config.model}")
        return make_reasoner(config, reasoner_options(values))
    except Exception as exc:
        raise _load_error("reasoner", f"reasoner {values['reasoner.model']!r}", exc) from exc


def build_segmenter(values: Mapping[str, Any]) -> Segmenter:
    check_hub(values, ("segmenter",))
    config = segmenter_config(values)
    try:
        return make_segmenter(config)
    except BackendUnavailable:
        raise  # its message already says what to use instead
    except Exception as exc:
        raise _load_error("segmenter", f"SAM2 {values['segmenter.model']!r}", exc) from exc


def build_pipeline(values: Mapping[str, Any], max_goal_chars: int | None = None) -> Pipeline:
    """Reasoner and SAM2 of resolved ``values``; SAM2 first (the quicker of the two to fail on a bad setting)."""
    check_hub(values)
    segmenter = build_segmenter(values)
    try:
        reasoner = build_reasoner(values)
    except Exception:
        segmenter.close()
        raise
    limit = params.BY_NAME["max_goal_chars"].default if max_goal_chars is None else max_goal_chars
    return Pipeline(reasoner, segmenter, max_goal_chars=limit)


def tracking_min_score(models: Mapping[str, Any], min_score: float) -> float:
    """``tracking.min_score`` to use: 0 with the tiny SAM2 when left at its default (the random model's object scores
    hover around 0.5 and mean nothing: its tracks would be lost after a few frames); else as given."""
    default = params.BY_NAME["tracking.min_score"].default
    return 0.0 if models["segmenter.model"] == TINY and min_score == default else min_score


def build_tracker(values: Mapping[str, Any], input_scale: float = 1.0, min_score: float = 0.5, lost_frames: int = 5):
    """SAM2 built for video, in a ``Tracker`` (PyTorch whatever the segmenter backend)."""
    from segzero_ros.devices import resolve_device
    from segzero_ros.tracker import Tracker, load_tracking_model

    check_hub(values, ("segmenter",))
    config = segmenter_config(values)
    try:
        model = load_tracking_model(config, resolve_device(config.device), input_scale)
    except Exception as exc:
        raise _load_error("segmenter", f"tracking SAM2 {values['segmenter.model']!r}", exc) from exc
    return Tracker(model, min_score=min_score, lost_frames=lost_frames)


def build_tracking(values: Mapping[str, Any], min_score: float):
    """The node's (and replay's) tracking: SAM2's tracker in a ``TrackingLoop`` set by the ``tracking.*`` values."""
    from segzero_ros.tracking_loop import TrackingLoop

    tracker = build_tracker(values, values["tracking.input_scale"], min_score, values["tracking.lost_frames"])
    return TrackingLoop(tracker, values["tracking.every_n"], values["tracking.reacquire"], values["tracking.max_goals"])
