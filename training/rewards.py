"""The reference's rule rewards as TRL reward functions: ``f(completions, solution, **kwargs) -> list[float]``.

Each function equals the reference function of the same role on every input (``../shared`` parity cases
are tested): the same regular expressions, the same key rules, the same arithmetic on the raw JSON values
(so a string where a number belongs fails as it does there), and any exception makes that reward 0.

``segzero`` protocol (Seg-Zero, five 0/1 rewards): ``thinking_format_reward``, ``segmentation_format_reward``,
``bbox_iou_reward``, ``bbox_l1_reward``, ``point_l1_reward``; each takes ``variant="strict"`` (the released
model's training rewards, the default) or ``"soft"``. ``multi`` protocol (VisionReasoner):
``multi_format_reward`` (0–3), ``multi_accuracy_reward`` (0–3, Hungarian matching), ``non_repeat_reward``.
``reward_functions(protocol, variant)`` gives the list a ``GRPOTrainer`` takes, with names for its logs.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from segzero_ros.protocol import FIRST_OBJECT_RE, MULTI_ANSWER_RE

THINK_ANSWER_RE = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
GT_BOX_RE = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")
GT_POINTS_RE = re.compile(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>")
VARIANTS = ("strict", "soft")
MAX_OBJECTS = 120
Completion = str | list[dict[str, Any]]


def completion_text(completion: Completion) -> str:
    """The text of a completion: a string, or TRL's conversational form (messages, content str or parts)."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get("content", "")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "".join(parts)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"reward variant must be one of {VARIANTS}, got {variant!r}")


def _each(fn: Callable[..., float], completions: list[Completion], solution: list[str] | None) -> list[float]:
    """Apply a per-sample reward; an exception anywhere in it is a 0, as in the reference."""
    out = []
    for i, completion in enumerate(completions):
        try:
            text = completion_text(completion)
            value = fn(text) if solution is None else fn(text, solution[i])
        except Exception:  # the reference's bare except: any failure scores 0
            value = 0.0
        out.append(float(value))
    return out


# --- segzero protocol: one object, five 0/1 rewards -------------------------------------------------


def _first_object(text: str) -> Any:
    """``json.loads`` of the first ``{[^}]+}`` in the text (raises when there is none)."""
    match = FIRST_OBJECT_RE.search(text)
    if match is None:
        raise ValueError("no JSON object")
    return json.loads(match.group(0))


def _gt_box(solution: str) -> list[int]:
    match = GT_BOX_RE.search(solution)
    return [int(match.group(i)) for i in range(1, 5)]  # type: ignore[union-attr]


def _gt_points(solution: str) -> list[list[int]]:
    match = GT_POINTS_RE.search(solution)
    values = [int(match.group(i)) for i in range(1, 5)]  # type: ignore[union-attr]
    return [values[:2], values[2:]]


def _bbox_key(data: dict, variant: str) -> str:
    if variant == "strict":
        return "bbox"
    return next(k for k in data if "bbox" in k.lower())


def _points_keys(data: dict, variant: str) -> list[str]:
    if variant == "strict":
        return ["points_1", "points_2"]
    return [k for k in data if "points" in k.lower()][:2]


def box_iou_inclusive(box1: list, box2: list) -> float:
    """The reference's box IoU: inclusive pixels (+1), intersection only when ``ix1 < ix2 and iy1 < iy2``."""
    ix1, iy1 = max(box1[0], box2[0]), max(box1[1], box2[1])
    ix2, iy2 = min(box1[2], box2[2]), min(box1[3], box2[3])
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    area1 = (box1[2] - box1[0] + 1) * (box1[3] - box1[1] + 1)
    area2 = (box2[2] - box2[0] + 1) * (box2[3] - box2[1] + 1)
    return float(inter) / (area1 + area2 - inter)


def _thinking_format(text: str) -> float:
    return 1.0 if THINK_ANSWER_RE.fullmatch(text) else 0.0


def _segmentation_format(text: str, variant: str) -> float:
    data = _first_object(text)
    if not isinstance(data, dict):
        return 0.0
    if variant == "strict":
        for key, size in (("bbox", 4), ("points_1", 2), ("points_2", 2)):
            if key not in data or not isinstance(data[key], list) or len(data[key]) != size:
                return 0.0
        return 1.0
    bbox_keys = [k for k in data if "bbox" in k.lower()]
    point_keys = [k for k in data if "point" in k.lower() and k not in bbox_keys]
    if not bbox_keys or len(data[bbox_keys[0]]) != 4 or len(point_keys) < 2:
        return 0.0
    return 1.0 if all(len(data[k]) == 2 for k in point_keys[:2]) else 0.0


def _bbox_iou(text: str, solution: str, variant: str) -> float:
    data = _first_object(text)
    return 1.0 if box_iou_inclusive(data[_bbox_key(data, variant)], _gt_box(solution)) > 0.5 else 0.0


def _bbox_l1(text: str, solution: str, variant: str) -> float:
    data = _first_object(text)
    box, gt = data[_bbox_key(data, variant)], _gt_box(solution)
    return 1.0 if sum(abs(box[i] - gt[i]) for i in range(4)) / 4 < 10 else 0.0


def _point_l1(text: str, solution: str, variant: str) -> float:
    data = _first_object(text)
    keys = _points_keys(data, variant)
    p1, p2 = ([int(v) for v in data[k]] for k in keys)
    box = data[_bbox_key(data, variant)]
    g1, g2 = _gt_points(solution)
    inside = all(box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3] for p in (p1, p2))
    dist = min(math.dist(p1, g1) + math.dist(p2, g2), math.dist(p1, g2) + math.dist(p2, g1))
    return 1.0 if inside and dist / 2 < 100 else 0.0


def thinking_format_reward(completions: list[Completion], variant: str = "strict", **kwargs: Any) -> list[float]:
    """1 when the whole completion is ``<think>…</think>`` then ``<answer>…</answer>`` (both variants)."""
    _check_variant(variant)
    return _each(_thinking_format, completions, None)


def segmentation_format_reward(completions: list[Completion], variant: str = "strict", **kwargs: Any) -> list[float]:
    """1 when the first JSON object has the answer's keys (strict: exact ``bbox``/``points_1``/``points_2``)."""
    _check_variant(variant)
    return _each(lambda t: _segmentation_format(t, variant), completions, None)


def bbox_iou_reward(completions: list[Completion], solution: list[str], variant: str = "strict", **kwargs: Any):
    """1 when the predicted box's inclusive-pixel IoU with the ground truth exceeds 0.5."""
    _check_variant(variant)
    return _each(lambda t, s: _bbox_iou(t, s, variant), completions, solution)


def bbox_l1_reward(completions: list[Completion], solution: list[str], variant: str = "strict", **kwargs: Any):
    """1 when the mean absolute difference of the four box coordinates is below 10 pixels."""
    _check_variant(variant)
    return _each(lambda t, s: _bbox_l1(t, s, variant), completions, solution)


def point_l1_reward(completions: list[Completion], solution: list[str], variant: str = "strict", **kwargs: Any):
    """1 when both points lie in the predicted box and their mean distance to the ground truth (best pairing) < 100."""
    _check_variant(variant)
    return _each(lambda t, s: _point_l1(t, s, variant), completions, solution)


# --- multi protocol: several objects ---------------------------------------------------------------


def _multi_format(text: str) -> float:
    thinking = _thinking_format(text)
    segmentation = 0.0
    try:  # partial sums survive an exception, as in the reference
        match = MULTI_ANSWER_RE.search(text)
        if match:
            data = json.loads(match.group(1))
            count = len(data)
            for item in data:
                current = 0.0
                if "bbox_2d" in item and isinstance(item["bbox_2d"], list) and len(item["bbox_2d"]) == 4:
                    current += 1.0
                if "point_2d" in item and isinstance(item["point_2d"], list) and len(item["point_2d"]) == 2:
                    current += 1.0
                segmentation += current / count
    except Exception:  # the reference's bare except
        pass
    return thinking + segmentation


def _pairwise_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    xa = np.maximum(pred[:, None, 0], gt[None, :, 0])
    ya = np.maximum(pred[:, None, 1], gt[None, :, 1])
    xb = np.minimum(pred[:, None, 2], gt[None, :, 2])
    yb = np.minimum(pred[:, None, 3], gt[None, :, 3])
    inter = np.maximum(0, xb - xa + 1) * np.maximum(0, yb - ya + 1)
    area_p = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    area_g = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (area_p[:, None] + area_g[None, :] - inter)


def _multi_accuracy(text: str, solution: str) -> float:
    from scipy.optimize import linear_sum_assignment

    gt_items = json.loads(solution)
    gt_boxes = [item["bbox_2d"] for item in gt_items][:MAX_OBJECTS]
    gt_points = [item["point_2d"] for item in gt_items][:MAX_OBJECTS]
    match = MULTI_ANSWER_RE.search(text)
    if not match:
        return 0.0
    items = json.loads(match.group(1))
    boxes = np.array([item["bbox_2d"] for item in items][:MAX_OBJECTS])
    points = np.array([item["point_2d"] for item in items][:MAX_OBJECTS])
    gt_b, gt_p = np.array(gt_boxes), np.array(gt_points)
    iou_ok = (_pairwise_iou(boxes, gt_b) > 0.5).astype(float)
    l1_ok = (np.mean(np.abs(boxes[:, None, :] - gt_b[None, :, :]), axis=2) < 10).astype(float)
    distance = np.sqrt(np.sum((points[:, None, :] - gt_p[None, :, :]) ** 2, axis=2))
    inside = (
        (points[:, 0] >= boxes[:, 0])
        & (points[:, 0] <= boxes[:, 2])
        & (points[:, 1] >= boxes[:, 1])
        & (points[:, 1] <= boxes[:, 3])
    )
    point_ok = ((distance < 30) & inside[:, None]).astype(float)
    cost = 3.0 - (iou_ok + l1_ok + point_ok)
    rows, cols = linear_sum_assignment(cost)
    return (len(rows) * 3.0 - cost[rows, cols].sum()) / max(len(boxes), len(gt_b))


def _non_repeat(text: str) -> float:
    seen: set[str] = set()
    repeats = 0
    for sentence in (s.strip() for s in text.split(".") if s.strip()):
        if sentence in seen:
            repeats += 1
        if repeats >= 2:
            return 0.0
        seen.add(sentence)
    return 1.0


def multi_format_reward(completions: list[Completion], **kwargs: Any) -> list[float]:
    """Thinking format (0/1) + per answer item (+1 ``bbox_2d`` of 4, +1 ``point_2d`` of 2) / item count."""
    return _each(_multi_format, completions, None)


def multi_accuracy_reward(completions: list[Completion], solution: list[str], **kwargs: Any) -> list[float]:
    """Per matched pair IoU > 0.5, box L1 < 10, point < 30 px and inside its box; Hungarian; / max(M, N)."""
    return _each(_multi_accuracy, completions, solution)


def non_repeat_reward(completions: list[Completion], **kwargs: Any) -> list[float]:
    """0 once a second repeated sentence (split on ".") appears, else 1."""
    return _each(_non_repeat, completions, None)


SEGZERO_REWARDS = (
    thinking_format_reward,
    segmentation_format_reward,
    bbox_iou_reward,
    bbox_l1_reward,
    point_l1_reward,
)
MULTI_REWARDS = (multi_format_reward, multi_accuracy_reward, non_repeat_reward)


def reward_functions(protocol: str = "segzero", variant: str = "strict") -> list[Callable[..., list[float]]]:
    """The reference's reward set for a protocol, each named for TRL's logs (``bbox_iou_reward_soft``, ...)."""
    _check_variant(variant)
    if protocol == "multi":
        return list(MULTI_REWARDS)
    if protocol != "segzero":
        raise ValueError(f"protocol must be 'segzero' or 'multi', got {protocol!r}")
    if variant == "strict":
        return list(SEGZERO_REWARDS)
    out = []
    for fn in SEGZERO_REWARDS:
        soft = functools.partial(fn, variant="soft")
        soft.__name__ = f"{fn.__name__}_soft"  # type: ignore[attr-defined]
        out.append(soft)
    return out
