"""A stand-in for the ``tensorrt`` module with the API our TensorRT backend calls; ONNX Runtime does the maths.

It exercises control flow and buffer binding only (parse, build flags, profiles, serialise, deserialise,
bind addresses, execute): it says nothing about how real TensorRT builds or runs SAM2. "Engines" are the
ONNX bytes behind a JSON header; execution reads inputs from and writes outputs to the bound addresses, so
the bound buffers must be host memory (the backend's tensors on ``cpu``).
"""

from __future__ import annotations

import ctypes
import enum
import json
from pathlib import Path

import numpy as np

__version__ = "10.3.0"
BUILDS: list[dict] = []  # one record per build_serialized_network call, for assertions


class Logger:
    WARNING = 2

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    INT64 = 5


class TensorIOMode(enum.Enum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class BuilderFlag(enum.Enum):
    FP16 = 0


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0


_ORT_TYPES = {"tensor(float)": (DataType.FLOAT, np.float32), "tensor(int32)": (DataType.INT32, np.int32)}
_ORT_TYPES["tensor(int64)"] = (DataType.INT64, np.int64)
_NUMPY = {DataType.FLOAT: np.float32, DataType.INT32: np.int32, DataType.INT64: np.int64, DataType.HALF: np.float16}


class _Network:
    def __init__(self, flags: int) -> None:
        self.flags, self.onnx = flags, b""


class _Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, list[list[int]]] = {}

    def set_shape(self, name, low, opt, high) -> None:
        self.shapes[name] = [list(low), list(opt), list(high)]


class _Config:
    def __init__(self) -> None:
        self.flags: set = set()
        self.pools: dict = {}
        self.profiles: list[_Profile] = []

    def set_flag(self, flag) -> None:
        self.flags.add(flag)

    def set_memory_pool_limit(self, pool, size: int) -> None:
        self.pools[pool] = size

    def add_optimization_profile(self, profile: _Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    platform_has_fast_fp16 = True

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def create_network(self, flags: int = 0) -> _Network:
        return _Network(flags)

    def create_builder_config(self) -> _Config:
        return _Config()

    def create_optimization_profile(self) -> _Profile:
        return _Profile()

    def build_serialized_network(self, network: _Network, config: _Config):
        profile = config.profiles[0].shapes if config.profiles else {}
        BUILDS.append(
            {
                "fp16": BuilderFlag.FP16 in config.flags,
                "workspace": config.pools.get(MemoryPoolType.WORKSPACE),
                "profile": profile,
            }
        )
        header = json.dumps({"version": __version__, "profile": profile}).encode()
        return header + b"\n" + network.onnx


class OnnxParser:
    def __init__(self, network: _Network, logger: Logger) -> None:
        self.network, self.errors = network, []

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> str:
        return self.errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        data = Path(path).read_bytes()
        try:
            onnx.load_from_string(data)
        except Exception as exc:  # any decode failure is a parse error
            self.errors.append(f"not an ONNX model: {type(exc).__name__}")
            return False
        self.network.onnx = data
        return True


class _Engine:
    def __init__(self, onnx_bytes: bytes, profile: dict) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.profile = profile
        self.io = []
        for arg, mode in [(i, TensorIOMode.INPUT) for i in self.session.get_inputs()] + [
            (o, TensorIOMode.OUTPUT) for o in self.session.get_outputs()
        ]:
            shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
            self.io.append((arg.name, mode, _ORT_TYPES[arg.type][0], shape))

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def _find(self, name: str):
        return next(t for t in self.io if t[0] == name)

    def get_tensor_name(self, index: int) -> str:
        return self.io[index][0]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._find(name)[1]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._find(name)[2]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._find(name)[3]

    def get_tensor_profile_shape(self, name: str, profile_index: int):
        return [tuple(s) for s in self.profile[name]]

    def create_execution_context(self) -> _Context:
        return _Context(self)


class _Context:
    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self._output_shapes: dict[tuple, dict[str, tuple[int, ...]]] = {}

    def set_input_shape(self, name: str, shape) -> bool:
        shape = tuple(shape)
        if name in self.engine.profile:
            low, _, high = self.engine.profile[name]
            if any(s < lo or s > hi for s, lo, hi in zip(shape, low, high, strict=True)):
                return False
        self.shapes[name] = shape
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def _read(self, name: str) -> np.ndarray:
        dtype = np.dtype(_NUMPY[self.engine.get_tensor_dtype(name)])
        shape = self.shapes.get(name) or self.engine.get_tensor_shape(name)
        size = int(np.prod(shape)) * dtype.itemsize
        raw = (ctypes.c_char * size).from_address(self.addresses[name])
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()

    def _inputs(self) -> dict[str, np.ndarray]:
        names = [t[0] for t in self.engine.io if t[1] == TensorIOMode.INPUT]
        return {name: self._read(name) for name in names}

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.engine.get_tensor_mode(name) == TensorIOMode.INPUT:
            return self.shapes.get(name, self.engine.get_tensor_shape(name))
        shape = self.engine.get_tensor_shape(name)
        if -1 not in shape:
            return shape
        key = tuple(sorted(self.shapes.items()))
        if key not in self._output_shapes:  # symbolic output: run once on zeros of the bound shapes
            feeds = {
                t[0]: np.zeros(self.shapes.get(t[0], t[3]), dtype=_NUMPY[t[2]])
                for t in self.engine.io
                if t[1] == TensorIOMode.INPUT
            }
            outputs = self.engine.session.run(None, feeds)
            names = [o.name for o in self.engine.session.get_outputs()]
            self._output_shapes[key] = {n: tuple(o.shape) for n, o in zip(names, outputs, strict=True)}
        return self._output_shapes[key][name]

    def execute_async_v3(self, stream_handle: int) -> bool:
        outputs = self.engine.session.run(None, self._inputs())
        for out, arg in zip(outputs, self.engine.session.get_outputs(), strict=True):
            array = np.ascontiguousarray(out.astype(_NUMPY[self.engine.get_tensor_dtype(arg.name)]))
            ctypes.memmove(self.addresses[arg.name], array.ctypes.data, array.nbytes)
        return True


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, data: bytes):
        header, _, onnx_bytes = bytes(data).partition(b"\n")
        try:
            meta = json.loads(header)
        except ValueError:
            return None
        if meta.get("version") != __version__:
            return None  # as TensorRT does for an engine serialised by another version
        return _Engine(onnx_bytes, meta["profile"])
