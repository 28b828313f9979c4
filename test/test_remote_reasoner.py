"""The reasoner on an OpenAI-compatible server: request body, answers, timeouts, retries, the API key."""

from __future__ import annotations

import base64
import io
import logging

import numpy as np
import pytest
from fake_openai import ANSWER, FakeOpenAI
from PIL import Image

from segzero_ros.protocol import build_prompt
from segzero_ros.reasoner.base import ReasonerConfig
from segzero_ros.reasoner.remote import RemoteConfig, RemoteReasoner
from segzero_ros.scenes import demo_scene


@pytest.fixture(scope="module")
def server():
    fake = FakeOpenAI()
    yield fake
    fake.close()


def _reasoner(server, **remote) -> RemoteReasoner:
    config = ReasonerConfig(model="Ricky06662/Seg-Zero-7B", strict=True)
    return RemoteReasoner(config, RemoteConfig(endpoint=server.endpoint, backoff_s=0.01, **remote))


def test_request_is_the_local_paths_prompt_and_image_and_the_answer_is_parsed(server):
    server.script(ANSWER)  # stopped at "</answer>": the server leaves the stop string out
    rgb = demo_scene(1280, 720)[0]
    reasoning = _reasoner(server, api_model="seg-zero").reason(rgb, "The mug I could pour coffee into.")
    (body,) = server.requests
    assert body["model"] == "seg-zero" and body["temperature"] == 0 and body["max_tokens"] == 1024
    assert body["stop"] == ["</answer>"]
    (message,) = body["messages"]
    image_part, text_part = message["content"]
    assert text_part == {"type": "text", "text": build_prompt("The mug I could pour coffee into.", "segzero")}
    png = base64.b64decode(image_part["image_url"]["url"].removeprefix("data:image/png;base64,"))
    assert Image.open(io.BytesIO(png)).size == (840, 840)
    assert reasoning.ok and reasoning.text == ANSWER + "</answer>" and reasoning.think == "The mug with a handle."
    fx, fy = 1280 / 840, 720 / 840
    assert reasoning.targets[0].bbox == (round(100 * fx), round(200 * fy), round(300 * fx), round(400 * fy))
    assert (reasoning.prompt_tokens, reasoning.new_tokens) == (923, 42)
    assert set(reasoning.timings_ms) == {"preprocess_ms", "request_ms", "parse_ms"}


def test_garbled_answer_is_a_failed_reasoning(server):
    server.script("I would say the mug, probably.")
    reasoning = _reasoner(server).reason(np.zeros((100, 100, 3), np.uint8), "the mug")
    assert not reasoning.ok and "unusable model answer" in reasoning.error


def test_server_errors_are_retried_then_reported(server):
    server.script(500, 503, ANSWER + "</answer>")
    assert _reasoner(server, retries=2).reason(np.zeros((64, 64, 3), np.uint8), "the mug").ok
    assert len(server.requests) == 3
    server.script(500, 500, 500, ANSWER)
    failed = _reasoner(server, retries=2).reason(np.zeros((64, 64, 3), np.uint8), "the mug")
    assert not failed.ok and "after 3 attempt(s)" in failed.error and "HTTP 500" in failed.error
    assert len(server.requests) == 3
    server.script(400, ANSWER)  # a bad request is not retried
    bad = _reasoner(server, retries=2).reason(np.zeros((64, 64, 3), np.uint8), "the mug")
    assert not bad.ok and "HTTP 400" in bad.error and len(server.requests) == 1


def test_slow_server_times_out(server):
    server.script(("slow", 2.0, ANSWER), ("slow", 2.0, ANSWER))
    reasoning = _reasoner(server, timeout_s=0.3, retries=1).reason(np.zeros((64, 64, 3), np.uint8), "the mug")
    assert not reasoning.ok and "timed out" in reasoning.error


def test_unreachable_server_is_an_error_result():
    config = ReasonerConfig(model="m")
    remote = RemoteReasoner(config, RemoteConfig(endpoint="http://127.0.0.1:9/v1", retries=0, timeout_s=2))
    reasoning = remote.reason(np.zeros((64, 64, 3), np.uint8), "the mug")
    assert not reasoning.ok and "failed after 1 attempt(s)" in reasoning.error


def test_api_key_comes_from_the_named_variable_and_is_never_logged(server, monkeypatch, caplog):
    monkeypatch.setenv("SEGZERO_TEST_KEY", "sk-secret-123")
    server.script(500, ANSWER)
    with caplog.at_level(logging.DEBUG):
        _reasoner(server, api_key_env="SEGZERO_TEST_KEY", retries=1).reason(np.zeros((64, 64, 3), np.uint8), "x")
    assert all(h.get("Authorization") == "Bearer sk-secret-123" for h in server.headers) and len(server.headers) == 2
    assert "attempt 1 of 2" in caplog.text and "sk-secret-123" not in caplog.text  # the failure was logged, not the key
    server.script(ANSWER)
    _reasoner(server).reason(np.zeros((64, 64, 3), np.uint8), "x")
    assert "Authorization" not in server.headers[0]


@pytest.mark.ros
def test_node_with_the_openai_backend_answers_every_goal_once(server, tmp_path, tiny_sam2_config):
    import json
    import time

    from ros_harness import NodeProcess, Probe, isolate_ros_domain

    isolate_ros_domain()
    import rclpy

    node = NodeProcess(
        tmp_path / "node.log",
        {
            "preset": "tiny",  # the tiny SAM2; the reasoner is the server
            "reasoner.backend": "openai",
            "reasoner.endpoint": server.endpoint,
            "reasoner.timeout_s": 1.0,
            "reasoner.retries": 1,
            "image_qos": "reliable",
        },
    )
    probe = Probe()
    frame = _frame()
    try:
        probe.wait_for_node(node, 300)
        server.script(ANSWER, "garbled", ("slow", 3.0, ANSWER), ("slow", 3.0, ANSWER), 500, 500)
        server.default = 500
        for goal_id in ("good", "garbled", "slow", "errors"):
            deadline = time.monotonic() + 60
            probe.send_goal(json.dumps({"id": goal_id, "text": "the red cup"}))
            while not any(r["id"] == goal_id for r in probe.results()):
                assert time.monotonic() < deadline, node.log()[-3000:]
                probe.send_frame(frame)
                time.sleep(0.1)
        results = {r["id"]: r for r in probe.results()}
        assert sorted(r["id"] for r in probe.results()) == ["errors", "garbled", "good", "slow"]  # once each
        assert results["good"]["status"] == "ok" and results["good"]["targets"][0]["area"] > 0
        assert results["good"]["models"]["reasoner"] == "Ricky06662/Seg-Zero-7B"
        assert "unusable model answer" in results["garbled"]["error"]
        assert "timed out" in results["slow"]["error"]
        assert "HTTP 500" in results["errors"]["error"]
        assert node.alive()
    finally:
        server.default = 500
        probe.close()
        node.stop()
        rclpy.try_shutdown()


def _frame():
    from segzero_ros.image_codec import numpy_to_image

    msg = numpy_to_image(demo_scene(320, 240)[0], "rgb8")
    msg.header.frame_id = "camera"
    return msg


def test_a_server_that_resized_the_image_fails_the_goal_with_the_cause_and_the_fix(server, tiny_reasoner_dir):
    """With the served model's processor here (a local folder), the request's prompt tokens are counted as the local
    path counts them; the fake server reports 923 (not this request's count): the goal fails, naming the fix."""
    from segzero_ros.reasoner.local import build_messages, resize_for_reasoner
    from segzero_ros.reasoner.remote import served_processor

    server.script(ANSWER)
    config = ReasonerConfig(model=str(tiny_reasoner_dir), image_size=840)
    reasoner = RemoteReasoner(config, RemoteConfig(endpoint=server.endpoint, backoff_s=0.01))
    rgb = demo_scene(640, 480)[0]
    reasoning = reasoner.reason(rgb, "the mug")
    processor, _ = served_processor(str(tiny_reasoner_dir))
    image = resize_for_reasoner(rgb, 840)
    prompt = processor.apply_chat_template(
        build_messages(image, build_prompt("the mug", "segzero")), tokenize=False, add_generation_prompt=True
    )
    expected = processor(text=[prompt], images=[image], return_tensors="np")["input_ids"].shape[1]
    assert expected > 900 and expected != 923  # 900 image tokens (840 / 28 squared) and the prompt's
    assert not reasoning.ok and reasoning.error.startswith(
        f"the server counted 923 prompt tokens for this request where {expected} were expected"
    )
    assert "segzero serve --image-size 840" in reasoning.error and '"max_pixels": 705600' in reasoning.error
    assert reasoning.targets == []  # nothing misplaced is published


def test_without_the_served_models_processor_the_guard_is_off_said_once(server, caplog):
    server.script(ANSWER, ANSWER)
    reasoner = _reasoner(server)  # a hub id neither cached nor reachable here
    with caplog.at_level(logging.WARNING, logger="segzero_ros.reasoner.remote"):
        assert reasoner.reason(np.zeros((64, 64, 3), np.uint8), "the mug").ok
        assert reasoner.reason(np.zeros((64, 64, 3), np.uint8), "the mug").ok
    said = [r.getMessage() for r in caplog.records if "image resizing is not checked" in r.getMessage()]
    assert len(said) == 1 and "Ricky06662/Seg-Zero-7B" in said[0]


def test_server_health_follows_requests_and_probes():
    from segzero_ros.reasoner.health import ServerHealth

    fake = FakeOpenAI()
    endpoint = fake.endpoint
    health = ServerHealth(endpoint, timeout_s=1.0)
    assert health.values()["reasoner_reachable"] == "unknown" and health.warning() == ""
    health.probe()
    assert health.values()["reasoner_reachable"] == "yes"
    health.record(True, latency_ms=12.34)
    assert health.values()["reasoner_last_request_ms"] == "12.3"
    fake.close()
    health.probe()
    values = health.values()
    assert values["reasoner_reachable"] == "no" and "Connection refused" in values["reasoner_error"]
    assert health.warning().startswith(f"reasoner server at {endpoint} not answering (")
    back = FakeOpenAI(port=int(endpoint.rsplit(":", 1)[1].split("/")[0]))
    try:
        health.probe()
        assert health.values()["reasoner_reachable"] == "yes" and health.warning() == ""
    finally:
        back.close()


def test_a_request_that_fails_marks_the_server_down_until_one_succeeds(server):
    server.script(500, 500, ANSWER)
    reasoner = _reasoner(server, retries=1)
    assert not reasoner.reason(np.zeros((64, 64, 3), np.uint8), "the mug").ok
    assert reasoner.health.values()["reasoner_reachable"] == "no" and "HTTP 500" in reasoner.health.warning()
    assert reasoner.reason(np.zeros((64, 64, 3), np.uint8), "the mug").ok
    assert reasoner.health.values()["reasoner_reachable"] == "yes" and reasoner.health.warning() == ""


def test_the_nodes_diagnostics_say_when_its_server_goes_down_and_comes_back(tmp_path, tiny_sam2_config):
    """Server down: WARN naming the endpoint (from the probes, before any goal), goals answered with an error;
    back: OK again. The endpoint, reachability and the last request's latency are in the diagnostics."""
    from node_support import goal_on_frame, make_frame, running_node

    fake = FakeOpenAI()
    endpoint, port = fake.endpoint, int(fake.endpoint.rsplit(":", 1)[1].split("/")[0])
    params = {"preset": "tiny", "reasoner.backend": "openai", "reasoner.endpoint": endpoint, "reasoner.retries": 0}
    with running_node(tmp_path / "node.log", {**params, "image_qos": "reliable"}) as (probe, node):

        def status():
            for array in reversed(probe.take("diagnostics")):
                for entry in array.status:
                    if entry.name == "/segzero: segzero":
                        return entry.level, entry.message, {kv.key: kv.value for kv in entry.values}
            return None

        from diagnostic_msgs.msg import DiagnosticStatus

        probe.wait_for(lambda: status() and status()[2].get("reasoner_reachable") == "yes", 30, "reachable", node)
        assert status()[2]["reasoner_endpoint"] == endpoint and status()[0] == DiagnosticStatus.OK
        fake.close()
        probe.clear()
        probe.wait_for(lambda: status() and status()[0] == DiagnosticStatus.WARN, 30, "a WARN", node)
        _, message, values = status()
        assert f"reasoner server at {endpoint} not answering (" in message and values["reasoner_reachable"] == "no"
        answer = goal_on_frame(probe, make_frame(), "while-down", node)
        assert answer["status"] == "error" and endpoint in answer["error"]
        back = FakeOpenAI(port=port)
        try:
            probe.clear()
            probe.wait_for(lambda: status() and status()[0] == DiagnosticStatus.OK, 30, "OK again", node)
            assert status()[2]["reasoner_reachable"] == "yes" and status()[2]["reasoner_error"] == ""
        finally:
            back.close()
