"""Tiny random-weight models, built offline, for tests and the offline demo.

One place builds them, deterministically (seeded), and saves them the way real weights are saved, so
they load through the same code as real checkpoints:

- a tiny Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``, ~0.2 M parameters) with a processor whose
  tokenizer is a byte-level BPE trained here with Qwen's special tokens and the Qwen2.5-VL chat template.
  Its weights are random, then fitted briefly to answer ``FIT_GOAL``, seen at ``TINY_IMAGE_SIZE``, in the
  protocol format with a fixed box (``TINY_ANSWERS``) whatever the image (its vision output is zeroed), so
  the whole pipeline runs; its boxes carry no meaning;
- a tiny SAM2 from the ``sam2`` package's hiera-tiny config with hydra overrides (smaller trunk, 256 input),
  random weights, saved as a checkpoint loaded by ``sam2.build_sam.build_sam2``. Its masks carry no meaning.

Models are cached under ``$SEGZERO_CACHE`` (default ``~/.cache/segzero_ros``, see ``segzero_ros.cache``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from segzero_ros.cache import build_once
from segzero_ros.protocol import build_prompt
from segzero_ros.segmenter.base import SegmenterConfig

LOG = logging.getLogger(__name__)

TINY_VERSION = "v5"
SEED = 1234

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# The Qwen2.5-VL chat template: default system prompt, image placeholders, generation prompt.
QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# The square side the tiny reasoner is fitted at and run at (its presets set ``image_size`` to it): 16 image
# tokens keep fitting and inference fast on CPU. Real models use the reference's 840.
TINY_IMAGE_SIZE = 112

# What the fitted tiny reasoner answers (in the TINY_IMAGE_SIZE² frame), whatever the image: the red cup of the
# demo scene (scenes.demo_scene), so the demo's first pictures show its box and clicks on the cup.
TINY_ANSWERS = {
    "segzero": "<think>The goal names one object.</think>"
    '<answer>{"bbox": [28,49,43,74], "points_1": [34,60], "points_2": [31,68]}</answer>',
    "multi": "<think>The goal names one object.</think>"
    '<answer>[{"bbox_2d": [28,49,43,74], "point_2d": [34,62]}]</answer>',
}
FIT_GOAL = "the red cup"  # the goal the fitted answers are taught for (others may give garbled answers)

# Hydra overrides that shrink sam2.1 hiera-t: 5 narrow trunk blocks (one global), width 64, 256-pixel input.
TINY_SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
TINY_SAM2_OVERRIDES = [
    "++model.image_size=256",
    "++model.image_encoder.trunk.embed_dim=16",
    "++model.image_encoder.trunk.num_heads=1",
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
    "++model.image_encoder.neck.backbone_channel_list=[128,64,32,16]",
    "++model.image_encoder.neck.d_model=64",
    "++model.image_encoder.neck.position_encoding.num_pos_feats=64",
    "++model.memory_attention.d_model=64",
    "++model.memory_attention.num_layers=1",
    "++model.memory_attention.layer.d_model=64",
    "++model.memory_attention.layer.dim_feedforward=128",
    "++model.memory_attention.layer.self_attention.embedding_dim=64",
    "++model.memory_attention.layer.self_attention.feat_sizes=[16,16]",
    "++model.memory_attention.layer.cross_attention.embedding_dim=64",
    "++model.memory_attention.layer.cross_attention.feat_sizes=[16,16]",
    "++model.memory_encoder.in_dim=64",
    "++model.memory_encoder.out_dim=32",
    "++model.memory_encoder.position_encoding.num_pos_feats=32",
    "++model.memory_encoder.mask_downsampler.embed_dim=64",
    "++model.memory_encoder.fuser.layer.dim=64",
    "++model.memory_encoder.fuser.num_layers=1",
    "++model.memory_attention.layer.cross_attention.kv_in_dim=32",
]


# --- reasoner -------------------------------------------------------------------------------------


def _tokenizer_corpus() -> list[str]:
    goals = [FIT_GOAL, "the cup on the table", "something to hold water", "the biggest box"]
    corpus = [build_prompt(g, p) for g in goals for p in ("segzero", "multi")]
    corpus += list(TINY_ANSWERS.values()) * 50  # frequent enough that BPE merges them into few tokens
    corpus += [" ".join(str(n) for n in range(i, i + 50)) for i in range(0, 1000, 50)]
    corpus.append("You are a helpful assistant. system user assistant")
    return corpus


def build_tokenizer():
    """A byte-level BPE tokenizer (vocabulary 1024) with Qwen's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_tokenizer_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
        chat_template=QWEN25_VL_CHAT_TEMPLATE,
        model_max_length=32768,
    )


def build_processor(tokenizer):
    """A Qwen2.5-VL processor around ``tokenizer`` with Qwen2.5-VL's image settings."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(min_pixels=3136, max_pixels=12845056)
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN25_VL_CHAT_TEMPLATE,
    )


def qwen25_vl_config(tokenizer, text: dict, vision: dict, **top):
    """A ``Qwen2_5_VLConfig`` of the given text and vision dimensions wired to ``tokenizer``'s special tokens."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    return Qwen2_5_VLConfig(
        text_config={
            **text,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            **vision,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        **top,
    )


def build_model(tokenizer):
    """A random-weight Qwen2.5-VL with 2 text layers (width 128) and 2 vision blocks (width 64); head size 64
    in the text model, a size vLLM's CPU attention serves (it refuses 16), so the same tiny model answers locally
    and through ``segzero serve --tiny``."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 32768,
        "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]},
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    }
    vision = {
        "depth": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_heads": 2,
        "out_hidden_size": 128,
        "fullatt_block_indexes": [1],
    }
    config = qwen25_vl_config(tokenizer, text, vision, tie_word_embeddings=True)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>")}
    torch.manual_seed(SEED)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    return model


# The published Qwen2.5-VL configurations' dimensions (text model, vision tower), for speed benchmarks with
# random weights: the speed of a model depends on its shapes, not on its training.
QWEN25_VL_DIMS = {
    "7b": {
        "text": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                 "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064},
        "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                   "out_hidden_size": 3584, "fullatt_block_indexes": [7, 15, 23, 31]},
    },
    "3b": {
        "text": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                 "num_attention_heads": 16, "num_key_value_heads": 2, "vocab_size": 151936},
        "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                   "out_hidden_size": 2048, "fullatt_block_indexes": [7, 15, 23, 31]},
    },
}  # fmt: skip


def random_qwen25_vl(size: str, tokenizer, dtype, device: str):
    """A random-weight Qwen2.5-VL with the ``size`` configuration's dimensions (7b, 3b) built on ``device``.

    Its special token ids are the tiny tokenizer's, so the tiny processor prepares its inputs."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    dims = QWEN25_VL_DIMS[size]
    text = {
        **dims["text"],
        "max_position_embeddings": 128000,
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
    }
    config = qwen25_vl_config(tokenizer, text, dims["vision"])
    torch.manual_seed(SEED)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return model


def random_scene(seed: int, size: int = 840) -> np.ndarray:
    """A textured RGB scene with a few coloured shapes (deterministic per seed)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = (rng.integers(60, 200, (size, size, 3)) // 20 * 20).astype(np.uint8)
    for _ in range(4):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = (int(v) for v in rng.integers(0, size - size // 4, 2))
        cv2.rectangle(img, (x, y), (x + size // 5, y + size // 6), colour, -1)
    return img


def fit_answers(model, processor, max_steps: int = 400, lr: float = 3e-3) -> int:
    """Teach the tiny model to answer ``TINY_ANSWERS`` for ``FIT_GOAL`` at ``TINY_IMAGE_SIZE``; returns the steps.

    The vision merger's output layer is zeroed first, so every image embeds to the same tokens and the answer
    cannot depend on the image. Stops once each answer is the greedy choice at every position under teacher
    forcing (exactly when greedy generation reproduces it), then checks that on unseen scenes.
    """
    import torch

    from segzero_ros.reasoner.local import build_messages, resize_for_reasoner
    from segzero_ros.scenes import demo_scene

    (blind,) = [m for name, m in model.named_modules() if name.endswith("visual.merger.mlp.2")]
    with torch.no_grad():
        blind.weight.zero_()
        blind.bias.zero_()
    blind.requires_grad_(False)

    def sample(protocol: str, scene: np.ndarray):
        image = resize_for_reasoner(scene, TINY_IMAGE_SIZE)
        prompt = processor.apply_chat_template(
            build_messages(image, build_prompt(FIT_GOAL, protocol)), tokenize=False, add_generation_prompt=True
        )
        full = processor(text=[prompt + TINY_ANSWERS[protocol] + "<|im_end|>"], images=[image], return_tensors="pt")
        n_prompt = processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
        labels = full["input_ids"].clone()
        labels[:, :n_prompt] = -100
        return dict(full), labels

    train = [sample(p, random_scene(i)) for i, p in enumerate(TINY_ANSWERS)]
    held_out = [sample(p, demo_scene(640, 480)[0]) for p in TINY_ANSWERS]
    torch.manual_seed(SEED)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    correct = [False] * len(train)
    for step in range(1, max_steps + 1):
        k = step % len(train)
        inputs, labels = train[k]
        out = model(**inputs, labels=labels)
        correct[k] = _greedy_matches(out.logits, labels)
        if all(correct):
            break
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        unseen = all(_greedy_matches(model(**inputs).logits, labels) for inputs, labels in held_out)
    if not all(correct) or not unseen:
        raise RuntimeError(f"the tiny reasoner did not fit in {max_steps} steps (unseen scenes ok: {unseen})")
    return step


def _greedy_matches(logits, labels) -> bool:
    """True when the argmax at every answer position is the next answer token."""
    predicted, target = logits[0, :-1].argmax(-1), labels[0, 1:]
    keep = target != -100
    return bool((predicted[keep] == target[keep]).all())


def tiny_reasoner_path(fitted: bool = True) -> Path:
    """A saved tiny Qwen2.5-VL (model + processor), built on first use.

    ``fitted=True`` also teaches it ``TINY_ANSWERS`` (about a minute on CPU; for the demo and the node's tiny preset);
    ``fitted=False`` keeps the random weights (seconds; enough for tests of inputs and parsing).
    """

    def build(folder: Path) -> None:
        LOG.info("building the tiny Qwen2.5-VL reasoner in %s", folder)
        tokenizer = build_tokenizer()
        processor = build_processor(tokenizer)
        model = build_model(tokenizer)
        if fitted:
            LOG.info("fitting the tiny reasoner to answer in the protocol format (about a minute on CPU)")
            LOG.info("tiny reasoner fitted in %d steps", fit_answers(model, processor))
        model.save_pretrained(folder)
        processor.save_pretrained(folder)

    kind = "fitted" if fitted else "random"
    return build_once(f"tiny-qwen2_5_vl-{kind}-{TINY_VERSION}", build)


# --- segmenter ------------------------------------------------------------------------------------


def tiny_segmenter_config(**overrides) -> SegmenterConfig:
    """A ``SegmenterConfig`` for the tiny SAM2 checkpoint (built and saved on first use, < 1 s)."""

    def build(folder: Path) -> None:
        import torch
        from sam2.build_sam import build_sam2

        torch.manual_seed(SEED)
        model = build_sam2(TINY_SAM2_CONFIG, None, device="cpu", hydra_overrides_extra=list(TINY_SAM2_OVERRIDES))
        torch.save({"model": model.state_dict()}, folder / "sam2_tiny.pt")

    folder = build_once(f"tiny-sam2-{TINY_VERSION}", build)
    fields = {
        "model": str(folder / "sam2_tiny.pt"),
        "config": TINY_SAM2_CONFIG,
        "overrides": list(TINY_SAM2_OVERRIDES),
        "device": "cpu",
    }
    fields.update(overrides)
    return SegmenterConfig(**fields)


def random_sam2_checkpoint(config: str) -> Path:
    """Random weights for an unmodified sam2 config at its real size (benchmarks: speed, not masks), cached."""

    def build(folder: Path) -> None:
        import torch
        from sam2.build_sam import build_sam2

        torch.manual_seed(SEED)
        torch.save({"model": build_sam2(config, None, device="cpu").state_dict()}, folder / "sam2_random.pt")

    return build_once(f"random-{Path(config).stem}-{TINY_VERSION}", build) / "sam2_random.pt"
