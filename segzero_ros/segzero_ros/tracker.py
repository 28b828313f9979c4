"""Keep the masks on a goal's targets between reasoning runs with SAM2's memory, one camera frame at a time.

``Tracker(model).start(rgb, targets)`` seeds SAM2's memory with the frame and the reasoner's box + points of
every target (the conditioning frame); ``step(rgb)`` gives each target's mask on a new frame from memory
alone. The memory is a window: the seed frame plus the newest ``window`` frames (what SAM2 reads: its
``num_maskmem`` mask memories and ``max_obj_ptrs_in_encoder`` object pointers), so cost and memory stay flat
however long the track runs. Each target's confidence is SAM2's object score (sigmoid of its object-presence
logit); below ``min_score`` for ``lost_frames`` frames in a row the target is lost. Built on ``SAM2Base.track_step``,
the step SAM2's own video predictor runs, fed frame by frame instead of from a preloaded video.
``load_tracking_model(..., input_scale)`` may build that SAM2 for a smaller input side (same weights): a step
then costs a fraction of a re-segmentation, which at SAM2's own side it does not.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from segzero_ros.protocol import Target

LOG = logging.getLogger(__name__)

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])


@dataclass
class TrackStep:
    """One frame's tracking output: a mask, a score and a state per target."""

    frame_index: int
    masks: list[np.ndarray]
    scores: list[float]
    states: list[str]  # "tracking" or "lost"
    lost: bool = False  # every target is lost


@dataclass
class _Track:
    """One set of objects followed together (a goal's targets): its SAM2 memory, frame count and loss counters."""

    size: tuple[int, int]  # (width, height) of the frames it follows
    low_counts: list[int]  # frames in a row each target scored below min_score
    frame_index: int = 0  # frames since its conditioning frame
    output_dict: dict[str, dict[int, Any]] = field(
        default_factory=lambda: {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    )


SINGLE = ""  # the key of the one track that ``start`` / ``step`` drive


def tracking_image_size(native: int, input_scale: float) -> int:
    """SAM2's input side for tracking: ``input_scale`` × its own, a multiple of 32 (Hiera's coarsest stride), ≥ 128."""
    if not 0 < input_scale <= 1:
        raise ValueError(f"input_scale must be in (0, 1], got {input_scale}")
    return native if input_scale == 1 else max(128, round(native * input_scale / 32) * 32)


def _is_image_size(override: str) -> bool:
    return override.lstrip("+~").startswith("model.image_size=")


def load_tracking_model(config: Any, device: str, input_scale: float = 1.0):
    """SAM2 built as the ``sam2`` package builds it for video (its post-processing included).

    ``input_scale`` < 1 builds it for a smaller input (same weights: Hiera's position embeddings and the memory
    attention's rotary encoding follow the feature size); 1 is SAM2's own video predictor, exactly.
    """
    from hydra import compose
    from sam2.build_sam import build_sam2_video_predictor

    from segzero_ros.segmenter.checkpoints import resolve_checkpoint

    config_name, checkpoint = resolve_checkpoint(config)
    overrides = list(config.overrides)
    if input_scale != 1:
        native = int(compose(config_name=config_name, overrides=overrides).model.image_size)
        size = tracking_image_size(native, input_scale)
        overrides = [o for o in overrides if not _is_image_size(o)] + [f"++model.image_size={size}"]
    return build_sam2_video_predictor(config_name, checkpoint, device=device, hydra_overrides_extra=overrides)


class Tracker:
    """See the module docstring. Not thread-safe: one caller (the node's worker) drives it.

    Several tracks may run at once, each under its own key (a goal id): ``add`` / ``remove`` / ``step_all``. Each
    keeps its own memory and frame count, as SAM2's video predictor keeps objects independent; a frame's image
    encoding is computed once and shared by all. ``start`` / ``step`` drive one track alone.
    """

    def __init__(self, model: Any, min_score: float = 0.5, lost_frames: int = 5) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.window = max(int(model.num_maskmem), int(getattr(model, "max_obj_ptrs_in_encoder", 16)))
        self.min_score, self.lost_frames = min_score, lost_frames
        self.tracks: dict[str, _Track] = {}  # in the order they were added

    @property
    def active(self) -> bool:
        return bool(self.tracks)

    def stop(self) -> None:
        """Forget every track."""
        self.tracks = {}

    def remove(self, key: str) -> None:
        """Forget the track under ``key`` (if any); the others go on unchanged."""
        self.tracks.pop(key, None)

    # --- frames --------------------------------------------------------------------------------------

    def _features(self, rgb: np.ndarray):
        """SAM2's backbone features of ``rgb`` for one object (``_expand`` them for more, as its video predictor
        does)."""
        size = self.model.image_size
        # Resized and normalised as SAM2's video loader does (PIL's default resampling, ImageNet statistics).
        image = np.asarray(Image.fromarray(rgb).resize((size, size)), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(image).permute(2, 0, 1)
        tensor = ((tensor - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None])[None].to(self.device)
        backbone_out = self.model.forward_image(tensor)
        _, feats, pos, sizes = self.model._prepare_backbone_features(backbone_out)
        return feats, pos, sizes

    @staticmethod
    def _expand(features, batch: int):
        feats, pos, sizes = features
        return [x.expand(-1, batch, -1) for x in feats], [x.expand(-1, batch, -1) for x in pos], sizes

    def _prompts(self, targets: list[Target], width: int, height: int) -> dict[str, torch.Tensor]:
        """Box corners (labels 2, 3) then clicks (label 1) per target, in the model's input frame; padded with -1."""
        size = self.model.image_size
        rows = []
        for target in targets:
            x1, y1, x2, y2 = target.bbox
            rows.append([((x1, y1), 2), ((x2, y2), 3)] + [((x, y), 1) for x, y in target.points])
        longest = max(len(r) for r in rows)
        coords = np.zeros((len(rows), longest, 2), np.float32)
        labels = np.full((len(rows), longest), -1, np.int32)
        for i, row in enumerate(rows):
            for j, ((x, y), label) in enumerate(row):
                coords[i, j] = (x / width * size, y / height * size)
                labels[i, j] = label
        return {
            "point_coords": torch.from_numpy(coords).to(self.device),
            "point_labels": torch.from_numpy(labels).to(self.device),
        }

    def _outputs(self, out: dict[str, Any], width: int, height: int) -> tuple[list[np.ndarray], list[float]]:
        logits = torch.nn.functional.interpolate(
            out["pred_masks"].float(), size=(height, width), mode="bilinear", align_corners=False
        )
        masks = [m[0].cpu().numpy() > 0 for m in logits]
        scores = torch.sigmoid(out["object_score_logits"].float()).reshape(-1).tolist()
        return masks, scores

    @torch.inference_mode()
    def add(self, key: str, rgb: np.ndarray, targets: list[Target]) -> TrackStep:
        """Seed a track under ``key`` (replacing one of that key) with ``rgb`` and the targets' prompts; this
        frame's masks (frame index 0). Every track follows the same camera: frames of one size."""
        if not targets:
            raise ValueError("nothing to track: no targets")
        height, width = rgb.shape[:2]
        for other_key, other in self.tracks.items():
            if other_key != key and other.size != (width, height):
                w, h = other.size
                raise ValueError(f"frame size {width}x{height} differs from the tracked frames' {w}x{h}")
        track = _Track(size=(width, height), low_counts=[0] * len(targets))
        feats, pos, sizes = self._expand(self._features(rgb), len(targets))
        out = self.model.track_step(
            frame_idx=0,
            is_init_cond_frame=True,
            current_vision_feats=feats,
            current_vision_pos_embeds=pos,
            feat_sizes=sizes,
            point_inputs=self._prompts(targets, width, height),
            mask_inputs=None,
            output_dict=track.output_dict,
            num_frames=1,
        )
        track.output_dict["cond_frame_outputs"][0] = _compact(out)
        self.tracks.pop(key, None)
        self.tracks[key] = track
        masks, scores = self._outputs(out, width, height)
        return TrackStep(0, masks, scores, ["tracking"] * len(targets))

    @torch.inference_mode()
    def step_all(self, rgb: np.ndarray) -> dict[str, TrackStep]:
        """Every track's masks on the next frame, from its memory alone: the image is encoded once, each track's
        memory attention runs on its own memory, and SAM2's heads and memory encoder run once for every object of
        every track (a batch, as its video predictor batches the objects of one track)."""
        if not self.tracks:
            raise RuntimeError("the tracker has no target: call add() or start() first")
        height, width = rgb.shape[:2]
        for track in self.tracks.values():
            if (width, height) != track.size:
                raise ValueError(f"frame size changed from {track.size[0]}x{track.size[1]} to {width}x{height}")
        features = self._features(rgb)
        inputs = []
        with _capturing_memory_attention(self.model, inputs):  # each track's memory, gathered as SAM2 gathers it
            for track in self.tracks.values():
                track.frame_index += 1
                feats, pos, sizes = self._expand(features, len(track.low_counts))
                self.model._prepare_memory_conditioned_features(
                    frame_idx=track.frame_index,
                    is_init_cond_frame=False,
                    current_vision_feats=feats[-1:],
                    current_vision_pos_embeds=pos[-1:],
                    feat_sizes=sizes[-1:],
                    output_dict=track.output_dict,
                    num_frames=track.frame_index + 1,
                )
        if len(inputs) != len(self.tracks):  # a SAM2 that conditions without memory attention (num_maskmem 0)
            raise RuntimeError("this SAM2 runs no memory attention on tracked frames: it cannot track")
        conditioned = self._memory_attention(inputs, features[2][-1])
        outs = self._heads_and_memory(features, torch.cat(conditioned, dim=0))
        steps, first = {}, 0
        for key, track in self.tracks.items():
            last = first + len(track.low_counts)
            out = {name: _rows(value, first, last) for name, value in outs.items()}
            steps[key] = self._record(track, out, width, height)
            first = last
        return steps

    def _memory_attention(self, inputs: list[dict[str, Any]], size: tuple[int, int]) -> list[torch.Tensor]:
        """SAM2's memory attention for each track's gathered inputs, in one batch for the tracks whose memories
        have the same shape (most once their windows are full); each track's memory-conditioned features."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, call in enumerate(inputs):
            shape = (call["curr"][0].shape[0], call["memory"].shape[0], call["num_obj_ptr_tokens"])
            groups.setdefault(shape, []).append(i)
        out: list[torch.Tensor | None] = [None] * len(inputs)
        height, width = size
        for members in groups.values():
            calls = [inputs[i] for i in members]
            fused = self.model.memory_attention(
                curr=[torch.cat([c["curr"][0] for c in calls], dim=1)],
                curr_pos=[torch.cat([c["curr_pos"][0] for c in calls], dim=1)],
                memory=torch.cat([c["memory"] for c in calls], dim=1),
                memory_pos=torch.cat([c["memory_pos"] for c in calls], dim=1),
                num_obj_ptr_tokens=calls[0]["num_obj_ptr_tokens"],
            )
            first = 0
            for i, call in zip(members, calls, strict=True):
                batch = call["memory"].shape[1]
                rows = fused[:, first : first + batch]  # (HW)BC => BCHW, as SAM2 reshapes it
                out[i] = rows.permute(1, 2, 0).reshape(batch, -1, height, width)
                first += batch
        return out

    def _heads_and_memory(self, features, conditioned: torch.Tensor) -> dict[str, Any]:
        """SAM2's mask heads and memory encoder on memory-conditioned features (what ``track_step`` runs after
        the memory attention on a frame without prompts), for a batch of objects."""
        model = self.model
        feats, _, sizes = self._expand(features, conditioned.shape[0])
        pairs = zip(feats[:-1], sizes[:-1], strict=True)
        high_res = [x.permute(1, 2, 0).view(x.size(1), x.size(2), *s) for x, s in pairs]
        _, _, _, low_res, high_res_masks, obj_ptr, object_score_logits = model._forward_sam_heads(
            backbone_features=conditioned,
            point_inputs=None,
            mask_inputs=None,
            high_res_features=high_res or None,
            multimask_output=model._use_multimask(False, None),
        )
        out = {"pred_masks": low_res, "obj_ptr": obj_ptr, "object_score_logits": object_score_logits}
        if model.num_maskmem > 0:
            out["maskmem_features"], out["maskmem_pos_enc"] = model._encode_new_memory(
                current_vision_feats=feats,
                feat_sizes=sizes,
                pred_masks_high_res=high_res_masks,
                object_score_logits=object_score_logits,
                is_mask_from_pts=False,
            )
        return out

    def _record(self, track: _Track, out: dict[str, Any], width: int, height: int) -> TrackStep:
        """Keep a frame's output in the track's memory window; its masks, scores and states."""
        index, memory = track.frame_index, track.output_dict
        memory["non_cond_frame_outputs"][index] = _compact(out)
        for old in [i for i in memory["non_cond_frame_outputs"] if i <= index - self.window]:
            del memory["non_cond_frame_outputs"][old]  # SAM2 never reads further back: memory stays flat
        masks, scores = self._outputs(out, width, height)
        states = []
        for k, score in enumerate(scores):
            track.low_counts[k] = track.low_counts[k] + 1 if score < self.min_score else 0
            states.append("lost" if track.low_counts[k] >= self.lost_frames else "tracking")
        return TrackStep(index, masks, scores, states, lost=all(s == "lost" for s in states))

    def start(self, rgb: np.ndarray, targets: list[Target]) -> TrackStep:
        """One track alone: forget every track, seed one with ``rgb`` and the targets (frame index 0)."""
        self.stop()
        return self.add(SINGLE, rgb, targets)

    def step(self, rgb: np.ndarray) -> TrackStep:
        """The one track's masks on the next frame (``start``'s track)."""
        if len(self.tracks) > 1:
            raise RuntimeError(f"{len(self.tracks)} tracks run: use step_all()")
        (step,) = self.step_all(rgb).values()
        return step

    def memory_frames_of(self, key: str) -> int:
        """Frames held in the memory of the track under ``key`` (its seed plus its window)."""
        track = self.tracks.get(key)
        if track is None:
            return 0
        return len(track.output_dict["cond_frame_outputs"]) + len(track.output_dict["non_cond_frame_outputs"])

    @property
    def memory_frames(self) -> int:
        """Frames held in memory, every track together."""
        return sum(self.memory_frames_of(key) for key in self.tracks)


@contextlib.contextmanager
def _capturing_memory_attention(model: Any, inputs: list[dict[str, Any]]):
    """While inside, ``model.memory_attention`` records its inputs in ``inputs`` instead of running (its output
    stands in as an empty tensor of the right shape, for ``Tracker._memory_attention`` to fill)."""

    def capture(**call: Any) -> torch.Tensor:
        inputs.append(call)
        return torch.empty_like(call["curr"][0])

    model.__dict__["memory_attention"] = capture  # shadows the submodule for this instance only
    try:
        yield
    finally:
        del model.__dict__["memory_attention"]


def _rows(value: Any, first: int, last: int) -> Any:
    """Objects ``first:last`` of a batched output (a tensor, or a list of tensors such as positional encodings)."""
    if isinstance(value, list):
        return [v[first:last] for v in value]
    return value[first:last]


def _compact(out: dict[str, Any]) -> dict[str, Any]:
    """What later frames read from a frame's output, as SAM2's video predictor keeps it (mask memories in
    bfloat16: half the memory, and the same numbers its own tracking reads)."""
    keep = ("maskmem_features", "maskmem_pos_enc", "pred_masks", "obj_ptr", "object_score_logits")
    compact = {k: out[k] for k in keep if k in out}
    if compact.get("maskmem_features") is not None:
        compact["maskmem_features"] = compact["maskmem_features"].to(torch.bfloat16)
    return compact
