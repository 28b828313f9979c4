"""A target's oriented 3D box from its mask and the aligned depth image (no ROS): what ``detections_3d`` publishes.

The box is fitted to the target's points, oriented to their principal axes, and robust to what depth cameras give
at a mask's border: edge pixels whose depth mixes foreground and background, mask pixels that bleed onto the
background, holes. The target's surface is what is left of the mask's valid depth without the pixels at a depth
jump (a flying pixel differs from both sides), in its largest connected piece (a mask bleeding onto the background
is another piece, far behind); the box spans those points (no erosion shrinks it), and a second face seen at a
steep angle stays in it. Metres, camera optical frame (x right, y down, z
forward), as ``depth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from segzero_ros.depth import check_aligned, masked_points

MIN_POINTS = 3  # fewer valid points than this: no box
JUMP_M, JUMP_RATIO = 0.03, 0.03  # a depth step per pixel over max(3 cm, 3 % of the depth) is a jump
JUMP_RADIUS_PX = 2  # how far a jump is looked for (holes may hide the nearest neighbour)
PIECE_SHARE = 0.25  # a second piece of the surface this large (of the largest) at about its depth is kept


@dataclass
class Box3D:
    """An oriented box: ``center`` (3,), ``rotation`` (3×3, columns = the box's axes, right-handed), ``size`` (3,)
    along those axes, and how many points it rests on (``inliers``) of how many had depth (``points``)."""

    center: np.ndarray
    rotation: np.ndarray
    size: np.ndarray
    inliers: int
    points: int

    def quaternion(self) -> tuple[float, float, float, float]:
        """The rotation as (x, y, z, w), w >= 0."""
        return rotation_quaternion(self.rotation)


def rotation_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a proper rotation matrix (Shepperd's method), w >= 0."""
    r = np.asarray(r, dtype=np.float64)
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = ((r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        v = [0.0, 0.0, 0.0]
        v[i], v[j], v[k] = 0.25 * s, (r[j, i] + r[i, j]) / s, (r[k, i] + r[i, k]) / s
        q = (v[0], v[1], v[2], (r[k, j] - r[j, k]) / s)
    x, y, z, w = (float(c) for c in q)
    return (-x, -y, -z, -w) if w < 0 else (x, y, z, w)


def principal_axes(points: np.ndarray) -> np.ndarray:
    """3×3, columns the principal axes of ``points`` by decreasing spread; the last points towards the camera
    (negative z), the first has a non-negative x, and the frame is right-handed."""
    centred = points - points.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axes = vectors[:, ::-1].copy()
    if axes[2, 2] > 0:
        axes[:, 2] *= -1
    if axes[0, 0] < 0:
        axes[:, 0] *= -1
    axes[:, 1] = np.cross(axes[:, 2], axes[:, 0])
    return axes


def valid_depth(mask: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` with a usable depth (finite, positive), as ``depth.masked_points`` takes them."""
    return mask & np.isfinite(z) & (z > 0)


def surface_mask(mask: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The pixels of ``mask`` on the target's surface: valid depth, not on the far side of a depth jump to a pixel
    near it (a flying pixel is behind the target's edge), in the largest 8-connected piece or a piece at least
    ``PIECE_SHARE`` of its size at about its depth (an occluder may cut a target in two; a mask bleeding onto the
    background is far behind)."""
    valid = valid_depth(mask, z)
    # The nearest valid depth within JUMP_RADIUS_PX of each pixel: a pixel behind it by a jump is cut.
    nearest = cv2.erode(np.where(valid, z, np.inf).astype(np.float32), np.ones((2 * JUMP_RADIUS_PX + 1,) * 2, np.uint8))
    allowed = JUMP_RADIUS_PX * np.maximum(JUMP_M, JUMP_RATIO * nearest)
    cut = valid & (z - nearest > allowed)
    smooth = valid & ~cut
    count, pieces = cv2.connectedComponents(smooth.view(np.uint8), connectivity=8)
    if count <= 1:
        return smooth
    sizes = np.bincount(pieces.ravel(), minlength=count)[1:]
    largest = int(np.argmax(sizes)) + 1
    depth_of_largest = float(np.median(z[pieces == largest]))
    keep = np.zeros(count, bool)
    keep[largest] = True
    for piece in np.flatnonzero(sizes >= PIECE_SHARE * sizes[largest - 1]) + 1:
        near = abs(float(np.median(z[pieces == piece])) - depth_of_largest) <= JUMP_M + 0.1 * depth_of_largest
        keep[piece] |= near
    return keep[pieces]


def fit_box(mask: np.ndarray, depth: np.ndarray, k: Any, depth_unit_m: float) -> Box3D | None:
    """The oriented box of the target under ``mask``; None when fewer than ``MIN_POINTS`` pixels have depth on
    its surface."""
    mask = np.asarray(mask, dtype=bool)
    check_aligned(mask, depth)
    z = depth.astype(np.float64) * depth_unit_m
    points = int(np.count_nonzero(valid_depth(mask, z)))
    inliers = masked_points(surface_mask(mask, z), depth, k, depth_unit_m).astype(np.float64)
    if len(inliers) < MIN_POINTS:
        return None
    axes = principal_axes(inliers)
    local = inliers @ axes
    low, high = local.min(axis=0), local.max(axis=0)
    center = axes @ ((low + high) / 2.0)
    return Box3D(center=center, rotation=axes, size=high - low, inliers=len(inliers), points=points)
