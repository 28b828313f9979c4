"""Seg-Zero's GRPO on TRL's ``GRPOTrainer``: Qwen2.5-VL, the reference prompt, format + accuracy rewards only.

Run ``python -m training.train_grpo --config training/configs/<name>.yaml [--output_dir DIR] [--max_steps N]``;
any ``GRPOConfig`` or ``SegZeroArguments`` field is a ``--flag`` too. Defaults are the reference's
hyperparameters (``REFERENCE_GRPO``); a config file overrides them, the command line overrides both.
Multi-GPU / multi-node: ``accelerate launch --config_file training/configs/accelerate_zero3.yaml -m
training.train_grpo ...``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG = logging.getLogger("segzero.train")

# The reference's training set-up (EasyR1/veRL, ``visionreasoner_7b.yaml`` + run script) in TRL's terms. The batch
# defaults give the reference's 16 prompts × 8 rollouts = 128 completions per optimizer step on 8 processes.
REFERENCE_GRPO: dict[str, Any] = {
    "learning_rate": 1e-6,
    "weight_decay": 1e-2,
    "max_grad_norm": 1.0,
    "num_generations": 8,
    "temperature": 1.0,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 2,
    "num_iterations": 1,  # on-policy: one update per rollout batch
    "beta": 1e-2,  # KL loss coefficient of the run script (its YAML says 5e-3); TRL's KL is the same k3 estimator
    "epsilon": 0.2,
    "loss_type": "dapo",  # token-level mean over the batch, as veRL's "token-mean"
    "scale_rewards": "group",  # (r - group mean) / group std (unbiased)
    "entropy_coef": 1e-3,  # loss - 1e-3 * mean token entropy
    "max_completion_length": 2000,
    "num_train_epochs": 1.0,
    "activation_checkpointing": True,
    "lr_scheduler_type": "constant",
    "warmup_steps": 0,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 50,
    "remove_unused_columns": False,
}


@dataclass
class SegZeroArguments:
    """What to train (model, data, protocol, rewards); ``GRPOConfig`` holds how."""

    model_name_or_path: str = field(
        default="Qwen/Qwen2.5-VL-7B-Instruct",
        metadata={"help": "Qwen2.5-VL to train: Hugging Face id, local folder, or 'tiny' (random tiny model, offline)"},
    )
    dataset_name: str = field(
        default="Ricky06662/refCOCOg_9k_840",
        metadata={
            "help": "'synthetic' (generated offline), a folder/file in the reference layout (parquet/JSON), "
            "'coco:ANNOTATIONS.json:IMAGE_DIR', or a datasets hub id"
        },
    )
    dataset_split: str = field(default="train", metadata={"help": "split of a hub/folder dataset"})
    dataset_size: int | None = field(
        default=None, metadata={"help": "rows to use (synthetic: rows to generate, default 512)"}
    )
    dataset_seed: int = field(default=0, metadata={"help": "seed of the synthetic set"})
    protocol: str = field(default="segzero", metadata={"help": "answer protocol: segzero or multi"})
    reward_variant: str = field(default="strict", metadata={"help": "segzero rewards: strict (released model) or soft"})
    image_size: int = field(default=840, metadata={"help": "square side images are resized to (reference: 840)"})
    min_pixels: int = field(default=3136, metadata={"help": "processor min_pixels (reference: 3136)"})
    max_pixels: int = field(default=12845056, metadata={"help": "processor max_pixels (reference: 12845056)"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2"})


def parser():
    """A ``TrlParser`` over ``SegZeroArguments`` and ``GRPOConfig`` with the reference defaults set."""
    from trl import GRPOConfig, TrlParser

    p = TrlParser((SegZeroArguments, GRPOConfig))
    p.set_defaults(**REFERENCE_GRPO)
    return p


def parse(argv: Sequence[str] | None = None):
    """(SegZeroArguments, GRPOConfig) from a command line (``--config FILE`` included)."""
    args, config = parser().parse_args_and_config(list(argv) if argv is not None else None)
    if args.protocol not in ("segzero", "multi"):
        raise SystemExit(f"--protocol must be segzero or multi, got {args.protocol!r}")
    if args.reward_variant not in ("strict", "soft"):
        raise SystemExit(f"--reward_variant must be strict or soft, got {args.reward_variant!r}")
    return args, config


def model_path(name: str) -> str:
    """A local folder or hub id for ``name``; ``tiny`` builds (once) the random tiny Qwen2.5-VL."""
    if name == "tiny":
        from segzero_ros.tiny import tiny_reasoner_path

        return str(tiny_reasoner_path(fitted=False))
    return name


def load_rows(args: SegZeroArguments) -> list[dict[str, Any]]:
    """Training rows (reference layout) for ``args.dataset_name``."""
    from training import data

    name = args.dataset_name
    if name == "synthetic":
        return data.synthetic_rows(args.dataset_size or 512, args.dataset_seed, args.protocol, size=args.image_size)
    if name.startswith("coco:"):
        _, annotations, image_dir = name.split(":", 2)
        return data.coco_rows(annotations, image_dir, args.protocol, args.dataset_size, size=args.image_size)
    if args.image_size != data.REASONER_SIZE:
        raise SystemExit(f"{name}: the reference set's ground truth is in the 840 frame; use --image_size 840")
    return data.load_reference_rows(name, args.dataset_split, args.dataset_size)


def load_processor(path: str, args: SegZeroArguments):
    """The model's processor with the reference's pixel bounds and left padding."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path, padding_side="left")
    processor.image_processor.size = {"shortest_edge": args.min_pixels, "longest_edge": args.max_pixels}
    return processor


def build_trainer(args: SegZeroArguments, config, reward_funcs: list[Callable[..., list[float]]] | None = None):
    """A ``GRPOTrainer`` on the rows of ``args`` with the reference rewards (or ``reward_funcs``)."""
    from trl import GRPOTrainer

    from training.data import grpo_dataset
    from training.rewards import reward_functions

    funcs = list(reward_funcs) if reward_funcs is not None else reward_functions(args.protocol, args.reward_variant)
    if config.reward_weights is not None and len(config.reward_weights) != len(funcs):
        raise ValueError(f"reward_weights has {len(config.reward_weights)} values for {len(funcs)} reward functions")
    if config.use_vllm:
        try:
            import vllm  # noqa: F401
        except ImportError:
            warnings.warn("use_vllm is set but vllm is not installed: generating with transformers", stacklevel=2)
            config.use_vllm = False
    path = model_path(args.model_name_or_path)
    config.model_init_kwargs = {
        "dtype": "bfloat16" if config.bf16 else "float32",
        "attn_implementation": args.attn_implementation,
        **(config.model_init_kwargs or {}),
    }
    rows = load_rows(args)
    if not rows:
        raise SystemExit(f"{args.dataset_name}: no training rows")
    rank = f"process {config.process_index + 1} of {config.world_size}: " if config.world_size > 1 else ""
    LOG.info(
        "%sGRPO on %d rows of %s, model %s, rewards %s",
        rank,
        len(rows),
        args.dataset_name,
        path,
        [f.__name__ for f in funcs],
    )
    return GRPOTrainer(
        model=path,
        processing_class=load_processor(path, args),
        reward_funcs=funcs,
        args=config,
        train_dataset=grpo_dataset(rows, args.protocol),
    )


def train(argv: Sequence[str] | None = None, reward_funcs: list[Callable[..., list[float]]] | None = None):
    """Parse, train (resuming when ``--resume_from_checkpoint`` says so), save model + processor; the trainer."""
    args, config = parse(argv)
    trainer = build_trainer(args, config, reward_funcs)
    resume = config.resume_from_checkpoint
    if isinstance(resume, str) and resume.lower() in ("true", "latest"):
        resume = True
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(config.output_dir)  # written by the main process only (the Trainer's should_save)
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(config.output_dir)
        LOG.info("saved the trained model to %s", Path(config.output_dir).resolve())
    return trainer


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s", stream=sys.stderr)
    train(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
