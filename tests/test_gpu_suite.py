"""The GPU suite's dry run: the device script's every part runs on CPU, so it cannot rot."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("env", "throughput", "paper_child", "workers", "search")


def test_gpu_suite_dry_run_writes_every_part(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--dry-run", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for part in PARTS:
        report = json.loads((tmp_path / f"{part}.json").read_text())
        assert report["dry_run"] and "error" not in report and "skipped" not in report, report
    assert json.loads((tmp_path / "paper_child.json").read_text())["steps"] > 0
    workers = json.loads((tmp_path / "workers.json").read_text())["cpu-preset"]["runs"]
    assert [r["workers"] for r in workers] == [1, 2]
    assert all(r["children_per_hour"] > 0 for r in workers)
    assert json.loads((tmp_path / "search.json").read_text())["nets"] == 2
    assert (tmp_path / "gpu_suite.log").read_text().count("done in") == len(PARTS)
    assert len(list(tmp_path.iterdir())) <= 8  # what the device tool brings back


def test_gpu_suite_refuses_a_machine_without_cuda(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "no CUDA device" in done.stdout
