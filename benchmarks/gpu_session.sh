#!/bin/bash
# The first runs on a lent GPU machine, each one call of under 10 minutes, writing under $OUT.
#
#   bash benchmarks/gpu_session.sh suite    versions, then the whole suite with SCRATCHRNN_BACKEND=cupy
#   bash benchmarks/gpu_session.sh bench    versions, then the size grid: scratch-numpy, scratch-cupy
#                                           and torch-cuda, strict float32 (--tf32 off)
#   bash benchmarks/gpu_session.sh bench-tf32   the same with TF32 on both sides
#   bash benchmarks/gpu_session.sh lm       char-LM training throughput, 2-layer LSTM 512, B64 T128,
#                                           on CuPy and CUDA torch, then on the NumPy path
#
# Not yet run on a GPU: on a new GPU machine run `suite` first and fix what it finds. Uses the machine's own python3
# (CuPy and a CUDA build of torch are installed there; nothing can be downloaded) with this
# working tree on PYTHONPATH. What comes back from $OUT: at most 8 files, two folders deep.
set -u
part=${1:-suite}
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

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
    # the console script `scratchrnn` for the CLI tests; offline, from the tree itself
    "$PY" -m pip install -q --no-deps --no-build-isolation --no-index -e . > "$OUT/install.log" 2>&1 \
      || echo "editable install failed (see install.log); CLI tests may fail"
    SCRATCHRNN_BACKEND=cupy timeout 500 "$PY" -m pytest -q -p no:cacheprovider -n 8 -ra \
      --junitxml="$OUT/junit.xml" 2>&1 | tee "$OUT/pytest.log" | tail -80
    ;;
  bench|bench-tf32)
    tf32=off; [ "$part" = bench-tf32 ] && tf32=on
    timeout 540 "$PY" -m benchmarks --impls scratch-numpy,scratch-cupy,torch-cuda --tf32 "$tf32" \
      --no-sweeps --rounds 5 --out "$OUT/bench" --tag "gpu-tf32-$tf32" 2>&1 | tail -60
    ;;
  lm)
    common="--cells lstm --hidden-size 512 --num-layers 2 --batch-size 64 --seq-len 128 --rounds 5"
    timeout 270 "$PY" -m benchmarks.train_throughput $common --backend cupy --out "$OUT/lm" --tag gpu 2>&1 | tail -25
    timeout 270 "$PY" -m benchmarks.train_throughput $common --backend numpy --impls scratch \
      --round-seconds 4 --out "$OUT/lm" --tag cpu-on-gpu-machine 2>&1 | tail -25
    ;;
  *)
    echo "unknown part '$part': suite, bench, bench-tf32 or lm" >&2
    exit 2
    ;;
esac
