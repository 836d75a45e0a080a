#!/usr/bin/env bash
# The GPU suite (benchmarks/gpu_suite.py): eight parts, each in its own process and time limit,
# all results in OUT/results.json (+ OUT/gpu_suite.log, two PNGs); ends by itself in 6.5 min.
#   python benchmarks/gpu_bundle.py               # here, once: .device_bundle/ (wheels + data)
#   bash benchmarks/gpu_suite.sh [OUT]            # on a CUDA machine (default OUT: $OUT, else
#                                                 # benchmarks/gpu_results)
#   bash benchmarks/gpu_suite.sh --dry-run OUT    # tiny sizes on the CPU (the test suite's check)
# On the device machine, which has torch but no gymnasium, install the bundle's wheels first:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .device_bundle/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
# (benchmarks/RESULTS.md, "The GPU suite", has the whole device command.)
set -uo pipefail
cd "$(dirname "$0")/.."
dry=()
if [[ "${1:-}" == "--dry-run" ]]; then
  dry=(--dry-run)
  shift
fi
out="${1:-${OUT:-benchmarks/gpu_results}}"
mkdir -p "$out"
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$python" -c "import gymnasium" 2>/dev/null; then
  echo "gpu_suite: gymnasium is not importable; install .device_bundle/whl/*.whl (see above)" \
    | tee "$out/gpu_suite.log"
  exit 2
fi
"$python" benchmarks/gpu_suite.py "$out" "${dry[@]}" --budget "${EAS_GPU_BUDGET:-370}" 2>&1 \
  | tee "$out/gpu_suite.log"
exit "${PIPESTATUS[0]}"
