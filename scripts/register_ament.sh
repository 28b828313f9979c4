#!/usr/bin/env bash
# Register the editable segzero_ros in the venv's ament index, as `colcon build --symlink-install` would in a
# workspace: `ros2 launch segzero_ros ...`, `ros2 run segzero_ros segzero_node` and get_package_share_directory
# then work in the venv (with AMENT_PREFIX_PATH=VENV). Everything is a symlink into this checkout; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${1:-.venv}" && pwd)
SRC=$PWD/segzero_ros
SHARE=$VENV/share/segzero_ros
mkdir -p "$VENV/share/ament_index/resource_index/packages" "$SHARE" "$VENV/lib/segzero_ros"
: > "$VENV/share/ament_index/resource_index/packages/segzero_ros"
ln -sfn "$SRC/package.xml" "$SHARE/package.xml"
# Real folders of file links: ros2 launch looks for launch files with os.walk, which does not enter linked folders.
for dir in launch config; do
  [ -L "$SHARE/$dir" ] && rm "$SHARE/$dir"
  mkdir -p "$SHARE/$dir"
  find "$SHARE/$dir" -maxdepth 1 -type l -delete
  for file in "$SRC/$dir"/*; do ln -sfn "$file" "$SHARE/$dir/$(basename "$file")"; done
done
for exe in segzero segzero_node segzero_depth; do
  ln -sfn "$VENV/bin/$exe" "$VENV/lib/segzero_ros/$exe"
done
