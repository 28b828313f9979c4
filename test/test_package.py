"""The ROS 2 package layout: package.xml, setup.py, console scripts, the venv's imports."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
    for name in ("segzero", "segzero_node"):
        assert (bin_dir / name).exists(), name
    out = subprocess.run([str(bin_dir / "segzero"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "infer" in out.stdout


def test_core_imports_no_rclpy():
    code = (
        "import sys, segzero_ros.protocol, segzero_ros.pipeline, segzero_ros.reasoner, segzero_ros.segmenter, "
        "segzero_ros.image_codec, segzero_ros.tiny, segzero_ros.cli; print('rclpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_venv_has_the_whole_stack():
    code = "import rclpy, torch, transformers, sam2, cv2, numpy, onnxruntime, trl; print(torch.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("2.14.1")
