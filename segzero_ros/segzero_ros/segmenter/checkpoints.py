"""SAM2 checkpoints and configs: which config a checkpoint needs, where its file is, building the model.

Every backend and the tracker load SAM2 through here (the ``sam2`` package's own builder); config names may
be given short (``sam2.1_hiera_t``, ``sam2_hiera_l``) or as sam2 knows them (``configs/sam2.1/sam2.1_hiera_t.yaml``).
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

from segzero_ros.segmenter.base import SegmenterConfig

LOG = logging.getLogger(__name__)
# sam2's modules use torch.jit.script, which torch now announces as deprecated on every load: nothing a user can act on.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

_SHORT_CONFIG = re.compile(r"^(sam2(?:\.1)?)_hiera_(t|s|b\+|l)(?:\.yaml)?$")


def sam2_config_name(name: str) -> str:
    """``sam2.1_hiera_t`` (or with ``.yaml``) → ``configs/sam2.1/sam2.1_hiera_t.yaml``; other names as given."""
    match = _SHORT_CONFIG.match(name)
    if match is None:
        return name
    version, size = match.groups()
    return f"configs/{version}/{version}_hiera_{size}.yaml"


# Config for a local checkpoint whose file name follows Meta's naming (sam2_hiera_large.pt, sam2.1_hiera_t.pt, ...).
_SIZE_SUFFIX = {"tiny": "t", "t": "t", "small": "s", "s": "s", "base_plus": "b+", "b+": "b+", "large": "l", "l": "l"}
_CKPT_NAME = re.compile(r"(sam2(?:\.1)?)_hiera_(tiny|small|base_plus|large|t|s|b\+|l)\b")


def config_for_checkpoint(path: str) -> str:
    """The sam2 config name that matches a checkpoint file named like Meta's releases."""
    match = _CKPT_NAME.search(Path(path).name)
    if match is None:
        raise ValueError(
            f"cannot tell the SAM2 config of {path!r} from its name; give it explicitly "
            "(e.g. configs/sam2.1/sam2.1_hiera_l.yaml)"
        )
    version, size = match.groups()
    return f"configs/{version}/{version}_hiera_{_SIZE_SUFFIX[size]}.yaml"


def resolve_checkpoint(config: SegmenterConfig) -> tuple[str, str]:
    """(sam2 config name, local checkpoint path) for a Hugging Face id or a local file; the config's full name
    even when it was given short."""
    from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES

    if Path(config.model).exists():
        return sam2_config_name(config.config or config_for_checkpoint(config.model)), config.model
    if config.model in HF_MODEL_ID_TO_FILENAMES:
        from huggingface_hub import hf_hub_download

        from segzero_ros.hub import local_only

        config_name, filename = HF_MODEL_ID_TO_FILENAMES[config.model]
        LOG.info("fetching %s/%s (Hugging Face hub or its local cache)", config.model, filename)
        local = local_only(config.model, filename, config.local_files_only)
        path = hf_hub_download(repo_id=config.model, filename=filename, local_files_only=local)
        return sam2_config_name(config.config or config_name), path
    raise FileNotFoundError(
        f"SAM2 model {config.model!r} is neither a local checkpoint nor one of the known ids: "
        f"{', '.join(sorted(HF_MODEL_ID_TO_FILENAMES))}"
    )


def load_sam2(config: SegmenterConfig, device: str):
    """Build the SAM2 model through the ``sam2`` package's own loader (config + checkpoint)."""
    from sam2.build_sam import build_sam2

    config_name, checkpoint = resolve_checkpoint(config)
    return build_sam2(config_name, checkpoint, device=device, hydra_overrides_extra=list(config.overrides))


def backbone_feature_sizes(image_size: int) -> list[tuple[int, int]]:
    """The predictor's feature-map sizes for an input size (its hard-coded list assumes 1024)."""
    return [(image_size // 4, image_size // 4), (image_size // 8, image_size // 8), (image_size // 16,) * 2]
