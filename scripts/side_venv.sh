# Sourced by setup_vllm.sh and setup_datumaro.sh: a tool's own venv beside .venv (its pins differ from the
# project's), built from requirements files and left as it is while its stamp is newer than them.
#   side_venv_open TOOL LABEL VENV REQUIREMENTS...   (exits 0 when up to date; else creates VENV, sets pip)
#   "${pip[@]}" ... >> "$LOG" 2>&1 || fail "..."
#   side_venv_close
side_venv_open() {
  TOOL=$1 LABEL=$2 VENV=$3
  shift 3
  STAMP="$VENV/.segzero-$TOOL-installed"
  LOG="$VENV.log"
  if [ -f "$STAMP" ] && [ -z "$(find "$@" -newer "$STAMP")" ]; then
    exit 0
  fi
  start=$(date +%s)
  local py=${PYTHON:-python3}
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV" > "$LOG" 2>&1 || fail "cannot create $VENV with $py"
  pip=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-compile -q)
}

fail() { echo "make $TOOL: $1 (log: $LOG)" >&2; exit 1; }

side_venv_close() {
  touch "$STAMP"
  echo "$LABEL venv ready in $(( $(date +%s) - start )) s, $(du -sm "$VENV" | cut -f1) MB ($VENV)"
}
