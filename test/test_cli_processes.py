"""Every ``segzero`` command that touches ROS run as its own process, as a user or a script runs it: the documented
exit codes (``ask``: 0 ok, 1 failed goal, 2 no node or timeout; 130 after Ctrl-C, 143 after SIGTERM), no abort,
nothing on stderr but the command's own lines, and no shared memory left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hooked_node import SLOW_PREFIX
from node_support import HOOKED_NODE, running_node
from ros_harness import ROOT, NodeProcess

pytestmark = pytest.mark.ros

SEGZERO = str(Path(sys.executable).with_name("segzero"))
RUNS = 10  # enough runs to catch an exit race (the abort it guards against came 10 times in 10)


@pytest.fixture(scope="module")
def node(tmp_path_factory, tiny_fitted_reasoner_dir, tiny_sam2_config):
    """The tiny node (test hooks on: ``slow:<s>`` goals), active; an image file to ask about."""
    from PIL import Image

    from segzero_ros.scenes import demo_scene

    folder = tmp_path_factory.mktemp("cli")
    image = folder / "scene.png"
    Image.fromarray(demo_scene(640, 480)[0]).save(image)
    params = {"preset": "tiny", "tracking.enabled": False, "reasoner.max_new_tokens": 96}
    with running_node(folder / "segzero_node.log", params, command=HOOKED_NODE) as (_, process):
        yield process, image


def segzero(*args: str, timeout: float = 120.0, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SEGZERO, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}, cwd=ROOT
    )


def other_domain(offset: int) -> str:
    """A ROS domain next to the test's, where no node runs."""
    return str(int(os.environ["ROS_DOMAIN_ID"]) + offset)


def own_lines(stderr: str, command: str) -> list[str]:
    """Lines on stderr that are not the command's own (its ``segzero <command>:`` lines and its log)."""
    ours = (f"segzero {command}:", "[INFO] segzero", "[WARNING] segzero")
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(ours)]


def test_ask_exits_0_for_an_answer_every_time(node):
    _, image = node
    for _ in range(RUNS):
        done = segzero("ask", "--image", str(image), "the red cup")
        assert done.returncode == 0, done.stderr
        assert ": ok" in done.stdout.splitlines()[0] and own_lines(done.stderr, "ask") == [], done.stderr


def test_ask_exits_1_for_a_failed_goal_every_time(node):
    _, image = node
    for _ in range(RUNS):
        done = segzero("ask", "--json", "--image", str(image), "")
        assert done.returncode == 1, done.stderr
        answer = json.loads(done.stdout)
        assert answer["status"] == "error" and answer["error"] == "empty goal"
        assert own_lines(done.stderr, "ask") == [], done.stderr


def test_ask_exits_2_without_a_node_every_time(node):
    for _ in range(RUNS):
        done = segzero("ask", "--wait", "0.5", "the red cup", ROS_DOMAIN_ID=other_domain(1))
        assert done.returncode == 2, done.stderr
        assert done.stdout == "" and own_lines(done.stderr, "ask") == [], done.stderr
        assert "no segzero node on /segment (is it running and active, in the same ROS_DOMAIN_ID?)" in done.stderr


def wait_for_log(process: NodeProcess, text: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while process.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{process.log()[-2000:]}"
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ask_stopped_while_waiting_cancels_and_exits_in_one_line(node, signum, code):
    process, image = node
    goal = f"{SLOW_PREFIX}3 the red cup {signum}"
    for k in range(3):
        ask = subprocess.Popen(
            [SEGZERO, "ask", "--image", str(image), goal], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for_log(process, repr(goal), k + 1)  # the node accepted the goal: the command waits for its answer
        ask.send_signal(signum)
        out, err = ask.communicate(timeout=30)
        assert ask.returncode == code, err
        assert out == "" and err.splitlines() == [f"segzero ask: stopped by {signal.Signals(signum).name}"], err
        time.sleep(3)  # the slow goal ends on the node before the next one


def test_camera_runs_for_its_seconds_and_stops_on_sigterm_or_ctrl_c(node):
    done = segzero("camera", "--seconds", "1", "--rate", "10")
    assert done.returncode == 0 and own_lines(done.stderr, "camera") == [], done.stderr
    assert "sent 10 frames" in done.stderr or "sent 11 frames" in done.stderr, done.stderr
    for signum in (signal.SIGTERM, signal.SIGINT):
        camera = subprocess.Popen([SEGZERO, "camera"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        camera.send_signal(signum)
        _, err = camera.communicate(timeout=30)
        assert camera.returncode == 0 and own_lines(err, "camera") == [], err  # stopping is how a camera ends
        assert "sent" in err.splitlines()[-1]


def fastdds_files() -> dict[str, int]:
    """Fast DDS's files in /dev/shm and their sizes."""
    shm = Path("/dev/shm")
    out = {}
    for path in shm.glob("*fastdds*"):
        try:
            out[path.name] = path.stat().st_size
        except OSError:  # removed meanwhile
            continue
    return out


def test_commands_release_their_shared_memory(node):
    _, image = node
    before = fastdds_files()
    assert segzero("ask", "--image", str(image), "the red cup").returncode == 0
    assert segzero("ask", "--wait", "0.5", "x", ROS_DOMAIN_ID=other_domain(1)).returncode == 2
    assert segzero("camera", "--seconds", "0.5").returncode == 0
    time.sleep(0.5)
    left = set(fastdds_files()) - set(before)
    assert not left, left


def test_demo_through_the_node_exits_0_and_on_ctrl_c_130(tmp_path, node, monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", other_domain(2))  # the demo talks to its own node only
    done = segzero("demo", "--node", "--out", str(tmp_path / "ok"), "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "ok"
    assert "Traceback" not in done.stderr and "Traceback" not in (tmp_path / "ok" / "node.log").read_text()
    demo = subprocess.Popen(
        [SEGZERO, "demo", "--node", "--out", str(tmp_path / "stopped")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "stopped" / "node.log"
    deadline = time.monotonic() + 120
    while not log.exists():
        assert time.monotonic() < deadline and demo.poll() is None
        time.sleep(0.1)
    time.sleep(1.0)  # the node is starting: the demo waits for it
    demo.send_signal(signal.SIGINT)
    _, err = demo.communicate(timeout=120)
    assert demo.returncode == 130, err
    assert err.splitlines()[-1] == "segzero demo: stopped by SIGINT" and own_lines(err, "demo") == [], err
    assert "Traceback" not in log.read_text()


def readme_python(name: str) -> str:
    """The README's python block marked ``<!-- test_cli_processes: NAME -->``, as written."""
    text = (ROOT / "README.md").read_text()
    marker = f"<!-- test_cli_processes: {name} -->"
    assert marker in text, f"README has no block marked {marker}"
    return text.split(marker, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]


def python(code: str, timeout: float = 120.0, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


def test_the_readmes_python_clients_find_the_node_in_a_fresh_process(node):
    camera = subprocess.Popen([SEGZERO, "camera", "--rate", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        done = python(readme_python("python-clients"))
    finally:
        camera.send_signal(signal.SIGINT)
        camera.communicate(timeout=30)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ok [("), done.stdout
    # The camera (1280 x 720) still streams on `image` beside the client's own 640 x 480 frame: the node answers on
    # whichever is newest when the goal runs, and the client returns the mask of that frame (README).
    assert lines[1] in ("ok (480, 640)", "ok (720, 1280)"), done.stdout
    assert "Traceback" not in done.stderr and "terminate called" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    "client", ["SegmentClient().segment('the red cup', timeout=3)", "TopicClient().segment(rgb, 'x', timeout=3)"]
)
def test_the_python_clients_say_when_no_node_is_there(node, client):
    code = (
        "import time, numpy as np\n"
        "from segzero_ros.ros.client import NodeNotFoundError, SegmentClient, TopicClient\n"
        "rgb = np.zeros((48, 64, 3), np.uint8)\n"
        "start = time.monotonic()\n"
        f"try:\n    {client}\nexcept NodeNotFoundError as exc:\n    print(round(time.monotonic() - start), exc)\n"
    )
    done = python(code, ROS_DOMAIN_ID=other_domain(1))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    seconds, message = done.stdout.strip().split(" ", 1)
    assert int(seconds) <= 5 and message.startswith("no segzero node on /") and "same ROS_DOMAIN_ID" in message
