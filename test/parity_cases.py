"""The reference's own parse and reward results for 250 model answers (see data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"


def load_reference_cases() -> list[dict]:
    """Every case of ``reference_cases.jsonl``, in file order."""
    with open(DATA / "reference_cases.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
