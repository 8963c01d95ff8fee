#!/bin/bash
# The first runs on a lent GPU machine, each one call of under 10 minutes, writing under $OUT.
#
#   bash benchmarks/gpu_session.sh suite [PYTEST ARGS]
#                                           versions, then the suite with SCRATCHRNN_BACKEND=cupy (all of
#                                           tests/ unless PYTEST ARGS name some), in parallel (pytest-xdist)
#                                           with a time limit per test (pytest-timeout), junit XML back
#   bash benchmarks/gpu_session.sh bench    versions, then the size grid: scratch-numpy, scratch-cupy
#                                           and torch-cuda, strict float32 (--tf32 off)
#   bash benchmarks/gpu_session.sh bench-tf32   the same with TF32 on both sides
#   bash benchmarks/gpu_session.sh lm       char-LM training throughput, 2-layer LSTM 512, B64 T128,
#                                           on CuPy and CUDA torch, then on the NumPy path
#
# REHEARSE=1 runs any part on a machine without a GPU, with the NumPy stand-in for CuPy
# (tests/stand_in first on PYTHONPATH: `import cupy` is tests/emulated_cupy.py in every process,
# so the package takes its real CuPy paths and the fused kernels are built with g++): no editable
# install, the benchmarks at --quick sizes, torch-cuda reported as unavailable. Only GPU facts
# (speed, the real CUDA compiler and cuBLAS, graph replay, memory) can then surprise the real run.
#   REHEARSE=1 bash benchmarks/gpu_session.sh suite tests/engines tests/core
#
# Needs pytest-xdist and pytest-timeout (the `test` extra: pip install -e ".[test]"); without them
# the suite runs in one process / without per-test limits, and says so in one line.
# Not yet run on a GPU: on a new GPU machine run `suite` first and fix what it finds. Uses the machine's
# own python3 (CuPy and a CUDA build of torch are installed there; nothing can be downloaded) with this
# working tree on PYTHONPATH. What comes back from $OUT: at most 8 files, two folders deep.
set -u
part=${1:-suite}
[ $# -gt 0 ] && shift
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CI=${CI:-true}                      # the hypothesis "ci" profile: few, fixed examples
PY=${PYTHON:-python3}
REHEARSE=${REHEARSE:-0}
quick=()
if [ "$REHEARSE" = 1 ]; then
  export PYTHONPATH="$PWD/tests/stand_in:$PYTHONPATH"
  quick=(--quick)
  echo "REHEARSE=1: cupy is the NumPy stand-in (tests/emulated_cupy.py); no GPU is used"
fi

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  "$PY" - <<'EOF'
import json, sys
sys.path.insert(0, ".")
from benchmarks.running import gpu_info, versions
print(json.dumps({"versions": versions(), "gpu": gpu_info()}, indent=1))
EOF
} > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt"

case "$part" in
  suite)
    if [ "$REHEARSE" != 1 ]; then
      # the console script `scratchrnn` for the CLI tests; offline, from the tree itself
      "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1 \
        || echo "editable install failed (see install.log); the CLI tests use python -m scratchrnn.cli"
    fi
    opts=()
    if "$PY" -c "import xdist" 2>/dev/null; then
      opts+=(-n "${WORKERS:-8}")
    else
      echo "pytest-xdist is missing (pip install -e '.[test]'): the suite runs in one process, slower"
    fi
    if "$PY" -c "import pytest_timeout" 2>/dev/null; then
      opts+=(--timeout "${TEST_TIMEOUT:-240}")
    else
      echo "pytest-timeout is missing (pip install -e '.[test]'): no per-test time limit"
    fi
    set -o pipefail
    SCRATCHRNN_BACKEND=cupy timeout "${SUITE_TIMEOUT:-500}" "$PY" -m pytest -q -p no:cacheprovider -ra \
      ${opts[@]+"${opts[@]}"} --junitxml="$OUT/junit.xml" "$@" 2>&1 | tee "$OUT/pytest.log" | tail -80
    status=$?
    why=""; [ "$status" = 124 ] && why=": stopped by the ${SUITE_TIMEOUT:-500} s limit"
    echo "pytest exit status $status$why" | tee -a "$OUT/pytest.log"
    exit $status
    ;;
  bench|bench-tf32)
    tf32=off; [ "$part" = bench-tf32 ] && tf32=on
    timeout 540 "$PY" -m benchmarks --impls scratch-numpy,scratch-cupy,torch-cuda --tf32 "$tf32" \
      --no-sweeps --rounds 5 ${quick[@]+"${quick[@]}"} --out "$OUT/bench" --tag "gpu-tf32-$tf32" 2>&1 | tail -60
    ;;
  lm)
    common="--cells lstm --hidden-size 512 --num-layers 2 --batch-size 64 --seq-len 128 --rounds 5"
    timeout 270 "$PY" -m benchmarks.train_throughput $common ${quick[@]+"${quick[@]}"} --backend cupy --out "$OUT/lm" \
      --tag gpu 2>&1 | tail -25
    timeout 270 "$PY" -m benchmarks.train_throughput $common ${quick[@]+"${quick[@]}"} --backend numpy --impls scratch \
      --round-seconds 4 --out "$OUT/lm" --tag cpu-on-gpu-machine 2>&1 | tail -25
    ;;
  *)
    echo "unknown part '$part': suite, bench, bench-tf32 or lm" >&2
    exit 2
    ;;
esac
