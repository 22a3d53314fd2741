#!/usr/bin/env bash
# The prepared GPU run: ViT-H-14 (SD 2.x's text tower, random weights), prompt_len 16, restarts 1 and 8,
# ms/step side by side and whole 3000-step runs of both loops, then the CUDA path end to end (`pez demo`
# on the bundled model: bf16 autocast, fp32 re-scoring), then eager vs CUDA graphs for ViT-L-14 (SD 1.5),
# ViT-H-14 (SD 2.x) and the SDXL pair with peak VRAM (docs/speed.md lists what is still unmeasured). One call
# of the device tool, about 10 minutes (most of it compiling):
#   bash benchmarks/gpu_check.sh            (writes $OUT/gpu_bench.txt when $OUT is set)
# Offline machines: put open_clip_torch / ftfy / wcwidth wheels in .whl/ (carried) and they are installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  python -c "import torch, open_clip" 2>/dev/null || python -m pip install -q torch open_clip_torch safetensors pillow numpy
  python -m pip install -q --no-deps -e . >/dev/null
fi
log="${OUT:-/tmp}/gpu_bench.txt"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  python -c "import torch, open_clip; print('torch', torch.__version__, 'open_clip', open_clip.__version__)"
  python -m pez_nodes.cli demo --device cuda --json --quiet
  python -m pez_nodes.cli demo --device cuda --json --quiet --steps 300 --restarts 8
  python benchmarks/bench_step.py --device cuda --models ViT-H-14 --restarts 1,8 --steps 20 --warmup 5 \
      --full-steps 3000
  # eager (the host reading the GPU every 16 steps) vs the compiled step as a CUDA graph, peak VRAM; SD 1.5's
  # ViT-L-14 with a whole 3000-step run (the issue's "under 10 s" aim); SDXL's two towers as one prompt
  python benchmarks/bench_step.py --device cuda --compiled --models ViT-L-14 --restarts 1,4,8 --steps 50 --warmup 10 \
      --full-steps 3000
  python benchmarks/bench_step.py --device cuda --compiled --models ViT-H-14,sdxl --restarts 1,8 --steps 50 --warmup 10
} 2>&1 | tee "$log"
