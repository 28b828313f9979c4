"""Reasoning model: Qwen2.5-VL reads the image and the goal, answers with boxes and points.

``Reasoner`` loads any Qwen2.5-VL checkpoint (Hugging Face id or local folder) with ``transformers``
and reproduces the reference inference recipe: the image resized to ``image_size``² (PIL bilinear),
one user turn (image, then the prompt text), the chat template's default system prompt, greedy
generation, and the answer mapped back to camera pixels with the protocol's rounding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from segzero_ros.devices import release_gpu_memory, resolve_device, resolve_dtype
from segzero_ros.hub import files_only
from segzero_ros.protocol import ANSWER_END, build_prompt
from segzero_ros.reasoner.base import ReasonerConfig, Reasoning, interpret_answer, update_config

LOG = logging.getLogger(__name__)


def resize_for_reasoner(rgb: np.ndarray, size: int) -> Image.Image:
    """The reference's preprocessing: RGB, resized to size×size with PIL bilinear (aspect not kept)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    return Image.fromarray(rgb, mode="RGB").resize((size, size), Image.BILINEAR)


def build_messages(image: Image.Image, prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image, then the prompt text (no explicit system message, as the reference)."""
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}]


class Reasoner:
    """A Qwen2.5-VL reasoning model run here with transformers (backend ``local``); ``reason(rgb, goal)``."""

    OPTIONS: tuple[str, ...] = ()  # no settings beyond ReasonerConfig

    def __init__(
        self, config: ReasonerConfig | None = None, options: Mapping[str, Any] | None = None, **overrides: Any
    ) -> None:
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        if options:
            raise ValueError(f"the local reasoner takes no options, got {sorted(options)}")
        self.config = config or ReasonerConfig(**overrides)
        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        LOG.info(
            "loading reasoner %s (%s, %s, attention %s)", cfg.model, self.device, self.dtype, cfg.attn_implementation
        )
        start = time.perf_counter()
        local = files_only(cfg.model, "config.json", cfg.local_files_only)
        common = {"local_files_only": local, "revision": cfg.revision}
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
        LOG.info("reasoner ready in %.1f s (%.3g M parameters)", self.load_s, self.num_parameters() / 1e6)

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
            # transformers' Qwen2.5-VL reads a few scalars with Tensor.item(): dynamo splits the graph there and
            # warns about each split (30 lines), which is expected here and says nothing to a user.
            logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
            LOG.info("reasoner forward compiled (%s); the first goal pays the compilation", self.config.compile_backend)

    @property
    def description(self) -> str:
        return f"{self.config.model} on {self.device} ({self.dtype})"

    def update(self, settings: Mapping[str, Any]) -> None:
        update_config(self.config, settings)  # the other backends' settings do not apply here

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
            from segzero_ros.reasoner.streaming import TextSoFarStreamer

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
        if self.config.stop_at_answer and ANSWER_END in text:  # the last token may run past it, as a server cuts
            text = text[: text.index(ANSWER_END) + len(ANSWER_END)]
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
        release_gpu_memory()
