"""The segmenter interface: ``set_image`` once per frame, ``predict`` for the targets on it."""

from __future__ import annotations

import abc
import importlib
import logging
from dataclasses import dataclass, field

import numpy as np

from segzero_ros.protocol import Target

# backend name -> "module:class"; the module is imported only when that backend is built.
SEGMENTER_BACKENDS: dict[str, str] = {
    "torch": "segzero_ros.segmenter.torch:TorchSegmenter",
    "torch_compiled": "segzero_ros.segmenter.torch:CompiledTorchSegmenter",
    "onnx": "segzero_ros.segmenter.onnx:OnnxSegmenter",
    "tensorrt": "segzero_ros.segmenter.tensorrt:TensorRTSegmenter",
}
BACKENDS: tuple[str, ...] = (*SEGMENTER_BACKENDS, "auto")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
SAM2_LARGE = "facebook/sam2-hiera-large"
LOG = logging.getLogger(__name__)


@dataclass
class SegmenterConfig:
    """Which SAM2 to load and how to call it.

    ``model`` is a Hugging Face id (``facebook/sam2-hiera-large``, ``facebook/sam2.1-hiera-tiny``, ...) or a
    local checkpoint path; a local checkpoint needs ``config`` (a sam2 config name such as
    ``configs/sam2.1/sam2.1_hiera_l.yaml``) unless its file name says which. ``overrides`` are hydra
    overrides applied to the config (used by the tiny test model).
    """

    backend: str = "torch"
    model: str = SAM2_LARGE
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    device: str = "auto"
    multimask_output: bool = True
    mask_threshold: float = 0.0
    local_files_only: bool = False
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"segmenter backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"segmenter precision must be one of {PRECISIONS}, got {self.precision!r}")


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run on this machine; the message names what to use instead."""


@dataclass
class Segment:
    """One target's mask (bool H×W at the image's size) and SAM2's predicted IoU for it."""

    mask: np.ndarray
    score: float


class Segmenter(abc.ABC):
    """A SAM2 backend: ``set_image(rgb)`` computes the image embedding, ``predict`` reuses it."""

    name: str = "segmenter"
    description: str = ""

    @abc.abstractmethod
    def set_image(self, rgb: np.ndarray) -> None:
        """Embed an H×W×3 uint8 RGB image; later ``predict`` calls refer to it."""

    @abc.abstractmethod
    def predict(self, targets: list[Target]) -> list[Segment]:
        """One mask per target (box + all its points as positive clicks), best-scoring of SAM2's outputs."""

    def segment(self, rgb: np.ndarray, targets: list[Target]) -> list[Segment]:
        """``set_image`` then ``predict``."""
        self.set_image(rgb)
        return self.predict(targets)

    def close(self) -> None:  # noqa: B027 - optional for backends holding nothing to release
        """Release the model."""


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Refuse anything but an H×W×3 uint8 image with a clear message."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"expected an H×W×3 uint8 RGB image, got shape {shape} dtype {getattr(rgb, 'dtype', None)}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"image too small to segment: {rgb.shape[1]}×{rgb.shape[0]}")
    return rgb


def probe_backends(device: str) -> dict[str, bool]:
    """What this machine offers: a CUDA device (when ``device`` allows one), tensorrt, onnxruntime."""
    import importlib.util

    cuda = False
    if device == "auto" or device.startswith("cuda"):
        import torch

        cuda = torch.cuda.is_available()
    return {
        "cuda": cuda,
        "tensorrt": importlib.util.find_spec("tensorrt") is not None,
        "onnxruntime": importlib.util.find_spec("onnxruntime") is not None,
    }


def resolve_backend(backend: str, available: dict[str, bool]) -> str:
    """The backend ``auto`` means here: tensorrt on a GPU, else torch_compiled on a GPU, else onnx, else torch."""
    if backend != "auto":
        return backend
    if available["cuda"]:
        return "tensorrt" if available["tensorrt"] else "torch_compiled"
    return "onnx" if available["onnxruntime"] else "torch"


def backend_class(name: str) -> type[Segmenter]:
    """The class registered for backend ``name`` (its module imported now)."""
    if name not in SEGMENTER_BACKENDS:
        raise ValueError(f"unknown segmenter backend {name!r}; known: {', '.join(SEGMENTER_BACKENDS)}")
    module, _, cls = SEGMENTER_BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def make_segmenter(config: SegmenterConfig) -> Segmenter:
    """Build the backend ``config.backend`` names (``auto``: the fastest this machine runs, logged)."""
    backend = config.backend
    if backend == "auto":
        available = probe_backends(config.device)
        backend = resolve_backend("auto", available)
        LOG.info("segmenter backend auto -> %s (machine offers %s)", backend, available)
    return backend_class(backend)(config)
