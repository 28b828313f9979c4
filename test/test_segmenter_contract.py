"""One contract for every SAM2 backend this machine can run (the registry's, built from the tiny SAM2): what
``set_image``/``predict``/``segment`` give, what they refuse, and masks that agree with PyTorch eager."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from segzero_ros.protocol import Target
from segzero_ros.scenes import demo_scene
from segzero_ros.segmenter.base import SEGMENTER_BACKENDS, BackendUnavailable, make_segmenter

TARGETS = [Target(bbox=(330, 310, 500, 480), points=[(380, 400)]), Target(bbox=(600, 250, 900, 470), points=[])]


@pytest.fixture(scope="module")
def reference(tiny_sam2_config):
    """PyTorch eager on the demo scene: the masks every backend is held to."""
    segmenter = make_segmenter(dataclasses.replace(tiny_sam2_config, backend="torch", device="cpu"))
    try:
        return segmenter.segment(demo_scene(1280, 720)[0], TARGETS)
    finally:
        segmenter.close()


@pytest.fixture(scope="module", params=list(SEGMENTER_BACKENDS))
def segmenter(request, tiny_sam2_config):
    try:
        backend = make_segmenter(dataclasses.replace(tiny_sam2_config, backend=request.param, device="cpu"))
    except BackendUnavailable as exc:
        pytest.skip(f"{request.param} cannot run on this machine: {exc}")
    yield backend
    backend.close()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def test_segment_gives_one_mask_per_target_at_the_images_size(segmenter, reference):
    rgb = demo_scene(1280, 720)[0]
    segments = segmenter.segment(rgb, TARGETS)
    assert len(segments) == len(TARGETS)
    for segment, expected in zip(segments, reference, strict=True):
        assert segment.mask.shape == (720, 1280) and segment.mask.dtype == bool
        assert np.isfinite(segment.score)
        assert iou(segment.mask, expected.mask) >= 0.98  # the same SAM2, whatever runs it


def test_set_image_once_then_predict_equals_segment(segmenter):
    rgb = demo_scene(640, 480)[0]
    targets = [Target(bbox=(150, 200, 260, 330), points=[(190, 260)])]
    whole = segmenter.segment(rgb, targets)
    segmenter.set_image(rgb)
    first, again = segmenter.predict(targets), segmenter.predict(targets)
    assert np.array_equal(first[0].mask, whole[0].mask) and np.array_equal(again[0].mask, first[0].mask)


@pytest.mark.parametrize("bad", [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 4), np.uint8), np.zeros((2, 2, 3))])
def test_images_that_are_not_rgb8_are_refused(segmenter, bad):
    with pytest.raises(ValueError):
        segmenter.set_image(bad)
