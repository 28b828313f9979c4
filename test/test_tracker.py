"""Tracking with SAM2's memory, frame by frame: parity with SAM2's video predictor, bounded memory, loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from segzero_ros.protocol import Target
from segzero_ros.scenes import textured_background
from segzero_ros.tracker import Tracker, TrackStep, load_tracking_model, tracking_image_size

TARGET = Target(bbox=(40, 100, 80, 140), points=[(60, 120), (65, 125)])


@pytest.fixture(scope="module")
def model(tiny_sam2_config):
    return load_tracking_model(tiny_sam2_config, "cpu")


def moving_object(i: int, width: int = 320, height: int = 240) -> np.ndarray:
    """Frame ``i`` of a red square sliding right over a textured table."""
    rgb = textured_background(width, height, 0).copy()
    cx = 60 + 3 * i
    rgb[100:140, cx - 20 : cx + 20] = (220, 30, 30)
    return rgb


def test_frame_by_frame_tracking_equals_sam2s_video_predictor(model, tmp_path):
    for i in range(6):
        Image.fromarray(moving_object(2 * i)).save(tmp_path / f"{i:05d}.jpg", quality=95)
    frames = [np.asarray(Image.open(tmp_path / f"{i:05d}.jpg").convert("RGB")) for i in range(6)]
    tracker = Tracker(model)
    ours = [tracker.start(frames[0], [TARGET])] + [tracker.step(f) for f in frames[1:]]
    memory = tracker.tracks[""].output_dict

    state = model.init_state(str(tmp_path))
    model.add_new_points_or_box(
        state,
        frame_idx=0,
        obj_id=1,
        points=np.array(TARGET.points, np.float32),
        labels=np.array([1, 1], np.int32),
        box=np.array(TARGET.bbox, np.float32),
    )
    theirs = {index: masks[0, 0].numpy() > 0 for index, _, masks in model.propagate_in_video(state)}
    reference = state["output_dict_per_obj"][0]
    for i in range(6):
        kind = "cond_frame_outputs" if i == 0 else "non_cond_frame_outputs"
        mine, sam2 = memory[kind][i], reference[kind][i]
        assert torch.allclose(mine["object_score_logits"], sam2["object_score_logits"], atol=1e-4), i
        assert torch.allclose(mine["maskmem_features"].float(), sam2["maskmem_features"].float(), atol=1e-4), i
        assert torch.allclose(mine["obj_ptr"], sam2["obj_ptr"], atol=1e-4), i
        assert np.array_equal(ours[i].masks[0], theirs[i]), i
        assert ours[i].scores[0] == pytest.approx(float(torch.sigmoid(sam2["object_score_logits"])), abs=1e-4)


def test_sixty_frames_give_one_mask_each_and_memory_stays_bounded(model):
    tracker = Tracker(model)
    first = tracker.start(moving_object(0), [TARGET, Target(bbox=(200, 20, 260, 80), points=[(230, 50)])])
    assert len(first.masks) == 2 and first.states == ["tracking", "tracking"]
    held = []
    for i in range(1, 60):
        step = tracker.step(moving_object(i))
        assert step.frame_index == i and len(step.masks) == len(step.scores) == 2
        assert all(m.shape == (240, 320) and m.dtype == bool for m in step.masks)
        held.append(tracker.memory_frames)
    assert max(held) == 1 + tracker.window and held[-1] == held[tracker.window]  # flat once the window is full


def test_targets_are_lost_after_enough_low_scores_and_recover(model, monkeypatch):
    tracker = Tracker(model, min_score=0.5, lost_frames=3)
    tracker.start(moving_object(0), [TARGET])
    scores = iter([0.9, 0.2, 0.2, 0.2, 0.2, 0.8])
    monkeypatch.setattr(tracker, "_outputs", lambda out, w, h: ([np.zeros((h, w), bool)], [next(scores)]))
    states = [tracker.step(moving_object(i)).states[0] for i in range(1, 7)]
    assert states == ["tracking", "tracking", "tracking", "lost", "lost", "tracking"]


def test_prompts_put_box_corners_first_and_pad_uneven_clicks(model):
    tracker = Tracker(model)
    size = model.image_size
    prompts = tracker._prompts([TARGET, Target(bbox=(0, 0, 320, 240), points=[(160, 120)])], 320, 240)
    assert prompts["point_labels"].tolist() == [[2, 3, 1, 1], [2, 3, 1, -1]]
    assert prompts["point_coords"][1, :3].tolist() == [[0, 0], [size, size], [size / 2, size / 2]]


def test_misuse_is_refused(model):
    tracker = Tracker(model)
    with pytest.raises(RuntimeError, match="start"):
        tracker.step(moving_object(0))
    with pytest.raises(ValueError, match="no targets"):
        tracker.start(moving_object(0), [])
    tracker.start(moving_object(0), [TARGET])
    with pytest.raises(ValueError, match="size changed"):
        tracker.step(moving_object(1, 160, 120))
    tracker.stop()
    assert not tracker.active and tracker.memory_frames == 0
    assert isinstance(tracker.start(moving_object(0), [TARGET]), TrackStep)


OTHER = Target(bbox=(200, 20, 260, 80), points=[(230, 50)])


def test_a_goals_masks_do_not_depend_on_other_goals_tracked_beside_it(model):
    """Goal "a" alone, and with goal "b" added at frame 3 and ended at frame 8: "a"'s masks and scores are the same
    on every frame (IoU 1.0), and its memory goes back to what "a" alone holds."""
    frames = [moving_object(i) for i in range(13)]
    alone = Tracker(model)
    alone.add("a", frames[0], [TARGET])
    expected = [alone.step_all(f)["a"] for f in frames[1:]]

    shared = Tracker(model)
    shared.add("a", frames[0], [TARGET])
    for i, rgb in enumerate(frames[1:], start=1):
        if i == 3:
            shared.add("b", frames[2], [OTHER, TARGET])
        if i == 8:
            assert shared.memory_frames > shared.memory_frames_of("a")
            shared.remove("b")
        steps = shared.step_all(rgb)
        assert set(steps) == ({"a", "b"} if 3 <= i < 8 else {"a"})
        mine, reference = steps["a"], expected[i - 1]
        assert all(np.array_equal(m, r) for m, r in zip(mine.masks, reference.masks, strict=True)), i
        assert mine.scores == reference.scores and mine.frame_index == reference.frame_index == i
    assert shared.memory_frames == shared.memory_frames_of("a") == alone.memory_frames


def test_goals_with_full_memories_share_one_memory_attention_and_keep_their_masks(model, monkeypatch):
    """Once two goals' memory windows are full their memory attention runs as one batch; the first goal's masks
    stay those it has alone (IoU 1.0; scores equal to float precision)."""
    frames = [moving_object(i % 40) for i in range(26)]
    alone = Tracker(model)
    alone.add("a", frames[0], [TARGET])
    expected = [alone.step_all(f)["a"] for f in frames[1:]]
    shared = Tracker(model)
    shared.add("a", frames[0], [TARGET])
    shared.add("b", frames[0], [OTHER])  # the same frame: the two memories have the same shape from the start
    batches = []
    attention = model.memory_attention.forward
    monkeypatch.setattr(
        model.memory_attention, "forward", lambda **call: batches.append(call["memory"].shape[1]) or attention(**call)
    )
    for i, rgb in enumerate(frames[1:], start=1):
        mine, reference = shared.step_all(rgb)["a"], expected[i - 1]
        assert all(np.array_equal(m, r) for m, r in zip(mine.masks, reference.masks, strict=True)), i
        assert mine.scores == pytest.approx(reference.scores, abs=1e-5), i
    assert batches == [2] * (len(frames) - 1)  # one memory attention per frame, for both goals


def test_every_track_shares_one_image_encoding_per_frame(model, monkeypatch):
    tracker = Tracker(model)
    for n, key in enumerate("abcd"):
        tracker.add(key, moving_object(0), [TARGET] if n % 2 else [TARGET, OTHER])
    calls = []
    encode = model.forward_image
    monkeypatch.setattr(model, "forward_image", lambda image: calls.append(1) or encode(image))
    steps = tracker.step_all(moving_object(1))
    assert len(calls) == 1 and [len(s.masks) for s in steps.values()] == [2, 1, 2, 1]
    with pytest.raises(RuntimeError, match="step_all"):
        tracker.step(moving_object(2))
    with pytest.raises(ValueError, match="differs from the tracked frames"):
        tracker.add("e", moving_object(0, 160, 120), [TARGET])


def test_tracking_image_size_scales_the_input_side_to_a_multiple_of_32():
    assert tracking_image_size(1024, 1.0) == 1024
    assert tracking_image_size(1024, 0.5) == 512
    assert tracking_image_size(1024, 0.3) == 320  # 307.2 -> the nearest multiple of 32
    assert tracking_image_size(256, 0.25) == 128  # never below 128
    with pytest.raises(ValueError, match="input_scale"):
        tracking_image_size(1024, 0.0)


def test_a_reduced_input_scale_tracks_with_the_same_weights(model, tiny_sam2_config):
    half = load_tracking_model(tiny_sam2_config, "cpu", input_scale=0.5)
    assert (half.image_size, model.image_size) == (128, 256)
    ours, theirs = half.state_dict(), model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    tracker = Tracker(half)
    tracker.start(moving_object(0), [TARGET])
    for i in range(1, 20):
        step = tracker.step(moving_object(i))
        assert step.masks[0].shape == (240, 320) and 0.0 <= step.scores[0] <= 1.0
    assert tracker.memory_frames == 1 + tracker.window
    # The memory really is at the smaller size: 128 / 16 = 8 feature cells a side (256 would give 16).
    assert tracker.tracks[""].output_dict["non_cond_frame_outputs"][19]["maskmem_features"].shape[-2:] == (8, 8)


def test_tracking_bench_reports_the_issue_figures(tiny_sam2_config):
    """``bench/tracking.py --json``: one object with the tracking figures (against a re-segmentation and a whole goal),
    at the node's default scale (1.0: SAM2's own input side)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    args = [sys.executable, str(root / "bench" / "tracking.py"), "--frames", "24", "--json"]
    done = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    figures = {"track_ms", "resegment_ms", "ratio", "goal_ms", "ratio_vs_goal", "rss_start_mb", "rss_end_mb"}
    assert figures <= report.keys()
    assert report["frames"] == 24 and report["memory_frames"] == 17
    assert (report["input_scale"], report["track_image_size"], report["resegment_image_size"]) == (1.0, 256, 256)
    assert report["ratio"] == pytest.approx(report["resegment_ms"] / report["track_ms"], rel=0.01)
    assert report["ratio_vs_goal"] == pytest.approx(report["goal_ms"] / report["track_ms"], rel=0.01)
