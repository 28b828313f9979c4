"""The reasoner through a real vLLM server started by ``segzero serve --tiny`` (its own process, ``.venv-vllm``):
the same answers as the local reasoner, and the command's exit on Ctrl-C. ``make test`` builds ``.venv-vllm``
(``make vllm``); where it is missing these tests fail, as in CI, instead of skipping."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segzero_ros import build
from segzero_ros.cli.serve import REPO_VENV
from segzero_ros.scenes import demo_scene
from segzero_ros.tiny import FIT_GOAL, TINY_IMAGE_SIZE, random_scene

READY_TIMEOUT_S = 900.0
SEGZERO = str(Path(sys.executable).with_name("segzero"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(log: Path, *args: str) -> tuple[str, subprocess.Popen]:
    """``segzero serve --tiny ARGS`` on a free port, once it says it is ready; (endpoint, process)."""
    assert (REPO_VENV / "bin" / "python").is_file(), f"{REPO_VENV} is missing: `make vllm` (make test does it)"
    port = free_port()
    with open(log, "w") as out:
        server = subprocess.Popen(
            [SEGZERO, "serve", "--tiny", "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "segzero serve: ready at" not in log.read_text():
        assert server.poll() is None, f"segzero serve exited ({server.returncode}):\n{log.read_text()[-5000:]}"
        assert time.monotonic() < deadline, f"not ready after {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-5000:]}"
        time.sleep(1.0)
    return f"http://127.0.0.1:{port}/v1", server


def stop_serve(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        server.wait(60)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``segzero serve --tiny`` until the module's tests are done; (endpoint, process, log)."""
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    endpoint, server = start_serve(log, "--", "--seed", "7")  # after --: for vLLM
    yield endpoint, server, log
    stop_serve(server)


def reasoners(endpoint: str, protocol: str):
    values = build.resolve({"reasoner.protocol": protocol}, "tiny")
    remote = {**values, "reasoner.backend": "openai", "reasoner.endpoint": endpoint}
    return build.build_reasoner(values), build.build_reasoner({**remote, "reasoner.api_model": "segzero-tiny"})


def test_serve_without_vllm_says_how_to_get_it(tmp_path):
    env = {**os.environ, "SEGZERO_VLLM_VENV": str(tmp_path / "none"), "PATH": os.path.dirname(sys.executable)}
    done = subprocess.run([SEGZERO, "serve", "--tiny"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "segzero serve: no vLLM: `make vllm` creates .venv-vllm here, or install vLLM on this machine (pip install "
        "vllm, GPU servers) so that `vllm` is on PATH"
    ]


def test_serve_prints_the_endpoint_and_the_node_parameters(served):
    endpoint, _, log = served
    text = log.read_text()
    assert f"segzero serve: ready at {endpoint} (model 'segzero-tiny')" in text
    assert f"-p reasoner.backend:=openai -p reasoner.endpoint:={endpoint} -p reasoner.api_model:=segzero-tiny" in text
    assert f"-p reasoner.image_size:={TINY_IMAGE_SIZE}" in text
    (started,) = [line for line in text.splitlines() if "starting vLLM: " in line]
    assert started.endswith("--port " + endpoint.rsplit(":", 1)[1].split("/")[0] + " --seed 7")
    pixels = TINY_IMAGE_SIZE**2  # the tiny preset's square image, kept whole by the server's processor
    assert f'--mm-processor-kwargs {{"min_pixels": {pixels}, "max_pixels": {pixels}}}' in text


@pytest.mark.parametrize("protocol", ["segzero", "multi"])
def test_the_tiny_reasoner_answers_the_same_locally_and_through_the_server(served, protocol):
    endpoint, _, _ = served
    local, remote = reasoners(endpoint, protocol)
    images = [demo_scene(640, 480)[0], demo_scene(1280, 720)[0], random_scene(5, 500)]
    for rgb in images:
        for goal in (FIT_GOAL, "something to drink from"):  # the goal it was fitted to, and one it was not
            here, there = local.reason(rgb, goal), remote.reason(rgb, goal)
            assert here.ok or goal != FIT_GOAL, here.error
            assert (there.text, there.error) == (here.text, here.error)
            assert there.targets == here.targets
            assert there.prompt_tokens == here.prompt_tokens  # the server saw the same square image


def test_the_node_answers_topic_and_action_goals_through_the_server(served, tmp_path):
    """The node started with the parameters ``segzero serve`` printed (plus the tiny SAM2): a topic goal and a
    ``segment`` action goal, each answered through the server with the local path's box."""
    from node_support import GOAL_TIMEOUT, NODE_PARAMS, goal_on_frame, make_frame, running_node

    from segzero_ros.ros.client import SegmentClient

    endpoint, _, log = served
    printed = log.read_text().split("node parameters: ", 1)[1].splitlines()[0].split()
    remote = dict(pair.split(":=", 1) for pair in printed if ":=" in pair)
    remote["reasoner.image_size"] = int(remote["reasoner.image_size"])
    params = {**NODE_PARAMS, **remote}  # preset tiny: a remote reasoner stays remote, SAM2 is the tiny one
    local = build.build_reasoner(build.resolve({}, "tiny")).reason(make_frame_rgb(), FIT_GOAL)
    with running_node(tmp_path / "node.log", params) as (probe, node):
        assert f"reasoner segzero-tiny at {endpoint}" in node.log()
        result = goal_on_frame(probe, make_frame(), "through-server", node, FIT_GOAL)
        assert result["status"] == "ok", result
        assert [t["bbox"] for t in result["targets"]] == [list(t.bbox) for t in local.targets]
        client = SegmentClient()
        try:
            answer = client.segment(FIT_GOAL, image=make_frame(), timeout=GOAL_TIMEOUT, goal_id="action-server")
        finally:
            client.close()
        assert answer.status == "ok", answer.error
        assert [(t.x1, t.y1, t.x2, t.y2) for t in answer.targets] == [tuple(t.bbox) for t in local.targets]


def make_frame_rgb():
    """The RGB of ``node_support.make_frame()`` (640 x 480 demo scene)."""
    return demo_scene(640, 480)[0]


def test_a_server_that_resizes_the_image_is_caught_with_the_cause_and_the_fix(tmp_path):
    """A server whose pixel bounds shrink the tiny preset's 112 x 112 image to 56 x 56: every goal fails, naming
    the fix, instead of publishing boxes in another frame's coordinates."""
    endpoint, server = start_serve(tmp_path / "serve.log", "--image-size", "56")
    try:
        _, remote = reasoners(endpoint, "segzero")
        reasoning = remote.reason(demo_scene(640, 480)[0], FIT_GOAL)
    finally:
        stop_serve(server)
    assert not reasoning.ok and reasoning.targets == []
    assert (
        reasoning.error.startswith("the server counted ")
        and "were expected: its image processor resized" in reasoning.error
    )
    assert f"segzero serve --image-size {TINY_IMAGE_SIZE}" in reasoning.error


FLEET = Path(__file__).resolve().parents[1] / "bench" / "fleet.py"


def test_fleet_benchmark_reports_both_modes_side_by_side(served):
    """``bench/fleet.py`` as its own process against the server: every key, one entry per client count, the
    ratio computed from the two throughputs of the same run, and no goal failed in either mode."""
    endpoint, _, _ = served
    command = [sys.executable, str(FLEET), "--endpoint", endpoint, "--clients", "1,2", "--goals", "2", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["clients"] == [1, 2] and report["api_model"] == "segzero-tiny"
    assert report["errors"] == {"local": [], "server": []}
    for key in ("local_goals_per_s", "server_goals_per_s", "ratio", "local_p50_ms", "server_p50_ms"):
        assert len(report[key]) == 2 and all(value > 0 for value in report[key]), (key, report)
    rates = zip(report["local_goals_per_s"], report["server_goals_per_s"], report["ratio"], strict=True)
    for local, server, ratio in rates:
        assert ratio == pytest.approx(server / local, rel=0.01)


def test_fleet_benchmark_without_a_server_says_how_to_start_one():
    done = subprocess.run(
        [sys.executable, str(FLEET), "--endpoint", f"http://127.0.0.1:{free_port()}/v1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "does not answer" in done.stderr and "segzero serve --tiny" in done.stderr


def test_ctrl_c_stops_the_server_and_the_command_exits_130(served):
    endpoint, server, log = served
    server.send_signal(signal.SIGINT)
    assert server.wait(60) == 130, log.read_text()[-3000:]
    assert "segzero serve: stopped by SIGINT" in log.read_text()
    from segzero_ros.cli.serve import ready

    assert not ready(endpoint)
