#!/usr/bin/env bash
# CI: the core on the oldest open_clip it supports, 2.20.0 (what AUTOMATIC1111 webui and Forge pin).
#
#   .ci/oldest_open_clip.sh              # makes .venv-oldest/ (torch from this machine's local wheels)
#   .ci/oldest_open_clip.sh PYTHON       # installs into PYTHON's environment instead (it gets open_clip 2.20.0:
#                                        # give a throwaway one, never the main CI venv)
#
# Installs open_clip_torch==2.20.0 and this project (editable, with its test extra), checks the version,
# runs the demo and the tests of the parts that talk to open_clip. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1  # a busy CPU with several OpenMP threads makes small ops far slower

run() { echo "+ $*"; "$@"; }

if [ $# -ge 1 ]; then
  PY=$1
else
  run python3 -m venv .venv-oldest
  PY=.venv-oldest/bin/python
  run "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
fi

run "$PY" -m pip install -q "open_clip_torch==2.20.0"
run "$PY" -m pip install -q -e '.[test]'
run "$PY" -c "import open_clip.version as v; print('open_clip', v.__version__); assert v.__version__ == '2.20.0', v.__version__"
run "$PY" -m pez_nodes.cli demo --steps 30 --quiet

# Left out, with the reason (each builds its reference with an open_clip 3.x API in the test itself):
#   test_custom_text_clip_with_causal_tower_matches  calls SimpleTokenizer as a function (2.20: not callable)
#   test_bidirectional_text_tower_is_refused         builds a tower with no_causal_mask (3.x config key)
#   test_fast_and_padded_paths_give_equal_loss_and_gradient  runs the transformer batch-first (2.20: [L, B, D])
run "$PY" -m pytest -q -rs -W ignore::FutureWarning \
  tests/test_loading.py tests/test_activation.py tests/test_encoder.py tests/test_fast_path.py \
  tests/test_optimizer.py tests/test_projection.py tests/test_controls.py \
  tests/test_hf_text_tower.py tests/test_joint_clip.py tests/test_pickles.py \
  --deselect tests/test_encoder.py::test_custom_text_clip_with_causal_tower_matches \
  --deselect tests/test_encoder.py::test_bidirectional_text_tower_is_refused \
  --deselect tests/test_fast_path.py::test_fast_and_padded_paths_give_equal_loss_and_gradient
echo "oldest open_clip (2.20.0): ok"
