#!/usr/bin/env bash
# The prepared GPU run for the speed issue: ViT-H-14 (SD 2.x's text tower, random weights), prompt_len 16,
# restarts 1 and 8, ms/step side by side and whole 3000-step runs of both loops; one call of the device tool:
#   bash benchmarks/gpu_check.sh            (writes $OUT/gpu_bench.txt when $OUT is set)
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, open_clip" 2>/dev/null || python -m pip install -q torch open_clip_torch safetensors pillow numpy
python -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python benchmarks/bench_step.py --device cuda --models ViT-H-14 --restarts 1,8 --steps 20 --warmup 5 \
    --full-steps 3000 | tee "${OUT:-/tmp}/gpu_bench.txt"
