"""The node's parameters, defined once (ROS-free): name, default, description, range, choices, read-only.

``node.py`` declares each with a ``ParameterDescriptor``; ``config/segzero.yaml`` lists every one with its
default (a test keeps the two in step); ``validate`` is the check the node runs before accepting a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segzero_ros.protocol import PROTOCOLS
from segzero_ros.reasoner.base import (
    IMAGE_SIZE_RANGE,
    IMAGE_SIZE_STEP,
    KV_CACHES,
    MAX_NEW_TOKENS_RANGE,
    REASONER_BACKENDS,
    SEGZERO_7B,
)
from segzero_ros.segmenter.base import BACKENDS, PRECISIONS, SAM2_LARGE


@dataclass(frozen=True)
class Param:
    """One node parameter."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    # Where a live change goes, "<owner>.<attribute>" (owners: node, schedule, pipeline, reasoner, tracking,
    # tracker); '' for a live parameter read each time it is used, and for read-only ones.
    applies_to: str = ""


PARAMETERS: tuple[Param, ...] = (
    Param(
        "autostart", True, "configure and activate at start-up (false: wait for lifecycle transitions)", read_only=True
    ),
    Param(
        "preset",
        "",
        "'' for the models named below; 'tiny': the offline tiny models (tests, demo) for each model left at its "
        "default (reasoner.model, segmenter.model; the tiny reasoner at image size 112 unless one is set)",
        choices=("", "tiny"),
        read_only=True,
    ),
    Param(
        "compressed_input",
        False,
        "subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image",
        read_only=True,
    ),
    Param(
        "image_qos",
        "sensor_data",
        "QoS of the image subscription: sensor_data (best effort, as most camera drivers) or reliable",
        choices=("sensor_data", "reliable"),
        read_only=True,
    ),
    Param(
        "max_image_size",
        8192,
        "largest accepted image width or height, pixels",
        low=16,
        high=16384,
        step=1,
        applies_to="node._max_image_size",
    ),
    Param(
        "image_timeout_s",
        5.0,
        "how long a goal waits for a usable image (see image_max_age_s), then fails",
        low=0.0,
        high=600.0,
        applies_to="schedule.image_timeout_s",
    ),
    Param(
        "image_max_age_s",
        3.0,
        "newest frame older than this (s since it arrived): a goal waits for a newer one, up to image_timeout_s, "
        "then fails 'camera silent'; 0 takes any frame, however old",
        low=0.0,
        high=3600.0,
        applies_to="schedule.max_frame_age_s",
    ),
    Param(
        "max_pending_goals",
        4,
        "goals queued while busy; beyond this the oldest is answered 'superseded'",
        low=1,
        high=100,
        step=1,
        applies_to="schedule.max_pending_goals",
    ),
    Param(
        "max_goal_chars",
        2000,
        "longest accepted goal text, characters",
        low=1,
        high=100000,
        step=1,
        applies_to="pipeline.max_goal_chars",
    ),
    Param("publish_overlay", True, "publish the overlay image (drawn only while someone subscribes)"),
    Param("outputs_best_effort", False, "mask/labels/overlay with best-effort QoS instead of reliable", read_only=True),
    Param(
        "labels_encoding",
        "mono16",
        "the labels image: mono16 instance values (0 background, k on target k) or mono8 (capped at 255, for viewers)",
        choices=("mono16", "mono8"),
        read_only=True,
    ),
    Param(
        "reasoning_partial_hz",
        4.0,
        "rate of partial reasoning on reasoning_partial and as action feedback while the model writes (0: off)",
        low=0.0,
        high=100.0,
    ),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics messages, seconds", low=0.1, high=60.0, read_only=True),
    Param(
        "reasoner.backend",
        "local",
        "where the reasoner runs: local (transformers here) or openai (an OpenAI-compatible server, e.g. vLLM)",
        choices=tuple(REASONER_BACKENDS),
        read_only=True,
    ),
    Param("reasoner.endpoint", "http://localhost:8000/v1", "backend openai: the server's base URL", read_only=True),
    Param("reasoner.api_model", "", "backend openai: the served model's name ('' = reasoner.model)", read_only=True),
    Param(
        "reasoner.timeout_s",
        60.0,
        "backend openai: seconds before a request is abandoned",
        low=0.1,
        high=3600.0,
        applies_to="reasoner.timeout_s",
    ),
    Param(
        "reasoner.retries",
        2,
        "backend openai: retries after a failed request",
        low=0,
        high=10,
        step=1,
        applies_to="reasoner.retries",
    ),
    Param(
        "reasoner.api_key_env",
        "",
        "backend openai: NAME of the environment variable holding the API key (never the key itself)",
        read_only=True,
    ),
    Param("reasoner.model", SEGZERO_7B, "Qwen2.5-VL checkpoint: Hugging Face id or local folder", read_only=True),
    Param(
        "reasoner.protocol",
        "segzero",
        "answer protocol of the model: segzero (one object) or multi",
        choices=PROTOCOLS,
        applies_to="reasoner.protocol",
    ),
    Param(
        "reasoner.strict",
        False,
        "parse answers exactly as the reference code (no repairs)",
        applies_to="reasoner.strict",
    ),
    Param(
        "reasoner.image_size",
        840,
        "side of the square image the reasoner sees (reference: 840)",
        low=IMAGE_SIZE_RANGE[0],
        high=IMAGE_SIZE_RANGE[1],
        step=IMAGE_SIZE_STEP,
        read_only=True,
    ),
    Param(
        "reasoner.max_new_tokens",
        1024,
        "longest answer generated, tokens",
        low=MAX_NEW_TOKENS_RANGE[0],
        high=MAX_NEW_TOKENS_RANGE[1],
        step=1,
        applies_to="reasoner.max_new_tokens",
    ),
    Param(
        "reasoner.stop_at_answer",
        True,
        "end generation once '</answer>' is written (false: at end of turn)",
        applies_to="reasoner.stop_at_answer",
    ),
    Param("reasoner.device", "auto", "auto, cpu, cuda, cuda:N", read_only=True),
    Param(
        "reasoner.dtype",
        "auto",
        "auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32",
        choices=("auto", "bfloat16", "float16", "float32"),
        read_only=True,
    ),
    Param("reasoner.local_files_only", False, "never contact the Hugging Face hub", read_only=True),
    Param(
        "reasoner.attn_implementation",
        "sdpa",
        "attention kernels: sdpa, eager, or flash_attention_2 (where flash-attn is installed)",
        choices=("sdpa", "eager", "flash_attention_2"),
        read_only=True,
    ),
    Param(
        "reasoner.cache",
        "dynamic",
        "KV cache: dynamic (the reference's) or static (fixed buffers; same tokens, needed by compile)",
        choices=KV_CACHES,
        read_only=True,
    ),
    Param(
        "reasoner.compile",
        False,
        "torch.compile the reasoner's forward (needs cache static; the first goal pays the compilation)",
        read_only=True,
    ),
    Param(
        "tracking.enabled",
        True,
        "after a goal succeeds, keep its masks on the targets in every new frame with SAM2's memory (no reasoner)",
        read_only=True,
    ),
    Param(
        "tracking.input_scale",
        1.0,
        "SAM2's input side while tracking, as a fraction of its own: 1.0 is SAM2's video predictor exactly; 0.5 "
        "(1024 -> 512) is several times cheaper per frame, its mask quality with the released weights not measured",
        low=0.25,
        high=1.0,
        read_only=True,
    ),
    Param(
        "tracking.every_n",
        1,
        "track every n-th new camera frame",
        low=1,
        high=100,
        step=1,
        applies_to="tracking.every_n",
    ),
    Param(
        "tracking.min_score",
        0.5,
        "object score below which a tracked target counts as not seen",
        low=0.0,
        high=1.0,
        applies_to="tracker.min_score",
    ),
    Param(
        "tracking.lost_frames",
        5,
        "frames in a row below min_score before a target is lost",
        low=1,
        high=10000,
        step=1,
        applies_to="tracker.lost_frames",
    ),
    Param(
        "tracking.reacquire",
        False,
        "when every target is lost, run the goal again on the newest frame",
        applies_to="tracking.reacquire",
    ),
    Param(
        "tracking.max_goals",
        4,
        "goals tracked at once: a successful goal's targets join the tracked set; beyond this the oldest goal's "
        "track ends (1: a new goal replaces the track)",
        low=1,
        high=64,
        step=1,
        applies_to="tracking.max_goals",
    ),
    Param(
        "segmenter.backend",
        "torch",
        "SAM2 backend: torch, torch_compiled, onnx, tensorrt, auto (tensorrt > torch_compiled on a GPU, else onnx)",
        choices=BACKENDS,
        read_only=True,
    ),
    Param(
        "segmenter.precision",
        "auto",
        "SAM2 precision: auto (bf16 torch / fp16 TensorRT on a GPU, else fp32), fp32, bf16, fp16",
        choices=PRECISIONS,
        read_only=True,
    ),
    Param("segmenter.model", SAM2_LARGE, "SAM2: Hugging Face id or local checkpoint", read_only=True),
    Param("segmenter.config", "", "sam2 config for a local checkpoint ('' = from its file name)", read_only=True),
    Param("segmenter.device", "auto", "auto, cpu, cuda, cuda:N", read_only=True),
)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMETERS}

# The segzero_depth node's parameters (config/segzero_depth.yaml), all read at start-up.
DEPTH_PARAMETERS: tuple[Param, ...] = (
    Param("depth.enabled", True, "subscribe to depth and camera_info and publish 3D targets", read_only=True),
    Param(
        "depth.max_skew_s",
        0.05,
        "largest stamp difference between a result's frame and its depth image, s",
        low=0.0,
        high=5.0,
        read_only=True,
    ),
    Param(
        "depth.wait_s",
        1.0,
        "how long a result waits for a depth image of its frame, s",
        low=0.0,
        high=30.0,
        read_only=True,
    ),
    Param(
        "depth.buffer_size",
        30,
        "depth images kept for pairing (about one second of a 30 Hz camera)",
        low=1,
        high=1000,
        step=1,
        read_only=True,
    ),
    Param(
        "depth.erode_px",
        2,
        "pixels eroded from each mask before the centroid (edges see the background)",
        low=0,
        high=50,
        step=1,
        read_only=True,
    ),
    Param(
        "depth.cloud_stride",
        2,
        "keep every n-th row and column of a mask in target_cloud",
        low=1,
        high=64,
        step=1,
        read_only=True,
    ),
)
DEPTH_BY_NAME: dict[str, Param] = {p.name: p for p in DEPTH_PARAMETERS}


def validate(name: str, value: Any, by_name: dict[str, Param] = BY_NAME) -> str | None:
    """None when ``value`` is acceptable for parameter ``name`` (of ``by_name``), else the reason it is not."""
    param = by_name.get(name)
    if param is None:
        return None  # not ours (e.g. use_sim_time)
    expected = type(param.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return f"{name} must be {expected.__name__}, got {type(value).__name__}"
    if param.choices is not None and value not in param.choices:
        return f"{name} must be one of {list(param.choices)}, got {value!r}"
    if param.low is not None and value < param.low:
        return f"{name} must be >= {param.low}, got {value}"
    if param.high is not None and value > param.high:
        return f"{name} must be <= {param.high}, got {value}"
    if param.step and expected is int and (value - param.low) % param.step:
        return f"{name} must be a multiple of {param.step}, got {value}"
    return None


def nested(values: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}`` (the layout of a ROS parameters file)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The inverse of ``nested``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
