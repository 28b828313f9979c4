"""Prompt text, answer parsing (strict parity and lenient repair) and coordinate scaling."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parity_cases import load_reference_cases

from segzero_ros.protocol import (
    Answer,
    AnswerFormatError,
    Target,
    build_prompt,
    normalize_goal,
    parse_answer,
    scale_targets,
)

# The reference prompt pieces, transcribed independently of the implementation.
SEGZERO_PIECES = [
    "Please find '{Question}' with bbox and points.",
    "Compare the difference between objects and find the most closely matched one.",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format.",
    "i.e., <think> thinking process here </think>",
    "<answer>{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}</answer>",
]
MULTI_PIECES = [
    'Please find "{Question}" with bboxs and points.',
    "Compare the difference between object(s) and find the most closely matched object(s).",
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags.",
    "Output the bbox(es) and point(s) inside the interested object(s) in JSON format.",
    "i.e., <think> thinking process here </think>",
    '<answer>[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, '
    '{"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]</answer>',
]


@pytest.mark.parametrize(
    ("protocol", "pieces"), [("segzero", SEGZERO_PIECES), ("multi", MULTI_PIECES)], ids=["segzero", "multi"]
)
@pytest.mark.parametrize(
    ("goal", "question"),
    [
        ("the mug I could pour coffee into", "the mug i could pour coffee into"),
        ("The Red Cup.", "the red cup"),
        ("...what {x} holds water...", "what {x} holds water"),
    ],
)
def test_prompt_matches_reference_text(protocol, pieces, goal, question):
    expected = "".join(pieces).replace("{Question}", question)
    assert build_prompt(goal, protocol) == expected


def test_default_protocol_is_segzero():
    assert build_prompt("a cup") == build_prompt("a cup", "segzero")
    assert build_prompt("a cup") != build_prompt("a cup", "multi")


def test_unknown_protocol_is_a_value_error():
    with pytest.raises(ValueError, match="unknown protocol"):
        build_prompt("a cup", "yolo")
    with pytest.raises(ValueError, match="unknown protocol"):
        parse_answer("<answer>{}</answer>", "yolo")


def test_normalize_goal_strips_dots_both_ends_like_str_strip():
    assert normalize_goal("..A.B..") == "a.b"


# --- strict parity with the reference -----------------------------------------------------


def _as_reference_parse(protocol: str, targets: list[Target]) -> dict:
    ints = [([int(v) for v in t.bbox], [[int(v) for v in p] for p in t.points]) for t in targets]
    if protocol == "segzero":
        return {"bbox": ints[0][0], "points": ints[0][1]}
    return {"bboxes": [b for b, _ in ints], "points": [p[0] for _, p in ints]}


CASES = load_reference_cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['protocol']}" for i, c in enumerate(CASES)])
def test_strict_parse_matches_reference(case):
    protocol = case["protocol"]
    if case["parse"] is None:
        with pytest.raises(AnswerFormatError):
            parse_answer(case["completion"], protocol, strict=True)
        return
    answer = parse_answer(case["completion"], protocol, strict=True)
    same = scale_targets(answer.targets, (840, 840), (840, 840), rounding=protocol, clip=False)
    camera = scale_targets(answer.targets, (840, 840), (1280, 720), rounding=protocol, clip=False)
    assert _as_reference_parse(protocol, same) == case["parse"]
    assert _as_reference_parse(protocol, camera) == case["parse_to_1280x720"]


def test_reference_cases_cover_both_outcomes():
    kinds = {(c["protocol"], c["parse"] is None) for c in CASES}
    assert kinds == {("segzero", True), ("segzero", False), ("multi", True), ("multi", False)}


STRICT_TABLE = [
    # (protocol, text, expected bbox of the first target or None for a failure, think)
    ("segzero", "<think>ok</think><answer>{'bbox': [1,2,3,4]}</answer>", None, None),  # single quotes: json fails
    (
        "segzero",
        '<think>ok</think><answer>{"bbox": [1,2,3,4], "points_1": [1,2], "points_2": [3,4]}</answer>',
        (1, 2, 3, 4),
        "ok",
    ),
    ("segzero", '<think>ok</think>{"bbox": [1.9,2,3,4], "points_1": [1,2], "points_2": [3,4]}', (1, 2, 3, 4), "ok"),
    ("segzero", '<think>ok</think>{"bbox": ["1.5",2,3,4], "points_1": [1,2], "points_2": [3,4]}', None, None),
    (
        "segzero",
        '<think></think><answer>{"bbox": [1,2,3,4], "points_1": [1,2], "points_2": [3,4]}</answer>',
        None,
        None,
    ),  # empty think fails in the reference
    (
        "segzero",
        '<think>ok</think><answer>{"BBOX_x": [4,3,2,1], "my_points": [1,2], "Points": [3,4]}</answer>',
        (4, 3, 2, 1),
        "ok",
    ),  # key search by substring, no reordering
    ("multi", '<answer>[{"bbox_2d": [1,2,3,4], "point_2d": [1,2]}]</answer>', (1, 2, 3, 4), ""),
    ("multi", '<answer>{"bbox_2d": [1,2,3,4], "point_2d": [1,2]}</answer>', None, None),  # not a list
    ("multi", '<answer>[{"bbox_2d": ["1",2,3,4], "point_2d": [1,2]}]</answer>', None, None),
    ("multi", '<answer>[{"bbox_2d": [NaN,2,3,4], "point_2d": [1,2]}]</answer>', None, None),
    ("multi", "<think>a</think><answer>[]</answer>", (), "a"),  # the reference accepts no object
]


@pytest.mark.parametrize(("protocol", "text", "bbox", "think"), STRICT_TABLE)
def test_strict_table(protocol, text, bbox, think):
    if bbox is None:
        with pytest.raises(AnswerFormatError):
            parse_answer(text, protocol, strict=True)
        return
    answer = parse_answer(text, protocol, strict=True)
    assert answer.think == think
    assert (answer.targets[0].bbox if answer.targets else ()) == bbox


# --- lenient ----------------------------------------------------------------------------------

LENIENT_OK = [
    # text, protocol, expected [(bbox, points)]
    (
        '<think>t</think><answer>{"bbox": [10, 20, 30, 40], "points_1": [12, 22], "points_2": [14, 24]}</answer>',
        "segzero",
        [((10, 20, 30, 40), [(12, 22), (14, 24)])],
    ),
    (
        "<answer>```json\n{'bbox': [10,20,30,40], 'points_1': [12,22], 'points_2': [14,24],}\n```</answer>",
        "segzero",
        [((10, 20, 30, 40), [(12, 22), (14, 24)])],
    ),
    (
        '<answer>Sure! {"bbox_2d": ["10", "20", "30", "40"], "point_2d": ["11", "21"]} is it.</answer>',
        "segzero",
        [((10, 20, 30, 40), [(11, 21)])],
    ),
    (
        '<answer>[{"bbox_2d": [30, 40, 10, 20], "point_2d": [15, 25]}, {"bbox": [1, 1, 5, 5]}]</answer>',
        "multi",
        [((10, 20, 30, 40), [(15, 25)]), ((1, 1, 5, 5), [])],
    ),
    (
        '<answer>{"bbox": [10, 20, 30, 40], "points": [[11, 21], [12, 22]]}</answer>',
        "multi",
        [((10, 20, 30, 40), [(11, 21), (12, 22)])],
    ),
    ("<answer>[10, 20, 30, 40]</answer>", "segzero", [((10, 20, 30, 40), [])]),
    (
        '<think>x</think><answer>{"Bbox": [1, 2, 30, 40], "Points1": [5, 6], "Points2": [7, 8</answer>',
        "segzero",
        [((1, 2, 30, 40), [(5, 6)])],
    ),  # truncated: keep the complete values
    (
        '<answer>{"points_2": [7, 8], "bbox": [1, 2, 30, 40], "points_1": [5, 6]}</answer>',
        "segzero",
        [((1, 2, 30, 40), [(5, 6), (7, 8)])],
    ),  # points ordered by their number
    ('<answer>{"bbox": [1, 2, 30, 40], "point": {"x": 5, "y": 6}}</answer>', "segzero", [((1, 2, 30, 40), [(5, 6)])]),
]


@pytest.mark.parametrize(("text", "protocol", "expected"), LENIENT_OK)
def test_lenient_repairs(text, protocol, expected):
    answer = parse_answer(text, protocol)
    assert [(t.bbox, t.points) for t in answer.targets] == [
        (tuple(float(v) for v in b), [tuple(float(v) for v in p) for p in pts]) for b, pts in expected
    ]


def test_lenient_think_text():
    assert parse_answer("<think> a cup </think><answer>[1,2,3,4]</answer>").think == "a cup"
    assert parse_answer("<answer>[1,2,3,4]</answer>").think is None
    assert parse_answer("<think>look <at> this</think><answer>[1,2,3,4]</answer>").think == "look <at> this"


def test_lenient_drops_bad_objects_with_a_warning():
    text = '<answer>[{"bbox_2d": [1,2,30,40]}, {"bbox_2d": [1,2,3]}]</answer>'
    answer = parse_answer(text, "multi")
    assert len(answer.targets) == 1
    assert answer.warnings and "bbox needs 4 numbers" in answer.warnings[0]


LENIENT_BAD = [
    ("the cup is on the left", "no <answer> tag"),
    ("<answer></answer>", "empty"),
    ("<answer>[]</answer>", "no object"),
    ("<answer>[</answer>", "not JSON"),
    ('<answer>{"points_1": [1, 2]}</answer>', "no bbox"),
    ('<answer>{"bbox": [1, 2, 3]}</answer>', "4 numbers"),
    ('<answer>{"bbox": [NaN, 2, 3, 4]}</answer>', "not finite"),
    ('<answer>{"bbox": [1, 2, 1e30, 4]}</answer>', "absurdly large"),
    ('<answer>{"bbox": [5, 2, 5, 40]}</answer>', "zero area"),
    ('<answer>{"bbox": ["a", 2, 3, 4]}</answer>', "not a number"),
    ('<answer>{"bbox": [1, 2, 3, 4], "point_2d": [1]}</answer>', "[x, y]"),
    ("<answer>" + "[" * 50 + "]" * 50 + "</answer>", "nested"),
    ("<answer>" + "1" * 30000 + "</answer>", "longer than"),
    ("<answer>42</answer>", "not an object"),
]


@pytest.mark.parametrize(("text", "reason"), LENIENT_BAD)
def test_lenient_rejects_with_reason(text, reason):
    with pytest.raises(AnswerFormatError, match=reason):
        parse_answer(text)


def test_answer_format_error_is_value_error():
    assert issubclass(AnswerFormatError, ValueError)
    with pytest.raises(AnswerFormatError, match="must be a string"):
        parse_answer(None)  # type: ignore[arg-type]


fragments = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "{",
        "}",
        "[",
        "]",
        '"bbox"',
        '"points_1"',
        '"point_2d"',
        "'bbox_2d'",
        ":",
        ",",
        "1",
        "-3.5",
        "NaN",
        "Infinity",
        "1e999",
        '"7"',
        "```json",
        "```",
        " ",
        "\n",
        "null",
        "true",
        "(",
        ")",
        "\\",
        '"',
        "'",
    ]
)
model_like = st.lists(fragments, max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(st.text(max_size=300), model_like),
    protocol=st.sampled_from(["segzero", "multi"]),
    strict=st.booleans(),
)
def test_parser_never_raises_anything_else(text, protocol, strict):
    try:
        answer = parse_answer(text, protocol, strict=strict)
    except AnswerFormatError:
        return
    assert isinstance(answer, Answer)
    for target in answer.targets:
        assert len(target.bbox) == 4
        if not strict:
            x1, y1, x2, y2 = target.bbox
            assert x1 < x2 and y1 < y2
            assert all(math.isfinite(v) for v in target.bbox)


# --- scaling ----------------------------------------------------------------------------------


def test_scale_reference_rounding_differs_by_protocol():
    target = [Target(bbox=(1.0, 1.0, 3.0, 5.0), points=[(1.0, 1.0)])]
    # 1 * 2.5 = 2.5: Python's round() gives 2 (banker's), int(2.5 + 0.5) gives 3.
    seg = scale_targets(target, (2, 2), (5, 5), rounding="segzero", clip=False)
    multi = scale_targets(target, (2, 2), (5, 5), rounding="multi", clip=False)
    assert seg[0].bbox[0] == 2.0 and multi[0].bbox[0] == 3.0
    assert scale_targets(target, (2, 2), (5, 5), clip=False)[0].bbox[0] == 2.5


def test_scale_clips_to_pixel_indices():
    target = [Target(bbox=(-10.0, -5.0, 900.0, 850.0), points=[(845.0, -1.0)])]
    out = scale_targets(target, (840, 840), (1280, 720))
    assert out[0].bbox == (0.0, 0.0, 1279.0, 719.0)
    assert out[0].points == [(1279.0, 0.0)]


@settings(max_examples=200, deadline=None)
@given(
    coords=st.lists(st.floats(0, 839, allow_nan=False), min_size=6, max_size=6),
    w=st.integers(16, 4096),
    h=st.integers(16, 4096),
)
def test_scale_round_trip(coords, w, h):
    target = [Target(bbox=tuple(coords[:4]), points=[tuple(coords[4:])])]
    there = scale_targets(target, (840, 840), (w, h), clip=False)
    back = scale_targets(there, (w, h), (840, 840), clip=False)
    assert back[0].bbox == pytest.approx(target[0].bbox, abs=1e-6)
    assert back[0].points[0] == pytest.approx(target[0].points[0], abs=1e-6)


def test_a_per_object_label_is_kept_by_the_lenient_parser_and_scaling_only():
    """A ``"label"`` per object (what a multi-object model may add) names the target in detections and labels;
    the strict parser, as the reference, reads boxes and points only."""
    text = (
        '<think>two</think><answer>[{"bbox_2d": [10,20,30,40], "point_2d": [15,25], "label": "  left\\n mug "}, '
        '{"bbox_2d": [50,60,70,80], "point_2d": [55,65], "label": 7}]</answer>'
    )
    targets = parse_answer(text, "multi").targets
    assert [t.label for t in targets] == ["left mug", None]  # whitespace folded; a non-string label is no label
    assert [t.label for t in scale_targets(targets, (100, 100), (200, 200))] == ["left mug", None]
    assert [t.label for t in parse_answer(text, "multi", strict=True).targets] == [None, None]
