"""3D from masks and depth: analytic planes and boxes, both depth encodings, invalid depth, strides."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_ros.depth import centroid_3d, intrinsics, masked_points, target_centroid

K = [600.0, 0.0, 320.0, 0.0, 610.0, 240.0, 0.0, 0.0, 1.0]
H, W = 480, 640


def _rect(r0, r1, c0, c1):
    mask = np.zeros((H, W), bool)
    mask[r0:r1, c0:c1] = True
    return mask


def _expected(r0, r1, c0, c1, z):
    u, v = (c0 + c1 - 1) / 2, (r0 + r1 - 1) / 2
    return np.array([(u - 320.0) * z / 600.0, (v - 240.0) * z / 610.0, z])


@pytest.mark.parametrize(("encoding", "unit"), [("16UC1", 0.001), ("32FC1", 1.0)])
def test_plane_centroid_is_the_analytic_one(encoding, unit):
    z = 1.234
    depth = np.full((H, W), 1234, np.uint16) if encoding == "16UC1" else np.full((H, W), z, np.float32)
    mask = _rect(100, 201, 200, 351)
    got = centroid_3d(mask, depth, K, unit)
    assert np.abs(got - _expected(100, 201, 200, 351, z)).max() < 1e-3


def test_box_in_front_of_a_wall_ignores_the_mask_edge():
    depth = np.full((H, W), 2.0, np.float32)  # wall
    depth[150:251, 300:401] = 1.5  # the box's front face
    mask = _rect(149, 252, 299, 402)  # one pixel wider than the face all round: edge pixels see the wall
    result = target_centroid(mask, depth, K, 1.0)
    assert np.abs(result.xyz - _expected(150, 251, 300, 401, 1.5)).max() < 1e-3
    assert result.valid_pixels == (103 - 4) * (103 - 4)  # the mask eroded by 2 pixels on each side


def test_invalid_depth_is_ignored_and_none_when_nothing_is_left():
    depth = np.full((H, W), 0.8, np.float32)
    mask = _rect(100, 201, 100, 201)
    depth[120:140, 120:140] = 0.0
    depth[150:160, 150:160] = np.nan
    depth[170:175, 170:175] = np.inf
    depth[180:182, 180:182] = -1.0
    result = target_centroid(mask, depth, K, 1.0)
    assert result.xyz[2] == pytest.approx(0.8) and result.valid_pixels == 97 * 97 - 400 - 100 - 25 - 4
    depth[:] = 0.0
    empty = target_centroid(mask, depth, K, 1.0)
    assert empty.xyz is None and empty.valid_pixels == 0 and "no valid depth" in empty.reason
    assert centroid_3d(np.zeros((H, W), bool), depth, K, 1.0) is None


def test_thin_mask_falls_back_to_the_whole_mask():
    depth = np.full((H, W), 1000, np.uint16)
    mask = _rect(200, 202, 100, 300)  # two rows: erosion by 2 leaves nothing
    got = centroid_3d(mask, depth, K, 0.001)
    assert np.abs(got - _expected(200, 202, 100, 300, 1.0)).max() < 1e-3


def test_masked_points_deproject_every_pixel_and_stride_decimates():
    depth = np.full((H, W), 2.0, np.float32)
    mask = _rect(0, 10, 0, 20)
    points = masked_points(mask, depth, K, 1.0)
    assert points.shape == (200, 3) and points.dtype == np.float32
    assert points[0] == pytest.approx([(0 - 320) * 2 / 600, (0 - 240) * 2 / 610, 2.0])
    strided = masked_points(mask, depth, K, 1.0, stride=3)
    assert strided.shape == (4 * 7, 3)
    assert {tuple(p) for p in strided.tolist()} <= {tuple(p) for p in points.tolist()}


def test_bad_intrinsics_and_shapes_are_refused():
    with pytest.raises(ValueError, match="9 values"):
        intrinsics([1.0, 2.0])
    with pytest.raises(ValueError, match="focal"):
        intrinsics([0.0] * 9)
    with pytest.raises(ValueError, match="same"):
        masked_points(np.ones((4, 4), bool), np.ones((5, 4), np.float32), K, 1.0)


def test_stamp_buffer_pairs_the_nearest_within_the_skew_and_stays_bounded():
    from segzero_ros.depth import StampBuffer

    buffer = StampBuffer(size=3)
    assert buffer.nearest(1.0, 0.1) is None and buffer.newest_stamp is None
    for stamp in (1.00, 1.10, 1.20, 1.30):
        buffer.add(stamp, f"depth@{stamp:.2f}")
    assert len(buffer) == 3 and buffer.newest_stamp == pytest.approx(1.30)
    item, skew = buffer.nearest(1.18, 0.05)
    assert item == "depth@1.20" and skew == pytest.approx(0.02)
    assert buffer.nearest(1.00, 0.05) is None  # dropped from the bounded buffer
    assert buffer.nearest(1.5, 0.05) is None  # too far
