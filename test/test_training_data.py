"""Training/evaluation data: ground truth from masks, the synthetic set, and the loaders on files made here."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from segzero_ros.protocol import build_prompt
from training import data as D
from training import rewards as R


def _answer(solution: str) -> str:
    """A perfect ``segzero`` completion for a ground-truth string."""
    nums = [int(v) for v in re.findall(r"\d+", solution)]
    box, p1, p2 = nums[:4], nums[4:6], nums[6:8]
    return f'<think>found it.</think><answer>{{"bbox": {box}, "points_1": {p1}, "points_2": {p2}}}</answer>'


def test_box_and_points_of_a_rectangle_by_hand():
    mask = np.zeros((20, 30), bool)
    mask[4:11, 5:26] = True  # rows 4..10, columns 5..25: 7 high, centre row 7
    assert D.mask_bbox(mask) == [5, 4, 25, 10]
    (x1, y1), (x2, y2) = D.mask_points(mask)
    assert y1 == 7 and 8 <= x1 <= 22  # on the centre line, where the inscribed circle is largest (radius 4)
    assert mask[y2, x2] and abs(x2 - x1) > 5  # second point in the far half


def test_points_of_a_disc_start_at_its_centre():
    yy, xx = np.mgrid[:101, :101]
    disc = (xx - 40) ** 2 + (yy - 60) ** 2 <= 25**2
    (x1, y1), (x2, y2) = D.mask_points(disc)
    assert (x1, y1) == (40, 60) and disc[y2, x2] and np.hypot(x2 - 40, y2 - 60) > 12
    with pytest.raises(ValueError, match="empty"):
        D.mask_points(np.zeros((4, 4), bool))


def test_solution_strings_follow_the_reference_formats():
    assert D.segzero_solution([1, 2, 3, 4], [[5, 6], [7, 8]]) == "<box>(1,2),(3,4)</box><points>(5,6),(7,8)</points>"
    assert json.loads(D.multi_solution([([1, 2, 3, 4], [2, 3])])) == [{"bbox_2d": [1, 2, 3, 4], "point_2d": [2, 3]}]


def test_synthetic_rows_are_exact_and_score_full_rewards_when_answered_right():
    rows = D.synthetic_rows(4, seed=3)
    assert len(rows) == 4
    again = D.synthetic_rows(4, seed=3)  # deterministic per seed
    for row, same in zip(rows, again, strict=True):
        assert row["solution"] == same["solution"] and row["problem"] == same["problem"]
        assert row["image"].size == (840, 840) and row["mask"].shape == (480, 640) and row["mask"].any()
        assert row["problem"].startswith("the ")
        completion = _answer(row["solution"])
        assert [f([completion], solution=[row["solution"]])[0] for f in R.reward_functions()] == [1.0] * 5
        # the box, mapped back to the camera, encloses the object
        box = [int(v) for v in re.findall(r"\d+", row["solution"])[:4]]
        ys, xs = np.nonzero(row["mask"])
        camera = [box[0] * 640 / 840, box[1] * 480 / 840, box[2] * 640 / 840, box[3] * 480 / 840]
        assert np.allclose(camera, [xs.min(), ys.min(), xs.max(), ys.max()], atol=2)


def test_multi_synthetic_rows_list_every_object_of_the_colour():
    for row in D.synthetic_rows(3, seed=1, protocol="multi"):
        objects = json.loads(row["solution"])
        assert row["problem"].startswith("every ") and len(objects) >= 1
        answer = f"<think>ok.</think><answer>{row['solution']}</answer>"
        assert R.multi_accuracy_reward([answer], solution=[row["solution"]]) == [3.0]


def test_rows_from_masks_skips_empty_masks():
    rgb = np.zeros((50, 60, 3), np.uint8)
    mask = np.zeros((50, 60), bool)
    mask[10:20, 10:30] = True
    rows = D.rows_from_masks([(rgb, "a", mask), (rgb, "b", np.zeros_like(mask))])
    assert [r["problem"] for r in rows] == ["a"] and (rows[0]["img_height"], rows[0]["img_width"]) == (50, 60)


def _png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_coco_annotations_become_rows(tmp_path):
    rgb, objects = D.synthetic_scene(7)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    mask = objects[0][3]
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": 480, "width": 640}],
        "categories": [{"id": 3, "name": "widget"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "area": 1.0,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]],
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "area": 1.0,
                "bbox": [0, 0, 10, 10],
                "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]],
                "sentences": [{"sent": "the corner thing"}],
            },
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    rows = D.coco_rows(tmp_path / "ann.json", tmp_path)
    assert [r["problem"] for r in rows] == ["the widget", "the corner thing"]
    assert rows[0]["mask"].sum() == (x2 - x1) * (y2 - y1)


def test_reference_rows_from_parquet_and_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rgb = np.full((840, 840, 3), 90, np.uint8)
    solution = "<box>(1,2),(30,40)</box><points>(5,6),(7,8)</points>"
    table = pa.table(
        {
            "id": ["x"],
            "problem": ["the cup"],
            "solution": [solution],
            "image": [{"bytes": _png_bytes(rgb), "path": None}],
            "img_height": [480],
            "img_width": [640],
        }
    )
    pq.write_table(table, tmp_path / "train-00000.parquet")
    rows = D.load_reference_rows(tmp_path)
    assert rows[0]["problem"] == "the cup" and rows[0]["image"].size == (840, 840) and rows[0]["img_width"] == 640
    Image.fromarray(rgb).save(tmp_path / "img.png")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps({"problem": "a", "solution": solution, "image": str(tmp_path / "img.png")}) + "\n")
    assert D.load_reference_rows(jsonl)[0]["img_height"] == 840
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "a"}) + "\n")
    with pytest.raises(ValueError, match="lack"):
        D.load_reference_rows(tmp_path / "bad.jsonl")


def test_reasonseg_folder_polygons_with_ignore_regions(tmp_path):
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "img1.jpg")
    meta = {
        "text": ["what would you sit on?"],
        "shapes": [
            {"label": "target", "points": [[10, 10], [30, 10], [30, 30], [10, 30]]},
            {"label": "ignore", "points": [[20, 10], [30, 10], [30, 30], [20, 30]]},
        ],
    }
    (tmp_path / "img1.json").write_text(json.dumps(meta))
    (row,) = D.load_reasonseg(tmp_path)
    assert row["problem"] == "what would you sit on?" and row["mask"].shape == (40, 50)
    assert row["mask"][20, 15] and not row["mask"][20, 25] and not row["mask"][5, 5]


def test_reasonseg_parquet_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True
    rgb = np.zeros((6, 8, 3), np.uint8)
    table = pa.table(
        {
            "image": [{"bytes": _png_bytes(rgb), "path": None}],
            "text": ["the thing"],
            "mask": [mask.tolist()],
            "image_id": ["i"],
            "ann_id": ["a"],
            "img_height": [6],
            "img_width": [8],
        }
    )
    pq.write_table(table, tmp_path / "val.parquet")
    (row,) = D.load_reasonseg(tmp_path / "val.parquet")
    assert row["id"] == "i-a" and np.array_equal(row["mask"], mask)


def test_grpo_dataset_carries_the_reference_prompt():
    rows = D.synthetic_rows(2, seed=5)
    ds = D.grpo_dataset(rows)
    assert ds.column_names == ["prompt", "image", "solution"] and len(ds) == 2
    content = ds[0]["prompt"][0]["content"]
    assert content[0]["type"] == "image" and content[1]["text"] == build_prompt(rows[0]["problem"])
