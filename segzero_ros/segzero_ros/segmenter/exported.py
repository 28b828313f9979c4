"""What the backends running our exported graphs share: SAM2's transforms around an encoder and a decoder.

A subclass runs the graphs (``run_encoder``, ``run_decoder``); pre- and post-processing are SAM2's own
``SAM2Transforms``, so masks match the torch backend's whatever runs the graphs.
"""

from __future__ import annotations

import abc

import numpy as np

from segzero_ros.protocol import Target
from segzero_ros.segmenter.base import Segment, Segmenter, SegmenterConfig, check_rgb


class ExportedSegmenter(Segmenter):
    """SAM2 as two graphs: ``set_image`` runs the encoder once per frame, ``predict`` the decoder per target."""

    def __init__(self, config: SegmenterConfig, image_size: int) -> None:
        from sam2.utils.transforms import SAM2Transforms

        self.config = config
        self.image_size = image_size
        self.transforms = SAM2Transforms(resolution=image_size, mask_threshold=config.mask_threshold)
        self._features: dict[str, np.ndarray] | None = None
        self._orig_hw: tuple[int, int] = (0, 0)

    @abc.abstractmethod
    def run_encoder(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image_embed, high_res_0, high_res_1) for a 1×3×S×S float32 image."""

    @abc.abstractmethod
    def run_decoder(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(low-res mask logits 1×M×h×w, predicted IoUs 1×M) for the decoder's named inputs."""

    def set_image(self, rgb: np.ndarray) -> None:
        check_rgb(rgb)
        image = self.transforms(rgb)[None].numpy().astype(np.float32)
        embed, hr0, hr1 = self.run_encoder(image)
        self._features = {"image_embed": embed, "high_res_0": hr0, "high_res_1": hr1}
        self._orig_hw = (int(rgb.shape[0]), int(rgb.shape[1]))

    def prompt_arrays(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's (1×N×2 coords, 1×N labels): box corners (2, 3) then points (1), in input pixels."""
        import torch

        box = self.transforms.transform_boxes(
            torch.as_tensor(target.bbox, dtype=torch.float32), normalize=True, orig_hw=self._orig_hw
        ).reshape(-1, 2)
        coords = [box]
        if target.points:
            points = torch.as_tensor(np.asarray(target.points, dtype=np.float32).reshape(-1, 2))
            coords.append(self.transforms.transform_coords(points, normalize=True, orig_hw=self._orig_hw))
        coords_np = torch.cat(coords)[None].numpy().astype(np.float32)
        labels = np.array([[2, 3] + [1] * len(target.points)], dtype=np.int32)
        return coords_np, labels

    def predict_logits(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """(low-res mask logits 1×M×h×w, predicted IoUs 1×M) for one target on the current image."""
        if self._features is None:
            raise RuntimeError("set_image must come before predict")
        coords, labels = self.prompt_arrays(target)
        return self.run_decoder({**self._features, "point_coords": coords, "point_labels": labels})

    def predict(self, targets: list[Target]) -> list[Segment]:
        import torch

        out = []
        for target in targets:
            low_res, iou = self.predict_logits(target)
            masks = self.transforms.postprocess_masks(torch.from_numpy(np.ascontiguousarray(low_res)), self._orig_hw)
            best = int(np.argsort(iou[0])[::-1][0])
            mask = (masks[0, best] > self.config.mask_threshold).numpy()
            out.append(Segment(mask=mask, score=float(iou[0, best])))
        return out

    def close(self) -> None:
        self._features = None
