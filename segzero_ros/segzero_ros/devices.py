"""Device and dtype names → what torch uses (a leaf: every model module may import it)."""

from __future__ import annotations


class DeviceUnavailable(RuntimeError):
    """A device asked for that this machine does not have."""


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; a CUDA device asked for must exist."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"device {device!r} requested but no CUDA GPU is visible: use cpu or auto (--device, *.device parameters)"
        )
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto`` → bf16 on GPU, fp32 on CPU (the reference runs bf16 on GPU)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in names:
        raise ValueError(f"unknown dtype {dtype!r}; expected auto or one of {sorted(names)}")
    return names[dtype]


def release_gpu_memory() -> None:
    """Hand cached GPU memory back after a model is dropped (nothing to do where CUDA was never used)."""
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
