#!/usr/bin/env bash
# Everything a GPU is needed for, in one run (see ../shared/GPU.md): run it on the device machine
# with carry [".whl"], where .whl/ holds the wheels of ../shared/wheels. Writes logs and JSON
# under $OUT (a temporary folder when unset).
set -u
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m backprop info 2>&1 | tee "$OUT/info.txt"
# the portable suite's cupy rows (marked gpu); -p no:cacheprovider keeps the tree clean
timeout 300 python3 -m pytest -q -m gpu -p no:cacheprovider -x 2>&1 | tail -40 | tee "$OUT/gpu-tests.log"
timeout 240 python3 bench/gpu_bench.py --samples 9 --out "$OUT/gpu-bench.json" 2>&1 | tee "$OUT/gpu-bench.log"
echo "results in $OUT"
