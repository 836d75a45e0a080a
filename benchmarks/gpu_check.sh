#!/usr/bin/env bash
# GPU check, under 5 minutes on one H200:
#   1. benchmarks/trainer_throughput.py on CUDA (trainer vs bare loop vs DataLoader pipeline);
#   2. one paper-scale child trained as in the search: PAPER_START, SEARCH_CONFIG (20 epochs,
#      batch 64, lr 0.02 cosine, Nesterov, crop + flip) on the full 45,000 / 5,000 split;
#      prints its validation and test accuracy and its seconds as one JSON line.
# Data: CIFAR-10 from $EAS_DATA_DIR, else ../shared/data, else shared/data; if none is found
# the child trains on the synthetic set at the same size and the JSON says so.
# Usage: bash benchmarks/gpu_check.sh [out_dir]     (default: $OUT if set, else benchmarks/)
# Writes trainer_throughput_cuda.png and paper_child.json there; both JSON lines go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-benchmarks}}"
mkdir -p "$OUT"

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)"

for candidate in "${EAS_DATA_DIR:-}" ../shared/data shared/data; do
  if [[ -n "$candidate" && -f "$candidate/cifar-10-batches-py/data_batch_1" ]]; then
    export EAS_DATA_DIR="$(cd "$candidate" && pwd)"
    break
  fi
done
echo "data: ${EAS_DATA_DIR:-none found, synthetic}"

# 1. Throughput (about 1-2 minutes: 2 nets x 3 variants x 2 repeats x 300 batches).
timeout 170 python benchmarks/trainer_throughput.py --device cuda --batches 300 --repeats 2 \
  --workers 2 --out "$OUT/trainer_throughput_cuda.png"

# 2. One paper-scale child (about 14,000 SGD steps).
timeout 240 python - "$OUT" <<'PY'
import json
import sys
import time
from pathlib import Path

import torch

from eas_gym.arch import PAPER_START
from eas_gym.data import DatasetNotFoundError, load_dataset
from eas_gym.net import build_net
from eas_gym.train import SEARCH_CONFIG, evaluate, fine_tune

start = time.perf_counter()
try:
    data = load_dataset("cifar10", device="cuda")
except DatasetNotFoundError:
    data = load_dataset(
        "synthetic", train_size=45000, val_size=5000, test_size=10000, device="cuda"
    )
load_seconds = time.perf_counter() - start
net = build_net(PAPER_START, generator=torch.Generator().manual_seed(0), device="cuda")
seed = torch.Generator().manual_seed(0)
result = fine_tune(net, data, SEARCH_CONFIG, generator=seed, device="cuda")
test_accuracy, _ = evaluate(net, data.test, mean=data.mean, std=data.std)
report = {
    "check": "paper_child",
    "data": data.name,
    "net": PAPER_START.to_string(),
    "config": SEARCH_CONFIG.to_dict(),
    "train_images": len(data.train),
    "val_accuracy": result.eval_accuracy,
    "test_accuracy": test_accuracy,
    "seconds": round(result.seconds, 1),
    "load_seconds": round(load_seconds, 1),
    "images_per_second": round(result.images_per_second),
    "steps": result.steps,
    "diverged": result.diverged,
    "oom": result.oom,
    "device": torch.cuda.get_device_name(0),
}
Path(sys.argv[1], "paper_child.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report))
PY
