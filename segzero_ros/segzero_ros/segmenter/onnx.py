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

from segzero_ros.segmenter.base import SegmenterConfig
from segzero_ros.segmenter.export import DECODER_FILE, ENCODER_FILE, ExportInfo, read_export_info
from segzero_ros.segmenter.exported import ExportedSegmenter

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
    from segzero_ros.segmenter.checkpoints import resolve_checkpoint
    from segzero_ros.segmenter.export import file_sha256

    config_name, checkpoint = resolve_checkpoint(config)
    key = export_key(config_name, list(config.overrides), file_sha256(checkpoint), config.multimask_output)

    def build(folder: Path) -> None:
        LOG.info("exporting SAM2 %s to ONNX (once; cached in %s)", config.model, folder.parent / key)
        export_config(config, folder)

    return build_once(key, build)


def export_config(config: SegmenterConfig, folder: str | Path) -> ExportInfo:
    """Load the SAM2 that ``config`` names (id or checkpoint) and export it into ``folder``."""
    from segzero_ros.segmenter.checkpoints import load_sam2, resolve_checkpoint
    from segzero_ros.segmenter.export import export_sam2

    config_name, checkpoint = resolve_checkpoint(config)
    model = load_sam2(config, "cpu")
    return export_sam2(model, folder, config_name, checkpoint, config.overrides, config.multimask_output)


def check_export_matches(info: ExportInfo, config: SegmenterConfig, folder: Path) -> None:
    """Refuse an export made for another decoder output than the config asks for."""
    if info.multimask_output != config.multimask_output:
        raise ValueError(
            f"{folder} was exported with multimask_output={info.multimask_output}, "
            f"the config asks for {config.multimask_output}"
        )


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


class OnnxSegmenter(ExportedSegmenter):
    """SAM2 through ONNX Runtime: ``set_image`` runs the encoder graph, ``predict`` the decoder per target."""

    name = "onnx"

    def __init__(self, config: SegmenterConfig) -> None:
        import onnxruntime as ort

        start = time.perf_counter()
        folder = ensure_export(config)
        self.info: ExportInfo = read_export_info(folder)
        check_export_matches(self.info, config, folder)
        super().__init__(config, self.info.image_size)
        self.providers = choose_providers(config.device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings about merged shapes of the export are no news
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=self.providers)
        self.decoder = ort.InferenceSession(str(folder / DECODER_FILE), options, providers=self.providers)
        self.load_s = time.perf_counter() - start
        self.description = (
            f"sam2 {config.model} (onnxruntime {self.encoder.get_providers()[0]}, input {self.image_size})"
        )
        LOG.info("segmenter ready in %.1f s: %s", self.load_s, self.description)

    def run_encoder(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        embed, hr0, hr1 = self.encoder.run(None, {"image": image})
        return embed, hr0, hr1

    def run_decoder(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        low_res, iou = self.decoder.run(None, feeds)
        return low_res, iou

    def close(self) -> None:
        self.encoder = self.decoder = None  # type: ignore[assignment]
        super().close()
