"""Evaluation: gIoU/cIoU over a set with a scripted pipeline, and end to end with the tiny models."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from segzero_ros.pipeline import Result
from training import evaluate as E
from training.metrics import ciou, giou


class ScriptedPipeline:
    """Answers each goal with a prepared mask, or fails it (``None``)."""

    def __init__(self, masks: dict[str, np.ndarray | None]) -> None:
        self.masks = masks
        self.goals: list[str] = []

    def run(self, rgb, goal, goal_id=None, multi=None) -> Result:
        self.goals.append(goal)
        result = Result(goal=goal, goal_id=goal_id, protocol="segzero", image_wh=(rgb.shape[1], rgb.shape[0]))
        mask = self.masks[goal]
        if mask is None:
            result.error = "answer could not be parsed"
        else:
            result.masks, result.scores = [mask], [0.9]
        return result


def _row(i: int, gt: np.ndarray) -> dict:
    return {"id": i, "problem": f"goal {i}", "image": Image.new("RGB", gt.shape[::-1]), "mask": gt}


def test_scores_equal_the_metrics_on_the_same_masks_and_failures_count_as_empty_predictions():
    rng = np.random.default_rng(0)
    gts = [rng.random((30, 40)) > 0.5 for _ in range(4)]
    preds = [gts[0], rng.random((30, 40)) > 0.5, None, np.zeros((30, 40), bool)]
    pipeline = ScriptedPipeline({f"goal {i}": p for i, p in enumerate(preds)})
    samples: list[dict] = []
    summary = E.evaluate_rows(pipeline, [_row(i, g) for i, g in enumerate(gts)], on_sample=samples.append)
    assert pipeline.goals == ["goal 0", "goal 1", "goal 2", "goal 3"]
    assert summary["giou"] == pytest.approx(giou(preds, gts)) and summary["ciou"] == pytest.approx(ciou(preds, gts))
    assert (summary["n"], summary["failed"]) == (4, 1)
    assert samples[0]["iou"] == 1.0 and samples[2]["status"] == "error" and samples[2]["intersection"] == 0
    assert samples[2]["union"] == int(gts[2].sum())
    # By hand: sample 0 scores 1, samples 2 and 3 score 0, sample 1 its own IoU.
    iou1 = (preds[1] & gts[1]).sum() / (preds[1] | gts[1]).sum()
    assert summary["giou"] == pytest.approx((1 + iou1) / 4)


def test_empty_union_rule_is_applied():
    empty = np.zeros((8, 8), bool)
    full = np.ones((8, 8), bool)
    rows = [_row(0, empty), _row(1, full)]
    pipeline = ScriptedPipeline({"goal 0": empty, "goal 1": full})
    assert E.evaluate_rows(pipeline, rows, empty="zero")["giou"] == pytest.approx(0.5)
    assert E.evaluate_rows(pipeline, rows, empty="skip")["giou"] == pytest.approx(1.0)
    assert E.evaluate_rows(pipeline, rows, empty="one")["giou"] == pytest.approx(1.0)


def test_synthetic_evaluation_splits_differ_and_keep_the_camera_size():
    val = E.load_eval_rows("synthetic", "val", 2)
    test = E.load_eval_rows("synthetic", "test", 2)
    assert val[0]["image"].size == (640, 480) and val[0]["mask"].shape == (480, 640)
    assert not np.array_equal(val[0]["mask"], test[0]["mask"])


@pytest.mark.slow
def test_evaluate_command_on_the_tiny_models(tmp_path, capsys, tiny_fitted_reasoner_dir):
    argv = ["--tiny", "--data", "synthetic", "--split", "val,test", "--limit", "2", "--json", "--out", str(tmp_path)]
    assert E.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"giou", "ciou", "n", "failed"} <= set(summary) and summary["n"] == 4
    assert set(summary["splits"]) == {"val", "test"} and summary["strict"] is True
    samples = [json.loads(line) for line in (tmp_path / "samples_val.jsonl").read_text().splitlines()]
    samples += [json.loads(line) for line in (tmp_path / "samples_test.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and all("answer" in s and "reasoning" in s for s in samples)
    ious = [s["intersection"] / s["union"] for s in samples]
    assert summary["giou"] == pytest.approx(np.mean(ious))
    assert summary["ciou"] == pytest.approx(sum(s["intersection"] for s in samples) / sum(s["union"] for s in samples))
    assert summary["failed"] == sum(s["status"] == "error" for s in samples)
    assert json.loads((tmp_path / "summary.json").read_text())["giou"] == summary["giou"]


def test_segzero_eval_reaches_this_trees_training_package_even_when_another_is_imported(capsys):
    from segzero_ros import cli

    ours = {k: m for k, m in sys.modules.items() if k == "training" or k.startswith("training.")}
    foreign = type(sys)("training")
    foreign.__file__ = "/elsewhere/training/__init__.py"
    sys.modules["training"] = foreign
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["eval", "--help"])
        reimported = sys.modules["training"]
    finally:  # put back the modules the other tests imported
        for key in [k for k in sys.modules if k == "training" or k.startswith("training.")]:
            del sys.modules[key]
        sys.modules.update(ours)
    assert exit_info.value.code == 0
    assert "usage: segzero eval" in capsys.readouterr().out
    assert reimported is not foreign and reimported.__file__ == ours["training"].__file__


def test_bad_limit_is_refused():
    with pytest.raises(SystemExit, match="limit"):
        E.main(["--tiny", "--limit", "0"])
