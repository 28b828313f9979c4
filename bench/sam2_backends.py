"""SAM2 backends side by side in one run: encoder and decoder time, speed-up and mask IoU vs PyTorch eager fp32.

    python bench/sam2_backends.py [--config tiny|CONFIG] [--backends torch,onnx] [--repeats N] [--device D] [--json]

The same as ``segzero bench sam2`` (see ``segzero_ros/benchmarks/sam2.py``). ``--config tiny`` is the test model
(1.3 M parameters, input 256); a sam2 config name (default ``configs/sam2.1/sam2.1_hiera_t.yaml``) is built
with random weights at its real size, which is what speed depends on.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segzero_ros"))

from segzero_ros.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "sam2", *sys.argv[1:]]))
