"""gIoU and cIoU as the reference computes them, on masks whose values are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import ciou, giou, intersection_union


def _mask(h, w, box):
    m = np.zeros((h, w), bool)
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = True
    return m


GT_A = _mask(10, 10, (0, 0, 4, 5))  # 20 pixels
PRED_A = _mask(10, 10, (2, 0, 6, 5))  # 20 pixels, overlap 2x5 = 10, union 30
GT_B = _mask(10, 10, (0, 0, 10, 10))  # 100 pixels
PRED_B = _mask(10, 10, (0, 0, 5, 10))  # 50 pixels, inside GT_B
EMPTY = np.zeros((10, 10), bool)


def test_intersection_union_by_hand():
    assert intersection_union(PRED_A, GT_A) == (10, 30)
    assert intersection_union(PRED_B, GT_B) == (50, 100)
    assert intersection_union(None, GT_A) == (0, 20)  # a failed sample: I = 0, U = |gt|


def test_giou_and_ciou_by_hand():
    preds, gts = [PRED_A, PRED_B], [GT_A, GT_B]
    assert giou(preds, gts) == pytest.approx((10 / 30 + 50 / 100) / 2)
    assert ciou(preds, gts) == pytest.approx((10 + 50) / (30 + 100))


def test_failed_samples_count_against_both():
    assert giou([None, PRED_B], [GT_A, GT_B]) == pytest.approx((0 + 0.5) / 2)
    assert ciou([None, PRED_B], [GT_A, GT_B]) == pytest.approx(50 / (20 + 100))


def test_empty_union_rules():
    preds, gts = [PRED_B, EMPTY], [GT_B, EMPTY]
    assert giou(preds, gts) == pytest.approx(0.25)  # zero: the multi-object code
    assert giou(preds, gts, empty="skip") == pytest.approx(0.5)  # the Seg-Zero script
    assert giou(preds, gts, empty="one") == pytest.approx(0.75)  # LISA's code
    assert ciou(preds, gts) == pytest.approx(0.5)
    assert giou([EMPTY], [EMPTY], empty="skip") == 0.0 and ciou([EMPTY], [EMPTY]) == 0.0


def test_mismatched_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        giou([np.zeros((5, 5), bool)], [GT_A])
    with pytest.raises(ValueError, match="1 predictions for 2"):
        ciou([PRED_A], [GT_A, GT_B])
    with pytest.raises(ValueError, match="empty must be"):
        giou([PRED_A], [GT_A], empty="nan")
