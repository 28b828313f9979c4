#!/usr/bin/env bash
# Create .venv-datumaro: datumaro, CVAT's dataset import engine, with which the tests read `segzero export`'s COCO
# output (requirements/datumaro.txt). Idempotent: a complete venv (stamp newer than the requirements) is left as it
# is. About 15 s and 500 MB the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/side_venv.sh
side_venv_open datumaro datumaro "${DATUMARO_VENV:-.venv-datumaro}" requirements/datumaro.txt
"${pip[@]}" -r requirements/datumaro.txt >> "$LOG" 2>&1 || fail "datumaro did not install"
"$VENV/bin/python" -c "from datumaro.components.dataset import Dataset" >> "$LOG" 2>&1 \
  || fail "datumaro does not import in $VENV"
side_venv_close
