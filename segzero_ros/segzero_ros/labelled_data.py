"""Labelled frames (an image, its instance labels and what each value is) written as datasets that labelling tools
and ``training/`` read: COCO (RLE masks, tracks in CVAT's attribute form) and Label Studio tasks (brush masks).
No ROS here: ``ros/replay_output.py`` reads the frames out of a ``segzero replay`` output."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# COCO's own layout (what CVAT exports and imports, and datumaro reads): images/<subset>/ and
# annotations/instances_<subset>.json
SUBSET = "default"
IMAGES = f"images/{SUBSET}"  # the exported frames, under the export folder
COCO_FILE = f"annotations/instances_{SUBSET}.json"


@dataclass(frozen=True)
class LabelledTarget:
    """One target on a frame: its ``value`` in the frame's labels, its track id ``<goal_id>:<k>`` (the same on every
    frame of a track), the goal it answers, the model's label for it, its score, and whether the frame is the
    goal's answer or a tracked one."""

    value: int
    track_id: str
    goal_id: str
    goal: str
    label: str
    score: float
    source: str  # "answer" or "tracked"


@dataclass
class LabelledFrame:
    """A camera frame with its labels image (uint16, 0 background) and the targets drawn in it."""

    stamp: tuple[int, int]  # (sec, nanosec) of the camera frame
    frame_id: str
    rgb: np.ndarray
    labels: np.ndarray
    targets: list[LabelledTarget] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        """The image's name in ``IMAGES`` (COCO's ``file_name``)."""
        return f"{self.stamp[0]}_{self.stamp[1]:09d}.png"

    def mask(self, target: LabelledTarget) -> np.ndarray:
        return self.labels == target.value


def write_images(frames: Sequence[LabelledFrame], out: Path) -> None:
    """Each frame's image as a lossless PNG under ``out/images``."""
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    for frame in frames:
        Image.fromarray(frame.rgb).save(out / IMAGES / frame.file_name)


def write_previews(frames: Sequence[LabelledFrame], out: Path) -> None:
    """Each frame with its masks drawn (tinted, each mask's box outlined), as ``out/preview/<stamp>.png``: what a
    labelling tool shows when it opens the export."""
    from segzero_ros.instances import mask_box
    from segzero_ros.overlay import draw_overlay
    from segzero_ros.protocol import Target

    (out / "preview").mkdir(parents=True, exist_ok=True)
    for frame in frames:
        masks = [frame.mask(t) for t in frame.targets]
        boxes = [Target(bbox=tuple(int(v) for v in mask_box(m)), points=[]) for m in masks]
        image = draw_overlay(frame.rgb, boxes, masks)
        Image.fromarray(image).save(out / "preview" / frame.file_name)


def coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """A bool mask as COCO's compressed RLE (``counts`` a string, as COCO JSON stores it)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_dataset(frames: Sequence[LabelledFrame]) -> dict[str, Any]:
    """COCO instance annotations of ``frames``: one category per goal text, one annotation per target with a mask
    (RLE, box, area), the goal as ``caption`` and ``goal``, and its track in CVAT's attribute form."""
    from pycocotools import mask as mask_utils

    categories: dict[str, int] = {}
    tracks: dict[str, int] = {}
    images, annotations = [], []
    for image_id, frame in enumerate(frames, start=1):
        height, width = frame.labels.shape
        images.append(
            {
                "id": image_id,
                "file_name": frame.file_name,
                "width": int(width),
                "height": int(height),
                "ros_stamp": {"sec": frame.stamp[0], "nanosec": frame.stamp[1]},
                "frame_id": frame.frame_id,
            }
        )
        for target in frame.targets:
            mask = frame.mask(target)
            if not mask.any():
                continue
            rle = coco_rle(mask)
            box = mask_utils.toBbox({**rle, "counts": rle["counts"].encode("ascii")})
            category = categories.setdefault(target.goal, len(categories) + 1)
            track = tracks.setdefault(target.track_id, len(tracks) + 1)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": rle,
                    "bbox": [round(float(v), 2) for v in box],
                    "area": int(mask.sum()),
                    "iscrowd": 0,
                    "caption": target.goal,
                    "goal": target.goal,
                    "goal_id": target.goal_id,
                    "track_id": target.track_id,
                    "label": target.label,
                    "score": round(float(target.score), 4),
                    "source": target.source,
                    # CVAT's COCO import: annotations sharing attributes.track_id form one track.
                    "attributes": {"track_id": track, "keyframe": target.source == "answer", "occluded": False},
                }
            )
    cats = [{"id": i, "name": goal, "supercategory": "goal"} for goal, i in categories.items()]
    info = {"description": "segzero export", "version": "1.0"}
    return {"info": info, "images": images, "annotations": annotations, "categories": cats}


def labelstudio_tasks(frames: Sequence[LabelledFrame], image_root: str = "") -> list[dict[str, Any]]:
    """Label Studio import tasks: one per frame, its targets as brush masks (Label Studio's RLE) labelled with the
    goal text, as predictions a person corrects (``image_root``: what the image paths start with in Label
    Studio, e.g. ``/data/local-files/?d=export``)."""
    from label_studio_converter.brush import mask2rle

    tasks = []
    for frame in frames:
        height, width = frame.labels.shape
        results = []
        for target in frame.targets:
            mask = frame.mask(target)
            if not mask.any():
                continue
            results.append(
                {
                    "id": target.track_id.replace(":", "_"),
                    "type": "brushlabels",
                    "from_name": "label",
                    "to_name": "image",
                    "original_width": int(width),
                    "original_height": int(height),
                    "image_rotation": 0,
                    "value": {
                        "format": "rle",
                        "rle": mask2rle(mask.astype(np.uint8) * 255),
                        "brushlabels": [target.goal],
                    },
                    "score": round(float(target.score), 4),
                }
            )
        path = f"{IMAGES}/{frame.file_name}"
        path = f"{image_root.rstrip('/')}/{path}" if image_root else path
        tasks.append(
            {
                "data": {"image": path, "ros_stamp": {"sec": frame.stamp[0], "nanosec": frame.stamp[1]}},
                "predictions": [{"model_version": "segzero", "result": results}],
            }
        )
    return tasks


LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="label" toName="image">
{labels}
  </BrushLabels>
</View>
"""


def labelstudio_config(goals: Iterable[str]) -> str:
    """The labelling configuration that shows the tasks' brush masks (one label per goal text)."""
    from xml.sax.saxutils import quoteattr

    return LABEL_CONFIG.format(labels="\n".join(f"    <Label value={quoteattr(g)}/>" for g in sorted(set(goals))))


def write_coco(frames: Sequence[LabelledFrame], out: Path) -> Path:
    """Images and annotations in COCO's layout under ``out`` (``IMAGES``, ``COCO_FILE``); the annotation file."""
    write_images(frames, out)
    path = out / COCO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco_dataset(frames), indent=1) + "\n")
    return path


def write_labelstudio(frames: Sequence[LabelledFrame], out: Path, image_root: str = "") -> Path:
    """Images, ``tasks.json`` and the ``label_config.xml`` to create the project with, under ``out``; the tasks."""
    write_images(frames, out)
    path = out / "tasks.json"
    path.write_text(json.dumps(labelstudio_tasks(frames, image_root)) + "\n")
    (out / "label_config.xml").write_text(labelstudio_config(t.goal for f in frames for t in f.targets))
    return path
