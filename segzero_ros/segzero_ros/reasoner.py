"""Reasoning model: Qwen2.5-VL reads the image and the goal, answers with boxes and points.

``Reasoner`` loads any Qwen2.5-VL checkpoint (Hugging Face id or local folder) with ``transformers``
and reproduces the reference inference recipe: the image resized to ``image_size``² (PIL bilinear),
one user turn (image, then the prompt text), the chat template's default system prompt, greedy
generation, and the answer mapped back to camera pixels with the protocol's rounding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from segzero_ros.protocol import (
    ANSWER_END,
    PROTOCOLS,
    ROUNDING_OF_PROTOCOL,
    AnswerFormatError,
    Target,
    build_prompt,
    parse_answer,
    scale_targets,
)

LOG = logging.getLogger(__name__)

KV_CACHES = ("dynamic", "static")
SEGZERO_7B = "Ricky06662/Seg-Zero-7B"
VISIONREASONER_7B = "Ricky06662/VisionReasoner-7B"


@dataclass
class ReasonerConfig:
    """How to load and run the reasoning model (defaults: the reference inference set-up)."""

    model: str = SEGZERO_7B
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
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"reasoner protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if not 28 <= self.image_size <= 4096 or self.image_size % 28:
            raise ValueError(f"reasoner image_size must be a multiple of 28 in [28, 4096], got {self.image_size}")
        if not 1 <= self.max_new_tokens <= 32768:
            raise ValueError(f"max_new_tokens must be in [1, 32768], got {self.max_new_tokens}")
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


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA GPU is visible")
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` → bf16 on GPU, fp32 on CPU (the reference runs bf16 on GPU)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto or one of {sorted(names)}")
    return names[dtype]


def resize_for_reasoner(rgb: np.ndarray, size: int) -> Image.Image:
    """The reference's preprocessing: RGB, resized to size×size with PIL bilinear (aspect not kept)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    return Image.fromarray(rgb, mode="RGB").resize((size, size), Image.BILINEAR)


def build_messages(image: Image.Image, prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image, then the prompt text (no explicit system message, as the reference)."""
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]


class Reasoner:
    """A Qwen2.5-VL reasoning model; ``reason(rgb, goal)`` returns a ``Reasoning``."""

    def __init__(self, config: ReasonerConfig | None = None, **overrides: Any) -> None:
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        self.config = config or ReasonerConfig(**overrides)
        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        LOG.info(
            "loading reasoner %s (%s, %s, attention %s)", cfg.model, self.device, self.dtype, cfg.attn_implementation
        )
        start = time.perf_counter()
        common = {"local_files_only": cfg.local_files_only, "revision": cfg.revision}
        self.processor = AutoProcessor.from_pretrained(cfg.model, padding_side="left", **common)
        if not hasattr(self.processor, "image_processor"):
            raise RuntimeError(f"{cfg.model}: AutoProcessor gave {type(self.processor).__name__}, not a VL processor")
        device_map = cfg.device_map or (self.device if self.device.startswith("cuda") else None)
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            cfg.model, dtype=self.dtype, attn_implementation=cfg.attn_implementation, device_map=device_map, **common
        )
        if device_map is None:
            self.model.to(self.device)
        self._torch = torch
        self._prepare_model()
        self.load_s = time.perf_counter() - start
        LOG.info("reasoner ready in %.1f s (%.0f M parameters)", self.load_s, self.num_parameters() / 1e6)

    @classmethod
    def from_model(cls, model: Any, processor: Any, config: ReasonerConfig) -> Reasoner:
        """A reasoner around an already built model and processor (benchmarks of random-weight configs)."""
        import torch

        self = cls.__new__(cls)
        self.config, self.processor, self.model, self._torch = config, processor, model, torch
        self.device, self.dtype = str(model.device), model.dtype
        self._prepare_model()
        self.load_s = 0.0
        return self

    def _prepare_model(self) -> None:
        """Evaluation mode and the configured fast path (``compile``)."""
        self.model.eval()
        if self.config.compile:
            cuda = self.device.startswith("cuda")
            mode = "reduce-overhead" if cuda and self.config.compile_backend == "inductor" else None
            self.model.forward = self._torch.compile(
                self.model.forward, mode=mode, backend=self.config.compile_backend, dynamic=False
            )
            LOG.info("reasoner forward compiled (%s); the first goal pays the compilation", self.config.compile_backend)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def input_device(self):
        return self.model.get_input_embeddings().weight.device

    def prepare(self, rgb: np.ndarray, goal: str, protocol: str | None = None) -> dict[str, Any]:
        """Model inputs (token ids, pixel values, grid) for ``goal`` on ``rgb``, as the reference builds them."""
        protocol = protocol or self.config.protocol
        image = resize_for_reasoner(rgb, self.config.image_size)
        messages = build_messages(image, build_prompt(goal, protocol))
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.processor(text=[text], images=[image], padding=True, return_tensors="pt")

    def generate(
        self,
        inputs: dict[str, Any],
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Any:
        """Greedy generation with the KV cache; returns the new token ids (1 × N).

        Stops once ``</answer>`` is written when ``config.stop_at_answer``; ``on_text`` is called with the text
        generated so far as it grows (transformers' streamer, in this thread)."""
        inputs = {k: v.to(self.input_device) if hasattr(v, "to") else v for k, v in inputs.items()}
        extra: dict[str, Any] = {}
        if self.config.stop_at_answer:
            extra.update(stop_strings=[ANSWER_END], tokenizer=self.processor.tokenizer)
        if self.config.cache == "static":
            extra["cache_implementation"] = "static"
        if on_text is not None:
            from segzero_ros.streaming import TextSoFarStreamer

            extra["streamer"] = TextSoFarStreamer(self.processor.tokenizer, on_text)
        with self._torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                do_sample=False,
                use_cache=True,
                **extra,
            )
        return out[:, inputs["input_ids"].shape[1] :]

    def decode(self, new_tokens: Any) -> str:
        """Token ids → text, as the reference decodes."""
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]

    def reason(
        self,
        rgb: np.ndarray,
        goal: str,
        protocol: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Reasoning:
        """Run the model on ``rgb`` (H×W×3 uint8) for ``goal``; a garbled answer is a failed ``Reasoning``.

        ``on_text`` receives the answer text so far while it is generated."""
        protocol = protocol or self.config.protocol
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        inputs = self.prepare(rgb, goal, protocol)
        t1 = time.perf_counter()
        new_tokens = self.generate(inputs, on_text=on_text)
        t2 = time.perf_counter()
        text = self.decode(new_tokens)
        timings.update(preprocess_ms=(t1 - t0) * 1e3, generate_ms=(t2 - t1) * 1e3)
        result = interpret_answer(text, protocol, self.config.strict, self.config.image_size, rgb.shape[1::-1])
        timings["parse_ms"] = (time.perf_counter() - t2) * 1e3
        result.timings_ms = timings
        result.prompt_tokens = int(inputs["input_ids"].shape[1])
        result.new_tokens = int(new_tokens.shape[1])
        return result

    def close(self) -> None:
        """Release the model (and GPU memory)."""
        self.model = None  # type: ignore[assignment]
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


def partial_think(text: str) -> str:
    """The ``<think>`` text of a partly generated answer (what a user can read while the model writes)."""
    start = text.find("<think>")
    body = text[start + len("<think>") :] if start >= 0 else text
    end = body.find("</think>")
    return (body if end < 0 else body[:end]).strip()


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
