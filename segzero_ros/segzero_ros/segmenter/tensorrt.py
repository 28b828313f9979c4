"""TensorRT SAM2 backend: engines built from our ONNX export (fp16 by default), cached, run on bound CUDA memory.

Every call into ``tensorrt`` is in this module: ``build_engine`` (ONNX parser, builder config, an
optimisation profile for the decoder's point count) and ``EngineRunner`` (deserialise, bind I/O tensors,
``execute_async_v3``). The rest is plain code: the cache key, the engine record, staleness checks.

An engine is only valid for the GPU model, compute capability and TensorRT version that built it, so the
cache folder is keyed by those and by the ONNX graphs' hash and build options; ``engine.json`` records the
same fields and an engine whose record does not match this machine is rebuilt (cache) or refused (a folder
given by the user), never loaded. Needs TensorRT >= 8.6 (tensor-address API).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segzero_ros.segmenter.base import BackendUnavailable, SegmenterConfig
from segzero_ros.segmenter.export import DECODER_FILE, ENCODER_FILE, ExportInfo, file_sha256, read_export_info
from segzero_ros.segmenter.exported import ExportedSegmenter

LOG = logging.getLogger(__name__)

ENGINE_FORMAT = 1
ENGINE_INFO_FILE = "engine.json"
ENCODER_ENGINE, DECODER_ENGINE = "encoder.engine", "decoder.engine"
DEFAULT_WORKSPACE_GB = 4.0
DEFAULT_MAX_POINTS = 34  # the box's two corners + up to 32 clicks
FALLBACK_HINT = "use segmenter.backend 'onnx' (ONNX Runtime) or 'torch', or 'auto' to pick the best this machine runs"


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build a graph; the message carries the parser's errors."""


class StaleEngineError(RuntimeError):
    """An engine folder was built for another GPU, TensorRT version or graph."""


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine depends on; ``key()`` names its cache folder, ``engine.json`` records it."""

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    onnx_sha256: str
    fp16: bool
    workspace_gb: float
    max_points: int
    format_version: int = ENGINE_FORMAT

    def key(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True)
        return "sam2-trt-" + hashlib.sha256(payload.encode()).hexdigest()[:16]

    def mismatch(self, other: EngineSpec) -> list[str]:
        """The fields in which ``other`` differs, as ``name: theirs != ours``."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{k}: {theirs[k]!r} != {mine[k]!r}" for k in mine if mine[k] != theirs[k]]


def onnx_sha256(export_dir: str | Path) -> str:
    """One hash of an export's two graphs."""
    digest = hashlib.sha256()
    for name in (ENCODER_FILE, DECODER_FILE):
        digest.update(file_sha256(Path(export_dir) / name).encode())
    return digest.hexdigest()


def decoder_profile(max_points: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shapes of the decoder's dynamic inputs: 2 (box only) … ``max_points`` prompt points."""
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2 (the box's corners), got {max_points}")
    opt = min(4, max_points)
    return {
        "point_coords": ((1, 2, 2), (1, opt, 2), (1, max_points, 2)),
        "point_labels": ((1, 2), (1, opt), (1, max_points)),
    }


def read_engine_spec(folder: str | Path) -> EngineSpec:
    """The ``engine.json`` of an engine folder."""
    path = Path(folder) / ENGINE_INFO_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a segzero TensorRT engine folder (no {ENGINE_INFO_FILE})")
    record = json.loads(path.read_text())
    return EngineSpec(**record["spec"])


def check_engine_folder(folder: str | Path, expected: EngineSpec) -> None:
    """Raise ``StaleEngineError`` unless the folder's engines were built for ``expected`` (this machine)."""
    found = read_engine_spec(folder)
    differences = expected.mismatch(found)
    if differences:
        raise StaleEngineError(
            f"{folder} holds engines built for another setup ({'; '.join(differences)}); rebuild them with "
            "`segzero build-engine` or give the ONNX export folder and let the backend build and cache them"
        )


def tensorrt_module():
    """``import tensorrt``, or ``BackendUnavailable`` naming the fallback."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailable(
            f"segmenter backend 'tensorrt' needs the tensorrt package ({exc}; `pip install './segzero_ros[tensorrt]'` "
            f"in the repository, or `pip install tensorrt-cu12`, on a machine with an NVIDIA GPU); {FALLBACK_HINT}"
        ) from None
    major_minor = tuple(int(p) for p in tensorrt.__version__.split(".")[:2] if p.isdigit())
    if major_minor < (8, 6):
        raise BackendUnavailable(f"TensorRT {tensorrt.__version__} is too old (need >= 8.6); {FALLBACK_HINT}")
    return tensorrt


def gpu_identity(device: str) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of a CUDA device, or ``BackendUnavailable``."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise BackendUnavailable(f"segmenter backend 'tensorrt' needs a CUDA GPU (device {device!r}); {FALLBACK_HINT}")
    index = torch.device(device).index or 0
    major, minor = torch.cuda.get_device_capability(index)
    return torch.cuda.get_device_name(index), f"{major}.{minor}"


def build_engine(
    trt: Any,
    onnx_path: str | Path,
    engine_path: str | Path,
    fp16: bool = True,
    workspace_gb: float = DEFAULT_WORKSPACE_GB,
    profile: dict[str, tuple[tuple[int, ...], ...]] | None = None,
) -> None:
    """Parse an ONNX graph and write its serialised TensorRT engine (fp16 where the GPU has fast fp16)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    explicit_batch = (
        0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    )
    network = builder.create_network(explicit_batch)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        if not builder.platform_has_fast_fp16:
            LOG.warning("this GPU has no fast fp16; building %s in fp32", onnx_path)
        else:
            config.set_flag(trt.BuilderFlag.FP16)
    if profile:
        opt_profile = builder.create_optimization_profile()
        for name, (low, opt, high) in profile.items():
            opt_profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(opt_profile)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    Path(engine_path).write_bytes(bytes(serialized))
    LOG.info("built %s in %.0f s", engine_path, time.perf_counter() - start)


def build_engines(
    trt: Any, export_dir: str | Path, out_dir: str | Path, spec: EngineSpec, info: ExportInfo | None = None
) -> Path:
    """Both engines of an export into ``out_dir``, with ``engine.json`` (spec + the export's record)."""
    export_dir, out = Path(export_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = info or read_export_info(export_dir)
    build_engine(trt, export_dir / ENCODER_FILE, out / ENCODER_ENGINE, spec.fp16, spec.workspace_gb)
    build_engine(
        trt,
        export_dir / DECODER_FILE,
        out / DECODER_ENGINE,
        spec.fp16,
        spec.workspace_gb,
        decoder_profile(spec.max_points),
    )
    record = {"spec": asdict(spec), "export": asdict(info), "onnx_dir": str(export_dir.resolve())}
    (out / ENGINE_INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out


def machine_spec(
    trt: Any, device: str, export_dir: str | Path, fp16: bool, workspace_gb: float, max_points: int
) -> EngineSpec:
    """The spec an engine for this GPU, this TensorRT and this export must have."""
    name, capability = gpu_identity(device)
    return EngineSpec(name, capability, trt.__version__, onnx_sha256(export_dir), fp16, workspace_gb, max_points)


def cached_engines(trt: Any, export_dir: str | Path, spec: EngineSpec) -> Path:
    """The cache folder of ``spec``'s engines, built from ``export_dir`` on first use (and if its record is off)."""
    from segzero_ros.cache import build_once

    def build(folder: Path) -> None:
        LOG.info("building TensorRT engines from %s for %s (once; cached as %s)", export_dir, spec.gpu_name, spec.key())
        build_engines(trt, export_dir, folder, spec)

    folder = build_once(spec.key(), build)
    try:
        check_engine_folder(folder, spec)
    except (StaleEngineError, FileNotFoundError, TypeError, KeyError, ValueError) as exc:
        LOG.warning("cached engines in %s are not usable (%s); rebuilding", folder, exc)
        shutil.rmtree(folder)
        folder = build_once(spec.key(), build)
    return folder


def _torch_dtype(trt: Any, dtype: Any):
    import torch

    table = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8,
        trt.DataType.BOOL: torch.bool,
    }
    for name, torch_dtype in (("INT64", torch.int64), ("BF16", torch.bfloat16)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = torch_dtype
    return table[dtype]


class EngineRunner:
    """One engine with its I/O buffers, allocated once (inputs at the profile's largest shape) and reused."""

    def __init__(self, trt: Any, runtime: Any, engine_bytes: bytes, device: str, label: str) -> None:
        import torch

        self.trt, self.device, self.label = trt, device, label
        self.engine = runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise StaleEngineError(f"TensorRT could not deserialise the {label} engine (built by another version?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.buffers: dict[str, torch.Tensor] = {}
        for name in self.inputs:
            shape = tuple(self.engine.get_tensor_shape(name))
            if -1 in shape:
                shape = tuple(self.engine.get_tensor_profile_shape(name, 0)[2])
            self.buffers[name] = self._alloc(name, shape)
        self._bound_shapes: dict[str, tuple[int, ...]] = {}

    def _alloc(self, name: str, shape: tuple[int, ...]):
        import torch

        return torch.empty(shape, dtype=_torch_dtype(self.trt, self.engine.get_tensor_dtype(name)), device=self.device)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy the inputs into the bound buffers, run on the current stream, return the outputs as numpy."""
        import torch

        for name in self.inputs:
            value = torch.from_numpy(np.ascontiguousarray(feeds[name]))
            buffer = self.buffers[name]
            if value.dim() != buffer.dim() or any(v > b for v, b in zip(value.shape, buffer.shape, strict=True)):
                raise ValueError(f"{self.label} input {name}: shape {tuple(value.shape)} exceeds {tuple(buffer.shape)}")
            view = buffer[tuple(slice(0, n) for n in value.shape)]
            view.copy_(value)
            if self._bound_shapes.get(name) != tuple(value.shape):
                self.context.set_input_shape(name, tuple(value.shape))
                self._bound_shapes[name] = tuple(value.shape)
            self.context.set_tensor_address(name, view.data_ptr())
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if name not in self.buffers or tuple(self.buffers[name].shape) != shape:
                self.buffers[name] = self._alloc(name, shape)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        cuda = self.device.startswith("cuda")
        stream = torch.cuda.current_stream(self.device) if cuda else None
        if not self.context.execute_async_v3(stream.cuda_stream if stream is not None else 0):
            raise RuntimeError(f"TensorRT failed to run the {self.label} engine")
        if stream is not None:
            stream.synchronize()
        return {name: self.buffers[name].float().cpu().numpy() for name in self.outputs}


class TensorRTSegmenter(ExportedSegmenter):
    """SAM2 as TensorRT engines: ``model`` is an engine folder, an ONNX export folder, a checkpoint or an id.

    From anything but an engine folder, the ONNX export (cached) is built into engines once per GPU/TensorRT
    version/graph and cached; fp16 unless ``precision`` is ``fp32``.
    """

    name = "tensorrt"

    def __init__(
        self, config: SegmenterConfig, workspace_gb: float = DEFAULT_WORKSPACE_GB, max_points: int = DEFAULT_MAX_POINTS
    ) -> None:
        from segzero_ros.devices import resolve_device

        trt = tensorrt_module()
        device = resolve_device(config.device)
        start = time.perf_counter()
        folder = self._engine_folder(trt, config, device, workspace_gb, max_points)
        record = json.loads((folder / ENGINE_INFO_FILE).read_text())
        self.spec, self.info = EngineSpec(**record["spec"]), ExportInfo(**record["export"])
        if self.info.multimask_output != config.multimask_output:
            raise ValueError(
                f"{folder} was built with multimask_output={self.info.multimask_output}, "
                f"the config asks for {config.multimask_output}"
            )
        super().__init__(config, self.info.image_size)
        self.device, self.folder = device, folder
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.encoder = EngineRunner(trt, runtime, (folder / ENCODER_ENGINE).read_bytes(), device, "encoder")
        self.decoder = EngineRunner(trt, runtime, (folder / DECODER_ENGINE).read_bytes(), device, "decoder")
        self.load_s = time.perf_counter() - start
        precision = "fp16" if self.spec.fp16 else "fp32"
        self.description = (
            f"sam2 {config.model} (TensorRT {self.spec.tensorrt_version} {precision} on {self.spec.gpu_name}, "
            f"input {self.image_size})"
        )
        LOG.info("segmenter ready in %.1f s: %s", self.load_s, self.description)

    @staticmethod
    def _engine_folder(trt: Any, config: SegmenterConfig, device: str, workspace_gb: float, max_points: int) -> Path:
        from segzero_ros.segmenter.onnx import ensure_export

        model = Path(config.model)
        if model.is_dir() and (model / ENGINE_INFO_FILE).exists():
            found = read_engine_spec(model)
            name, capability = gpu_identity(device)
            here = dataclasses.replace(
                found,
                gpu_name=name,
                compute_capability=capability,
                tensorrt_version=trt.__version__,
                format_version=ENGINE_FORMAT,
            )
            if not here.mismatch(found):
                return model
            source = json.loads((model / ENGINE_INFO_FILE).read_text()).get("onnx_dir")
            if source and Path(source).is_dir() and onnx_sha256(source) == found.onnx_sha256:
                LOG.warning("%s: %s; rebuilding from %s", model, "; ".join(here.mismatch(found)), source)
                return cached_engines(trt, source, here)
            check_engine_folder(model, here)  # raises StaleEngineError naming the differences
        export_dir = ensure_export(config)
        fp16 = config.precision in ("auto", "fp16")
        return cached_engines(trt, export_dir, machine_spec(trt, device, export_dir, fp16, workspace_gb, max_points))

    def run_encoder(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = self.encoder.run({"image": image})
        return out["image_embed"], out["high_res_0"], out["high_res_1"]

    def run_decoder(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        out = self.decoder.run(feeds)
        return out["low_res_masks"], out["iou_predictions"]

    def close(self) -> None:
        self.encoder = self.decoder = None  # type: ignore[assignment]
        super().close()
