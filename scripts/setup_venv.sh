#!/usr/bin/env bash
# Create .venv from the repository's own files: pinned torch pair, runtime, ROS 2 wheels, sam2, dev tools.
# Idempotent: a complete venv (stamp file newer than every requirements file) is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.segzero-installed"

if [ -f "$STAMP" ] && [ -z "$(find requirements segzero_ros/setup.py -newer "$STAMP" 2>/dev/null)" ]; then
  exit 0
fi

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-compile -q)
# setuptools pinned: the editable install below uses its "compat" mode.
"${pip[@]}" --upgrade pip "setuptools==84.2.1" wheel
"${pip[@]}" -r requirements/torch.txt
"${pip[@]}" -r requirements/torch.txt -r requirements/base.txt -r requirements/ros.txt -r requirements/ros-build.txt \
  -r requirements/training.txt -r requirements/dev.txt
# sam2 builds from source; without these flags pip may pull another torch into its build environment.
SAM2_BUILD_CUDA=0 "${pip[@]}" --no-build-isolation --no-deps sam2==1.1.0
# compat mode: a path entry, not an import hook, so the segzero_ros/ folder seen from the repository root
# (a namespace package to Python) never hides the real package.
"${pip[@]}" --no-deps --no-build-isolation --config-settings editable_mode=compat -e segzero_ros
touch "$STAMP"
echo "venv ready in $(( $(date +%s) - start )) s, $(du -sm "$VENV" | cut -f1) MB"
