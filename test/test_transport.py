"""Camera-rate 720p frames across processes on the default RMW: the shipped Fast DDS profile, the node's
warning when frames do not arrive, and the choice of profile (README "Cameras and transport")."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from node_support import result_for, running_node, send_goal
from ros_harness import ROOT, camera_published, start_camera

from segzero_ros.ros import transport
from segzero_ros.stream_health import OK, WARN, StreamHealth

PROFILE = ROOT / "segzero_ros" / "config" / "fastdds_shm.xml"


# --- the profile and how a node process picks it ---------------------------------------------------------------


def test_shipped_profile_has_a_large_shared_memory_segment_and_udp():
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(PROFILE).getroot()
    transports = {
        t.findtext("d:transport_id", namespaces=ns): t for t in root.iterfind(".//d:transport_descriptor", ns)
    }
    kinds = {name: t.findtext("d:type", namespaces=ns) for name, t in transports.items()}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]
    shm = next(t for t in transports.values() if t.findtext("d:type", namespaces=ns) == "SHM")
    assert int(shm.findtext("d:segment_size", namespaces=ns)) >= 32 * 1024 * 1024
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = [e.text for e in participant.iterfind(".//d:userTransports/d:transport_id", ns)]
    assert sorted(used) == sorted(transports) and participant.findtext(".//d:useBuiltinTransports", namespaces=ns)


def test_setup_installs_the_profile_beside_the_parameters():
    setup = (ROOT / "segzero_ros" / "setup.py").read_text()
    assert 'glob("config/*.xml")' in setup


@pytest.mark.parametrize(
    ("environ", "expected", "note"),
    [
        ({}, str(PROFILE), "large shared-memory segment"),
        ({"SEGZERO_FASTDDS_PROFILE": "auto"}, str(PROFILE), "large shared-memory segment"),
        ({"FASTDDS_DEFAULT_PROFILES_FILE": "/robot.xml"}, "/robot.xml", "from the environment"),
        ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/old.xml"}, None, "from the environment"),
        ({"SEGZERO_FASTDDS_PROFILE": "none"}, None, "none (Fast DDS defaults)"),
        ({"SEGZERO_FASTDDS_PROFILE": str(PROFILE), "FASTDDS_DEFAULT_PROFILES_FILE": "/x.xml"}, str(PROFILE), ""),
        ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, None, "no Fast DDS profile applied"),
        ({"RMW_IMPLEMENTATION": "rmw_fastrtps_dynamic_cpp"}, str(PROFILE), ""),
    ],
)
def test_profile_choice(environ, expected, note):
    env = dict(environ)
    line = transport.apply_defaults(env)
    assert env.get("FASTDDS_DEFAULT_PROFILES_FILE") == expected
    assert note in line


def test_a_missing_profile_file_is_a_clear_error():
    with pytest.raises(transport.TransportConfigError, match="no such file"):
        transport.apply_defaults({"SEGZERO_FASTDDS_PROFILE": "/nowhere/profile.xml"})


# --- stream health, without ROS ---------------------------------------------------------------------------------


def test_stream_health_warns_when_publishers_exist_but_nothing_arrives():
    health = StreamHealth("/camera/image", stall_s=3.0)
    assert health.check(0, 0.0).level == OK  # nobody publishes yet: the camera may still be starting
    assert health.check(1, 1.0).level == OK  # a publisher appeared: give it stall_s
    health.lost(40, 2.0)
    verdict = health.check(1, 4.5)
    assert verdict.level == WARN and "no frame arrived for 4 s (40 lost in transport" in verdict.message
    assert "fastdds_shm.xml" in verdict.message and "Cameras and transport" in verdict.message
    for k in range(30):
        health.frame(5.0 + k / 30)
    assert health.check(1, 6.0).level == WARN  # 40 lost vs 30 received in the window: still mostly lost
    assert health.check(1, 7.5).level == OK and health.check(1, 7.5).rate_hz == pytest.approx(6.0)


def test_stream_health_warns_when_nobody_publishes_for_a_while():
    health = StreamHealth("/camera/color/image_raw", no_publisher_s=5.0)
    assert health.check(0, 0.0).message == "no publisher on /camera/color/image_raw"
    assert health.check(0, 4.0).level == OK
    verdict = health.check(0, 5.5)
    assert verdict.level == WARN and verdict.message.startswith("no publisher on /camera/color/image_raw for 6 s")
    assert "image_topic:=" in verdict.message
    assert health.check(1, 6.0).level == OK  # a camera came: give it time to send
    assert health.check(0, 7.0).level == OK  # and gone again: the count starts anew


def test_stream_health_warns_when_most_frames_are_lost():
    health = StreamHealth("/camera/image")
    health.check(1, 0.0)
    for k in range(10):
        health.frame(1.0 + k * 0.1)
    health.lost(40, 2.0)
    verdict = health.check(1, 2.0)
    assert verdict.level == WARN and "40 of 50 frames lost in transport" in verdict.message
    health.lost(41, 2.1)  # a few lost among many received: fine
    for k in range(100):
        health.frame(8.0 + k * 0.01)
    assert health.check(1, 9.0).level == OK


# --- real processes: a 720p camera at 30 Hz, the node with its default settings ---------------------------------


def diagnostics_status(probe):
    for array in reversed(probe.take("diagnostics")):
        for status in array.status:
            if status.name.endswith("segzero: segzero"):
                return status
    return None


@pytest.fixture(scope="module")
def ros(tmp_path_factory, tiny_fitted_reasoner_dir, tiny_sam2_config):
    """The node with its default settings (sensor-data image QoS, the shipped profile), tiny models."""
    log = tmp_path_factory.mktemp("transport") / "segzero_node.log"
    params = {"preset": "tiny", "tracking.enabled": False, "reasoner.max_new_tokens": 96}
    # No image publisher on the probe: the cameras below are the topic's only publishers.
    with running_node(log, params, probe_images=False) as (probe, node):
        probe.wait_for(lambda: probe.diagnostic("frames_received") is not None, 30, "diagnostics", node)
        yield probe, node


def frames_received(probe, node) -> int:
    """The node's count, read from a diagnostics message newer than now."""
    return int(probe.fresh_diagnostic("frames_received", node, 10))


def test_node_log_names_the_transport_profile(ros):
    _, node = ros
    assert f"transport: Fast DDS profile {PROFILE}" in node.log()


@pytest.mark.parametrize("qos", ["best_effort", "reliable"])
def test_720p_camera_at_30_hz_reaches_the_node(ros, qos):
    probe, node = ros
    before = frames_received(probe, node)
    sent = camera_published(start_camera(6.0, qos, profile=True))
    time.sleep(1.0)
    received = frames_received(probe, node) - before
    assert received >= 0.9 * sent, f"{received} of {sent} frames ({qos} camera, shipped profile)"
    assert "no frame arrived" not in node.log() and "lost in transport" not in node.log()
    assert float(probe.diagnostic("frame_latency_p50_ms")) < 1000  # stamps are this machine's clock


def test_720p_mask_reaches_a_best_effort_subscriber_in_another_process(ros):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    probe, node = ros
    masks = []
    sub = probe.node.create_subscription(Image, "mask", masks.append, qos_profile_sensor_data)
    stream = start_camera(8.0, "best_effort", profile=True)
    try:
        probe.clear()
        probe.wait_for(lambda: float(probe.diagnostic("image_rate_hz") or 0) > 10, 20, "camera", node)
        send_goal(probe, "mask-720p")
        assert result_for(probe, "mask-720p", node)["status"] == "ok"
        probe.wait_for(lambda: masks, 10, "a mask on a best-effort subscription", node)
        assert (masks[-1].width, masks[-1].height, masks[-1].encoding) == (1280, 720, "mono8")
    finally:
        probe.node.destroy_subscription(sub)
        camera_published(stream)  # the camera ends on its own and leaves the graph


def test_camera_without_the_profile_gets_a_warning_that_names_the_fix(ros):
    probe, node = ros
    idle = lambda: probe.diagnostic("image_rate_hz") == "0.0"  # noqa: E731 - earlier cameras' frames gone
    probe.wait_for(idle, 15, "an idle image topic", node)
    stream = start_camera(12.0, "best_effort", profile=False)
    try:
        probe.wait_for(lambda: "Cameras and transport" in node.log(), 10, "the transport warning", node)
        probe.clear()
        probe.wait_for(lambda: (s := diagnostics_status(probe)) is not None and s.level == s.WARN, 5, "WARN", node)
        status = diagnostics_status(probe)
        assert "fastdds_shm.xml" in status.message and "lost in transport" in status.message
        values = {kv.key: kv.value for kv in status.values}
        assert int(values["image_publishers"]) == 1 and float(values["image_rate_hz"]) < 1.0
        assert int(values["image_lost_in_transport"]) > 0
        time.sleep(4.0)  # still lost: the warning is not repeated
    finally:
        stream.kill()
        stream.wait()
    log = node.log().splitlines()
    warnings = [line for line in log if line.startswith("[WARN]") and "Cameras and transport" in line]
    assert len(warnings) == 1, warnings  # once per episode (the idle topic before it warned of no publisher, apart)


def test_shipped_profile_path_is_found_outside_a_colcon_install():
    assert transport.shipped_profile() == PROFILE
    assert Path(transport.shipped_profile()).is_file()
