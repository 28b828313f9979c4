#!/usr/bin/env bash
# Create .venv-datumaro: datumaro, CVAT's dataset import engine, with which the tests read `segzero export`'s COCO
# output (requirements/datumaro.txt; its own venv: its pins differ from the project's). Idempotent: a complete venv
# (stamp newer than the requirements) is left as it is. About 20 s and 400 MB the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DATUMARO_VENV:-.venv-datumaro}
PY=${PYTHON:-python3}
STAMP="$VENV/.segzero-datumaro-installed"

if [ -f "$STAMP" ] && [ -z "$(find requirements/datumaro.txt -newer "$STAMP")" ]; then
  exit 0
fi
LOG="$VENV.log"
fail() { echo "make datumaro: $1 (log: $LOG)" >&2; exit 1; }
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" > "$LOG" 2>&1 || fail "cannot create $VENV with $PY"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-compile -q -r requirements/datumaro.txt >> "$LOG" 2>&1 \
  || fail "datumaro did not install"
"$VENV/bin/python" -c "from datumaro.components.dataset import Dataset" >> "$LOG" 2>&1 \
  || fail "datumaro does not import in $VENV"
touch "$STAMP"
echo "datumaro venv ready in $(( $(date +%s) - start )) s, $(du -sm "$VENV" | cut -f1) MB ($VENV)"
