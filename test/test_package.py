"""The ROS 2 packages' layout (segzero_ros, segzero_interfaces), console scripts, the venv's imports."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "segzero_ros"  # the ament_python package
INTERFACES = REPO / "segzero_interfaces"


def test_packages_sit_side_by_side_where_colcon_finds_both():
    # colcon stops descending at a package: neither package may contain the other, nor the repository root be one.
    assert not (REPO / "package.xml").exists()
    for folder, name, build_type in (
        (ROOT, "segzero_ros", "ament_python"),
        (INTERFACES, "segzero_interfaces", "ament_cmake"),
    ):
        root = ET.parse(folder / "package.xml").getroot()
        assert (root.findtext("name"), root.find("export/build_type").text) == (name, build_type)
    interfaces = ET.parse(INTERFACES / "package.xml").getroot()
    assert interfaces.findtext("member_of_group") == "rosidl_interface_packages"
    assert "segzero_interfaces" in {e.text for e in ET.parse(ROOT / "package.xml").getroot().findall("exec_depend")}


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "segzero_ros"
    assert root.find("export/build_type").text == "ament_python"
    depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "std_msgs", "sensor_msgs"} <= depends
    assert "@" in root.find("maintainer").get("email")


def test_setup_py_names_the_package_and_its_version():
    out = subprocess.run(
        [sys.executable, "setup.py", "--name", "--version"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["segzero_ros", "0.1.0"]
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.findtext("version") == "0.1.0"


def test_ament_resource_marker_and_script_dir():
    assert (ROOT / "resource" / "segzero_ros").is_file()
    cfg = (ROOT / "setup.cfg").read_text()
    assert "install_scripts=$base/lib/segzero_ros" in cfg


def test_console_scripts_are_installed():
    bin_dir = Path(sys.executable).parent
    for name in ("segzero", "segzero_node", "segzero_depth"):
        assert (bin_dir / name).exists(), name
    out = subprocess.run([str(bin_dir / "segzero"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "infer" in out.stdout


def test_core_imports_no_rclpy():
    code = (
        "import sys, segzero_ros.protocol, segzero_ros.pipeline, segzero_ros.reasoner, segzero_ros.segmenter, "
        "segzero_ros.image_codec, segzero_ros.tiny, segzero_ros.cli, segzero_ros.depth; print('rclpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_venv_has_the_whole_stack():
    code = "import rclpy, torch, transformers, sam2, cv2, numpy, onnxruntime, trl; print(torch.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("2.14.1")


def test_interfaces_are_built_into_the_venv():
    code = (
        "from rclpy.serialization import serialize_message, deserialize_message\n"
        "from segzero_interfaces.msg import SegmentationResult, Target\n"
        "from segzero_interfaces.action import Segment\n"
        "target = Target(x1=1.0, points=[2.0, 3.0], mask_index=1)\n"
        "m = SegmentationResult(goal='the red cup', status='ok', targets=[target])\n"
        "m.header.frame_id = 'camera'; m.mask.encoding = 'mono8'\n"
        "back = deserialize_message(serialize_message(m), SegmentationResult)\n"
        "goal = Segment.Goal(goal='x', multi=True)\n"
        "print(back.header.frame_id, back.targets[0].points.tolist(), back.mask.encoding, goal.multi)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert out.returncode == 0, f"segzero_interfaces is not importable (make venv builds it): {out.stderr[-2000:]}"
    assert out.stdout.split() == ["camera", "[2.0,", "3.0]", "mono8", "True"]


def test_package_imports_from_the_repository_root_without_pythonpath():
    # From the root, the segzero_ros/ folder looks like a namespace package; the install must still win.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import segzero_ros.protocol, training.rewards; print(segzero_ros.protocol.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(ROOT / "segzero_ros" / "protocol.py")
