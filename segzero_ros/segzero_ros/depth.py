"""Masks + an aligned depth image + pinhole intrinsics → 3D points and a robust 3D centroid (no ROS).

``k`` is the 3×3 camera matrix as ``sensor_msgs/CameraInfo.k`` holds it (9 values, row-major: fx 0 cx 0 fy cy
0 0 1); ``depth_unit_m`` converts depth values to metres (0.001 for 16UC1 millimetres, 1.0 for 32FC1 metres).
Points are in the camera's optical frame (x right, y down, z forward), metres. Zero, negative and non-finite
depths are invalid and ignored; nothing is interpolated.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

DEPTH_UNITS_M = {"16UC1": 0.001, "mono16": 0.001, "32FC1": 1.0}


def intrinsics(k: Any) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) from a 9-value row-major camera matrix; ValueError when it cannot deproject."""
    values = np.asarray(k, dtype=np.float64).reshape(-1)
    if values.size != 9:
        raise ValueError(f"camera matrix needs 9 values, got {values.size}")
    fx, fy, cx, cy = values[0], values[4], values[2], values[5]
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
        raise ValueError(f"camera matrix has no usable focal lengths (fx={fx}, fy={fy})")
    return float(fx), float(fy), float(cx), float(cy)


def check_aligned(mask: np.ndarray, depth: np.ndarray) -> None:
    """ValueError unless ``depth`` is one H×W image the size of ``mask``."""
    if mask.shape != depth.shape[:2] or depth.ndim != 2:
        raise ValueError(f"mask {mask.shape} and depth {depth.shape} must be the same H×W")


def masked_points(mask: np.ndarray, depth: np.ndarray, k: Any, depth_unit_m: float, stride: int = 1) -> np.ndarray:
    """N×3 float32 points (metres) of the mask's pixels with valid depth, every ``stride``-th row and column."""
    mask = np.asarray(mask, dtype=bool)
    check_aligned(mask, depth)
    fx, fy, cx, cy = intrinsics(k)
    stride = max(1, int(stride))
    sub_mask, sub_depth = mask[::stride, ::stride], depth[::stride, ::stride]
    vs, us = np.nonzero(sub_mask)
    z = sub_depth[vs, us].astype(np.float64) * depth_unit_m
    valid = np.isfinite(z) & (z > 0)
    us, vs, z = us[valid] * stride, vs[valid] * stride, z[valid]
    points = np.empty((z.size, 3), np.float32)
    points[:, 0] = (us - cx) * z / fx
    points[:, 1] = (vs - cy) * z / fy
    points[:, 2] = z
    return points


@dataclass
class Centroid:
    """A target's 3D centroid (metres, camera optical frame) and how many depth pixels it rests on."""

    xyz: np.ndarray | None
    valid_pixels: int
    reason: str = ""


def target_centroid(mask: np.ndarray, depth: np.ndarray, k: Any, depth_unit_m: float, erode_px: int = 2) -> Centroid:
    """Per-axis median of the valid points inside the mask eroded by ``erode_px`` (edges mix in background
    depth); the whole mask when erosion leaves nothing valid. ``xyz`` is None, with the reason, when no pixel
    has depth."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return Centroid(None, 0, "empty mask")
    eroded = mask
    if erode_px > 0:
        kernel = np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8)
        eroded = cv2.erode(mask.view(np.uint8), kernel).astype(bool)
    points = masked_points(eroded, depth, k, depth_unit_m) if eroded.any() else np.empty((0, 3), np.float32)
    if len(points) == 0:
        points = masked_points(mask, depth, k, depth_unit_m)
    if len(points) == 0:
        return Centroid(None, 0, "no valid depth inside the mask")
    return Centroid(np.median(points.astype(np.float64), axis=0), len(points))


def centroid_3d(mask: np.ndarray, depth: np.ndarray, k: Any, depth_unit_m: float) -> np.ndarray | None:
    """[x, y, z] in metres of the target under ``mask``, or None when no pixel of it has valid depth."""
    return target_centroid(mask, depth, k, depth_unit_m).xyz


class StampBuffer:
    """The newest ``size`` messages with their stamps (seconds); finds the nearest to a stamp within a skew."""

    def __init__(self, size: int = 30) -> None:
        self._items: collections.deque[tuple[float, Any]] = collections.deque(maxlen=max(1, size))

    def add(self, stamp: float, item: Any) -> None:
        self._items.append((stamp, item))

    def nearest(self, stamp: float, max_skew_s: float) -> tuple[Any, float] | None:
        """(item, |skew| in s) of the buffered message nearest to ``stamp``, None when none is within the skew."""
        if not self._items:
            return None
        best_stamp, best = min(self._items, key=lambda pair: abs(pair[0] - stamp))
        skew = abs(best_stamp - stamp)
        return (best, skew) if skew <= max_skew_s else None

    @property
    def newest_stamp(self) -> float | None:
        return max((s for s, _ in self._items), default=None)

    def __len__(self) -> int:
        return len(self._items)
