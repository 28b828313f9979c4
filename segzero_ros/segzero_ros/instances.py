"""The targets of an answer or of a tracked frame as instances: the value of their pixels in ``labels``, an id, a
label, a box and a score; what the ``detections`` and ``label_info`` topics publish (no ROS here)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_LABEL = 65535  # the largest instance value a mono16 label image holds
BACKGROUND = "background"  # the name of value 0 in label_info


@dataclass(frozen=True)
class Instance:
    """One target: ``value`` of its pixels in ``labels`` (0: it has no mask), ``id`` ``<goal_id>:<k>``, ``label``
    (the model's name for it, else the goal text), ``bbox`` (x1, y1, x2, y2) in source-image pixel indices and
    ``score`` in [0, 1]."""

    value: int
    id: str
    label: str
    bbox: tuple[float, float, float, float]
    score: float


def instance_id(goal_id: str, k: int) -> str:
    """The id of target ``k`` (1-based) of a goal, as ``detections`` and ``label_info`` name it."""
    return f"{goal_id}:{k}"


def target_labels(goal: str, targets: Sequence[Any]) -> list[str]:
    """Each target's label: the model's own name for it, else the goal text."""
    return [getattr(t, "label", None) or goal for t in targets]


def unit_score(score: float) -> float:
    """A score in [0, 1] (SAM2's predicted IoU may stray outside)."""
    return float(min(max(score, 0.0), 1.0)) if np.isfinite(score) else 0.0


def answer_instances(result: Any) -> list[Instance]:
    """Every target of a ``pipeline.Result`` (its box as the model gave it, scaled to the image)."""
    labels = target_labels(result.goal, result.targets)
    out = []
    for k, target in enumerate(result.targets, start=1):
        value = result.label_value(k) if k <= len(result.masks) else 0
        score = unit_score(result.scores[k - 1]) if k <= len(result.scores) else 0.0
        bbox = tuple(float(v) for v in target.bbox)
        value = value if value <= MAX_LABEL else 0
        out.append(Instance(value, instance_id(result.goal_id, k), labels[k - 1], bbox, score))
    return out


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x1, y1, x2, y2): the first and last pixel indices of ``mask``'s columns and rows; None when it is empty."""
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


def tracked_instances(
    goal_id: str,
    labels: Sequence[str],
    masks: Sequence[np.ndarray | None],
    scores: Sequence[float],
    values: Sequence[int] | None = None,
) -> list[Instance]:
    """The targets still seen on a tracked frame (``None`` masks are lost ones): boxes of their masks; each keeps
    the value (default k) and id it had in the answer."""
    values = values if values is not None else range(1, len(masks) + 1)
    out = []
    for k, (mask, label, score, value) in enumerate(zip(masks, labels, scores, values, strict=True), start=1):
        box = mask_box(mask) if mask is not None and 0 < value <= MAX_LABEL else None
        if box is not None:
            out.append(Instance(value, instance_id(goal_id, k), label, box, unit_score(score)))
    return out


def label_names(instances: Sequence[Instance]) -> dict[int, str]:
    """``label_info``'s map: 0 → ``background``, each instance's value → ``{"id": ..., "label": ...}`` (JSON)."""
    return value_names((i.value, i.id, i.label) for i in instances)


def value_names(entries: Iterable[tuple[int, str, str]]) -> dict[int, str]:
    """``label_info``'s map from (value, id, label) entries; value 0 (no mask) is left out."""
    names = {0: BACKGROUND}
    for value, id_, label in entries:
        if value:
            names[value] = json.dumps({"id": id_, "label": label})
    return names
