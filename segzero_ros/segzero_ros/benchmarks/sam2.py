"""SAM2 backends timed side by side in one run (``segzero bench sam2``, ``bench/sam2_backends.py``).

Each entry of ``--backends`` is a backend name, optionally with a precision (``torch:bf16``,
``tensorrt:fp32``). The first entry is the reference for speed-up and mask IoU; ``torch`` alone means
PyTorch eager in fp32, so ratios are against eager fp32 on every device.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Callable

import numpy as np

from segzero_ros.segmenter.base import BackendUnavailable, SegmenterConfig

LOG = logging.getLogger(__name__)


def median_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None] | None = None) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after one warm-up call, in ms (``sync`` after each)."""
    fn()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def parse_backend(entry: str) -> tuple[str, str]:
    """``"torch"`` → (torch, fp32); ``"torch:bf16"`` → (torch, bf16); others default to ``auto``."""
    name, _, precision = entry.partition(":")
    return name, precision or ("fp32" if name == "torch" else "auto")


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def base_config(config_name: str, device: str, image_size: int | None = None) -> SegmenterConfig:
    """``tiny``: the test SAM2; else a sam2 config name built with random weights (speed needs no training).

    ``image_size`` overrides the model's input side (1024 in every released config).
    """
    from segzero_ros.segmenter.checkpoints import sam2_config_name
    from segzero_ros.tiny import random_sam2_checkpoint, tiny_segmenter_config

    if config_name == "tiny":
        return tiny_segmenter_config(device=device)
    config_name = sam2_config_name(config_name)
    overrides = [f"++model.image_size={image_size}"] if image_size else []
    return SegmenterConfig(
        model=str(random_sam2_checkpoint(config_name)), config=config_name, device=device, overrides=overrides
    )


def bench_sam2(
    config_name: str, backends: list[str], repeats: int = 5, device: str = "cpu", image_size: int | None = None
) -> dict:
    """One object keyed by backend entry: encoder_ms, decoder_ms, speedup_vs_torch, mask_iou_vs_torch."""
    import torch

    from segzero_ros.protocol import Target
    from segzero_ros.scenes import demo_scene
    from segzero_ros.segmenter import make_segmenter

    torch.manual_seed(0)
    base = base_config(config_name, device, image_size)
    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    sync = torch.cuda.synchronize if on_gpu else None
    rgb, _ = demo_scene(1280, 720)
    targets = [Target(bbox=(300, 200, 700, 520), points=[(450, 330), (520, 400)])]
    out: dict = {}
    reference_masks = None
    reference_total = None
    for entry in backends:
        name, precision = parse_backend(entry)
        try:
            segmenter = make_segmenter(dataclasses.replace(base, backend=name, precision=precision))
        except BackendUnavailable as exc:
            LOG.warning("%s: %s", entry, exc)
            out[entry] = {"available": False, "error": str(exc)}
            continue
        encoder_ms = median_ms(lambda s=segmenter: s.set_image(rgb), repeats, sync)
        decoder_ms = median_ms(lambda s=segmenter: s.predict(targets), repeats, sync)
        masks = [seg.mask for seg in segmenter.predict(targets)]
        if reference_masks is None:
            reference_masks, reference_total = masks, encoder_ms + decoder_ms
        out[entry] = {
            "available": True,
            "encoder_ms": round(encoder_ms, 2),
            "decoder_ms": round(decoder_ms, 2),
            "speedup_vs_torch": round(reference_total / (encoder_ms + decoder_ms), 3),
            "mask_iou_vs_torch": round(min(mask_iou(a, b) for a, b in zip(reference_masks, masks, strict=True)), 4),
            "description": segmenter.description,
            "load_s": round(getattr(segmenter, "load_s", float("nan")), 1),
        }
        segmenter.close()
        del segmenter
        if sync:
            torch.cuda.empty_cache()
    return out


def format_table(config_name: str, result: dict, repeats: int) -> str:
    lines = [f"SAM2 {config_name}, 1280x720 frame, medians of {repeats}; ratios vs the first entry"]
    for name, r in result.items():
        if not r.get("available", True):
            lines.append(f"  {name:<16} not available: {r['error']}")
            continue
        lines.append(
            f"  {name:<16} encoder {r['encoder_ms']:9.1f} ms  decoder {r['decoder_ms']:7.1f} ms  "
            f"speed-up {r['speedup_vs_torch']:.2f}x  mask IoU {r['mask_iou_vs_torch']:.4f}"
        )
    return "\n".join(lines)
