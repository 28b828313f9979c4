#!/usr/bin/env bash
# GPU checks, as one prepared script for a lent GPU machine (see README, "Benchmarks"): SAM2 backends for
# hiera-tiny and hiera-large (random weights; speed does not depend on them) — PyTorch eager fp32, eager bf16,
# torch_compiled bf16, and TensorRT fp16 when `tensorrt` is importable — with speed-up and mask IoU vs eager
# fp32; tracking vs re-segmentation; the reasoner's generation paths on the 7B shapes; then the GPU-marked
# tests. Figures go to $OUT (gpu_check_*.json, gpu_check.log).
#
#   here, once:   bash bench/gpu_check.sh --prepare     # wheels the GPU image lacks -> .whl/ (git-ignored)
#   there:        bash bench/gpu_check.sh               # with .whl carried; python3 there has torch + CUDA
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl

if [ "${1:-}" = "--prepare" ]; then
  # The GPU image (Python 3.12) has torch, transformers, onnx, onnxruntime, pillow, pyyaml, tqdm, portalocker,
  # but not sam2 or its config stack (nor psutil). sam2 is pure Python when built without its CUDA extension.
  mkdir -p "$WHEELS"
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  py=${PYTHON:-.venv/bin/python}
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any -d "$WHEELS" \
    hydra-core==1.3.8 omegaconf==2.3.1 psutil==7.2.2
  "$py" -m pip download -q --no-deps -d "$WHEELS" antlr4-python3-runtime==4.9.3 iopath==0.1.10
  SAM2_BUILD_CUDA=0 "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEELS" sam2==1.1.0
  for sdist in "$WHEELS"/*.tar.gz; do  # antlr4 4.9.3 and iopath ship sources only: build pure wheels here
    [ -e "$sdist" ] || continue
    "$py" -m pip wheel -q --no-deps -w "$WHEELS" "$sdist" && rm "$sdist"
  done
  ls -la "$WHEELS"
  exit 0
fi

OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl
export PYTHONPATH="/tmp/site:$PWD/segzero_ros:$PWD" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
BACKENDS=torch,torch:bf16,torch_compiled
if python3 -c 'import tensorrt' 2>/dev/null; then BACKENDS=$BACKENDS,tensorrt; else echo "tensorrt: not importable here"; fi
for size in t l; do
  config=configs/sam2.1/sam2.1_hiera_${size}.yaml
  timeout 240 python3 -m segzero_ros.cli bench sam2 --config "$config" --device cuda --backends "$BACKENDS" \
    --repeats 20 --out "$OUT/gpu_check_hiera_${size}.json" || echo "bench $config failed or timed out: $?"
done
# Tracking step vs re-segmentation (hiera-l, random weights) at the node's default tracking.input_scale 1.0 and at 0.5.
for scale in 0.5 1.0; do
  timeout 180 python3 bench/tracking.py --config configs/sam2.1/sam2.1_hiera_l.yaml --device cuda --frames 100 \
    --no-pipeline --input-scale "$scale" --json > "$OUT/gpu_check_tracking_hiera_l_$scale.json" \
    || echo "bench tracking $scale failed or timed out: $?"
done
# The reasoner's generation paths on the Qwen2.5-VL-7B shapes (random weights, bf16, 840² image: 900 image tokens).
timeout 300 python3 -m segzero_ros.cli bench reasoner --model 7b --device cuda --new-tokens 128 --repeats 3 \
  --out "$OUT/gpu_check_reasoner_7b.json" || echo "bench reasoner 7b failed or timed out: $?"
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu test/test_segmenter_tensorrt.py test/test_segmenter.py \
  || echo "gpu tests: exit $?"
