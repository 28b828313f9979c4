"""Oriented 3D boxes from masks and depth (``boxes3d``) on analytic scenes: a box face at a known depth, a tilted
plane, depth holes, flying pixels at the border and a mask that bleeds onto the background."""

from __future__ import annotations

import depth_scenes
import numpy as np
import pytest
from depth_scenes import BACKGROUND_M, rotation_x, spoil

from segzero_ros.boxes3d import fit_box, principal_axes, rotation_quaternion

FX, FY, CX, CY = 600.0, 610.0, 320.0, 240.0
K = [FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]
H, W = 480, 640
CM = 0.01


def render_rectangle(center, rotation, width, height):
    return depth_scenes.render_rectangle(center, rotation, width, height, K, (H, W))


def sorted_size(box) -> np.ndarray:
    return np.sort(box.size)[::-1]


@pytest.mark.parametrize("spoiled", [False, True], ids=["clean", "holes+flying pixels+bleeding mask"])
def test_a_box_face_at_a_known_depth(spoiled):
    center = np.array([0.05, -0.02, 1.0])
    depth, mask = render_rectangle(center, np.eye(3), 0.20, 0.10)
    if spoiled:
        depth, mask = spoil(depth, mask)
    box = fit_box(mask, depth, K, 1.0)
    assert np.abs(box.center - center).max() < CM
    assert np.abs(sorted_size(box) - [0.20, 0.10, 0.0]).max() < CM
    assert abs(box.rotation[:, 0] @ [1, 0, 0]) > 0.99 and box.rotation[:, 2] @ [0, 0, -1] > 0.99  # faces the camera


@pytest.mark.parametrize("spoiled", [False, True], ids=["clean", "holes+flying pixels+bleeding mask"])
def test_a_tilted_plane(spoiled):
    center, rotation = np.array([-0.1, 0.05, 1.2]), rotation_x(40)
    depth, mask = render_rectangle(center, rotation, 0.30, 0.20)
    if spoiled:
        depth, mask = spoil(depth, mask, seed=1)
    box = fit_box(mask, depth, K, 1.0)
    assert np.abs(box.center - center).max() < CM
    assert np.abs(sorted_size(box) - [0.30, 0.20, 0.0]).max() < CM
    assert abs(box.rotation[:, 2] @ rotation[:, 2]) > 0.99  # the box's thin axis is the plane's normal


def test_millimetre_depth_and_a_solid_box_seen_on_two_faces():
    """16UC1 millimetres; a 20 cm cube below the camera, its front and top faces seen: the box holds both."""
    front, _ = render_rectangle([0.0, 0.2, 1.0], np.eye(3), 0.2, 0.2)
    top, _ = render_rectangle([0.0, 0.1, 1.1], rotation_x(90), 0.2, 0.2)
    depth = np.minimum(front, top)
    mask = depth < BACKGROUND_M
    box = fit_box(mask, np.round(depth * 1000).astype(np.uint16), K, 0.001)
    # The visible points: x in [-0.1, 0.1], y in [0.1, 0.3] (front) and z in [1.0, 1.2] (top), at an angle.
    assert box.inliers == box.points  # no visible point is an outlier
    local = np.array([[-0.1, 0.1, 1.0], [0.1, 0.3, 1.0], [0.1, 0.1, 1.2], [-0.1, 0.1, 1.2]]) - box.center
    assert (np.abs(local @ box.rotation) <= box.size / 2 + CM).all()  # the cube's visible corners are in the box


def test_too_few_points_give_no_box():
    depth = np.zeros((H, W), np.float32)
    mask = np.zeros((H, W), bool)
    mask[10:20, 10:20] = True
    assert fit_box(mask, depth, K, 1.0) is None
    depth[10, 10] = 1.0
    assert fit_box(mask, depth, K, 1.0) is None


def test_axes_are_right_handed_and_the_quaternion_is_the_rotation():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(500, 3)) * [0.3, 0.1, 0.02] @ rotation_x(30).T
    axes = principal_axes(points)
    assert np.linalg.det(axes) == pytest.approx(1.0) and axes[2, 2] < 0
    x, y, z, w = rotation_quaternion(rotation_x(30))
    assert (x, y, z) == pytest.approx((np.sin(np.radians(15)), 0, 0)) and w == pytest.approx(np.cos(np.radians(15)))
    x, y, z, w = rotation_quaternion(np.diag([1.0, -1.0, -1.0]))  # 180 degrees about x: the trace <= 0 branch
    assert (abs(x), y, z, w) == pytest.approx((1.0, 0, 0, 0))
