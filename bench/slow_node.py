"""The segzero node with each reasoner call padded to a fixed duration, for ``bench/node_load.py``.

    SEGZERO_BENCH_REASONER_S=2.0 python bench/slow_node.py --ros-args -p preset:=tiny

The tiny reasoner answers in well under a second; a real 7B model takes seconds. Padding ``generate`` to
a fixed time makes the node's scheduling face a robot-like load without a GPU.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segzero_ros"))


def main() -> None:
    from segzero_ros.reasoner.local import Reasoner
    from segzero_ros.ros import node

    seconds = float(os.environ.get("SEGZERO_BENCH_REASONER_S", "2.0"))
    generate = Reasoner.generate

    def padded_generate(self, inputs, max_new_tokens=None, on_text=None):
        start = time.monotonic()
        tokens = generate(self, inputs, max_new_tokens, on_text)
        time.sleep(max(0.0, seconds - (time.monotonic() - start)))
        return tokens

    Reasoner.generate = padded_generate
    node.main()


if __name__ == "__main__":
    main()
