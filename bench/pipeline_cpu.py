"""Time each pipeline stage on CPU in one run: the tiny models, plus SAM2 hiera-tiny at its full 1024 input.

    python bench/pipeline_cpu.py [--repeats N] [--json]

Stages: image preprocess (resize + processor), generate, decode/parse, SAM2 embed (set_image), SAM2 decode
(predict per target). Medians of N runs after one warm-up. Each stage's share of the total is printed too,
since absolute times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segzero_ros"))

from segzero_ros.benchmarks.sam2 import median_ms


def bench(repeats: int) -> dict:
    import torch

    from segzero_ros.protocol import Target
    from segzero_ros.reasoner.base import ReasonerConfig, interpret_answer
    from segzero_ros.reasoner.local import Reasoner
    from segzero_ros.scenes import demo_scene
    from segzero_ros.segmenter import SegmenterConfig, make_segmenter
    from segzero_ros.tiny import (
        TINY_IMAGE_SIZE,
        TINY_SAM2_CONFIG,
        random_sam2_checkpoint,
        tiny_reasoner_path,
        tiny_segmenter_config,
    )

    torch.manual_seed(0)
    rgb, _ = demo_scene(1280, 720)
    reasoner = Reasoner(
        ReasonerConfig(
            model=str(tiny_reasoner_path()), image_size=TINY_IMAGE_SIZE, local_files_only=True, max_new_tokens=96
        )
    )
    inputs = reasoner.prepare(rgb, "the red cup")
    new_tokens = reasoner.generate(inputs)
    text = reasoner.decode(new_tokens)
    targets = interpret_answer(text, "segzero", False, TINY_IMAGE_SIZE, (1280, 720)).targets or [
        Target(bbox=(400, 200, 700, 500), points=[(550, 350)])
    ]
    stages = {
        "preprocess_ms": median_ms(lambda: reasoner.prepare(rgb, "the red cup"), repeats),
        "generate_ms": median_ms(lambda: reasoner.generate(inputs), repeats),
        "decode_parse_ms": median_ms(
            lambda: interpret_answer(reasoner.decode(new_tokens), "segzero", False, TINY_IMAGE_SIZE, (1280, 720)),
            repeats,
        ),
    }
    out = {
        "image": "1280x720",
        "generated_tokens": int(new_tokens.shape[1]),
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "threads": torch.get_num_threads(),
    }
    for name, config in {
        "sam2_tiny_test_model": tiny_segmenter_config(),
        "sam2.1_hiera_t_1024": SegmenterConfig(
            model=str(random_sam2_checkpoint(TINY_SAM2_CONFIG)), config=TINY_SAM2_CONFIG, device="cpu"
        ),
    }.items():
        segmenter = make_segmenter(config)
        segmenter.set_image(rgb)
        out[name] = {
            "input": segmenter.image_size,
            "embed_ms": median_ms(lambda s=segmenter: s.set_image(rgb), repeats),
            "decode_ms": median_ms(lambda s=segmenter: s.predict(targets), repeats),
        }
    out["tiny_reasoner"] = stages
    total = sum(stages.values()) + out["sam2_tiny_test_model"]["embed_ms"] + out["sam2_tiny_test_model"]["decode_ms"]
    out["tiny_total_ms"] = total
    out["share_of_tiny_total"] = {k: round(v / total, 3) for k, v in stages.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = bench(args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    print(f"pipeline stages on CPU ({result['threads']} threads), 1280x720 frame, medians of {args.repeats}")
    print(f"tiny reasoner: {result['prompt_tokens']} prompt tokens, {result['generated_tokens']} generated")
    for stage, ms in result["tiny_reasoner"].items():
        print(f"  {stage:<18} {ms:9.1f} ms  ({result['share_of_tiny_total'][stage]:.0%} of the tiny pipeline)")
    for name in ("sam2_tiny_test_model", "sam2.1_hiera_t_1024"):
        r = result[name]
        print(f"{name} (input {r['input']}): embed {r['embed_ms']:.1f} ms, decode {r['decode_ms']:.1f} ms per target")


if __name__ == "__main__":
    main()
