"""The GPU suite's dry run: the device script's every part runs on CPU, so it cannot rot."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_bundle  # noqa: E402
import gpu_suite  # noqa: E402

# Written out, not read from gpu_suite.PARTS: dropping a part from the suite must fail here.
PARTS = (
    "env",
    "correctness",
    "throughput",
    "paper_child",
    "workers",
    "search",
    "child_profile",
    "autotune",
)


def test_the_suite_runs_every_part_named_here():
    assert gpu_suite.PARTS == PARTS


def _suite(out: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), *args, str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_gpu_suite_dry_run_writes_every_part(tmp_path):
    done = _suite(tmp_path, "--dry-run", timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(list(tmp_path.iterdir())) <= 8  # what the device tool brings back
    assert (tmp_path / "gpu_suite.log").read_text().count(" ok in ") == len(PARTS)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["suite"]["dry_run"]
    assert tuple(results["parts"]) == PARTS
    for name, part in results["parts"].items():
        assert part["status"] == "ok" and part["failed_checks"] == 0, (name, part)
        assert part["rows"] and not any("error" in r or "skipped" in r for r in part["rows"])
    rows = {name: part["rows"] for name, part in results["parts"].items()}

    checks = [r for r in rows["correctness"] if "check" in r]
    preserved = [r for r in checks if r["check"] == "preservation"]
    assert len(preserved) == 6 and all(r["max_abs_logit_diff"] < 1e-4 for r in preserved)
    assert all(r["check"] != "noisy" or r["perturbs"] for r in checks)
    augmentation = next(r for r in checks if r["check"] == "augmentation")
    assert augmentation["images_equal"] and augmentation["labels_equal"]
    default = [r for r in checks if r["check"] == "default_device"]
    assert len(default) == len(preserved) // 2 + 1 and all(r["equal"] for r in default)

    steps = [r for r in rows["throughput"] if "variant" in r]
    assert len(steps) == 6 and all(r["ms_per_step"] > 0 for r in steps)
    autotune = [r for r in rows["autotune"] if "setting" in r and "first_seconds" in r]
    assert len(autotune) == 4 and all(r["first_seconds"] > 0 for r in autotune)
    child = next(r for r in rows["paper_child"] if r.get("kind") == "result")
    assert child["steps"] > 0 and 0 <= child["val_accuracy"] <= 1
    assert [r["processes"] for r in rows["workers"] if "images" in r] == [1, 2]
    assert all(r["images_per_second"] > 0 for r in rows["workers"] if "images" in r)
    assert next(r for r in rows["search"] if r["kind"] == "update")["nets"] == 2
    profiled = [r for r in rows["child_profile"] if r["kind"] == "step"]
    assert len(profiled) == 2 and all(0 <= r["train_seconds"] <= r["seconds"] for r in profiled)
    assert any(r["kind"] == "profile" and r["function"] == "step" for r in rows["child_profile"])


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" not in status.read_text()
    except OSError:
        return False


def test_run_part_keeps_the_rows_of_a_part_killed_at_its_limit(tmp_path):
    rows, pid_file = tmp_path / "rows.jsonl", tmp_path / "child.pid"
    # a part that starts a worker, writes a row, then hangs (bash: quick to start)
    script = f"sleep 60 & echo $! > {pid_file}; echo '{{\"step\": 1}}' >> {rows}; sleep 60"
    start = time.perf_counter()
    report = gpu_suite.run_part(["bash", "-c", script], rows, limit=2.0)
    assert time.perf_counter() - start < 2.0 + gpu_suite.GRACE + 5
    assert report["status"] == "timeout" and report["rows"] == [{"step": 1}]
    worker = int(pid_file.read_text())
    for _ in range(50):  # the part's own worker process is killed with it
        if not _alive(worker):
            break
        time.sleep(0.1)
    assert not _alive(worker)


def test_run_part_reports_a_part_that_failed(tmp_path):
    rows = tmp_path / "rows.jsonl"
    script = f"open({str(rows)!r}, 'a').write('{{\"fatal\": \"ValueError: no\"}}\\n'); exit(1)"
    report = gpu_suite.run_part([sys.executable, "-c", script], rows, limit=30.0)
    assert report["status"] == "error" and report["error"] == "ValueError: no"


def test_bundle_npz_reads_back_as_a_dataset(tmp_path):
    from eas_gym.data import load_dataset

    arrays = gpu_suite.tiny_dataset(train=60, val=20, test=20, image_size=8)
    path = tmp_path / "tiny.npz"
    gpu_bundle.write_npz(path, arrays)
    with np.load(path) as back:
        assert all(np.array_equal(back[k], v) for k, v in arrays.items())
    data = load_dataset(str(path), val_size=20)
    assert (len(data.train), len(data.val), len(data.test)) == (40, 20, 20)
    gpu_bundle.write_npz(tmp_path / "again.npz", arrays)  # same bytes: same store identity
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()


def test_gpu_suite_refuses_a_machine_without_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = _suite(tmp_path, timeout=120)
    assert done.returncode != 0 and "no CUDA device" in done.stdout


def test_the_bundle_takes_the_most_images_that_travel_with_the_tree():
    assert gpu_bundle.fitting_train_images(35.6) == 10000  # the 2026-12-04 bundle
    assert gpu_bundle.fitting_train_images(20.0) > gpu_bundle.fitting_train_images(35.6)
    with pytest.raises(SystemExit, match="keep fewer records"):
        gpu_bundle.fitting_train_images(52.0)
