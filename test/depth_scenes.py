"""Analytic depth scenes for the 3D tests: flat rectangles rendered into a pinhole camera's depth image, and what
depth cameras and segmenters do at an object's border."""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND_M = 2.0


def rotation_x(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def render_rectangle(center, rotation, width, height, k, shape):
    """Depth (metres, float32, ``shape`` = (H, W)) of a flat width×height rectangle (its axes: rotation's first two
    columns) in front of a wall at BACKGROUND_M, seen by camera matrix ``k``, and its mask: each pixel's ray
    intersected with the rectangle's plane."""
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], axis=-1)
    center, rotation = np.asarray(center, float), np.asarray(rotation, float)
    normal = rotation[:, 2]
    t = (center @ normal) / (rays @ normal)
    hits = rays * t[..., None] - center
    a, b = hits @ rotation[:, 0], hits @ rotation[:, 1]
    mask = (np.abs(a) <= width / 2) & (np.abs(b) <= height / 2) & (t > 0)
    depth = np.where(mask, t, BACKGROUND_M).astype(np.float32)
    return depth, mask


def border(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The mask's outermost ``width`` pixels."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((2 * width + 1, 2 * width + 1), np.uint8)).astype(bool)
    return mask & ~inner


def spoil(depth: np.ndarray, mask: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """What a depth camera and a segmenter do at a target's border: holes (10 % of the pixels read 0), flying
    pixels (the border's depth halfway to the wall) and a mask two pixels too wide (onto the wall)."""
    rng = np.random.default_rng(seed)
    depth = depth.copy()
    edge = border(mask)
    depth[edge] = (depth[edge] + BACKGROUND_M) / 2
    depth[mask & (rng.random(mask.shape) < 0.1)] = 0.0
    wide = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return depth, wide
