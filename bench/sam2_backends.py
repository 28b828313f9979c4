"""SAM2 backends side by side in one run: encoder and decoder time, speed-up and mask IoU vs PyTorch eager.

    python bench/sam2_backends.py [--config tiny|CONFIG] [--backends torch,onnx] [--repeats N] [--json]

``--config tiny`` is the test model (1.3 M parameters, input 256); a sam2 config name (default
``configs/sam2.1/sam2.1_hiera_t.yaml``) is built with random weights at its real size, which is what speed
depends on. The JSON is one object keyed by backend: ``encoder_ms``, ``decoder_ms`` (medians after a
warm-up), ``speedup_vs_torch`` (torch's encoder + decoder time over this backend's) and ``mask_iou_vs_torch``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import median_ms


def bench(config_name: str, backends: list[str], repeats: int) -> dict:
    import numpy as np
    import torch

    from segzero_ros.protocol import Target
    from segzero_ros.scenes import demo_scene
    from segzero_ros.segmenter import SegmenterConfig, make_segmenter
    from segzero_ros.tiny import random_sam2_checkpoint, tiny_segmenter_config

    torch.manual_seed(0)
    if config_name == "tiny":
        base = tiny_segmenter_config()
    else:
        base = SegmenterConfig(model=str(random_sam2_checkpoint(config_name)), config=config_name, device="cpu")
    rgb, _ = demo_scene(1280, 720)
    targets = [Target(bbox=(300, 200, 700, 520), points=[(450, 330), (520, 400)])]
    out: dict = {}
    reference_masks = None
    for backend in backends:
        segmenter = make_segmenter(dataclasses.replace(base, backend=backend))
        encoder_ms = median_ms(lambda s=segmenter: s.set_image(rgb), repeats)
        decoder_ms = median_ms(lambda s=segmenter: s.predict(targets), repeats)
        masks = [seg.mask for seg in segmenter.predict(targets)]
        if reference_masks is None:
            reference_masks = masks
        ious = []
        for a, b in zip(reference_masks, masks, strict=True):
            union = np.logical_or(a, b).sum()
            ious.append(float(np.logical_and(a, b).sum() / union) if union else 1.0)
        out[backend] = {
            "encoder_ms": round(encoder_ms, 2),
            "decoder_ms": round(decoder_ms, 2),
            "mask_iou_vs_torch": round(min(ious), 4),
            "description": segmenter.description,
        }
        segmenter.close()
    torch_total = out[backends[0]]["encoder_ms"] + out[backends[0]]["decoder_ms"]
    for entry in out.values():
        entry["speedup_vs_torch"] = round(torch_total / (entry["encoder_ms"] + entry["decoder_ms"]), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sam2.1/sam2.1_hiera_t.yaml", help="'tiny' or a sam2 config")
    parser.add_argument("--backends", default="torch,onnx", help="comma-separated, torch first")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if backends[0] != "torch":
        parser.error("the first backend must be torch (the reference for speed-up and IoU)")
    result = bench(args.config, backends, args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    print(f"SAM2 {args.config}, 1280x720 frame, medians of {args.repeats} (CPU threads: shared machine)")
    for name, r in result.items():
        print(
            f"  {name:<8} encoder {r['encoder_ms']:9.1f} ms  decoder {r['decoder_ms']:7.1f} ms  "
            f"speed-up {r['speedup_vs_torch']:.2f}x  mask IoU vs torch {r['mask_iou_vs_torch']:.4f}"
        )


if __name__ == "__main__":
    main()
