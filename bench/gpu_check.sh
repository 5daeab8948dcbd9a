#!/usr/bin/env bash
# Everything a GPU is needed for, in one run (see ../shared/GPU.md): run it from the repository
# root on the device machine with carry [".whl"], where .whl/ holds the wheels of
# ../shared/wheels (the machine has no network: only those local wheels are installed).
#
# Parts: environment, `backprop info`, the test suite's gpu-marked rows (`pytest -m gpu`: among
# them tests/test_captured.py and tests/test_captured_streamed.py, the recorded steps against the
# eager ones on CuPy and torch-CUDA, in memory and on a memmap), the GPU benchmark (every engine
# and PyTorch's own eager and CUDA-graph steps; first, issue 23's streamed input: a memmap in the
# page cache against the data on the device, large workload, target <= 1.1x the in-memory step,
# under "streamed" in gpu-bench.json). A failing part does not stop the others. Everything is written under $OUT (a
# temporary folder when unset): env.txt, info.txt, gpu-tests.log, gpu-tests.xml,
# gpu-tests-summary.json, gpu-bench.log, gpu-bench.json, summary.json. The time limits add up to
# under 8 minutes; a normal run takes 2-4.
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"

# float32 parity needs IEEE float32 matmuls: CuPy uses TF32 only when CUPY_TF32 > 0, and
# NVIDIA_TF32_OVERRIDE=0 forbids it in cuBLAS whatever a library asks for. JAX (imported by
# `backprop info`) must not grab 75% of the GPU memory.
export CUPY_TF32=0 NVIDIA_TF32_OVERRIDE=0 XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONUNBUFFERED=1

declare -A rc
run_part() { # run_part NAME SECONDS LOGFILE COMMAND...: output to the log and to stdout
    local name=$1 limit=$2 log=$3
    shift 3
    echo "=== $name (limit ${limit}s) ==="
    timeout -k 10 "$limit" "$@" 2>&1 | tee "$log"
    rc[$name]=${PIPESTATUS[0]}
    case ${rc[$name]} in 124 | 137) echo "=== $name: TIMED OUT after ${limit}s ===" ;; esac
    echo "=== $name: exit ${rc[$name]} ==="
}

if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "no wheels in .whl/: copy ../shared/wheels/*.whl there and pass carry ['.whl']" \
        | tee "$OUT/summary.txt"
    exit 1
fi
python3 -m pip install -q --no-index --no-deps --upgrade --target /tmp/site .whl/*.whl \
    >"$OUT/pip.log" 2>&1 || { cat "$OUT/pip.log"; echo "pip install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__, \
'cuda runtime', cupy.cuda.runtime.runtimeGetVersion(), 'driver', \
cupy.cuda.runtime.driverGetVersion())"
    python3 -c "import nvmath; print('nvmath-python', nvmath.__version__, '(the recording cuBLAS)')" \
        || echo "WARNING: no nvmath-python: CuPy steps cannot be recorded (captured rows fail)"
    env | grep -E '^(CUPY_|NVIDIA_TF32|CUDA_)' | sort
} 2>&1 | tee "$OUT/env.txt"

run_part info 60 "$OUT/info.txt" python3 -m backprop info

# The cupy rows exist only when tests/conftest.py finds a usable CuPy: say so loudly if not,
# since `pytest -m gpu` would then pass with nothing run.
python3 -c "import sys; sys.path.insert(0, 'tests'); import conftest; \
print('conftest HAS_CUPY =', conftest.HAS_CUPY); sys.exit(0 if conftest.HAS_CUPY else 1)" \
    2>&1 | tee -a "$OUT/env.txt" || echo "WARNING: conftest finds no usable CuPy: no cupy rows"

# all gpu-marked rows (no -x: one run must show every failure); -p no:cacheprovider keeps the
# tree clean
run_part tests 230 "$OUT/gpu-tests.log" python3 -m pytest -q -m gpu -p no:cacheprovider \
    -rfEs --durations=15 --junitxml="$OUT/gpu-tests.xml"
python3 - "$OUT/gpu-tests.xml" "$OUT/gpu-tests-summary.json" <<'EOF' 2>&1 | tee -a "$OUT/gpu-tests.log"
import json, sys
import xml.etree.ElementTree as ET

counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
failed = []
try:
    cases = list(ET.parse(sys.argv[1]).iter("testcase"))
except Exception as exc:  # pytest killed before writing the XML
    cases, counts["xml_error"] = [], f"{type(exc).__name__}: {exc}"
cupy_cases = 0
for case in cases:
    name = f"{case.get('classname')}::{case.get('name')}"
    cupy_cases += "cupy" in case.get("name", "")
    kinds = {child.tag for child in case}
    kind = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
    kind = {"failure": "failed"}.get(kind, kind)
    counts[kind] += 1
    if kind in ("failed", "error"):
        failed.append(name)
counts["cases_with_cupy_in_name"] = cupy_cases
counts["failed_tests"] = failed
json.dump(counts, open(sys.argv[2], "w"), indent=1)
print("gpu tests:", json.dumps({k: v for k, v in counts.items() if k != "failed_tests"}))
if counts["passed"] == 0:
    print("FAILED: no gpu-marked test passed (were the cupy rows collected?)")
    sys.exit(1)
EOF
# pytest exits 0 when every cupy row is missing (all skipped/deselected): count that as a failure
[ "${PIPESTATUS[0]}" = 0 ] || { [ "${rc[tests]}" = 0 ] && rc[tests]=5; }

run_part bench 180 "$OUT/gpu-bench.log" python3 bench/gpu_bench.py --samples 5 \
    --out "$OUT/gpu-bench.json"

status=0
for part in info tests bench; do
    [ "${rc[$part]}" = 0 ] || status=1
done
printf '{"info": %s, "tests": %s, "bench": %s}\n' "${rc[info]}" "${rc[tests]}" "${rc[bench]}" \
    | tee "$OUT/summary.json"
echo "results in $OUT"
exit $status
