"""SIGINT and SIGTERM, as launch, systemd, ``docker stop`` and Ctrl-C send them: the node answers every goal it
owes, topic and action, before its context goes, and exits 0 without a traceback (a node process per case)."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import pytest
from ros_harness import NodeProcess, isolate_ros_domain
from test_node import make_frame, send_goal, serve_frames_until
from test_node_faults import TIMEOUT, answered, start_node

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("signals", [["SIGTERM"], ["SIGINT", "SIGINT"]], ids=["sigterm", "sigint-twice"])
def test_a_stop_signal_answers_every_goal_before_the_process_ends(tmp_path, tiny_fitted_reasoner_dir, signals):
    import rclpy
    from action_msgs.msg import GoalStatus

    from segzero_ros.client import SegmentClient

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


def shm_bytes() -> int:
    """Bytes of Fast DDS files in /dev/shm (segments, ports and their locks)."""
    total = 0
    for path in Path("/dev/shm").glob("*fastdds*"):
        with contextlib.suppress(OSError):  # removed meanwhile
            total += path.stat().st_size
    return total


def test_killed_and_stopped_nodes_leave_no_shared_memory_behind(tmp_path, tiny_fitted_reasoner_dir):
    """SIGKILL leaves a node's Fast DDS segment behind; the next node reclaims it, SIGTERM releases its own."""
    from segzero_ros.ros.shared_memory import reclaim_stale

    isolate_ros_domain()
    reclaim_stale()  # what earlier runs left
    baseline = shm_bytes()
    running, previous = [], None
    for k, signum in enumerate([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM]):
        node = NodeProcess(tmp_path / f"node{k}.log", {"preset": "tiny", "tracking.enabled": False})
        try:
            deadline = time.monotonic() + 600
            while "active: waiting for images" not in node.log():
                assert node.alive() and time.monotonic() < deadline, node.log()[-3000:]
                time.sleep(0.1)
            running.append(shm_bytes() - baseline)
            if previous == signal.SIGKILL:
                assert "reclaimed 2 Fast DDS shared-memory segment(s)" in node.log(), node.log()[-3000:]
            previous = signum
            node.proc.send_signal(signum)
            node.proc.wait(60)
        finally:
            if node.alive():
                node.proc.kill()
        node.stop(check_log=signum != signal.SIGKILL)
        if signum == signal.SIGTERM:
            assert shm_bytes() == baseline  # a stopped node releases what it had
    assert running[0] > 30 * 2**20  # one node: the shipped profile's 32 MB segment and the rest
    assert max(running) - min(running) < 2**20, running  # no growth with each kill
