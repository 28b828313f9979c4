"""ReasonSeg-style metrics as the reference computes them: gIoU (mean of per-sample IoU) and cIoU (ΣI / ΣU).

A sample whose answer could not be parsed or segmented is passed as ``None``: it counts I = 0, U = |gt|.
Samples with an empty union: ``empty="zero"`` scores them 0 (the multi-object code, our default),
``"skip"`` drops them (the Seg-Zero script), ``"one"`` scores them 1 (LISA's code).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EMPTY_RULES = ("zero", "skip", "one")


def intersection_union(pred: np.ndarray | None, gt: np.ndarray) -> tuple[int, int]:
    """(|pred ∧ gt|, |pred ∨ gt|) of two boolean masks; a failed sample (``None``) is (0, |gt|)."""
    gt = np.asarray(gt, dtype=bool)
    if pred is None:
        return 0, int(np.count_nonzero(gt))
    pred = np.asarray(pred, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {gt.shape}")
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def _totals(preds: Sequence[np.ndarray | None], gts: Sequence[np.ndarray]) -> np.ndarray:
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth masks")
    return np.array([intersection_union(p, g) for p, g in zip(preds, gts, strict=True)], dtype=np.int64).reshape(-1, 2)


def giou_from_counts(counts: np.ndarray | Sequence[tuple[int, int]], empty: str = "zero") -> float:
    """gIoU from per-sample (I, U) pairs, as ``intersection_union`` gives them (0.0 for no samples)."""
    if empty not in EMPTY_RULES:
        raise ValueError(f"empty must be one of {EMPTY_RULES}, got {empty!r}")
    totals = np.asarray(counts, dtype=np.int64).reshape(-1, 2)
    inter, union = totals[:, 0].astype(float), totals[:, 1].astype(float)
    has_union = union > 0
    per_sample = np.divide(inter, union, out=np.full_like(inter, 1.0 if empty == "one" else 0.0), where=has_union)
    if empty == "skip":
        per_sample = per_sample[has_union]
    return float(per_sample.mean()) if per_sample.size else 0.0


def ciou_from_counts(counts: np.ndarray | Sequence[tuple[int, int]]) -> float:
    """cIoU from per-sample (I, U) pairs: ΣI / ΣU (0.0 when every union is empty)."""
    totals = np.asarray(counts, dtype=np.int64).reshape(-1, 2)
    union = int(totals[:, 1].sum())
    return float(totals[:, 0].sum() / union) if union else 0.0


def giou(preds: Sequence[np.ndarray | None], gts: Sequence[np.ndarray], empty: str = "zero") -> float:
    """Mean over samples of I/U (0.0 for no samples)."""
    if empty not in EMPTY_RULES:
        raise ValueError(f"empty must be one of {EMPTY_RULES}, got {empty!r}")
    return giou_from_counts(_totals(preds, gts), empty)


def ciou(preds: Sequence[np.ndarray | None], gts: Sequence[np.ndarray]) -> float:
    """Cumulative IoU: total intersection over total union (0.0 when every union is empty)."""
    return ciou_from_counts(_totals(preds, gts))
