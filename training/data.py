"""Training and evaluation data in the reference's layout, from four sources.

A *row* is a dict with the reference training set's columns: ``id``, ``problem`` (the goal), ``solution``
(ground truth in the protocol's text format, in the 840×840 reasoner frame), ``image`` (PIL, 840×840),
``img_height``, ``img_width`` (the original size); evaluation rows also carry ``mask`` (bool H×W at the
original size). Sources: (a) the reference set (``load_reference_rows``: a local folder of parquet/JSON, or a
``datasets`` id when online), (b) ReasonSeg (``load_reasonseg``: the released parquet, or the original
image + polygon JSON folders), (c) ``synthetic_rows`` (coloured shapes with referring goals and exact
masks, offline), (d) ``rows_from_masks`` / ``coco_rows`` (any image + goal + mask set → training rows).

Ground truth from a mask, as the reference built it: bbox = the mask's extreme pixels; point 1 = the argmax
of the Euclidean distance transform (centre of the largest inscribed circle); the ``segzero`` point 2 = the
distance-transform argmax among mask pixels farther from point 1 than their median distance. We compute them
on the mask resized (nearest) to the 840×840 frame the images are pre-resized to, so points stay inside the
object; the reference's exact rescaling code is not public in the facts we hold.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from segzero_ros.protocol import build_prompt

REASONER_SIZE = 840
COLOURS = {
    "red": (210, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 210),
    "yellow": (230, 210, 40),
    "purple": (140, 50, 170),
    "orange": (240, 140, 30),
}
SHAPES = ("circle", "square", "triangle")


# --- ground truth from masks --------------------------------------------------------------------------


def mask_bbox(mask: np.ndarray) -> list[int]:
    """[x1, y1, x2, y2]: the mask's extreme pixels (inclusive)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("empty mask has no box")
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def mask_points(mask: np.ndarray) -> list[list[int]]:
    """[[x, y] of the largest inscribed circle's centre, [x, y] of the second point (far half of the mask)]."""
    from scipy.ndimage import distance_transform_edt

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("empty mask has no points")
    dist = distance_transform_edt(mask)
    y1, x1 = np.unravel_index(int(np.argmax(dist)), dist.shape)
    ys, xs = np.nonzero(mask)
    from_first = np.hypot(xs - x1, ys - y1)
    far = from_first > np.median(from_first)
    if not far.any():  # a one-pixel (or symmetric, degenerate) mask: the second point is the first
        return [[int(x1), int(y1)], [int(x1), int(y1)]]
    best = int(np.argmax(dist[ys[far], xs[far]]))
    return [[int(x1), int(y1)], [int(xs[far][best]), int(ys[far][best])]]


def segzero_solution(bbox: list[int], points: list[list[int]]) -> str:
    """The reference's ``segzero`` ground-truth string."""
    (x1, y1, x2, y2), (p1, p2) = bbox, points
    return f"<box>({x1},{y1}),({x2},{y2})</box><points>({p1[0]},{p1[1]}),({p2[0]},{p2[1]})</points>"


def multi_solution(objects: list[tuple[list[int], list[int]]]) -> str:
    """The reference's ``multi`` ground truth: a JSON list of ``{"bbox_2d", "point_2d"}``."""
    return json.dumps([{"bbox_2d": list(b), "point_2d": list(p)} for b, p in objects])


def to_reasoner_frame(mask: np.ndarray, size: int = REASONER_SIZE) -> np.ndarray:
    """The mask resized (nearest) to the square frame the reasoner sees."""
    return cv2.resize(np.asarray(mask, np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0


def solution_from_masks(masks: list[np.ndarray], protocol: str = "segzero", size: int = REASONER_SIZE) -> str:
    """Ground truth of one goal's object mask(s) at the original size, in the ``size``² frame."""
    framed = [to_reasoner_frame(m, size) for m in masks]
    if protocol == "segzero":
        if len(framed) != 1:
            raise ValueError(f"the segzero protocol has one object per goal, got {len(framed)}")
        return segzero_solution(mask_bbox(framed[0]), mask_points(framed[0]))
    return multi_solution([(mask_bbox(m), mask_points(m)[0]) for m in framed])


def rows_from_masks(
    samples: Iterable[tuple[np.ndarray, str, np.ndarray | list[np.ndarray]]],
    protocol: str = "segzero",
    size: int = REASONER_SIZE,
    id_prefix: str = "sample",
    resize: bool = True,
) -> list[dict[str, Any]]:
    """Training rows from (RGB image, goal, mask or list of masks) triples; empty masks are skipped.

    ``resize=False`` keeps ``image`` at its original size (evaluation rows: the pipeline resizes itself)."""
    rows = []
    for i, (rgb, goal, masks) in enumerate(samples):
        masks = [masks] if isinstance(masks, np.ndarray) else list(masks)
        if not masks or not all(np.asarray(m).any() for m in masks):
            continue
        union = np.logical_or.reduce([np.asarray(m, bool) for m in masks])
        image = Image.fromarray(np.asarray(rgb)).convert("RGB")
        rows.append(
            {
                "id": f"{id_prefix}-{i}",
                "problem": goal,
                "solution": solution_from_masks(masks, protocol, size),
                "image": image.resize((size, size), Image.BILINEAR) if resize else image,
                "img_height": int(rgb.shape[0]),
                "img_width": int(rgb.shape[1]),
                "mask": union,
            }
        )
    return rows


def coco_rows(
    annotation_file: str | Path,
    image_dir: str | Path,
    protocol: str = "segzero",
    limit: int | None = None,
    size: int = REASONER_SIZE,
    resize: bool = True,
):
    """Rows from COCO-style instance annotations (``pycocotools``); the goal is the referring sentence when the
    annotation has one (``sentences``/``caption``, RefCOCO-style; ``goal`` as ``segzero export`` writes it), else
    ``the <category name>``."""
    from pycocotools.coco import COCO

    coco = COCO(str(annotation_file))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}

    def samples() -> Iterator[tuple[np.ndarray, str, np.ndarray]]:
        for n, ann in enumerate(coco.loadAnns(coco.getAnnIds())):
            if limit is not None and n >= limit:
                return
            info = coco.loadImgs(ann["image_id"])[0]
            rgb = np.asarray(Image.open(Path(image_dir) / info["file_name"]).convert("RGB"))
            sentences = ann.get("sentences") or ([ann["caption"]] if ann.get("caption") else [])
            goal = sentences[0]["sent"] if sentences and isinstance(sentences[0], dict) else None
            goal = goal or (sentences[0] if sentences else ann.get("goal") or f"the {names[ann['category_id']]}")
            yield rgb, goal, coco.annToMask(ann).astype(bool)

    return rows_from_masks(samples(), protocol, size, id_prefix="coco", resize=resize)


def _png(image: Image.Image | np.ndarray) -> dict[str, Any]:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def write_rows(rows: list[dict[str, Any]], out: str | Path, size: int = REASONER_SIZE) -> Path:
    """Rows of ``rows_from_masks(..., resize=False)`` on disk, for ``--dataset_name`` and ``segzero eval``:
    ``train.parquet`` in the reference layout (the image at ``size``², its solution in that frame) and
    ``val.parquet`` as ReasonSeg's (the image at its own size, ``text``, ``mask``); the folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, val = [], []
    for row in rows:
        image = row["image"]
        sizes = {"img_height": row["img_height"], "img_width": row["img_width"]}
        square = image.resize((size, size), Image.BILINEAR)
        train.append({"id": row["id"], "problem": row["problem"], "solution": row["solution"], "image": _png(square)})
        train[-1].update(sizes)
        mask = np.asarray(row["mask"], bool)
        val.append({"image_id": row["id"], "ann_id": 0, "text": row["problem"], "image": _png(image), **sizes})
        val[-1]["mask"] = mask.tolist()
    pq.write_table(pa.Table.from_pylist(train), out / "train.parquet")
    pq.write_table(pa.Table.from_pylist(val), out / "val.parquet")
    return out


# --- synthetic set --------------------------------------------------------------------------------------


def _draw(mask: np.ndarray, shape: str, cx: int, cy: int, r: int) -> None:
    if shape == "circle":
        cv2.circle(mask, (cx, cy), r, 1, -1)
    elif shape == "square":
        cv2.rectangle(mask, (cx - r, cy - r), (cx + r, cy + r), 1, -1)
    else:
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(mask, [pts], 1)


def synthetic_scene(seed: int, width: int = 640, height: int = 480, n_objects: int = 4):
    """(RGB image, [(colour, shape, size word, bool mask)]) — distinct colour/shape pairs on a noisy table."""
    from segzero_ros.scenes import textured_background

    rng = np.random.default_rng(seed)
    rgb = textured_background(width, height, seed)
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    chosen = [pairs[i] for i in rng.choice(len(pairs), size=n_objects, replace=False)]
    occupied = np.zeros((height, width), bool)
    objects = []
    for colour, shape in chosen:
        for _ in range(50):  # place without overlap
            r = int(rng.integers(min(width, height) // 16, min(width, height) // 7))
            cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
            mask = np.zeros((height, width), np.uint8)
            _draw(mask, shape, cx, cy, r)
            if not (occupied & (mask > 0)).any():
                break
        else:
            continue
        occupied |= mask > 0
        rgb[mask > 0] = COLOURS[colour]
        objects.append((colour, shape, r, mask > 0))
    return rgb, objects


def synthetic_rows(
    n: int,
    seed: int = 0,
    protocol: str = "segzero",
    width: int = 640,
    height: int = 480,
    size: int = REASONER_SIZE,
    resize: bool = True,
) -> list[dict[str, Any]]:
    """``n`` rows of synthetic scenes, each goal naming one object (segzero) or every object of a colour (multi)."""
    samples = []
    for i in range(n):
        rgb, objects = synthetic_scene(seed * 100_003 + i, width, height)
        rng = np.random.default_rng(seed * 7919 + i)
        colour, shape, _, mask = objects[int(rng.integers(len(objects)))]
        if protocol == "segzero":
            samples.append((rgb, f"the {colour} {shape}", mask))
        else:
            same = [m for c, _, _, m in objects if c == colour]
            samples.append((rgb, f"every {colour} object", same))
    return rows_from_masks(samples, protocol, size, id_prefix=f"synthetic{seed}", resize=resize)


# --- released sets --------------------------------------------------------------------------------------


def _image_from(value: Any) -> Image.Image:
    """A PIL image from what parquet/datasets hold: PIL, ``{"bytes": ...}``, raw bytes, or a path."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, bytes | bytearray):
        return Image.open(io.BytesIO(value)).convert("RGB")
    return Image.open(value).convert("RGB")


def _records(source: str | Path, split: str) -> list[dict[str, Any]]:
    """Rows of a local folder/file (parquet, JSON, JSONL) or, for anything else, a ``datasets`` hub id."""
    path = Path(source)
    if path.exists():
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        parquet = [f for f in files if f.suffix == ".parquet"]
        parquet = [f for f in parquet if split in f.name] or parquet  # prefer the split's files when named
        if parquet:
            import pyarrow.parquet as pq

            return [r for f in parquet for r in pq.read_table(f).to_pylist()]
        json_files = [f for f in files if f.suffix in (".json", ".jsonl")]
        out: list[dict[str, Any]] = []
        for f in json_files:
            text = f.read_text(encoding="utf-8")
            out.extend(
                json.loads(text)
                if f.suffix == ".json"
                else [json.loads(line) for line in text.splitlines() if line.strip()]
            )
        if not out:
            raise FileNotFoundError(f"{source}: no parquet or JSON rows found")
        return out
    from datasets import load_dataset

    return list(load_dataset(str(source), split=split))


def load_reference_rows(source: str | Path, split: str = "train", limit: int | None = None) -> list[dict[str, Any]]:
    """The reference training set (``Ricky06662/refCOCOg_9k_840`` layout) from a folder/file or hub id."""
    rows = []
    for record in _records(source, split)[:limit]:
        missing = {"problem", "solution", "image"} - set(record)
        if missing:
            raise ValueError(f"{source}: rows lack {sorted(missing)} (expected the reference's columns)")
        image = _image_from(record["image"])
        rows.append(
            {
                "id": str(record.get("id", len(rows))),
                "problem": record["problem"],
                "solution": record["solution"],
                "image": image,
                "img_height": int(record.get("img_height", image.height)),
                "img_width": int(record.get("img_width", image.width)),
            }
        )
    return rows


def _polygon_mask(shapes: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """ReasonSeg's polygon annotations → bool mask: "target" polygons filled, "ignore" ones cleared."""
    mask = np.zeros((height, width), np.uint8)
    for label, value in (("target", 1), ("ignore", 0)):
        for shape in shapes:
            if shape.get("label", "target") == label:
                pts = np.round(np.asarray(shape["points"], np.float64)).astype(np.int32)
                cv2.fillPoly(mask, [pts], value)
    return mask > 0


def load_reasonseg(source: str | Path, split: str = "val", limit: int | None = None) -> list[dict[str, Any]]:
    """ReasonSeg for evaluation: rows with ``image`` (PIL, original size), ``problem``, ``mask`` (bool H×W).

    ``source`` is the released parquet layout (``Ricky06662/ReasonSeg_val``: image, text, mask, ...), a hub
    id, or the original folder of ``<name>.jpg`` + ``<name>.json`` (``text`` list, ``shapes`` polygons).
    """
    path = Path(source)
    if path.is_dir() and any(path.glob("*.json")) and any(path.glob("*.jpg")):
        rows = []
        for meta_path in sorted(path.glob("*.json"))[:limit]:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            image = _image_from(meta_path.with_suffix(".jpg"))
            texts = meta.get("text") or []
            rows.append(
                {
                    "id": meta_path.stem,
                    "problem": texts[0] if isinstance(texts, list) and texts else str(texts),
                    "image": image,
                    "mask": _polygon_mask(meta.get("shapes", []), image.height, image.width),
                    "img_height": image.height,
                    "img_width": image.width,
                }
            )
        return rows
    rows = []
    for i, record in enumerate(_records(source, split)[:limit]):
        image = _image_from(record["image"])
        mask = np.asarray(record["mask"], dtype=bool)
        if mask.shape != (image.height, image.width):
            raise ValueError(f"{source} row {i}: mask {mask.shape} does not match image {image.height}x{image.width}")
        rows.append(
            {
                "id": f"{record.get('image_id', i)}-{record.get('ann_id', i)}",
                "problem": record["text"],
                "image": image,
                "mask": mask,
                "img_height": image.height,
                "img_width": image.width,
            }
        )
    return rows


# --- GRPO dataset ---------------------------------------------------------------------------------------


def grpo_dataset(rows: list[dict[str, Any]], protocol: str = "segzero"):
    """A ``datasets.Dataset`` for TRL's ``GRPOTrainer``: ``prompt`` (one user turn: image + the reference prompt),
    ``image``, ``solution``."""
    from datasets import Dataset

    def prompt(goal: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": build_prompt(goal, protocol)}]}
        ]

    return Dataset.from_dict(
        {
            "prompt": [prompt(r["problem"]) for r in rows],
            "image": [r["image"] for r in rows],
            "solution": [r["solution"] for r in rows],
        }
    )
