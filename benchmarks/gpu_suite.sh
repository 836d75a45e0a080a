#!/usr/bin/env bash
# The GPU suite (benchmarks/gpu_suite.py): one prepared run, <= 8 minutes on one H200.
#   bash benchmarks/gpu_suite.sh [OUT]              # on a CUDA machine (default OUT: $OUT, else
#                                                   # benchmarks/gpu_results)
#   bash benchmarks/gpu_suite.sh --dry-run OUT      # tiny sizes on the CPU (the test suite's check)
# Writes OUT/{env,throughput,paper_child,workers,search}.json, two PNGs and OUT/gpu_suite.log.
# Data: $EAS_DATA_DIR, ../shared/data or .data/ (cifar-10-batches-py/ inside); else synthetic,
# and every JSON carries a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=()
if [[ "${1:-}" == "--dry-run" ]]; then
  dry=(--dry-run)
  shift
fi
out="${1:-${OUT:-benchmarks/gpu_results}}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python benchmarks/gpu_suite.py "$out" "${dry[@]}" --budget "${EAS_GPU_BUDGET:-480}" 2>&1 \
  | tee "$out/gpu_suite.log"
