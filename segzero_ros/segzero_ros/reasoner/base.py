"""What every reasoner backend shares: its configuration, the ``Reasoning`` it returns, the ``ReasonerBackend``
interface, and the registry that builds a backend by name (the interface module imports no backend).

Adding a backend: one module with a class ``Backend(config, options)`` implementing ``ReasonerBackend`` (its
``OPTIONS`` name the ``reasoner.*`` parameters it reads), plus one line in ``REASONER_BACKENDS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from segzero_ros.protocol import PROTOCOLS, ROUNDING_OF_PROTOCOL, AnswerFormatError, Target, parse_answer, scale_targets

KV_CACHES = ("dynamic", "static")
IMAGE_SIZE_STEP = 28  # Qwen2.5-VL's patch (14) times its merge (2): the reasoner's image side is a multiple of it
IMAGE_SIZE_RANGE = (IMAGE_SIZE_STEP, 4088)  # 4088: the largest multiple of 28 up to 4096
MAX_NEW_TOKENS_RANGE = (1, 32768)
SEGZERO_7B = "Ricky06662/Seg-Zero-7B"
# backend name -> "module:class"; the module is imported only when that backend is built.
REASONER_BACKENDS: dict[str, str] = {
    "local": "segzero_ros.reasoner.local:Reasoner",
    "openai": "segzero_ros.reasoner.remote:RemoteReasoner",
}
# ReasonerConfig fields a running reasoner takes from a live parameter change.
LIVE_FIELDS = ("protocol", "strict", "max_new_tokens", "stop_at_answer")


@dataclass
class ReasonerConfig:
    """How to load and run the reasoning model (defaults: the reference inference set-up)."""

    model: str = SEGZERO_7B
    backend: str = "local"
    protocol: str = "segzero"
    strict: bool = False
    image_size: int = 840
    max_new_tokens: int = 1024
    device: str = "auto"
    dtype: str = "auto"
    attn_implementation: str = "sdpa"
    device_map: str | None = None
    local_files_only: bool = False
    revision: str | None = None
    stop_at_answer: bool = True  # end generation at "</answer>" instead of the end-of-turn token
    cache: str = "dynamic"  # KV cache: dynamic (the reference's) or static (fixed buffers, what compile needs)
    compile: bool = False  # torch.compile the model's forward (prefill and decode steps); needs cache="static"
    compile_backend: str = "inductor"  # torch.compile backend (tests use "eager": the capture without a compiler)

    def __post_init__(self) -> None:
        if self.backend not in REASONER_BACKENDS:
            raise ValueError(f"reasoner backend must be one of {tuple(REASONER_BACKENDS)}, got {self.backend!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"reasoner protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        low, high = IMAGE_SIZE_RANGE
        if not low <= self.image_size <= high or self.image_size % IMAGE_SIZE_STEP:
            raise ValueError(
                f"reasoner image_size must be a multiple of {IMAGE_SIZE_STEP} in [{low}, {high}], got {self.image_size}"
            )
        if not MAX_NEW_TOKENS_RANGE[0] <= self.max_new_tokens <= MAX_NEW_TOKENS_RANGE[1]:
            raise ValueError(f"max_new_tokens must be in {list(MAX_NEW_TOKENS_RANGE)}, got {self.max_new_tokens}")
        if self.cache not in KV_CACHES:
            raise ValueError(f"reasoner cache must be one of {KV_CACHES}, got {self.cache!r}")
        if self.compile and self.cache != "static":
            raise ValueError("reasoner compile needs cache='static' (a dynamic cache recompiles at every step)")


@dataclass
class Reasoning:
    """One reasoning run: raw text, think text, targets (camera pixels) or the reason it failed."""

    text: str
    think: str | None = None
    targets: list[Target] = field(default_factory=list)
    model_targets: list[Target] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    new_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class ReasonerBackend(Protocol):
    """A reasoning model, wherever it runs: ``reason`` answers one goal on one image."""

    config: ReasonerConfig

    @property
    def description(self) -> str:
        """The model and where it runs, for logs (e.g. ``Ricky06662/Seg-Zero-7B on cuda (torch.bfloat16)``)."""
        ...

    def reason(
        self,
        rgb: np.ndarray,
        goal: str,
        protocol: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Reasoning:
        """Answer ``goal`` on ``rgb`` (H×W×3 uint8); a garbled answer is a failed ``Reasoning``. ``on_text`` gets
        the answer text so far while it is generated."""
        ...

    def update(self, settings: Mapping[str, Any]) -> None:
        """Take live settings by short name (``LIVE_FIELDS`` and the backend's own live options); settings of other
        backends are ignored."""
        ...

    def close(self) -> None:
        """Release the model."""
        ...


def backend_class(name: str) -> type:
    """The class registered for backend ``name`` (its module imported now)."""
    if name not in REASONER_BACKENDS:
        raise ValueError(f"unknown reasoner backend {name!r}; known: {', '.join(REASONER_BACKENDS)}")
    module, _, cls = REASONER_BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_reasoner(config: ReasonerConfig, options: Mapping[str, Any] | None = None) -> ReasonerBackend:
    """Build the backend ``config.backend`` names; ``options`` are its own settings (``OPTIONS``)."""
    return backend_class(config.backend)(config, options or {})


def update_config(config: ReasonerConfig, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the ``LIVE_FIELDS`` among ``settings`` to ``config``; the settings left for the backend itself."""
    rest = {}
    for name, value in settings.items():
        if name in LIVE_FIELDS:
            setattr(config, name, value)
        else:
            rest[name] = value
    return rest


def interpret_answer(text: str, protocol: str, strict: bool, model_size: int, image_wh: tuple[int, int]) -> Reasoning:
    """Parse ``text`` and map its targets from the model's square frame to the camera frame."""
    try:
        answer = parse_answer(text, protocol, strict=strict)
    except AnswerFormatError as exc:
        return Reasoning(text=text, error=f"unusable model answer: {exc}")
    targets = scale_targets(answer.targets, (model_size, model_size), image_wh, rounding=ROUNDING_OF_PROTOCOL[protocol])
    if not targets:
        return Reasoning(text=text, think=answer.think, error="the model's answer names no target")
    return Reasoning(
        text=text, think=answer.think, targets=targets, model_targets=answer.targets, warnings=list(answer.warnings)
    )
