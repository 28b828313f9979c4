"""GRPO training on the tiny model, offline on CPU: a real TRL run, a learning signal, the configs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from training import train_grpo as T

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"
TINY = str(CONFIGS / "tiny.yaml")
REWARD_NAMES = [
    "thinking_format_reward",
    "segmentation_format_reward",
    "bbox_iou_reward",
    "bbox_l1_reward",
    "point_l1_reward",
]


@pytest.mark.slow
def test_tiny_run_logs_rewards_saves_a_loadable_checkpoint_and_resumes(tmp_path, tiny_reasoner_dir):
    from segzero_ros.reasoner.local import Reasoner, ReasonerConfig
    from segzero_ros.scenes import demo_scene

    out = tmp_path / "run"
    trainer = T.train(["--config", TINY, "--output_dir", str(out), "--max_steps", "2", "--save_steps", "2"])
    steps = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2]
    for h in steps:
        assert math.isfinite(h["loss"]) and math.isfinite(h["kl"])
        assert 0 < h["completions/mean_length"] <= 16
        for name in REWARD_NAMES:
            assert 0.0 <= h[f"rewards/{name}/mean"] <= 1.0
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()

    # The saved model is what the node and the CLI load: Reasoner runs it on a camera frame.
    reasoner = Reasoner(ReasonerConfig(model=str(out), image_size=112, max_new_tokens=8, local_files_only=True))
    inputs = reasoner.prepare(demo_scene(160, 120)[0], "the red cup")
    assert int((inputs["input_ids"] == reasoner.model.config.image_token_id).sum()) == 16  # 112² → 16 tokens
    assert isinstance(reasoner.reason(demo_scene(160, 120)[0], "the red cup").text, str)
    reasoner.close()

    # Resume from checkpoint-2 to step 3: the trainer restarts at step 2, not 0.
    resumed = T.train(
        ["--config", TINY, "--output_dir", str(out), "--max_steps", "3", "--resume_from_checkpoint", "true"]
    )
    assert resumed.state.global_step == 3
    assert [h["step"] for h in resumed.state.log_history if "loss" in h][-1] == 3
    assert not any(h.get("step") == 1 and "loss" in h for h in resumed.state.log_history[2:])


def lower_case_share(completions, **kwargs) -> list[float]:
    """A property a tiny model learns in a few steps: the share of lower-case letters in the completion."""
    return [sum(c.islower() for c in text) / max(len(text), 1) for text in map(str, completions)]


@pytest.mark.slow
def test_mean_reward_rises_under_grpo(tmp_path, tiny_reasoner_dir):
    argv = ["--config", TINY, "--output_dir", str(tmp_path), "--max_steps", "30", "--save_strategy", "no"]
    argv += ["--learning_rate", "1e-2", "--beta", "0", "--entropy_coef", "0", "--dataset_size", "4"]
    trainer = T.train(argv, reward_funcs=[lower_case_share])
    rewards = [h["rewards/lower_case_share/mean"] for h in trainer.state.log_history if "loss" in h]
    assert len(rewards) == 30
    first, last = np.mean(rewards[:5]), np.mean(rewards[-5:])
    assert last > first + 0.1, f"mean reward did not rise: {first:.3f} -> {last:.3f} ({np.round(rewards, 2)})"


def test_reference_hyperparameters_are_the_defaults(tmp_path):
    args, config = T.parse(["--output_dir", str(tmp_path), "--use_cpu", "true", "--bf16", "false"])
    for key, value in T.REFERENCE_GRPO.items():
        expected = pytest.approx(value) if isinstance(value, float) else value
        assert getattr(config, key) == expected, key
    assert (config.beta, config.loss_type, config.scale_rewards, config.num_generations) == (1e-2, "dapo", "group", 8)
    assert (args.protocol, args.reward_variant, args.image_size) == ("segzero", "strict", 840)
    assert (args.min_pixels, args.max_pixels) == (3136, 12845056)


def test_config_file_overrides_defaults_and_the_command_line_overrides_both(tmp_path):
    args, config = T.parse(["--config", TINY, "--output_dir", str(tmp_path), "--max_steps", "7"])
    assert (args.model_name_or_path, args.image_size, config.num_generations) == ("tiny", 112, 4)
    assert config.max_steps == 7 and config.output_dir == str(tmp_path)
    assert config.weight_decay == pytest.approx(1e-2)  # not in tiny.yaml: the reference default


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith("accelerate")))
def test_every_training_config_parses(name, tmp_path):
    from trl import GRPOConfig

    known = {f.name for f in dataclasses.fields(T.SegZeroArguments)} | {f.name for f in dataclasses.fields(GRPOConfig)}
    keys = set(yaml.safe_load((CONFIGS / name).read_text()))
    assert keys <= known, f"unknown keys {keys - known}"
    # GPU configs are checked on this CPU machine with bf16 off; everything else (batch shapes) as written.
    args, config = T.parse(
        ["--config", str(CONFIGS / name), "--output_dir", str(tmp_path), "--use_cpu", "true"]
        + (["--bf16", "false"] if name != "tiny.yaml" else [])
    )
    batch = config.per_device_train_batch_size * config.gradient_accumulation_steps
    assert batch % config.num_generations == 0
    assert args.protocol in ("segzero", "multi")


@pytest.mark.parametrize("name", ["accelerate_1gpu.yaml", "accelerate_zero3.yaml"])
def test_accelerate_configs_are_complete(name):
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    assert cfg["mixed_precision"] == "bf16" and cfg["num_processes"] >= 1 and cfg["num_machines"] == 1
    if name == "accelerate_zero3.yaml":
        assert cfg["distributed_type"] == "DEEPSPEED" and cfg["deepspeed_config"]["zero_stage"] == 3
        assert cfg["num_processes"] == 8


def test_reward_weights_must_match_the_reward_functions(tmp_path):
    args, config = T.parse(["--config", TINY, "--output_dir", str(tmp_path), "--reward_weights", "1.0", "2.0"])
    with pytest.raises(ValueError, match="reward_weights has 2 values for 5 reward functions"):
        T.build_trainer(args, config)


def test_unknown_protocol_or_variant_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="protocol"):
        T.parse(["--config", TINY, "--output_dir", str(tmp_path), "--protocol", "both"])
    with pytest.raises(SystemExit, match="reward_variant"):
        T.parse(["--config", TINY, "--output_dir", str(tmp_path), "--reward_variant", "lenient"])


def test_reference_layout_at_another_image_size_is_refused(tmp_path):
    args, _ = T.parse(["--config", TINY, "--output_dir", str(tmp_path), "--dataset_name", str(tmp_path)])
    with pytest.raises(SystemExit, match="840 frame"):
        T.load_rows(args)


@pytest.mark.slow
def test_multi_protocol_trains_with_the_multi_rewards(tmp_path, tiny_reasoner_dir):
    argv = ["--config", TINY, "--output_dir", str(tmp_path), "--protocol", "multi", "--max_steps", "1"]
    trainer = T.train([*argv, "--save_strategy", "no"])
    logged = next(h for h in trainer.state.log_history if "loss" in h)
    assert math.isfinite(logged["loss"])
    for name in ("multi_format_reward", "multi_accuracy_reward", "non_repeat_reward"):
        assert 0.0 <= logged[f"rewards/{name}/mean"] <= 1.0
