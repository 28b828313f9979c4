"""Reasoner generation paths side by side in one run: prefill ms, decode tokens/s, same greedy tokens.

    python bench/reasoner.py [--model tiny|7b|3b] [--paths default,static,static+compile] [--new-tokens 64]
                             [--device D] [--dtype D] [--json] [--out FILE]

The same as ``segzero bench reasoner`` (see ``segzero_ros/reasoner_benchmark.py``). ``tiny`` runs anywhere;
``7b`` / ``3b`` build the published configurations' shapes with random weights on a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segzero_ros"))

from segzero_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "reasoner", *sys.argv[1:]]))
