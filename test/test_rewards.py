"""The reference's rewards: parity on its own 250 cases, hand-written tables, malformed input, TRL's forms."""

from __future__ import annotations

import pytest
from parity_cases import load_reference_cases

from training import rewards as R

CASES = load_reference_cases()
SEGZERO = {
    "thinking_format": R.thinking_format_reward,
    "segmentation_format": R.segmentation_format_reward,
    "bbox_iou": R.bbox_iou_reward,
    "bbox_l1": R.bbox_l1_reward,
    "point_l1": R.point_l1_reward,
}
MULTI = {"format": R.multi_format_reward, "accuracy": R.multi_accuracy_reward, "non_repeat": R.non_repeat_reward}
GT = "<box>(100,100),(199,199)</box><points>(120,150),(180,150)</points>"


def _one(fn, text, solution=GT, **kw):
    return fn([text], solution=[solution], **kw)[0]


@pytest.mark.parametrize("variant", ["strict", "soft"])
def test_segzero_rewards_equal_the_reference_on_its_cases(variant):
    cases = [c for c in CASES if c["protocol"] == "segzero"]
    assert len(cases) == 150
    for name, fn in SEGZERO.items():
        expected = [c[f"rewards_{variant}"].get(name, c["rewards_strict"][name]) for c in cases]
        got = fn([c["completion"] for c in cases], solution=[c["solution"] for c in cases], variant=variant)
        wrong = [(c["completion"], g, e) for c, g, e in zip(cases, got, expected, strict=True) if g != e]
        assert not wrong, f"{name} ({variant}): {len(wrong)} differ, first {wrong[0]}"


def test_multi_rewards_equal_the_reference_on_its_cases():
    cases = [c for c in CASES if c["protocol"] == "multi"]
    assert len(cases) == 100
    for name, fn in MULTI.items():
        got = fn([c["completion"] for c in cases], solution=[c["solution"] for c in cases])
        for case, value in zip(cases, got, strict=True):
            assert value == pytest.approx(case["rewards"][name], abs=1e-12), (name, case["completion"])


GOOD = (
    '<think>it is the cup.</think><answer>{"bbox": [101,102,198,197], "points_1": [121,150], '
    '"points_2": [179,151]}</answer>'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # (thinking, segmentation format, bbox IoU, bbox L1, points) for the strict variant
        (GOOD, (1, 1, 1, 1, 1)),
        (GOOD + " trailing", (0, 1, 1, 1, 1)),  # thinking format is a full match
        (GOOD.replace("<think>it is the cup.</think>", ""), (0, 1, 1, 1, 1)),
        (GOOD.replace('"points_2": [179,151]', '"points_2": [179]'), (1, 0, 1, 1, 0)),
        (GOOD.replace("[101,102,198,197]", "[130,130,230,230]"), (1, 1, 0, 0, 0)),  # IoU 0.32, L1 30.5, 121 < 130
        (GOOD.replace("[101,102,198,197]", "[100,100,240,199]"), (1, 1, 1, 0, 1)),  # IoU 0.71, L1 10.25
        (GOOD.replace("[121,150]", "[90,150]"), (1, 1, 1, 1, 0)),  # a point outside the predicted box
        (GOOD.replace("[121,150], ", '["121","150"], '), (1, 1, 1, 1, 1)),  # int() takes numeric strings
        (GOOD.replace("[101,102,198,197]", '["101",102,198,197]'), (1, 1, 0, 0, 0)),  # str vs int: exception
        (GOOD.replace('"bbox"', '"Bbox"'), (1, 0, 0, 0, 0)),  # strict reads exact keys
        ("<think>a</think><answer>{not json}</answer>", (1, 0, 0, 0, 0)),
        ("", (0, 0, 0, 0, 0)),
        ("<answer>" + "{" * 5000 + "</answer>", (0, 0, 0, 0, 0)),
    ],
)
def test_strict_segzero_table(text, expected):
    got = tuple(_one(fn, text) for fn in SEGZERO.values())
    assert got == tuple(float(v) for v in expected)


def test_bbox_l1_threshold_is_strict_below_ten():
    just_below = GOOD.replace("[101,102,198,197]", "[109,109,209,209]")  # mean |d| = 9.5
    at_ten = GOOD.replace("[101,102,198,197]", "[110,110,209,209]")  # mean |d| = 10
    assert _one(R.bbox_l1_reward, just_below) == 1.0 and _one(R.bbox_l1_reward, at_ten) == 0.0


def test_inclusive_pixel_iou_by_hand():
    # [0,0,9,9] and [5,0,14,9]: areas 100 each, intersection 5*10 = 50, union 150
    assert R.box_iou_inclusive([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(1 / 3)
    # touching on one pixel column: ix1 == ix2, so no intersection is counted (the reference's rule)
    assert R.box_iou_inclusive([0, 0, 9, 9], [9, 0, 18, 9]) == 0.0


def test_soft_variant_searches_keys():
    text = '<think>x</think><answer>{"Bbox_2d": [101,102,198,197], "Points1": [121,150], "Points2": [179,151]}</answer>'
    strict = [_one(fn, text) for fn in SEGZERO.values()]
    soft = [_one(fn, text, variant="soft") for fn in SEGZERO.values()]
    assert strict == [1, 0, 0, 0, 0] and soft == [1, 1, 1, 1, 1]


def test_multi_table():
    gt = (
        '[{"bbox_2d": [100,100,199,199], "point_2d": [150,150]}, {"bbox_2d": [300,300,399,399], "point_2d": [350,350]}]'
    )
    both = (
        '<think>t</think><answer>[{"bbox_2d": [301,300,399,399], "point_2d": [350,351]}, '
        '{"bbox_2d": [100,100,199,199], "point_2d": [150,150]}]</answer>'
    )
    one = '<think>t</think><answer>[{"bbox_2d": [100,100,199,199], "point_2d": [150,150]}]</answer>'
    half = '<think>t</think><answer>[{"bbox_2d": [100,100,199,199]}, "junk"]</answer>'
    assert _one(R.multi_accuracy_reward, both, gt) == 3.0  # Hungarian pairs them across the order
    assert _one(R.multi_accuracy_reward, one, gt) == 1.5  # 3 for the match / max(1, 2)
    assert _one(R.multi_format_reward, both, gt) == 3.0
    assert _one(R.multi_format_reward, half, gt) == 1.5  # 1 + (1/2 for the first item; "junk" raises, sum kept)
    assert _one(R.multi_accuracy_reward, "<answer>[]</answer>", gt) == 0.0
    assert _one(R.non_repeat_reward, "A. B. A. C.") == 1.0 and _one(R.non_repeat_reward, "A. B. A. B.") == 0.0


def test_conversational_completions_and_extra_columns_are_accepted():
    messages = [
        [{"role": "assistant", "content": GOOD}],
        [{"role": "assistant", "content": [{"type": "text", "text": GOOD}]}],
    ]
    got = R.bbox_iou_reward(
        messages, solution=[GT, GT], prompts=["p", "p"], completion_ids=[[1], [2]], image=[None] * 2
    )
    assert got == [1.0, 1.0]


@pytest.mark.parametrize("garbage", [None, 42, [{"role": "assistant"}], [{"content": [{"type": "image"}]}], "\x00\xff"])
def test_malformed_completions_score_zero_without_raising(garbage):
    for fn in [*SEGZERO.values(), *MULTI.values()]:
        assert fn([garbage], solution=[GT]) == [0.0] or fn is R.non_repeat_reward


def test_reward_sets_for_trl_have_distinct_names():
    strict = R.reward_functions("segzero")
    soft = R.reward_functions("segzero", "soft")
    assert [f.__name__ for f in strict] == [f"{n}_reward" for n in SEGZERO]
    assert [f.__name__ for f in soft] == [f"{n}_reward_soft" for n in SEGZERO]
    text = GOOD.replace('"bbox"', '"Bbox"')
    assert [f([text], solution=[GT])[0] for f in soft] == [1.0] * 5
    assert [f.__name__ for f in R.reward_functions("multi")] == [f.__name__ for f in MULTI.values()]
    with pytest.raises(ValueError, match="variant"):
        R.reward_functions("segzero", "lenient")
