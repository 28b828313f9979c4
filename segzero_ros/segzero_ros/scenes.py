"""Synthetic scenes with exact ground-truth masks, for the offline demo, tests and benchmarks."""

from __future__ import annotations

import cv2
import numpy as np


def textured_background(width: int, height: int, seed: int) -> np.ndarray:
    """A table-like background: smooth colour gradient with low-contrast noise blocks."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([150 + 40 * xs / width, 120 + 30 * ys / height, 90 + 20 * (xs + ys) / (width + height)], axis=-1)
    noise = rng.integers(-12, 13, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:height, :width]
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def demo_scene(width: int = 1280, height: int = 720, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A camera-sized RGB frame with a red cup, a blue box and a green ball; returns (rgb, {name: bool mask})."""
    rgb = textured_background(width, height, seed)
    s = min(width, height) / 720.0
    objects = {}

    def paint(name: str, colour: tuple[int, int, int], draw) -> None:
        mask = np.zeros((height, width), np.uint8)
        draw(mask)
        rgb[mask > 0] = colour
        objects[name] = mask > 0

    cx, cy = int(0.3 * width), int(0.55 * height)
    paint(
        "red cup",
        (200, 30, 30),
        lambda m: (
            cv2.rectangle(m, (cx - int(60 * s), cy - int(80 * s)), (cx + int(60 * s), cy + int(80 * s)), 1, -1),
            cv2.ellipse(m, (cx + int(75 * s), cy), (int(30 * s), int(40 * s)), 0, -90, 90, 1, int(14 * s)),
        ),
    )
    bx, by = int(0.62 * width), int(0.5 * height)
    paint(
        "blue box",
        (30, 60, 200),
        lambda m: cv2.rectangle(m, (bx - int(110 * s), by - int(70 * s)), (bx + int(110 * s), by + int(90 * s)), 1, -1),
    )
    paint(
        "green ball", (40, 170, 60), lambda m: cv2.circle(m, (int(0.85 * width), int(0.3 * height)), int(55 * s), 1, -1)
    )
    return rgb, objects
