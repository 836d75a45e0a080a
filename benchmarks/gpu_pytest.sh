#!/usr/bin/env bash
# The test suite on a CUDA machine: every env and trainer whose device is "auto" then runs on
# the GPU, which the CPU-only CI never does. For the device tool (benchmarks/RESULTS.md, "The
# GPU suite"): after installing .device_bundle's wheels, `bash benchmarks/gpu_pytest.sh OUT
# [SECONDS]` writes OUT/pytest.log and OUT/pytest.xml. Tests needing packages the image lacks
# (stable-baselines3, optuna, ray, lightgbm) skip, with the reason in the log.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: gpu_pytest.sh OUT [SECONDS]}"
seconds="${2:-240}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch; print('cuda', torch.cuda.is_available(), torch.__version__)" \
  | tee "$out/pytest.log"
# -k: the suite's own dry run is CPU-only by design and takes a minute.
timeout --kill-after 5 "$seconds" python3 -m pytest tests -q -n 8 -p no:cacheprovider \
  --timeout 150 --continue-on-collection-errors -k "not gpu_suite_dry_run" -rfE \
  --junitxml="$out/pytest.xml" 2>&1 | tee -a "$out/pytest.log" | tail -120
exit "${PIPESTATUS[0]}"
