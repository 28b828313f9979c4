"""ONNX Runtime SAM2 backend: our export (``segmenter.export``) run by ``onnxruntime``.

``SegmenterConfig.model`` is an export folder (``segzero export-onnx``) or anything the torch backend loads
(a Hugging Face id or a checkpoint); the latter is exported once into the cache, keyed by the checkpoint's
hash, config, overrides and ``multimask_output``. Pre- and post-processing are SAM2's own transforms, so
masks match the torch backend's. Providers: TensorRT / CUDA when onnxruntime has them and a GPU is asked
for, else CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from segzero_ros.protocol import Target
from segzero_ros.segmenter.base import Segment, Segmenter, SegmenterConfig, check_rgb
from segzero_ros.segmenter.export import DECODER_FILE, ENCODER_FILE, ExportInfo, read_export_info

LOG = logging.getLogger(__name__)


def export_key(config_name: str, overrides: list[str], checkpoint_sha256: str, multimask_output: bool) -> str:
    """The cache folder name of an export: what the graphs depend on, hashed."""
    payload = json.dumps([config_name, overrides, checkpoint_sha256, multimask_output, 1])
    return "sam2-onnx-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def ensure_export(config: SegmenterConfig) -> Path:
    """An export folder for ``config.model``: the folder itself, or a cached export of the checkpoint."""
    model_path = Path(config.model)
    if model_path.is_dir():
        read_export_info(model_path)  # clear error when it is not an export
        return model_path
    from segzero_ros.cache import build_once
    from segzero_ros.segmenter.export import file_sha256
    from segzero_ros.segmenter.torch import resolve_checkpoint

    config_name, checkpoint = resolve_checkpoint(config)
    key = export_key(config_name, list(config.overrides), file_sha256(checkpoint), config.multimask_output)

    def build(folder: Path) -> None:
        LOG.info("exporting SAM2 %s to ONNX (once; cached in %s)", config.model, folder.parent / key)
        export_config(config, folder)

    return build_once(key, build)


def export_config(config: SegmenterConfig, folder: str | Path) -> ExportInfo:
    """Load the SAM2 that ``config`` names (id or checkpoint) and export it into ``folder``."""
    from segzero_ros.segmenter.export import export_sam2
    from segzero_ros.segmenter.torch import load_sam2, resolve_checkpoint

    config_name, checkpoint = resolve_checkpoint(config)
    model = load_sam2(config, "cpu")
    return export_sam2(model, folder, config_name, checkpoint, config.overrides, config.multimask_output)


def choose_providers(device: str, available: list[str]) -> list[str]:
    """ONNX Runtime providers for a device: GPU ones first when asked for (or ``auto``) and present."""
    wanted = []
    if device == "auto" or device.startswith("cuda"):
        wanted = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    if device.startswith("cuda") and not wanted:
        raise RuntimeError(
            f"device {device!r} asked for, but this onnxruntime has only {available}; "
            "install onnxruntime-gpu or use device cpu"
        )
    return [*wanted, "CPUExecutionProvider"]


class OnnxSegmenter(Segmenter):
    """SAM2 through ONNX Runtime: ``set_image`` runs the encoder graph, ``predict`` the decoder per target."""

    name = "onnx"

    def __init__(self, config: SegmenterConfig) -> None:
        import onnxruntime as ort
        from sam2.utils.transforms import SAM2Transforms

        self.config = config
        start = time.perf_counter()
        folder = ensure_export(config)
        self.info: ExportInfo = read_export_info(folder)
        if self.info.multimask_output != config.multimask_output:
            raise ValueError(
                f"{folder} was exported with multimask_output={self.info.multimask_output}, "
                f"the config asks for {config.multimask_output}"
            )
        self.providers = choose_providers(config.device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=self.providers)
        self.decoder = ort.InferenceSession(str(folder / DECODER_FILE), options, providers=self.providers)
        self.image_size = self.info.image_size
        self.transforms = SAM2Transforms(resolution=self.image_size, mask_threshold=config.mask_threshold)
        self._features: dict[str, np.ndarray] | None = None
        self._orig_hw: tuple[int, int] = (0, 0)
        self.load_s = time.perf_counter() - start
        self.description = (
            f"sam2 {config.model} (onnxruntime {self.encoder.get_providers()[0]}, input {self.image_size})"
        )
        LOG.info("segmenter ready in %.1f s: %s", self.load_s, self.description)

    def set_image(self, rgb: np.ndarray) -> None:
        check_rgb(rgb)
        image = self.transforms(rgb)[None].numpy().astype(np.float32)
        embed, hr0, hr1 = self.encoder.run(None, {"image": image})
        self._features = {"image_embed": embed, "high_res_0": hr0, "high_res_1": hr1}
        self._orig_hw = (int(rgb.shape[0]), int(rgb.shape[1]))

    def prompt_arrays(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's (1×N×2 coords, 1×N labels): box corners (2, 3) then points (1), in input pixels."""
        import torch

        box = self.transforms.transform_boxes(
            torch.as_tensor(target.bbox, dtype=torch.float32), normalize=True, orig_hw=self._orig_hw
        ).reshape(-1, 2)
        coords = [box]
        if target.points:
            points = torch.as_tensor(np.asarray(target.points, dtype=np.float32).reshape(-1, 2))
            coords.append(self.transforms.transform_coords(points, normalize=True, orig_hw=self._orig_hw))
        coords_np = torch.cat(coords)[None].numpy().astype(np.float32)
        labels = np.array([[2, 3] + [1] * len(target.points)], dtype=np.int32)
        return coords_np, labels

    def predict_logits(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """(low-res mask logits 1×M×h×w, predicted IoUs 1×M) for one target on the current image."""
        if self._features is None:
            raise RuntimeError("set_image must come before predict")
        coords, labels = self.prompt_arrays(target)
        low_res, iou = self.decoder.run(None, {**self._features, "point_coords": coords, "point_labels": labels})
        return low_res, iou

    def predict(self, targets: list[Target]) -> list[Segment]:
        import torch

        out = []
        for target in targets:
            low_res, iou = self.predict_logits(target)
            masks = self.transforms.postprocess_masks(torch.from_numpy(low_res), self._orig_hw)
            best = int(np.argsort(iou[0])[::-1][0])
            mask = (masks[0, best] > self.config.mask_threshold).numpy()
            out.append(Segment(mask=mask, score=float(iou[0, best])))
        return out

    def close(self) -> None:
        self.encoder = self.decoder = None  # type: ignore[assignment]
        self._features = None
