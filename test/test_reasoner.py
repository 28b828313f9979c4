"""The reasoner on the tiny offline Qwen2.5-VL: reference-identical inputs, answer parsing and scaling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import force_answer
from PIL import Image

from segzero_ros.protocol import build_prompt
from segzero_ros.reasoner.local import Reasoner, ReasonerConfig, interpret_answer
from segzero_ros.scenes import demo_scene


@pytest.fixture(scope="module")
def reasoner(tiny_reasoner_dir) -> Reasoner:
    return Reasoner(ReasonerConfig(model=str(tiny_reasoner_dir), local_files_only=True, max_new_tokens=96))


def test_tiny_reasoner_loads_like_real_weights(reasoner):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    assert isinstance(reasoner.processor, Qwen2_5_VLProcessor)  # not just a tokenizer
    assert isinstance(reasoner.model, Qwen2_5_VLForConditionalGeneration)
    assert reasoner.num_parameters() < 1_000_000
    assert reasoner.device == "cpu" and reasoner.dtype == torch.float32


def _reference_inputs(processor, image_path: str, goal: str, protocol: str):
    """The reference recipe: PIL open → RGB → 840² bilinear; one user turn; process_vision_info."""
    from qwen_vl_utils import process_vision_info

    image = Image.open(image_path).convert("RGB").resize((840, 840), Image.BILINEAR)
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": build_prompt(goal, protocol)}],
        }
    ]
    text = [processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)]
    image_inputs, video_inputs = process_vision_info(messages)
    return processor(text=text, images=image_inputs, videos=video_inputs, padding=True, return_tensors="pt"), text[0]


@pytest.mark.parametrize("protocol", ["segzero", "multi"])
@pytest.mark.parametrize("goal", ["The mug I could pour coffee into.", "the red cup"])
def test_inputs_equal_reference_recipe(reasoner, tmp_path, protocol, goal):
    rgb, _ = demo_scene(1280, 720, seed=3)
    path = tmp_path / "frame.png"
    Image.fromarray(rgb).save(path)
    expected, text = _reference_inputs(reasoner.processor, str(path), goal, protocol)
    ours = reasoner.prepare(rgb, goal, protocol)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert set(ours.keys()) == set(expected.keys())
    for key in expected:
        assert torch.equal(ours[key], expected[key]), key
    assert int((ours["input_ids"] == reasoner.model.config.image_token_id).sum()) == 900  # 840² → 30×30 tokens


def _force_answer(reasoner, monkeypatch, answer: str) -> None:
    force_answer(reasoner.model, reasoner.processor.tokenizer, monkeypatch, answer)


def test_forced_segzero_answer_is_scaled_like_the_reference(reasoner, monkeypatch):
    answer = (
        '<think>The cup.</think><answer>{"bbox": [101, 202, 403, 604], "points_1": [211, 305], '
        '"points_2": [333, 555]}</answer>'
    )
    _force_answer(reasoner, monkeypatch, answer)
    rgb = np.zeros((720, 1280, 3), np.uint8)
    out = reasoner.reason(rgb, "the cup")
    fx, fy = 1280 / 840, 720 / 840
    assert out.ok and out.text == answer and out.think == "The cup."
    assert out.targets[0].bbox == (round(101 * fx), round(202 * fy), round(403 * fx), round(604 * fy))
    assert out.targets[0].points == [(round(211 * fx), round(305 * fy)), (round(333 * fx), round(555 * fy))]
    assert out.model_targets[0].bbox == (101, 202, 403, 604)


def test_forced_multi_answer_gives_several_targets(reasoner, monkeypatch):
    answer = (
        '<think>Two.</think><answer>[{"bbox_2d": [10, 20, 30, 40], "point_2d": [15, 25]}, '
        '{"bbox_2d": [500, 600, 700, 800], "point_2d": [601, 701]}]</answer>'
    )
    _force_answer(reasoner, monkeypatch, answer)
    rgb = np.zeros((480, 640, 3), np.uint8)
    out = reasoner.reason(rgb, "both cups", protocol="multi")
    fx, fy = 640 / 840, 480 / 840
    assert [t.bbox for t in out.targets] == [
        (int(10 * fx + 0.5), int(20 * fy + 0.5), int(30 * fx + 0.5), int(40 * fy + 0.5)),
        (int(500 * fx + 0.5), int(600 * fy + 0.5), int(700 * fx + 0.5), int(800 * fy + 0.5)),
    ]
    assert out.targets[1].points == [(int(601 * fx + 0.5), int(701 * fy + 0.5))]


def test_garbled_answer_is_a_failed_reasoning_not_an_exception(reasoner, monkeypatch):
    _force_answer(reasoner, monkeypatch, "I think it is the cup on the left")
    out = reasoner.reason(np.zeros((100, 200, 3), np.uint8), "the cup")
    assert not out.ok
    assert "no <answer> tag" in out.error
    assert out.text == "I think it is the cup on the left"


def test_interpret_answer_strict_mode_keeps_reference_failures():
    text = '<think></think><answer>{"bbox": [1,2,3,4], "points_1": [1,2], "points_2": [3,4]}</answer>'
    assert not interpret_answer(text, "segzero", True, 840, (840, 840)).ok  # empty think fails strictly
    assert interpret_answer(text, "segzero", False, 840, (840, 840)).ok


@pytest.mark.parametrize(
    ("field", "value"), [("protocol", "yolo"), ("image_size", 841), ("image_size", 0), ("max_new_tokens", 0)]
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError):
        ReasonerConfig(**{field: value})


def test_missing_local_model_fails_clearly(tmp_path):
    with pytest.raises(OSError):
        Reasoner(ReasonerConfig(model=str(tmp_path / "nothing"), local_files_only=True))


@pytest.mark.parametrize("protocol", ["segzero", "multi"])
def test_fitted_tiny_reasoner_gives_its_answer_whatever_the_image(tiny_fitted_reasoner_dir, protocol):
    from segzero_ros.tiny import FIT_GOAL, TINY_ANSWERS, TINY_IMAGE_SIZE

    config = ReasonerConfig(
        model=str(tiny_fitted_reasoner_dir),
        protocol=protocol,
        image_size=TINY_IMAGE_SIZE,
        local_files_only=True,
        max_new_tokens=96,
    )
    reasoner = Reasoner(config)
    noise = np.random.default_rng(3).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    for rgb in (demo_scene(1280, 720)[0], noise):
        reasoning = reasoner.reason(rgb, FIT_GOAL)
        assert reasoning.text == TINY_ANSWERS[protocol] and reasoning.ok, reasoning.text
        (target,) = reasoning.targets
        x1, y1, x2, y2 = target.bbox
        assert 0 <= x1 < x2 <= rgb.shape[1] and 0 <= y1 < y2 <= rgb.shape[0]


def test_generation_stops_at_the_answer_with_the_same_tokens_and_streams_its_text(tiny_fitted_reasoner_dir):
    from segzero_ros.protocol import partial_think
    from segzero_ros.tiny import FIT_GOAL, TINY_ANSWERS, TINY_IMAGE_SIZE

    config = ReasonerConfig(
        model=str(tiny_fitted_reasoner_dir), image_size=TINY_IMAGE_SIZE, local_files_only=True, max_new_tokens=96
    )
    reasoner = Reasoner(config)
    inputs = reasoner.prepare(demo_scene(320, 240)[0], FIT_GOAL)
    stopped = reasoner.generate(inputs)
    reasoner.config.stop_at_answer = False
    full = reasoner.generate(inputs)
    tokenizer = reasoner.processor.tokenizer
    # Without the stop the model goes on to its end-of-turn token; with it, generation ends at "</answer>".
    assert tokenizer.convert_ids_to_tokens(full[0, -1:].tolist()) == ["<|im_end|>"]
    assert stopped.shape[1] < full.shape[1] and (full[0, : stopped.shape[1]] == stopped[0]).all()
    assert reasoner.decode(stopped) == reasoner.decode(full) == TINY_ANSWERS["segzero"]

    reasoner.config.stop_at_answer = True
    seen: list[str] = []
    reasoning = reasoner.reason(demo_scene(320, 240)[0], FIT_GOAL, on_text=seen.append)
    assert reasoning.ok and len(seen) >= 3 and seen[-1] == reasoning.text
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(seen))
    thinking = [partial_think(text) for text in seen]
    assert thinking[-1] == reasoning.think and all(reasoning.think.startswith(t) for t in thinking)


@pytest.mark.parametrize(
    ("text", "think"),
    [
        ("", ""),
        ("<think>", ""),
        ("<think>The cup on the", "The cup on the"),
        ("<think>The cup.</think><answer>{", "The cup."),
        ("no tags yet", "no tags yet"),
    ],
)
def test_partial_think(text, think):
    from segzero_ros.protocol import partial_think

    assert partial_think(text) == think


@pytest.mark.parametrize(
    "fast",
    [
        {"cache": "static"},
        {"cache": "static", "compile": True, "compile_backend": "eager"},
        {"attn_implementation": "eager"},
    ],
    ids=["static-cache", "static-cache+compile", "eager-attention"],
)
def test_fast_paths_give_the_default_paths_greedy_tokens(tiny_reasoner_dir, fast):
    from segzero_ros.tiny import TINY_IMAGE_SIZE

    common = {"model": str(tiny_reasoner_dir), "image_size": TINY_IMAGE_SIZE, "local_files_only": True}
    common |= {"max_new_tokens": 24, "stop_at_answer": False}
    default = Reasoner(ReasonerConfig(**common))
    inputs = default.prepare(demo_scene(320, 240)[0], "the mug I could pour coffee into")
    default.model.generation_config.min_new_tokens = 24  # the random model would stop at random; force the length
    expected = default.generate(inputs)
    fast_reasoner = Reasoner(ReasonerConfig(**common, **fast))
    fast_reasoner.model.generation_config.min_new_tokens = 24
    if fast.get("compile"):
        assert "forward" in vars(fast_reasoner.model)  # the compiled forward is the one generate calls
    got = fast_reasoner.generate(inputs)
    assert expected.shape == (1, 24) and torch.equal(got, expected)


def test_compile_needs_the_static_cache():
    with pytest.raises(ValueError, match="static"):
        ReasonerConfig(compile=True)
    with pytest.raises(ValueError, match="cache"):
        ReasonerConfig(cache="paged")
