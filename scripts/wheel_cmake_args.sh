#!/usr/bin/env bash
# The CMake arguments colcon needs to build segzero_interfaces against the ROS 2 PyPI wheels (not needed on a
# ROS 2 install): the wheels' targets name the include folders of the machine that built them, and
# wheel_paths_fixup.cmake points them at this Python's. Usage, in a workspace with src/segzero_ros:
#   colcon build --packages-up-to segzero_ros --cmake-args $(bash src/segzero_ros/scripts/wheel_cmake_args.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
echo "-DBUILD_TESTING=OFF" \
  "-DCMAKE_PROJECT_INCLUDE=$HERE/wheel_paths_fixup.cmake" \
  "-DSEGZERO_PYTHON_INCLUDE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
  "-DSEGZERO_NUMPY_INCLUDE=$("$PY" -c 'import numpy; print(numpy.get_include())')"
