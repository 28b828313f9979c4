#!/usr/bin/env bash
# Build segzero_interfaces (messages + Segment action) into a venv that has the ROS 2 PyPI wheels, with plain
# CMake: the generated Python package lands in the venv's site-packages, its libraries in the venv's lib/
# (which the wheels' bootstrapper already puts on LD_LIBRARY_PATH). On a robot, colcon builds it instead.
# Usage: scripts/build_interfaces.sh [VENV]   (default .venv). Skipped when the build is newer than the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${1:-${VENV:-.venv}}" && pwd)
PY="$VENV/bin/python"
SRC=segzero_interfaces
BUILD="$VENV/.build/segzero_interfaces"  # inside the venv: nothing for colcon or git to trip over
STAMP="$VENV/.segzero-interfaces-built"

if [ -f "$STAMP" ] && [ -z "$(find "$SRC" scripts/build_interfaces.sh scripts/wheel_paths_fixup.cmake -newer "$STAMP")" ]; then
  exit 0
fi
start=$(date +%s)
py_include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
numpy_include=$("$PY" -c 'import numpy; print(numpy.get_include())')
command -v cmake > /dev/null || { echo "build_interfaces.sh: cmake not found (apt install cmake, or pip install cmake)"; exit 1; }
rm -rf "$BUILD" && mkdir -p "$BUILD"
# The wheels' CMake config files live under the venv prefix; ament finds packages through AMENT_PREFIX_PATH.
# Quirk: the wheels' targets name the include paths of the machine that built them; wheel_paths_fixup.cmake
# points them at this Python's (see that file).
AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" cmake -S "$SRC" -B "$BUILD" -Wno-dev \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$VENV" \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" \
  -DPython3_FIND_VIRTUALENV=ONLY \
  -DBUILD_TESTING=OFF \
  -DCMAKE_PROJECT_INCLUDE="$PWD/scripts/wheel_paths_fixup.cmake" \
  -DSEGZERO_PYTHON_INCLUDE="$py_include" \
  -DSEGZERO_NUMPY_INCLUDE="$numpy_include" > "$BUILD.log" 2>&1 || { tail -40 "$BUILD.log"; exit 1; }
AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" cmake --build "$BUILD" -j "$(nproc)" >> "$BUILD.log" 2>&1 \
  || { tail -40 "$BUILD.log"; exit 1; }
cmake --install "$BUILD" >> "$BUILD.log" 2>&1 || { tail -40 "$BUILD.log"; exit 1; }
touch "$STAMP"
echo "segzero_interfaces built into $VENV in $(( $(date +%s) - start )) s (log: $BUILD.log)"
