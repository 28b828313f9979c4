#!/usr/bin/env bash
# The real ROS 2 launch and command-line tools (ros2 launch/run/topic/action/param/lifecycle, launch_ros) and
# colcon, for the tests that run the README's ROS commands. They are test tooling built from upstream sources and
# kept beside the repository in ../shared/ros-tools (PyPI has the ROS 2 runtime wheels but not these); where that
# folder is missing, say so: those tests then skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
TOOLS=../shared/ros-tools/install.sh
if [ ! -f "$TOOLS" ]; then
  echo "ros2 launch/CLI tools: $TOOLS not found; the tests that run them (test/test_ros_tools.py) will skip"
  exit 0
fi
bash "$TOOLS" "$VENV" | tail -n 1
