"""From a recording to labelled data and back into training: ``segzero export`` (COCO, Label Studio, GRPO rows)
checked with the formats' own readers against the replay's ``labels`` pixels, ``segzero import`` of a corrected
COCO file, and GRPO + evaluation on the result, each command as its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from recordings import json_goal, write_recording

from segzero_ros.labelled_data import COCO_FILE, IMAGES

ROOT = Path(__file__).resolve().parents[1]
SEGZERO = str(Path(sys.executable).with_name("segzero"))
KEEP_TRACKING = ["--tiny", "--tracking.min_score", "0.0"]  # the random tiny SAM2 scores ~0.5: keep tracking


def run(*args: str, timeout: float = 600) -> dict:
    done = subprocess.run([SEGZERO, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def replay_labels(replay_out: Path) -> dict[tuple[int, int], np.ndarray]:
    """Every labels image of the replay output, by stamp, read with the mcap library (not our reader)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    summary = json.loads((replay_out / "summary.json").read_text())
    out = {}
    with open(summary["output"], "rb") as f:
        for _, channel, _, msg in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            if channel.topic == "/labels":
                dtype = np.uint16 if msg.encoding == "mono16" else np.uint8
                array = np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)
                out[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = array
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_fitted_reasoner_dir, tiny_sam2_config):
    """A recording with two goals, exported to COCO through a replay (the recording as the source)."""
    root = tmp_path_factory.mktemp("export")
    write_recording(
        root / "session",
        "mcap",
        frames=14,
        goals=[(0.25, json_goal("cup", "the red cup")), (0.85, json_goal("again", "the red cup"))],
    )
    report = run("export", str(root / "session"), "--format", "coco", "--out", str(root / "coco"), "--", *KEEP_TRACKING)
    return root, report


def test_coco_masks_are_the_replays_labels_pixel_for_pixel(exported):
    from pycocotools.coco import COCO

    root, report = exported
    coco_dir = root / "coco"
    labels = replay_labels(coco_dir / "replay")
    coco = COCO(str(coco_dir / COCO_FILE))
    images = coco.loadImgs(coco.getImgIds())
    assert len(images) == report["frames"] >= 2 and len(coco.getAnnIds()) == report["targets"]
    sources = set()
    for info in images:
        stamp = (info["ros_stamp"]["sec"], info["ros_stamp"]["nanosec"])
        frame_labels = labels[stamp]
        assert (info["height"], info["width"]) == frame_labels.shape and (
            coco_dir / IMAGES / info["file_name"]
        ).is_file()
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
        union = np.zeros(frame_labels.shape, bool)
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            values = np.unique(frame_labels[mask])
            assert len(values) == 1 and values[0] > 0, values  # one target's pixels exactly
            assert np.array_equal(mask, frame_labels == values[0])
            assert ann["goal"] == ann["caption"] == "the red cup" and ann["track_id"].startswith(ann["goal_id"] + ":")
            assert ann["attributes"]["track_id"] >= 1 and ann["bbox"] == pytest.approx(list(coco_box(mask)))
            sources.add(ann["source"])
            union |= mask
        assert np.array_equal(union, frame_labels > 0)  # the frame's union too
    assert "answer" in sources  # the random tiny SAM2 tracks with empty masks: tracked frames, see below
    tracks = {a["track_id"]: a["attributes"]["track_id"] for a in coco.loadAnns(coco.getAnnIds())}
    assert set(tracks) <= {"cup:1", "again:1"} and len(set(tracks.values())) == len(tracks)


class ShiftingTracker:
    """Tracks each goal's masks by moving them one pixel right per frame (SAM2's place in the answering core)."""

    def __init__(self) -> None:
        self.tracks: dict[str, list[np.ndarray]] = {}

    @property
    def active(self) -> bool:
        return bool(self.tracks)

    def add(self, key, rgb, targets):
        self.tracks[key] = [target.mask for target in targets]

    def remove(self, key):
        self.tracks.pop(key, None)

    def step_all(self, rgb):
        from segzero_ros.tracker import TrackStep

        out = {}
        for key, masks in self.tracks.items():
            masks[:] = [np.roll(m, 1, axis=1) for m in masks]
            out[key] = TrackStep(1, list(masks), [0.9] * len(masks), ["tracking"] * len(masks))
        return out


def synthetic_replay(out: Path, size: tuple[int, int] = (160, 120)) -> None:
    """A replay output written through the node's answering core and outputs, the demo scene's own object masks
    standing in for the models' answers: goal A ("the red cup") answered on frame 1 and tracked, goal B (the box
    and the ball) answered on frame 4 and tracked beside A; frames 0-7 as the camera's. (README's export figure:
    ``synthetic_replay(Path("x"), (640, 480))``, then ``segzero export x --format coco --preview``.)"""
    from dataclasses import dataclass

    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from segzero_ros.answering import Answering
    from segzero_ros.goals import Goal
    from segzero_ros.image_codec import numpy_to_image
    from segzero_ros.instances import mask_box
    from segzero_ros.pipeline import Result
    from segzero_ros.ros.bags import BagOutput
    from segzero_ros.ros.outputs import Outputs
    from segzero_ros.scenes import demo_scene
    from segzero_ros.tracking_loop import TrackingLoop
    from segzero_ros.worker import Frame

    bag = BagOutput(out / "replay")
    clock = [0]

    class Publisher:
        def __init__(self, topic):
            self.topic = topic

        def publish(self, msg):
            clock[0] += 1
            bag.write(self.topic, msg, 10**9 + clock[0] * 10**6)

        def get_subscription_count(self):
            return 0

    class Node:
        def create_lifecycle_publisher(self, _kind, topic, _qos):
            return Publisher(f"/{topic}")

    @dataclass
    class Answered:
        bbox: tuple
        points: list
        mask: np.ndarray
        label: str = ""

    outputs = Outputs(Node(), {"reasoner": "r", "segmenter": "s"})
    answering = Answering(None, outputs, TrackingLoop(ShiftingTracker(), max_goals=4))
    rgb, objects = demo_scene(*size)
    frames = []
    for k in range(8):
        header = Header(stamp=Time(sec=100, nanosec=k * 10**8), frame_id="cam")
        frames.append(Frame(rgb, "rgb8", header))
        bag.write("/camera/image", numpy_to_image(rgb, "rgb8", header), 10**9 + k)

    def answer(goal, frame, names):
        targets = [Answered(mask_box(objects[n]), [], objects[n].copy(), n) for n in names]
        masks = [t.mask.copy() for t in targets]
        result = Result(goal.text, goal.id, "segzero", size, targets=targets, masks=masks, scores=[0.8] * len(masks))
        answering.publish(goal, frame, result)
        assert answering.answered(goal, frame, result) is None

    a, b = Goal("the red cup", id="A"), Goal("the box and the ball", id="B", multi=True)
    for k, frame in enumerate(frames):
        if k == 1:
            answer(a, frame, ["red cup"])
        elif k == 4:
            answer(b, frame, ["blue box", "green ball"])
        elif k > 1:
            answering.publish_tracked(frame, answering.track(frame))
    summary = {"output": str(bag.close()), "image_topic": "/camera/image", "bag": str(out / "replay")}
    (out / "summary.json").write_text(json.dumps(summary))


def test_tracked_frames_of_several_goals_export_with_stable_tracks(tmp_path):
    from pycocotools.coco import COCO

    synthetic_replay(tmp_path / "replayed")
    labels = replay_labels(tmp_path / "replayed")
    report = run("export", str(tmp_path / "replayed"), "--format", "coco", "--out", str(tmp_path / "coco"))
    coco = COCO(str(tmp_path / "coco" / COCO_FILE))
    # frame 1: A answered; 2-3: A tracked; 4: B answered (its two targets); 5-7: A and B tracked
    assert report["frames"] == 7 and report["targets"] == 1 + 2 + 2 + 3 * 3
    by_track: dict[str, set] = {}
    for info in coco.loadImgs(coco.getImgIds()):
        frame_labels = labels[(info["ros_stamp"]["sec"], info["ros_stamp"]["nanosec"])]
        union = np.zeros(frame_labels.shape, bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=info["id"])):
            mask = coco.annToMask(ann).astype(bool)
            (value,) = np.unique(frame_labels[mask])
            assert np.array_equal(mask, frame_labels == value)
            by_track.setdefault(ann["track_id"], set()).add((int(value), ann["attributes"]["track_id"], ann["goal"]))
            union |= mask
        assert np.array_equal(union, frame_labels > 0)
    # Each track keeps one value and one CVAT track number on every frame; the values are distinct across goals.
    goal_b = "the box and the ball"
    assert by_track == {"A:1": {(1, 1, "the red cup")}, "B:1": {(2, 2, goal_b)}, "B:2": {(3, 3, goal_b)}}
    labels_named = {a["track_id"]: a["label"] for a in coco.loadAnns(coco.getAnnIds())}
    assert labels_named == {"A:1": "red cup", "B:1": "blue box", "B:2": "green ball"}  # the model's names, tracked
    sources = [a["source"] for a in coco.loadAnns(coco.getAnnIds())]
    assert sources.count("answer") == 3 and sources.count("tracked") == report["targets"] - 3


DATUMARO = ROOT / ".venv-datumaro" / "bin" / "python"
DATUMARO_READ = """
import json, sys
from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset
dataset = Dataset.import_from(sys.argv[1], "coco_instances")
names = [c.name for c in dataset.categories()[AnnotationType.label]]
items = []
for item in dataset:
    masks = [a for a in item.annotations if a.type == AnnotationType.mask]
    items.append({"id": item.id, "image": bool(item.media.has_data),
                  "masks": sorted((names[a.label], a.attributes["track_id"], int(a.image.sum())) for a in masks)})
print(json.dumps(items))
"""


def test_the_coco_export_loads_in_datumaro_cvats_import_engine(exported):
    """datumaro (its own venv: `make datumaro`, which `make test` runs) reads the export as COCO: every image found,
    every mask with its goal as label, its track number and its pixels."""
    from pycocotools.coco import COCO

    assert DATUMARO.is_file(), f"{DATUMARO} is missing: `make datumaro` (make test does it)"
    root, _ = exported
    done = subprocess.run([str(DATUMARO), "-c", DATUMARO_READ, str(root / "coco")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    items = {item["id"]: item for item in json.loads(done.stdout)}
    coco = COCO(str(root / "coco" / COCO_FILE))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert len(items) == len(coco.getImgIds()) and all(item["image"] for item in items.values())
    for info in coco.loadImgs(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))
        expected = sorted((names[a["category_id"]], a["attributes"]["track_id"], a["area"]) for a in anns)
        assert items[info["file_name"].rsplit(".", 1)[0]]["masks"] == [list(m) for m in expected]


def coco_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)


def test_label_studio_brush_masks_decode_to_the_same_pixels(exported, tmp_path):
    from label_studio_converter.brush import decode_rle

    root, report = exported
    labels = replay_labels(root / "coco" / "replay")
    out = tmp_path / "ls"
    again = run("export", str(root / "coco" / "replay"), "--format", "labelstudio", "--out", str(out))
    assert (again["frames"], again["targets"]) == (report["frames"], report["targets"])
    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == report["frames"] and "<BrushLabels" in (out / "label_config.xml").read_text()
    for task in tasks:
        stamp = (task["data"]["ros_stamp"]["sec"], task["data"]["ros_stamp"]["nanosec"])
        assert (out / task["data"]["image"]).is_file()
        for result in task["predictions"][0]["result"]:
            h, w = result["original_height"], result["original_width"]
            mask = decode_rle(result["value"]["rle"]).reshape(h, w, 4)[:, :, 3] > 0
            (value,) = np.unique(labels[stamp][mask])
            assert np.array_equal(mask, labels[stamp] == value) and result["value"]["brushlabels"] == ["the red cup"]


def test_grpo_rows_and_a_corrected_coco_file_become_training_rows(exported, tmp_path):
    """``--format grpo`` writes the rows of the masks; ``segzero import`` of the COCO file gives the same rows, and
    after a person's correction (one mask cut to its left half) that row's box follows the correction."""
    from training.data import load_reasonseg, load_reference_rows

    root, report = exported
    grpo = run("export", str(root / "coco" / "replay"), "--format", "grpo", "--out", str(tmp_path / "grpo"))
    rows = load_reference_rows(grpo["written"])
    assert len(rows) == report["targets"] and all(r["problem"] == "the red cup" for r in rows)

    coco_dir = root / "coco"
    imported = run(
        "import", str(coco_dir / COCO_FILE), "--images", str(coco_dir / IMAGES), "--out", str(tmp_path / "a")
    )
    before = load_reference_rows(imported["written"])
    assert [r["solution"] for r in before] == [r["solution"] for r in rows]

    from pycocotools import mask as mask_utils

    data = json.loads((coco_dir / COCO_FILE).read_text())
    ann = data["annotations"][0]
    mask = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()}).astype(bool)
    cols = np.flatnonzero(mask.any(axis=0))
    mask[:, (cols[0] + cols[-1]) // 2 + 1 :] = False  # the correction: the target is only the left half
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    corrected = tmp_path / "corrected.json"
    corrected.write_text(json.dumps(data))
    after = load_reference_rows(
        run("import", str(corrected), "--images", str(coco_dir / IMAGES), "--out", str(tmp_path / "b"))["written"]
    )
    assert [r["solution"] for r in after[1:]] == [r["solution"] for r in before[1:]]
    box_before, box_after = solution_box(before[0]["solution"]), solution_box(after[0]["solution"])
    assert box_after[0] == box_before[0] and box_after[2] < box_before[2]  # same left edge, right edge moved in
    masks = load_reasonseg(tmp_path / "b", "val")
    assert np.array_equal(masks[0]["mask"], mask) and masks[0]["problem"] == "the red cup"


def solution_box(solution: str) -> list[int]:
    """The box of a ``segzero`` ground-truth string (``<box>(x1,y1),(x2,y2)</box>...``)."""
    import re

    return [int(v) for v in re.search(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>", solution).groups()]


@pytest.mark.slow
def test_the_loop_trains_and_evaluates_on_the_exported_data(exported, tmp_path, tiny_reasoner_dir):
    """GRPO for two steps on the exported COCO file (``coco:`` dataset), as one process and as two, then
    ``segzero eval`` on the imported rows."""
    root, _ = exported
    coco_dir = root / "coco"
    command = [sys.executable, "-m", "training.train_grpo", "--config", str(ROOT / "training/configs/tiny.yaml")]
    command += ["--dataset_name", f"coco:{coco_dir / COCO_FILE}:{coco_dir / IMAGES}", "--max_steps", "2"]
    command += ["--output_dir", str(tmp_path / "run"), "--save_steps", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((tmp_path / "run" / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]

    # The same as two processes (accelerate starts them through torchrun; use_cpu: gloo between them): each rank
    # trains on its shard; the logged metrics are gathered over both (a step counts twice the tokens of one
    # process's step); the model is written once. (`accelerate launch --cpu` would start one process only.)
    accelerate = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2"]
    command = [*accelerate, "-m", *command[2:]]
    command[command.index(str(tmp_path / "run"))] = str(tmp_path / "run2")
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("saved the trained model") == 1 and "Traceback" not in done.stderr
    assert "process 1 of 2: GRPO on" in done.stderr and "process 2 of 2: GRPO on" in done.stderr
    two = json.loads((tmp_path / "run2" / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in two if "loss" in h] == [1, 2]
    assert two[0]["num_tokens"] == 2 * one[0]["num_tokens"]
    assert all(0.0 <= h["rewards/bbox_iou_reward/mean"] <= 1.0 for h in two if "loss" in h)
    from transformers import Qwen2_5_VLForConditionalGeneration

    Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path / "run2")  # the written model loads
    rows = run("import", str(coco_dir / COCO_FILE), "--images", str(coco_dir / IMAGES), "--out", str(tmp_path / "d"))
    scores = run("eval", "--data", rows["written"], "--split", "val", "--tiny", "--json")
    assert scores["n"] == rows["rows"] and 0.0 <= scores["giou"] <= 1.0


def test_bad_sources_get_one_line_and_exit_2(tmp_path):
    (tmp_path / "notes.txt").write_text("not a recording")
    cases = [
        ["export", str(tmp_path / "missing"), "--format", "coco", "--out", str(tmp_path / "a")],
        ["export", str(tmp_path / "notes.txt"), "--format", "coco", "--out", str(tmp_path / "b"), "--", "--tiny"],
        ["import", str(tmp_path / "missing.json"), "--images", str(tmp_path), "--out", str(tmp_path / "c")],
        ["import", str(tmp_path / "notes.txt"), "--images", str(tmp_path), "--out", str(tmp_path / "d")],
    ]
    for args in cases:
        done = subprocess.run([SEGZERO, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 2, (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr and done.stdout == "", (args, done.stderr)
        assert str(tmp_path) in done.stderr.strip().splitlines()[-1], done.stderr


def test_a_wrong_replay_option_after_the_separator_is_named(tmp_path):
    write_recording(tmp_path / "session", "mcap", frames=2)
    args = ["export", str(tmp_path / "session"), "--format", "coco", "--out", str(tmp_path / "x"), "--", "--bogus"]
    done = subprocess.run([SEGZERO, *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "segzero export: error in the replay options after --: unrecognized arguments: --bogus",
        "(segzero replay --help)",
    ]
