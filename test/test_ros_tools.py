"""The real ROS 2 tools on this package, running the README's own command lines: colcon build into a workspace,
``source install/setup.bash``, ``ros2 launch`` / ``ros2 run`` with the tiny models, ``ros2 lifecycle get``,
``ros2 topic pub`` / ``echo``, ``ros2 param set``, ``ros2 action send_goal``, ``segzero ask``, and Ctrl-C.

The tools (launch, launch_ros, ros2cli, colcon) are not on PyPI; ``make venv`` installs them from
``../shared/ros-tools`` when that folder exists. Without them every test here skips with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ros_harness import ROOT, isolate_ros_domain

VENV = Path(sys.prefix)
README = ROOT / "README.md"
MISSING = [tool for tool in ("ros2", "colcon") if not (VENV / "bin" / tool).exists()]
if importlib.util.find_spec("launch_ros") is None:
    MISSING.append("launch_ros")
pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"{', '.join(MISSING)} not installed in this venv: the ROS 2 launch/CLI tools come from "
        "../shared/ros-tools (make venv installs them when that folder exists; on a ROS 2 install source it)",
    ),
]
START_TIMEOUT = 300.0
STOP_TIMEOUT = 30.0


# --- the README's commands ----------------------------------------------------------------------------------------


def readme_block(name: str) -> list[str]:
    """The command lines of the README's bash block marked ``<!-- test_ros_tools: NAME -->`` (comments dropped)."""
    text = README.read_text()
    marker = f"<!-- test_ros_tools: {name} -->"
    assert marker in text, f"README has no block marked {marker}"
    block = text.split(marker, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.splitlines():
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if command and not command.startswith("#"):
            lines.append(command)
    return lines


def readme_command(name: str, start: str) -> str:
    """The one command of block ``name`` that starts with ``start`` (so the README cannot drift from the tests)."""
    found = [line for line in readme_block(name) if line.startswith(start)]
    assert len(found) == 1, f"README block {name!r}: {len(found)} commands start with {start!r}: {found}"
    return found[0]


# --- processes ----------------------------------------------------------------------------------------------------


def tool_env() -> dict[str, str]:
    """The environment a user sets up for the tools in the venv (README), on this test run's own DDS domain."""
    isolate_ros_domain()
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV / 'bin'}:{env.get('PATH', '')}",
        AMENT_PREFIX_PATH=str(VENV),
        CMAKE_PREFIX_PATH=str(VENV),
        PYTHONUNBUFFERED="1",
        RCUTILS_LOGGING_BUFFERED_STREAM="0",
    )
    for name in ("PYTHONPATH", "SEGZERO_FASTDDS_PROFILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)  # as in a fresh shell: the venv (or install/setup.bash) provides the packages
    return env


class Shell:
    """Runs command lines in bash as a user's terminal would: in ``cwd``, after ``source install/setup.bash`` when
    ``workspace`` is set."""

    def __init__(self, cwd: Path, workspace: bool) -> None:
        self.cwd = cwd
        self.prefix = "source install/setup.bash && " if workspace else ""
        self.env = tool_env()

    def run(self, command: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", self.prefix + command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, command: str, log: Path) -> Background:
        """A long-running command in its own process group (a terminal's foreground job)."""
        handle = open(log, "w")  # noqa: SIM115 - closed by Background.stop
        proc = subprocess.Popen(
            ["bash", "-c", f"{self.prefix}exec {command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return Background(proc, log, handle)


class Background:
    def __init__(self, proc: subprocess.Popen, log: Path, handle) -> None:
        self.proc, self.log_path, self._handle = proc, log, handle

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ctrl_c(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGINT to the whole process group, as Ctrl-C in a terminal does; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            code = None
        self._handle.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._handle.close()


def wait_active(shell: Shell, node: Background, name: str = "/segzero") -> None:
    """Until ``ros2 lifecycle get NAME`` (the README's check) says active."""
    command = readme_command("offline", "ros2 lifecycle get").replace("/segzero", name)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert node.proc.poll() is None, f"exited with {node.proc.returncode}:\n{node.log()[-4000:]}"
        out = shell.run(command, timeout=60)
        if out.stdout.startswith("active"):
            return
        time.sleep(1.0)
    raise AssertionError(f"{name} not active after {START_TIMEOUT:.0f} s:\n{node.log()[-4000:]}")


def assert_clean_exit(code: int | None, log: str) -> None:
    assert code == 0, f"exit code {code}:\n{log[-4000:]}"
    for bad in ("Traceback", "KeyboardInterrupt", "context is invalid", "process has died"):
        assert bad not in log, f"{bad!r} in the output:\n{log[-4000:]}"
    assert "shut down in" in log, log[-4000:]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A colcon workspace with this repository as src/segzero_ros, built with the README's command."""
    ws = tmp_path_factory.mktemp("ws")
    src = ws / "src" / "segzero_ros"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        target = src / name.decode()
        if (ROOT / name.decode()).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((ROOT / name.decode()).read_bytes())
    build = readme_command("workspace", "colcon build")
    out = Shell(ws, workspace=False).run(build, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert (ws / "install" / "segzero_ros" / "share" / "segzero_ros" / "launch" / "segzero.launch.py").is_file()
    assert (ws / "install" / "segzero_interfaces").is_dir()
    return ws


def test_launch_in_a_colcon_workspace_and_the_readme_commands(workspace, tmp_path):
    shell = Shell(workspace, workspace=True)
    node = shell.start(readme_command("offline", "ros2 launch segzero_ros"), tmp_path / "launch.log")
    camera = None
    try:
        wait_active(shell, node)
        assert f"Fast DDS profile {workspace}/install/segzero_ros/share/segzero_ros/config" in node.log()
        camera = shell.start(readme_command("offline", "segzero camera"), tmp_path / "camera.log")

        # A topic goal and its result, as the README shows them (the JSON whole, not cut short).
        echo = shell.start(readme_command("offline", "ros2 topic echo"), tmp_path / "echo.log")
        time.sleep(2.0)  # the echo's subscription is discovered before the goal goes out
        assert shell.run(readme_command("offline", "ros2 topic pub")).returncode == 0
        echo.proc.wait(START_TIMEOUT)
        result = json.loads(yaml.safe_load(echo.log().split("---")[0])["data"])
        assert result["status"] == "ok" and result["goal"] == "the red cup", result
        assert result["image"] == {"width": 1280, "height": 720} and result["targets"]

        # A live parameter, and an invalid value refused with the reason.
        out = shell.run(readme_command("offline", "ros2 param set /segzero reasoner.protocol multi"))
        assert "Set parameter successful" in out.stdout, out.stdout + out.stderr
        out = shell.run(readme_command("offline", "ros2 param set /segzero reasoner.protocol yolo"))
        assert (
            "Setting parameter failed: reasoner.protocol must be one of ['segzero', 'multi']" in out.stdout + out.stderr
        )
        assert shell.run("ros2 param set /segzero reasoner.protocol segzero").returncode == 0

        # The action: feedback, SUCCEEDED, and a result a terminal can show.
        out = shell.run(readme_command("offline", "ros2 action send_goal"), timeout=START_TIMEOUT)
        assert "Goal finished with status: SUCCEEDED" in out.stdout, out.stdout[-3000:] + out.stderr[-3000:]
        assert "stage: queued" in out.stdout and "stage: segmenting" in out.stdout
        assert len(out.stdout.splitlines()) < 300, f"{len(out.stdout.splitlines())} lines"

        # The quiet way: segzero ask.
        out = shell.run(readme_command("offline", "segzero ask"), timeout=START_TIMEOUT)
        assert out.returncode == 0 and ": ok" in out.stdout.splitlines()[0], out.stdout + out.stderr
        assert re.search(r"^target \S+:1 \('.+'\): box ", out.stdout, re.M), out.stdout
        assert "  detection: centre [" in out.stdout and (workspace / "ask_out" / "mask.png").is_file()
    finally:
        if camera is not None:
            camera.ctrl_c()
        code = node.ctrl_c()
    assert_clean_exit(code, node.log())


def test_launch_with_depth_starts_both_nodes_and_stops_cleanly(workspace, tmp_path):
    shell = Shell(workspace, workspace=True)
    launch = readme_command("workspace", "ros2 launch segzero_ros segzero.launch.py preset:=tiny use_depth:=true")
    node = shell.start(launch, tmp_path / "launch.log")
    try:
        wait_active(shell, node)
        deadline = time.monotonic() + 60
        while "/segzero_depth" not in (names := shell.run("ros2 node list").stdout) and time.monotonic() < deadline:
            time.sleep(1.0)
        assert "/segzero_depth" in names and "/segzero" in names, names
    finally:
        code = node.ctrl_c()
    assert_clean_exit(code, node.log())
    assert node.log().count("shut down in") == 2  # both nodes finished their shutdown


def test_ros2_run_in_the_venv_without_colcon(tmp_path):
    shell = Shell(ROOT, workspace=False)
    node = shell.start(readme_command("offline", "ros2 run segzero_ros segzero_node"), tmp_path / "run.log")
    try:
        wait_active(shell, node)
    finally:
        code = node.ctrl_c()
    assert_clean_exit(code, node.log())


def test_ctrl_c_of_the_launch_is_clean_five_times_in_a_row(tmp_path):
    shell = Shell(ROOT, workspace=False)  # the venv registers segzero_ros in its ament index (make venv)
    for attempt in range(5):
        node = shell.start(readme_command("offline", "ros2 launch segzero_ros"), tmp_path / f"launch{attempt}.log")
        try:
            wait_active(shell, node)
        finally:
            code = node.ctrl_c()
        assert_clean_exit(code, node.log())


def test_launch_refuses_unknown_or_invalid_overrides(tmp_path):
    shell = Shell(ROOT, workspace=False)
    for override, reason in (
        ("overrides:='{reasoner.max_new_token: 5}'", "unknown segzero parameter 'reasoner.max_new_token'"),
        ("image_qos:=fast", "image_qos must be one of"),
    ):
        out = shell.run(f"ros2 launch segzero_ros segzero.launch.py preset:=tiny {override}", timeout=120)
        assert out.returncode != 0 and reason in out.stdout + out.stderr, out.stdout[-2000:] + out.stderr[-2000:]
    assert "segzero_node" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module", autouse=True)
def _stop_the_ros2_daemon():
    """The CLI starts a daemon on first use; it must not outlive the tests."""
    yield
    subprocess.run(["bash", "-c", "ros2 daemon stop"], env=tool_env(), capture_output=True, timeout=60)


def test_readme_blocks_name_only_tested_commands():
    tested = {
        "offline": [
            "ros2 launch segzero_ros",
            "ros2 run segzero_ros segzero_node",
            "ros2 lifecycle get",
            "segzero camera",
            "ros2 topic pub",
            "ros2 topic echo",
            "ros2 param set /segzero reasoner.protocol multi",
            "ros2 param set /segzero reasoner.protocol yolo",
            "ros2 action send_goal",
            "segzero ask",
            "export AMENT_PREFIX_PATH",
        ],
        "workspace": ["colcon build", "source install/setup.bash", "ros2 launch segzero_ros segzero.launch.py"],
    }
    for block, starts in tested.items():
        for line in readme_block(block):
            assert any(line.startswith(s) for s in starts), f"README {block!r}: {line!r} is not run by a test"
    assert shlex.split(readme_command("offline", "ros2 topic echo"))[:5] == [
        "ros2",
        "topic",
        "echo",
        "--once",
        "--full-length",
    ]
