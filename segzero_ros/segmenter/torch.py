"""PyTorch SAM2 backend: the ``sam2`` package's ``SAM2ImagePredictor``, called as the reference does."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from pathlib import Path

import numpy as np
import torch

from segzero_ros.protocol import Target
from segzero_ros.segmenter.base import Segment, Segmenter, SegmenterConfig, check_rgb

LOG = logging.getLogger(__name__)

# Config for a local checkpoint whose file name follows Meta's naming (sam2_hiera_large.pt, sam2.1_hiera_t.pt, ...).
_SIZE_SUFFIX = {"tiny": "t", "t": "t", "small": "s", "s": "s", "base_plus": "b+", "b+": "b+", "large": "l", "l": "l"}
_CKPT_NAME = re.compile(r"(sam2(?:\.1)?)_hiera_(tiny|small|base_plus|large|t|s|b\+|l)\b")


def config_for_checkpoint(path: str) -> str:
    """The sam2 config name that matches a checkpoint file named like Meta's releases."""
    match = _CKPT_NAME.search(Path(path).name)
    if match is None:
        raise ValueError(
            f"cannot tell the SAM2 config of {path!r} from its name; give it explicitly "
            "(e.g. configs/sam2.1/sam2.1_hiera_l.yaml)"
        )
    version, size = match.groups()
    return f"configs/{version}/{version}_hiera_{_SIZE_SUFFIX[size]}.yaml"


def resolve_checkpoint(config: SegmenterConfig) -> tuple[str, str]:
    """(sam2 config name, local checkpoint path) for a Hugging Face id or a local file."""
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    if Path(config.model).exists():
        return config.config or config_for_checkpoint(config.model), config.model
    if config.model in HF_MODEL_ID_TO_FILENAMES:
        from huggingface_hub import hf_hub_download

        config_name, filename = HF_MODEL_ID_TO_FILENAMES[config.model]
        LOG.info("fetching %s/%s (Hugging Face hub or its local cache)", config.model, filename)
        path = hf_hub_download(repo_id=config.model, filename=filename, local_files_only=config.local_files_only)
        return config.config or config_name, path
    raise FileNotFoundError(
        f"SAM2 model {config.model!r} is neither a local checkpoint nor one of the known ids: "
        f"{', '.join(sorted(HF_MODEL_ID_TO_FILENAMES))}"
    )


def load_sam2(config: SegmenterConfig, device: str):
    """Build the SAM2 model through the ``sam2`` package's own loader (config + checkpoint)."""
    from sam2.build_sam import build_sam2

    config_name, checkpoint = resolve_checkpoint(config)
    return build_sam2(config_name, checkpoint, device=device, hydra_overrides_extra=list(config.overrides))


def backbone_feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """The predictor's feature-map sizes for an input size (its hard-coded list assumes 1024)."""
    return [(image_size // 4, image_size // 4), (image_size // 8, image_size // 8), (image_size // 16,) * 2]


class TorchSegmenter(Segmenter):
    """SAM2 in PyTorch (eager); bf16 autocast on CUDA as the reference."""

    name = "torch"

    def __init__(self, config: SegmenterConfig) -> None:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        from segzero_ros.reasoner import resolve_device

        self.config = config
        self.device = resolve_device(config.device)
        start = time.perf_counter()
        model = load_sam2(config, self.device)
        self.predictor = SAM2ImagePredictor(model, mask_threshold=config.mask_threshold)
        self.predictor._bb_feat_sizes = backbone_feature_sizes(model.image_size)
        self.image_size = model.image_size
        self.load_s = time.perf_counter() - start
        self.description = f"sam2 {config.model} on {self.device} (torch eager, input {model.image_size})"
        LOG.info("segmenter ready in %.1f s: %s", self.load_s, self.description)

    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.device.startswith("cuda"):
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        return stack

    def set_image(self, rgb: np.ndarray) -> None:
        check_rgb(rgb)
        with self._context():
            self.predictor.set_image(rgb)

    def predict(self, targets: list[Target]) -> list[Segment]:
        out = []
        with self._context():
            for target in targets:
                points = np.asarray(target.points, dtype=np.float32).reshape(-1, 2) if target.points else None
                labels = np.ones(len(target.points), dtype=np.int32) if target.points else None
                masks, scores, _ = self.predictor.predict(
                    point_coords=points,
                    point_labels=labels,
                    box=np.asarray(target.bbox, dtype=np.float32),
                    multimask_output=self.config.multimask_output,
                )
                best = int(np.argsort(scores)[::-1][0])
                out.append(Segment(mask=masks[best].astype(bool), score=float(scores[best])))
        return out

    def close(self) -> None:
        self.predictor = None  # type: ignore[assignment]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
