"""The PyTorch SAM2 backend against direct SAM2ImagePredictor use with the reference's arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segzero_ros.protocol import Target
from segzero_ros.scenes import demo_scene
from segzero_ros.segmenter import SegmenterConfig, make_segmenter
from segzero_ros.segmenter.checkpoints import backbone_feature_sizes, config_for_checkpoint, load_sam2


@pytest.fixture(scope="module")
def segmenter(tiny_sam2_config):
    return make_segmenter(tiny_sam2_config)


def _reference_masks(config, rgb, targets, protocol):
    """The reference: set_image once, predict(point_coords, point_labels=[1..], box), best score first."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    model = load_sam2(config, "cpu")
    predictor = SAM2ImagePredictor(model)
    predictor._bb_feat_sizes = backbone_feature_sizes(model.image_size)
    out = []
    with torch.inference_mode():
        predictor.set_image(rgb)
        for t in targets:
            points = [list(p) for p in t.points] if protocol == "segzero" else [list(t.points[0])]
            masks, scores, _ = predictor.predict(point_coords=points, point_labels=[1] * len(points), box=list(t.bbox))
            out.append(masks[np.argsort(scores)[::-1]][0].astype(bool))
    return out


@pytest.mark.parametrize("protocol", ["segzero", "multi"])
def test_masks_equal_direct_predictor(segmenter, tiny_sam2_config, protocol):
    rgb, _ = demo_scene(640, 480, seed=5)
    if protocol == "segzero":
        targets = [Target(bbox=(100, 150, 260, 330), points=[(150, 240), (200, 260)])]
    else:
        targets = [
            Target(bbox=(100, 150, 260, 330), points=[(150, 240)]),
            Target(bbox=(380, 170, 520, 320), points=[(450, 250)]),
        ]
    ours = segmenter.segment(rgb, targets)
    expected = _reference_masks(tiny_sam2_config, rgb, targets, protocol)
    assert len(ours) == len(targets)
    for segment, mask in zip(ours, expected, strict=True):
        assert segment.mask.shape == (480, 640) and segment.mask.dtype == bool
        assert np.array_equal(segment.mask, mask)
        assert np.isfinite(segment.score)


def test_embedding_computed_once_per_frame(segmenter, monkeypatch):
    rgb, _ = demo_scene(320, 240, seed=1)
    calls = []
    original = segmenter.predictor.set_image
    monkeypatch.setattr(segmenter.predictor, "set_image", lambda img: (calls.append(1), original(img)))
    targets = [Target(bbox=(10, 10, 100, 100), points=[(50, 50)]) for _ in range(3)]
    assert len(segmenter.segment(rgb, targets)) == 3
    assert len(calls) == 1


def test_target_without_points_uses_the_box_alone(segmenter):
    rgb, _ = demo_scene(320, 240, seed=2)
    (segment,) = segmenter.segment(rgb, [Target(bbox=(10, 10, 100, 100), points=[])])
    assert segment.mask.shape == (240, 320)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((1, 10, 3), np.uint8),
    ],
)
def test_set_image_rejects_non_rgb(segmenter, bad):
    with pytest.raises(ValueError, match=r"RGB image|too small"):
        segmenter.set_image(bad)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("sam2_hiera_large.pt", "configs/sam2/sam2_hiera_l.yaml"),
        ("sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml"),
        ("sam2.1_hiera_base_plus.pt", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
        ("/models/sam2_hiera_s.pt", "configs/sam2/sam2_hiera_s.yaml"),
    ],
)
def test_config_from_checkpoint_name(name, config):
    assert config_for_checkpoint(name) == config


def test_unknown_model_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="neither a local checkpoint"):
        make_segmenter(SegmenterConfig(model="someone/not-sam2", device="cpu"))
    with pytest.raises(ValueError, match="cannot tell the SAM2 config"):
        config_for_checkpoint("weights.pt")
    with pytest.raises(ValueError, match="backend"):
        SegmenterConfig(backend="magic")


def test_torch_compiled_captures_sam2_and_matches_eager(segmenter, tiny_sam2_config):
    """torch.compile's graph capture (backend ``eager``: no compiler here) runs SAM2 and changes no mask."""
    from segzero_ros.segmenter.torch import CompiledTorchSegmenter

    compiled = CompiledTorchSegmenter(tiny_sam2_config, compile_backend="eager")
    assert compiled.name == "torch_compiled" and "torch.compile eager" in compiled.description
    assert hasattr(compiled.predictor.model.image_encoder, "_orig_mod")  # the encoder is the compiled module
    rgb, _ = demo_scene(640, 480, seed=5)
    targets = [Target(bbox=(100, 150, 260, 330), points=[]), Target(bbox=(380, 170, 520, 320), points=[(450, 250)])]
    for a, b in zip(compiled.segment(rgb, targets), segmenter.segment(rgb, targets), strict=True):
        assert np.array_equal(a.mask, b.mask) and a.score == pytest.approx(b.score, abs=1e-5)


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [
        ("auto", "cpu", None),
        ("auto", "cuda", torch.bfloat16),
        ("fp32", "cuda", None),
        ("fp16", "cuda", torch.float16),
        ("bf16", "cpu", torch.bfloat16),
    ],
)
def test_autocast_dtype_per_precision(precision, device, expected):
    from segzero_ros.segmenter.torch import autocast_dtype

    assert autocast_dtype(precision, device) == expected


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        SegmenterConfig(precision="int4")
