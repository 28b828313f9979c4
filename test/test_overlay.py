"""The overlay: masks tinted exactly where they are, boxes and points drawn, the input left alone."""

from __future__ import annotations

import numpy as np

from segzero_ros.overlay import PALETTE, draw_overlay
from segzero_ros.protocol import Target


def test_masks_are_tinted_only_where_they_are():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    first = np.zeros((90, 120), bool)
    first[10:40, 20:60] = True
    first[70, 100] = True  # a stray pixel far from the rest of the mask
    second = np.zeros((90, 120), bool)
    second[50:60, 5:15] = True
    before = rgb.copy()
    out = draw_overlay(rgb, [], [first, second, np.zeros((90, 120), bool)], alpha=0.45)
    for mask, colour in ((first, PALETTE[0]), (second, PALETTE[1])):
        expected = rgb[mask] * 0.55 + np.array(colour) * 0.45
        assert np.abs(out[mask].astype(float) - expected).max() <= 1.0
    untouched = ~(first | second)
    assert (out[untouched] == rgb[untouched]).all()
    assert (rgb == before).all()  # the input frame is not drawn on


def test_boxes_and_points_are_drawn():
    rgb = np.zeros((100, 100, 3), np.uint8)
    out = draw_overlay(rgb, [Target(bbox=(10, 10, 80, 80), points=[(40, 40)])], [])
    assert tuple(out[10, 45]) == PALETTE[0]  # on the box's top edge
    assert tuple(out[40, 40]) == PALETTE[0]  # the point's centre
    assert tuple(out[60, 60]) == (0, 0, 0)  # inside the box, away from the point
