"""Parameters: one definition, the YAML file, the node's declarations and validation; the launch file."""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from segzero_ros import params

ROOT = Path(__file__).resolve().parents[1] / "segzero_ros"  # the ament_python package
LAUNCH = ROOT / "launch" / "segzero.launch.py"


def _yaml_values() -> dict:
    data = yaml.safe_load((ROOT / "config" / "segzero.yaml").read_text())
    return params.flatten(data["/**"]["ros__parameters"])


def test_yaml_lists_every_parameter_with_its_default():
    assert _yaml_values() == {p.name: p.default for p in params.PARAMETERS}


def test_depth_yaml_lists_every_depth_node_parameter_with_its_default():

    data = yaml.safe_load((ROOT / "config" / "segzero_depth.yaml").read_text())
    assert params.flatten(data["/**"]["ros__parameters"]) == {p.name: p.default for p in params.DEPTH_PARAMETERS}


def test_every_default_is_valid():
    for p in params.PARAMETERS:
        assert params.validate(p.name, p.default) is None, p.name


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("reasoner.protocol", "yolo", "one of"),
        ("image_timeout_s", -1.0, ">= 0.0"),
        ("max_pending_goals", 0, ">= 1"),
        ("max_pending_goals", 2.5, "must be int"),
        ("max_pending_goals", True, "must be int"),
        ("reasoner.image_size", 4116, "must be <= 4088"),
        ("reasoner.image_size", 850, "multiple of 28"),
        ("publish_overlay", "yes", "must be bool"),
    ],
)
def test_validate_rejects(name, value, reason):
    assert reason in params.validate(name, value)


def test_validate_accepts_int_for_float_and_ignores_foreign_parameters():
    assert params.validate("image_timeout_s", 3) is None
    assert params.validate("use_sim_time", "whatever") is None


def test_node_declares_exactly_the_parameters_with_descriptors():
    import rclpy

    from segzero_ros.ros.node import SegZeroNode

    rclpy.init(args=["--ros-args", "-p", "autostart:=false"])
    try:
        node = SegZeroNode()
        plain = rclpy.create_node("plain")  # rclpy's own parameters (use_sim_time, ...) are not ours
        declared = set(node._parameters) - set(plain._parameters)
        plain.destroy_node()
        assert declared == {p.name for p in params.PARAMETERS}
        desc = node.describe_parameters(["max_pending_goals", "image_timeout_s", "reasoner.model"])
        assert desc[0].integer_range[0].from_value == 1 and desc[0].integer_range[0].to_value == 100
        assert desc[1].floating_point_range[0].to_value == 600.0
        assert desc[2].read_only and desc[2].description
        from rclpy.parameter import Parameter

        refused = node.set_parameters([Parameter("reasoner.protocol", value="yolo")])[0]
        assert not refused.successful and "one of" in refused.reason
        assert node.set_parameters([Parameter("reasoner.protocol", value="multi")])[0].successful
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_launch_file_compiles_and_names_its_arguments():
    tree = ast.parse(LAUNCH.read_text())
    compile(tree, str(LAUNCH), "exec")
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"params_file", "image_topic", "goal_topic", "namespace", "segzero_node", "segzero.yaml"} <= strings
    assert {"use_depth", "depth_params_file", "depth_topic", "camera_info_topic", "segzero_depth"} <= strings
    assert "segzero_depth.yaml" in strings
    assert {"fastdds_profile", "SEGZERO_FASTDDS_PROFILE"} <= strings  # the profile reaches every started node


@pytest.mark.skipif(
    importlib.util.find_spec("launch_ros") is None,
    reason="launch_ros is not on PyPI: make venv installs it from ../shared/ros-tools when that folder exists",
)
def test_launch_description_builds_and_checks_its_overrides(monkeypatch):
    import sys

    monkeypatch.setenv("AMENT_PREFIX_PATH", os.environ.get("AMENT_PREFIX_PATH") or sys.prefix)  # make venv registers it
    spec = importlib.util.spec_from_file_location("segzero_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = [a.name for a in description.get_launch_arguments()]
    assert names[:4] == ["params_file", "image_topic", "goal_topic", "namespace"]
    assert names[4:9] == ["use_depth", "depth_params_file", "depth_topic", "camera_info_topic", "fastdds_profile"]
    assert names[9:] == [*module.COMMON_ARGUMENTS, "overrides", "log_level"]
    assert all(name in params.BY_NAME for name, _ in module.COMMON_ARGUMENTS.values())
    values = {
        "preset": "tiny",
        "compressed_input": "true",
        "overrides": "{reasoner: {max_new_tokens: 64}, image_timeout_s: 2}",
    }
    assert module.node_overrides(values) == {
        "preset": "tiny",
        "compressed_input": True,
        "reasoner.max_new_tokens": 64,
        "image_timeout_s": 2.0,  # an int given for a float parameter is made a float
    }
    for bad, reason in (
        ({"overrides": "{reasoner.max_new_token: 5}"}, "unknown segzero parameter"),
        ({"overrides": "[1, 2]"}, "must be a YAML mapping"),
        ({"tracking": "maybe"}, "tracking.enabled must be bool"),
    ):
        with pytest.raises(RuntimeError, match=reason):
            module.node_overrides(bad)


def test_package_xml_names_every_ros_package_the_code_imports():
    """Each ROS package imported by the module, its ros/ helpers or the launch file is an exec_depend (or a depend)."""
    import sys
    import xml.etree.ElementTree as ET

    index = Path(sys.prefix) / "share" / "ament_index" / "resource_index" / "packages"
    ros_packages = {p.name for p in index.iterdir()} if index.is_dir() else set()
    assert {"rclpy", "std_msgs", "rcl_interfaces"} <= ros_packages, "the venv's ament index is incomplete"
    imported = set()
    for path in [*ROOT.joinpath("segzero_ros").rglob("*.py"), LAUNCH]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    needed = (imported & ros_packages) - {"segzero_ros"}
    root = ET.parse(ROOT / "package.xml").getroot()
    declared = {e.text for e in [*root.findall("exec_depend"), *root.findall("depend")]}  # depend = build + exec
    assert needed <= declared, f"missing exec_depend or depend: {sorted(needed - declared)}"
    assert {"rcl_interfaces", "ament_index_python"} <= needed  # launch/launch_ros too where ros-tools are installed
