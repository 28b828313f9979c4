"""Models and datasets named by hub id on a machine that cannot reach the hub (no ``HF_HUB_OFFLINE`` set, as a
user has it): every entry point fails at once in a few lines naming the model and the ways out; a cached model
loads with no network wait. Each command runs as its own process."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ros_harness import ROOT, isolate_ros_domain

SEGZERO = str(Path(sys.executable).with_name("segzero"))
MAX_LINES = 6


@pytest.fixture()
def no_hub(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache and a hub endpoint on a closed local port; the cache folder."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "hf" / "hub"


def segzero(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([SEGZERO, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    from PIL import Image

    from segzero_ros.scenes import demo_scene

    path = tmp_path_factory.mktemp("hub") / "scene.png"
    Image.fromarray(demo_scene(320, 240)[0]).save(path)
    return path


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["infer", "--image", "{image}", "--goal", "the red cup"], "SAM2 'facebook/sam2-hiera-large'"),
        (
            ["infer", "--image", "{image}", "--goal", "the red cup", "--sam2", "tiny"],
            "reasoner 'Ricky06662/Seg-Zero-7B'",
        ),
        (["segment", "--image", "{image}", "--box", "10,10,90,90"], "SAM2 'facebook/sam2-hiera-large'"),
        (["eval", "--data", "synthetic", "--limit", "1"], "SAM2 'facebook/sam2-hiera-large'"),
        (["export-onnx", "--out", "{tmp}/onnx"], "SAM2 'facebook/sam2-hiera-large'"),
        (["demo", "--real", "--out", "{tmp}/demo"], "SAM2 'facebook/sam2-hiera-large'"),
        (["infer", "--image", "{image}", "--goal", "x", "--sam2", "tiny", "--local-files-only"], "hub access is off"),
    ],
    ids=["infer", "infer-reasoner", "segment", "eval", "export-onnx", "demo-real", "local-files-only"],
)
def test_a_model_neither_cached_nor_reachable_fails_at_once(no_hub, image, tmp_path, args, named):
    done = segzero(*[a.format(image=image, tmp=tmp_path) for a in args])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 3, done.stderr[-3000:]
    assert len(lines) <= MAX_LINES and "Retry" not in done.stderr and "Traceback" not in done.stderr, lines
    error = lines[-1]
    assert named in error and "ways out" in error and "--tiny" in error, error
    assert "cannot be reached" in error or "hub access is off" in error


@pytest.mark.parametrize(
    ("data", "says"),
    [("Ricky06662/ReasonSeg_val", "cannot be reached"), ("/nowhere/reasonseg", "no such dataset")],
)
def test_an_evaluation_set_that_cannot_be_read_is_one_line(no_hub, data, says):
    done = segzero("eval", "--tiny", "--data", data, "--limit", "1")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert says in done.stderr.strip().splitlines()[-1] and len(done.stderr.strip().splitlines()) <= MAX_LINES


def test_a_cached_model_loads_without_the_hub(no_hub, image, tiny_fitted_reasoner_dir, tiny_sam2_config):
    """The tiny reasoner placed in the cache as the hub would put it: infer answers, never asking the hub."""
    snapshot = no_hub / "models--segzero--tiny-reasoner" / "snapshots" / "0123abc"
    shutil.copytree(tiny_fitted_reasoner_dir, snapshot)
    (no_hub / "models--segzero--tiny-reasoner" / "refs").mkdir()
    (no_hub / "models--segzero--tiny-reasoner" / "refs" / "main").write_text("0123abc")
    done = segzero(
        "infer",
        "--image",
        str(image),
        "--goal",
        "the red cup",
        "--reasoner",
        "segzero/tiny-reasoner",
        "--sam2",
        "tiny",
        "--reasoner.image_size",
        "112",
        "--device",
        "cpu",
        "--json",
    )
    assert done.returncode in (0, 1) and "Retry" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert '"goal": "the red cup"' in done.stdout


@pytest.mark.ros
def test_the_node_and_demo_say_why_their_models_did_not_load(no_hub, tmp_path, tiny_sam2_config):
    isolate_ros_domain()
    log = tmp_path / "node.log"
    command = [sys.executable, "-m", "segzero_ros.ros.node", "--ros-args", "-p", "segmenter.model:=tiny"]
    with open(log, "w") as out:
        node = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while "configure failed" not in log.read_text():
            assert node.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        text = log.read_text()
        assert "model loading failed: reasoner 'Ricky06662/Seg-Zero-7B' could not be loaded" in text
        assert "Retry" not in text and "restart the node with other ones" in text
    finally:
        node.send_signal(signal.SIGINT)
        assert node.wait(60) == 0
    demo = segzero("demo", "--node", "--real", "--sam2", "tiny", "--out", str(tmp_path / "demo"), timeout=300)
    assert demo.returncode == 3, demo.stderr[-3000:]
    last = demo.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("segzero demo: model loading failed: reasoner 'Ricky06662/Seg-Zero-7B'") and "node log" in last
    )
