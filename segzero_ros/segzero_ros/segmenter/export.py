"""Our ONNX export of SAM2 for image segmentation: an image encoder graph and a prompt/mask decoder graph.

- ``encoder.onnx``: ``image`` (1×3×S×S, normalised as SAM2's transforms do) → ``image_embed``,
  ``high_res_0``, ``high_res_1`` (exactly the features ``SAM2ImagePredictor.set_image`` keeps);
- ``decoder.onnx``: those features + ``point_coords`` (1×N×2, in the S×S input frame, the box first as two
  corners labelled 2 and 3) + ``point_labels`` (1×N) → ``low_res_masks`` (1×M×S/4×S/4 logits) and
  ``iou_predictions`` (1×M); N is dynamic, M is 3 with ``multimask_output`` (SAM2's default), else 1.

Each graph carries metadata (``segzero.*``): the sam2 config and overrides, the checkpoint's sha256, the
input size and ``multimask_output``, so a backend can refuse a graph that does not match its model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

LOG = logging.getLogger(__name__)

OPSET = 17
ENCODER_FILE, DECODER_FILE, INFO_FILE = "encoder.onnx", "decoder.onnx", "export.json"


@dataclass
class ExportInfo:
    """What an export folder holds and what it was made from (also written as ``export.json``)."""

    sam2_config: str
    overrides: list[str]
    checkpoint_sha256: str
    image_size: int
    multimask_output: bool
    opset: int = OPSET
    format_version: int = 1

    def metadata(self) -> dict[str, str]:
        return {f"segzero.{k}": json.dumps(v) for k, v in asdict(self).items()}


class ImageEncoder(nn.Module):
    """SAM2's image path as the predictor runs it: backbone, feature preparation, no-memory embedding."""

    def __init__(self, sam2_model: nn.Module) -> None:
        super().__init__()
        self.model = sam2_model
        size = sam2_model.image_size
        self.feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16, size // 16)]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        backbone_out = self.model.forward_image(image)
        _, vision_feats, _, _ = self.model._prepare_backbone_features(backbone_out)
        if self.model.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + self.model.no_mem_embed
        feats = [
            feat.permute(1, 2, 0).reshape(1, -1, h, w)
            for feat, (h, w) in zip(vision_feats, self.feat_sizes, strict=True)
        ]
        return feats[2], feats[0], feats[1]


class PromptDecoder(nn.Module):
    """SAM2's prompt encoder + mask decoder for one object, points (box corners first) already in input pixels."""

    def __init__(self, sam2_model: nn.Module, multimask_output: bool) -> None:
        super().__init__()
        self.model = sam2_model
        self.multimask_output = multimask_output

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_0: torch.Tensor,
        high_res_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sparse, dense = self.model.sam_prompt_encoder(points=(point_coords, point_labels), boxes=None, masks=None)
        low_res_masks, iou_predictions, _, _ = self.model.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=self.multimask_output,
            repeat_image=False,
            high_res_features=[high_res_0, high_res_1],
        )
        return low_res_masks, iou_predictions


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def example_inputs(image_size: int, encoder: ImageEncoder, n_points: int = 3):
    """Inputs of the right shapes for tracing (and for parity checks)."""
    image = torch.randn(1, 3, image_size, image_size)
    with torch.no_grad():
        embed, hr0, hr1 = encoder(image)
    coords = torch.rand(1, n_points, 2) * image_size
    labels = torch.tensor([[2, 3] + [1] * (n_points - 2)], dtype=torch.int32)
    return image, (embed, hr0, hr1, coords, labels)


def export_sam2(
    sam2_model: nn.Module,
    out_dir: str | Path,
    sam2_config: str,
    checkpoint: str | Path,
    overrides: list[str] | None = None,
    multimask_output: bool = True,
) -> ExportInfo:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``export.json`` for a loaded SAM2 model; checked by onnx."""
    import onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = sam2_model.float().eval().cpu()
    info = ExportInfo(
        sam2_config=sam2_config,
        overrides=list(overrides or []),
        checkpoint_sha256=file_sha256(checkpoint),
        image_size=int(model.image_size),
        multimask_output=multimask_output,
    )
    encoder, decoder = ImageEncoder(model).eval(), PromptDecoder(model, multimask_output).eval()
    image, decoder_inputs = example_inputs(info.image_size, encoder)
    start = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            (image,),
            str(out / ENCODER_FILE),
            input_names=["image"],
            output_names=["image_embed", "high_res_0", "high_res_1"],
            opset_version=OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            decoder,
            decoder_inputs,
            str(out / DECODER_FILE),
            input_names=["image_embed", "high_res_0", "high_res_1", "point_coords", "point_labels"],
            output_names=["low_res_masks", "iou_predictions"],
            dynamic_axes={"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
            opset_version=OPSET,
            dynamo=False,
        )
    for name in (ENCODER_FILE, DECODER_FILE):
        graph = onnx.load(str(out / name))
        for key, value in info.metadata().items():
            graph.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
        onnx.checker.check_model(graph)
        onnx.save(graph, str(out / name))
    (out / INFO_FILE).write_text(json.dumps(asdict(info), indent=2) + "\n")
    LOG.info(
        "exported SAM2 (%s, input %d) to %s in %.1f s", sam2_config, info.image_size, out, time.perf_counter() - start
    )
    return info


def read_export_info(folder: str | Path) -> ExportInfo:
    """The ``export.json`` of an export folder (raises FileNotFoundError with the folder's name)."""
    path = Path(folder) / INFO_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a segzero SAM2 ONNX export (no {INFO_FILE})")
    return ExportInfo(**json.loads(path.read_text()))
