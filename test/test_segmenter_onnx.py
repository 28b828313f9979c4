"""Our SAM2 ONNX export and the ONNX Runtime backend, against the PyTorch backend on the same weights."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from segzero_ros.protocol import Target
from segzero_ros.scenes import demo_scene
from segzero_ros.segmenter import make_segmenter
from segzero_ros.segmenter.export import DECODER_FILE, ENCODER_FILE, read_export_info
from segzero_ros.segmenter.onnx import choose_providers, ensure_export, export_key

TARGETS = [
    Target(bbox=(100, 150, 260, 330), points=[]),
    Target(bbox=(100, 150, 260, 330), points=[(150, 240)]),
    Target(bbox=(380, 170, 520, 320), points=[(450, 250), (420, 200), (480, 300)]),
]


@pytest.fixture(scope="module")
def export_dir(tiny_sam2_export):
    return tiny_sam2_export


@pytest.fixture(scope="module")
def backends(export_dir, tiny_sam2_config):
    onnx_config = dataclasses.replace(tiny_sam2_config, backend="onnx", model=str(export_dir))
    return make_segmenter(tiny_sam2_config), make_segmenter(onnx_config)


def test_export_writes_checked_graphs_with_metadata(export_dir, tiny_sam2_config):
    import onnx

    info = read_export_info(export_dir)
    assert info.image_size == 256 and info.multimask_output and info.opset >= 17
    assert info.overrides == tiny_sam2_config.overrides and len(info.checkpoint_sha256) == 64
    for name in (ENCODER_FILE, DECODER_FILE):
        graph = onnx.load(str(export_dir / name))
        onnx.checker.check_model(graph)
        meta = {p.key: p.value for p in graph.metadata_props}
        assert json.loads(meta["segzero.checkpoint_sha256"]) == info.checkpoint_sha256
        assert json.loads(meta["segzero.sam2_config"]) == info.sam2_config
    decoder = onnx.load(str(export_dir / DECODER_FILE))
    coords = next(i for i in decoder.graph.input if i.name == "point_coords")
    assert coords.type.tensor_type.shape.dim[1].dim_param == "num_points"  # dynamic number of points


def test_onnx_masks_match_torch(backends):
    torch_seg, onnx_seg = backends
    rgb, _ = demo_scene(640, 480, seed=5)
    expected = torch_seg.segment(rgb, TARGETS)
    ours = onnx_seg.segment(rgb, TARGETS)
    for a, b in zip(expected, ours, strict=True):
        union = np.logical_or(a.mask, b.mask).sum()
        iou = np.logical_and(a.mask, b.mask).sum() / union if union else 1.0
        assert b.mask.shape == (480, 640) and b.mask.dtype == bool
        assert iou >= 0.99
        assert b.score == pytest.approx(a.score, abs=1e-4)


def test_onnx_logits_match_the_predictor(backends):
    torch_seg, onnx_seg = backends
    rgb, _ = demo_scene(320, 240, seed=2)
    torch_seg.set_image(rgb)
    onnx_seg.set_image(rgb)
    for target in TARGETS:
        with torch.inference_mode():
            _, scores, low_res = torch_seg.predictor.predict(
                point_coords=np.asarray(target.points, np.float32).reshape(-1, 2) if target.points else None,
                point_labels=np.ones(len(target.points), np.int32) if target.points else None,
                box=np.asarray(target.bbox, np.float32),
                return_logits=True,
            )
        logits, iou = onnx_seg.predict_logits(target)
        np.testing.assert_allclose(np.clip(logits[0], -32, 32), low_res, atol=1e-3)
        np.testing.assert_allclose(iou[0], scores, atol=1e-4)


def test_export_is_cached_by_checkpoint_and_config(export_dir, tiny_sam2_config, monkeypatch):
    import segzero_ros.segmenter.export

    def no_export(*_, **__):
        raise AssertionError("exported again")

    monkeypatch.setattr(segzero_ros.segmenter.export, "export_sam2", no_export)
    assert ensure_export(dataclasses.replace(tiny_sam2_config, backend="onnx")) == export_dir
    assert ensure_export(dataclasses.replace(tiny_sam2_config, backend="onnx", model=str(export_dir))) == export_dir
    keys = {
        export_key("c", [], "h", True),
        export_key("c", [], "h", False),
        export_key("c", ["++x=1"], "h", True),
        export_key("c", [], "h2", True),
        export_key("c2", [], "h", True),
    }
    assert len(keys) == 5


def test_export_folder_must_match_the_config(export_dir, tiny_sam2_config, tmp_path):
    single = dataclasses.replace(tiny_sam2_config, backend="onnx", model=str(export_dir), multimask_output=False)
    with pytest.raises(ValueError, match="multimask_output"):
        make_segmenter(single)
    with pytest.raises(FileNotFoundError, match="not a segzero SAM2 ONNX export"):
        make_segmenter(dataclasses.replace(tiny_sam2_config, backend="onnx", model=str(tmp_path)))


def test_predict_before_set_image_is_a_clear_error(export_dir, tiny_sam2_config):
    seg = make_segmenter(dataclasses.replace(tiny_sam2_config, backend="onnx", model=str(export_dir)))
    with pytest.raises(RuntimeError, match="set_image"):
        seg.predict(TARGETS[:1])


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            "auto",
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ],
)
def test_provider_choice(device, available, expected):
    assert choose_providers(device, available) == expected


def test_cuda_without_gpu_providers_is_refused():
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        choose_providers("cuda", ["CPUExecutionProvider"])
