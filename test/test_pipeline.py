"""Pipeline end to end on the tiny models, and every kind of bad input giving a failed Result."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import force_answer

from segzero_ros.goals import GoalError, check_goal
from segzero_ros.pipeline import Pipeline, describe_error
from segzero_ros.reasoner.local import Reasoner, ReasonerConfig
from segzero_ros.scenes import demo_scene
from segzero_ros.segmenter import make_segmenter
from segzero_ros.tiny import TINY_ANSWERS


@pytest.fixture(scope="module")
def pipeline(tiny_reasoner_dir, tiny_sam2_config) -> Pipeline:
    reasoner = Reasoner(ReasonerConfig(model=str(tiny_reasoner_dir), local_files_only=True, max_new_tokens=96))
    return Pipeline(reasoner, make_segmenter(tiny_sam2_config))


def _answer(pipeline, monkeypatch, protocol="segzero"):
    force_answer(pipeline.reasoner.model, pipeline.reasoner.processor.tokenizer, monkeypatch, TINY_ANSWERS[protocol])


def test_run_gives_masks_at_image_size(pipeline, monkeypatch):
    _answer(pipeline, monkeypatch)
    rgb, _ = demo_scene(1280, 720)
    result = pipeline.run(rgb, "the red cup", goal_id="g1")
    assert result.ok, result.error
    assert result.goal_id == "g1" and result.protocol == "segzero"
    assert len(result.targets) == len(result.masks) == 1
    assert result.masks[0].shape == (720, 1280)
    x1, y1, x2, y2 = result.targets[0].bbox
    bx1, by1, bx2, by2 = 28, 49, 43, 74  # TINY_ANSWERS["segzero"]'s box, in the reasoner's 840² frame here
    assert '"bbox": [28,49,43,74]' in TINY_ANSWERS["segzero"]
    assert (x1, y1, x2, y2) == (
        round(bx1 * 1280 / 840),
        round(by1 * 720 / 840),
        round(bx2 * 1280 / 840),
        round(by2 * 720 / 840),
    )
    assert result.union().shape == (720, 1280) and result.labels().dtype == np.uint16
    assert set(np.unique(result.labels())) <= {0, 1}
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["status"] == "ok" and summary["targets"][0]["area"] == int(result.masks[0].sum())
    assert {"reason_ms", "segment_ms", "total_ms", "generate_ms"} <= set(summary["timings_ms"])


def test_multi_goal_uses_multi_protocol(pipeline, monkeypatch):
    _answer(pipeline, monkeypatch, "multi")
    rgb, _ = demo_scene(640, 480)
    result = pipeline.run(rgb, "the red cup", multi=True)
    assert result.ok and result.protocol == "multi"
    assert "bbox_2d" in result.text


@pytest.mark.parametrize("goal", ["", "   ", "...", "x" * 100_000, "a\x00b", None, 42])
def test_bad_goals_fail_with_a_reason(pipeline, goal):
    result = pipeline.run(np.zeros((48, 64, 3), np.uint8), goal)
    assert not result.ok
    assert result.error and "goal" in result.error
    assert result.masks == []


@pytest.mark.parametrize(
    "image",
    [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32), np.zeros((48, 64, 4), np.uint8), "not an image"],
)
def test_bad_images_fail_with_a_reason(pipeline, image):
    result = pipeline.run(image, "the cup")
    assert not result.ok and "image" in result.error


def test_garbled_answer_is_an_error_result_without_masks(pipeline, monkeypatch):
    force_answer(pipeline.reasoner.model, pipeline.reasoner.processor.tokenizer, monkeypatch, "no idea")
    result = pipeline.run(demo_scene(320, 240)[0], "the cup")
    assert not result.ok and "no <answer> tag" in result.error and result.masks == []
    assert result.text == "no idea"


def test_segmenter_failure_and_oom_become_error_results(pipeline, monkeypatch):
    class FakeOOM(RuntimeError):
        pass

    FakeOOM.__name__ = "OutOfMemoryError"

    def boom(*_):
        raise FakeOOM("CUDA out of memory. Tried to allocate 2.00 GiB")

    _answer(pipeline, monkeypatch)
    monkeypatch.setattr(pipeline.segmenter, "segment", boom)
    result = pipeline.run(demo_scene(320, 240)[0], "the cup")
    assert not result.ok and result.error.startswith("out of memory")
    assert result.text  # the reasoning that came before the failure is kept


def test_labels_first_target_wins_on_overlap():
    from segzero_ros.pipeline import Result

    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[1:3] = True
    result = Result(goal="g", goal_id="i", protocol="multi", image_wh=(4, 4), masks=[a, b], scores=[1.0, 1.0])
    assert result.labels()[:, 0].tolist() == [1, 1, 2, 0]
    assert result.union()[:, 0].tolist() == [True, True, True, False]


def test_check_goal_and_describe_error():
    assert check_goal("  the cup  ") == "the cup"
    with pytest.raises(GoalError, match="too long"):
        check_goal("x" * 11, max_chars=10)
    assert describe_error(KeyError("k")) == "KeyError: 'k'"


def test_label_image_skips_masks_not_drawn_and_keeps_their_numbers():
    """Tracking draws only the targets it still sees; the others keep their label numbers free."""
    from segzero_ros.pipeline import label_image

    first, second, third = (np.zeros((1, 4), bool) for _ in range(3))
    first[0, :2], second[0, 1:3], third[0, 3] = True, True, True
    assert label_image([first, second, third], (1, 4)).tolist() == [[1, 1, 2, 3]]
    assert label_image([first, None, third], (1, 4)).tolist() == [[1, 1, 0, 3]]
