"""Shared pytest fixtures: the tiny offline models (built once per cache, see segzero_ros.tiny)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_reasoner_dir() -> Path:
    """The tiny Qwen2.5-VL with random weights (its answers are garbled: force them with ``force_answer``)."""
    from segzero_ros.tiny import tiny_reasoner_path

    return tiny_reasoner_path(fitted=False)


@pytest.fixture(scope="session")
def tiny_fitted_reasoner_dir() -> Path:
    """The tiny Qwen2.5-VL fitted to answer ``TINY_ANSWERS`` (the demo's and the node's tiny preset)."""
    from segzero_ros.tiny import tiny_reasoner_path

    return tiny_reasoner_path(fitted=True)


@pytest.fixture(scope="session")
def tiny_sam2_config():
    from segzero_ros.tiny import tiny_segmenter_config

    return tiny_segmenter_config()


@pytest.fixture(scope="session")
def tiny_sam2_export(tiny_sam2_config) -> Path:
    """The tiny SAM2's ONNX export in the cache (made by ``export_sam2`` on first use)."""
    import dataclasses

    from segzero_ros.segmenter.onnx import ensure_export

    return ensure_export(dataclasses.replace(tiny_sam2_config, backend="onnx"))


def force_answer(model, tokenizer, monkeypatch, answer: str, on_class: bool = False) -> None:
    """Make ``generate`` return the prompt followed by the tokens of ``answer`` and ``<|im_end|>``."""
    answer_ids = tokenizer(answer, return_tensors="pt")["input_ids"]
    eos = torch.tensor([[tokenizer.convert_tokens_to_ids("<|im_end|>")]])

    def fake_generate(*args, input_ids=None, **_):
        input_ids = input_ids if input_ids is not None else args[-1]
        return torch.cat([input_ids, answer_ids, eos], dim=1)

    monkeypatch.setattr(model, "generate", fake_generate)
