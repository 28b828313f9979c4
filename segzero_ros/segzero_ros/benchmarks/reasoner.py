"""Reasoner generation paths timed side by side in one run (``segzero bench reasoner``, ``bench/reasoner.py``).

Each path is a ``ReasonerConfig`` variant on the same weights and inputs: ``default`` (the reference's dynamic
KV cache, eager), ``static`` (static KV cache), ``static+compile`` (static cache, ``torch.compile`` of the
forward). Generation is forced to a fixed length (no stop string, end-of-turn suppressed by ``min_new_tokens``)
so random weights measure real speed; prefill is the time to the first token, decode the rate after it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from segzero_ros.benchmarks.sam2 import median_ms
from segzero_ros.reasoner.base import ReasonerConfig
from segzero_ros.reasoner.local import Reasoner

LOG = logging.getLogger(__name__)

PATHS: dict[str, dict[str, Any]] = {
    "default": {},
    "static": {"cache": "static"},
    "static+compile": {"cache": "static", "compile": True},
}


def _load(model: str, device: str, dtype: str):
    """(model, processor, image size) for ``tiny`` (the random tiny model) or a random ``7b`` / ``3b``."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from segzero_ros.devices import resolve_device, resolve_dtype
    from segzero_ros.tiny import TINY_IMAGE_SIZE, random_qwen25_vl, tiny_reasoner_path

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    path = tiny_reasoner_path(fitted=False)
    processor = AutoProcessor.from_pretrained(path, padding_side="left", local_files_only=True)
    if model == "tiny":
        weights = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch_dtype, local_files_only=True)
        return weights.to(device), processor, TINY_IMAGE_SIZE
    if not device.startswith("cuda"):
        raise SystemExit(f"the {model} configuration needs a CUDA GPU (tens of GB); use --model tiny on CPU")
    return random_qwen25_vl(model, processor.tokenizer, torch_dtype, device), processor, 840


def bench_reasoner(
    model: str = "tiny",
    paths: list[str] | None = None,
    new_tokens: int = 64,
    repeats: int = 3,
    device: str = "auto",
    dtype: str = "auto",
) -> dict:
    """``{"paths": {name: {prefill_ms, decode_tok_s, ...}}, "same_tokens": bool, ...}`` for one model."""
    import torch

    from segzero_ros.scenes import demo_scene

    names = paths or list(PATHS)
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        raise SystemExit(f"unknown reasoner path(s) {unknown}; known: {list(PATHS)}")
    weights, processor, image_size = _load(model, device, dtype)
    on_gpu = weights.device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else None
    base = ReasonerConfig(model=model, image_size=image_size, stop_at_answer=False, max_new_tokens=new_tokens)
    reference_tokens = None
    out: dict[str, Any] = {}
    for name in names:
        reasoner = Reasoner.from_model(weights, processor, dataclasses.replace(base, **PATHS[name]))
        inputs = reasoner.prepare(demo_scene(1280, 720)[0], "the mug I could pour coffee into")

        def run(n: int, r: Reasoner = reasoner, i: dict = inputs) -> Any:
            r.model.generation_config.min_new_tokens = n  # fixed length: no early end-of-turn
            return r.generate(i, max_new_tokens=n)

        first_ms = median_ms(lambda: run(1), repeats, sync)
        full_ms = median_ms(lambda: run(new_tokens), repeats, sync)
        tokens = run(new_tokens)
        if reference_tokens is None:
            reference_tokens = tokens
        out[name] = {
            "prefill_ms": round(first_ms, 2),
            "decode_tok_s": round((new_tokens - 1) / max((full_ms - first_ms) / 1e3, 1e-9), 2),
            "total_ms": round(full_ms, 2),
            "same_tokens": bool(torch.equal(tokens.cpu(), reference_tokens.cpu())),
        }
        if "forward" in vars(weights):  # undo a compiled forward for the next path
            del weights.forward
        weights.generation_config.min_new_tokens = None
    speed = {name: r["decode_tok_s"] for name, r in out.items()}
    best = max(speed, key=speed.get)
    return {
        "model": model,
        "device": str(weights.device),
        "dtype": str(weights.dtype).replace("torch.", ""),
        "image_size": image_size,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "new_tokens": new_tokens,
        "repeats": repeats,
        "paths": out,
        "same_tokens": all(r["same_tokens"] for r in out.values()),
        "best_path": best,
        "best_decode_speedup": round(speed[best] / speed[names[0]], 3),
    }


def format_reasoner_table(result: dict) -> str:
    lines = [
        f"reasoner {result['model']} on {result['device']} ({result['dtype']}), {result['prompt_tokens']} prompt "
        f"tokens, {result['new_tokens']} new tokens, medians of {result['repeats']}"
    ]
    for name, r in result["paths"].items():
        lines.append(
            f"  {name:<16} prefill {r['prefill_ms']:9.1f} ms  decode {r['decode_tok_s']:8.1f} tok/s  "
            f"same tokens: {r['same_tokens']}"
        )
    lines.append(f"  best decode: {result['best_path']} ({result['best_decode_speedup']:.2f}x the first path)")
    return "\n".join(lines)
