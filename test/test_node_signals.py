"""SIGINT and SIGTERM, as launch, systemd, ``docker stop`` and Ctrl-C send them: the node answers every goal it
owes, topic and action, before its context goes, and exits 0 without a traceback (a node process per case)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from node_support import TIMEOUT, answered, make_frame, send_goal, serve_frames_until, start_node
from ros_harness import NodeProcess, isolate_ros_domain

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("signals", [["SIGTERM"], ["SIGINT", "SIGINT"]], ids=["sigterm", "sigint-twice"])
def test_a_stop_signal_answers_every_goal_before_the_process_ends(tmp_path, tiny_fitted_reasoner_dir, signals):
    import rclpy
    from action_msgs.msg import GoalStatus

    from segzero_ros.ros.client import SegmentClient

    isolate_ros_domain()
    probe, node = start_node(tmp_path / "segzero_node.log")
    client = SegmentClient()
    try:
        assert client.wait_for_server(60)
        frame = make_frame(64, 48)
        serve_frames_until(probe, frame, lambda: probe.diagnostic("frame_age_s") is not None, node, "frame")
        send_goal(probe, "running", "slow:4 the red cup")
        probe.wait_for(lambda: probe.diagnostic("state") == "busy", 10, "the slow goal to run", node)
        ids = [f"pending-{i}" for i in range(3)]
        for goal_id in ids:
            send_goal(probe, goal_id)
        deadline = time.monotonic() + TIMEOUT
        handles = [client.wait_future(client.send_async("the red cup", image=frame), deadline, "accepted")]
        results = [h.get_result_async() for h in handles]
        time.sleep(0.3)  # the slow goal runs, the others wait
        for name in signals:
            node.proc.send_signal(getattr(signal, name))
            time.sleep(0.1)
        code = node.proc.wait(30)
        log = node.log()
        assert code == 0, log[-3000:]
        assert "Traceback" not in log and "context is invalid" not in log, log[-3000:]
        probe.wait_for(lambda: answered(probe, [*ids, "running"]), 10, "every topic goal answered")
        time.sleep(0.3)
        mine = [r for r in probe.results() if r["id"] in {*ids, "running"}]
        by_id = {r["id"]: r for r in mine}
        assert len(mine) == 4  # each exactly once
        assert all("shutting down" in by_id[i]["error"] for i in ids)
        assert by_id["running"]["status"] == "ok" or "shutting down" in by_id["running"]["error"]
        outcome = client.wait_future(results[0], time.monotonic() + 10, "action result")
        assert outcome.status == GoalStatus.STATUS_ABORTED and "shutting down" in outcome.result.result.error
    finally:
        client.close()
        probe.close()
        node.stop()
        rclpy.try_shutdown()


def shm_files() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if "fastdds" in name}


def mapped_shm_files(pid: int) -> set[str]:
    """The Fast DDS files in /dev/shm that process ``pid`` has mapped (its own segment and ports, and those of the
    processes it talks to)."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split(maxsplit=5)[-1] if len(line.split()) >= 6 else ""
        if path.startswith("/dev/shm/") and "fastdds" in path:
            names.add(path.removeprefix("/dev/shm/").removesuffix(" (deleted)"))
    return names


def test_killed_and_stopped_nodes_leave_no_shared_memory_behind(tmp_path, tiny_fitted_reasoner_dir):
    """SIGKILL leaves a node's Fast DDS segment behind; the next node reclaims it, SIGTERM releases its own. Only
    the files each node created are looked at: other processes on the machine may come and go meanwhile."""
    isolate_ros_domain()
    left_by_kill: set[str] = set()
    for k, signum in enumerate([signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGKILL, signal.SIGTERM]):
        before = shm_files()
        node = NodeProcess(tmp_path / f"node{k}.log", {"preset": "tiny", "tracking.enabled": False})
        try:
            deadline = time.monotonic() + 600
            while "active: waiting for images" not in node.log():
                assert node.alive() and time.monotonic() < deadline, node.log()[-3000:]
                time.sleep(0.1)
            created = mapped_shm_files(node.pid) - before
            assert any(os.path.getsize(f"/dev/shm/{f}") > 30 * 2**20 for f in created), created  # its 32 MB segment
            assert not left_by_kill & shm_files(), left_by_kill & shm_files()  # reclaimed at this node's start
            if left_by_kill:
                assert "reclaimed 2 Fast DDS shared-memory segment(s)" in node.log(), node.log()[-3000:]
            node.proc.send_signal(signum)
            node.proc.wait(60)
        finally:
            if node.alive():
                node.proc.kill()
        node.stop(check_log=signum != signal.SIGKILL)
        left = created & shm_files()
        if signum == signal.SIGTERM:
            assert not left, left  # a stopped node releases what it created
            left_by_kill = set()
        else:
            assert left, "a killed process cannot release its files"
            # Its segments (and their locks); a port file without a lock file stays, as Fast DDS's own clean leaves it
            left_by_kill = {f for f in left if not f.startswith(("sem.", "fastdds_port"))}
