"""PyTorch SAM2 backend: the ``sam2`` package's ``SAM2ImagePredictor``, called as the reference does."""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import torch

from segzero_ros.devices import release_gpu_memory, resolve_device
from segzero_ros.protocol import Target
from segzero_ros.segmenter.base import Segment, Segmenter, SegmenterConfig, check_rgb
from segzero_ros.segmenter.checkpoints import backbone_feature_sizes, load_sam2

LOG = logging.getLogger(__name__)


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype for a precision on a device (``auto``: bf16 on CUDA as the reference, fp32 on CPU)."""
    if precision == "auto":
        return torch.bfloat16 if device.startswith("cuda") else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class TorchSegmenter(Segmenter):
    """SAM2 in PyTorch (eager); bf16 autocast on CUDA as the reference."""

    name = "torch"

    def __init__(self, config: SegmenterConfig) -> None:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.config = config
        self.device = resolve_device(config.device)
        start = time.perf_counter()
        model = load_sam2(config, self.device)
        self.predictor = SAM2ImagePredictor(model, mask_threshold=config.mask_threshold)
        self.predictor._bb_feat_sizes = backbone_feature_sizes(model.image_size)
        self.image_size = model.image_size
        self.autocast = autocast_dtype(config.precision, self.device)
        self.prepare(model)
        self.load_s = time.perf_counter() - start
        precision = str(self.autocast).removeprefix("torch.") if self.autocast else "float32"
        self.description = f"sam2 {config.model} on {self.device} ({self.mode}, {precision}, input {model.image_size})"
        LOG.info("segmenter ready in %.1f s: %s", self.load_s, self.description)

    mode = "torch eager"

    def prepare(self, model: torch.nn.Module) -> None:
        """Hook for subclasses to transform the loaded model (nothing for eager)."""

    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.autocast is not None:
            stack.enter_context(torch.autocast(self.device.split(":")[0], dtype=self.autocast))
        return stack

    def set_image(self, rgb: np.ndarray) -> None:
        check_rgb(rgb)
        if not rgb.flags.writeable:  # torchvision warns on (and torch cannot take) a read-only array: a copy
            rgb = rgb.copy()
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
        release_gpu_memory()


class CompiledTorchSegmenter(TorchSegmenter):
    """SAM2 with ``torch.compile``: the fixed-shape image encoder (CUDA graphs on a GPU), the decoder dynamic.

    Compilation happens at load time, on one warm-up frame, so the first goal does not pay for it.
    ``compile_backend`` is torch.compile's backend (``inductor``; tests use ``eager`` to check the capture
    without a compiler).
    """

    name = "torch_compiled"
    mode = "torch.compile"

    def __init__(self, config: SegmenterConfig, compile_backend: str = "inductor") -> None:
        self.compile_backend = compile_backend
        super().__init__(config)

    def prepare(self, model: torch.nn.Module) -> None:
        cuda = self.device.startswith("cuda")
        encoder_mode = "reduce-overhead" if cuda and self.compile_backend == "inductor" else None
        model.image_encoder = torch.compile(
            model.image_encoder, mode=encoder_mode, backend=self.compile_backend, dynamic=False
        )
        model.sam_mask_decoder = torch.compile(model.sam_mask_decoder, backend=self.compile_backend, dynamic=True)
        self.mode = f"torch.compile {self.compile_backend}" + (" + CUDA graphs" if encoder_mode else "")
        self._warm_up(model.image_size)

    def _warm_up(self, image_size: int) -> None:
        from segzero_ros.protocol import Target

        start = time.perf_counter()
        rgb = np.random.default_rng(0).integers(0, 255, (image_size, image_size, 3), dtype=np.uint8)
        quarter, half = image_size // 4, image_size // 2
        for points in ([], [(half, half)], [(half, half), (quarter, quarter)]):
            self.segment(rgb, [Target(bbox=(quarter, quarter, 3 * quarter, 3 * quarter), points=points)])
        LOG.info("torch.compile warm-up took %.1f s", time.perf_counter() - start)

    def set_image(self, rgb: np.ndarray) -> None:
        if self.device.startswith("cuda"):
            torch.compiler.cudagraph_mark_step_begin()
        super().set_image(rgb)
