"""Subprocess smoke runs of the paper-claim benchmarks with tiny budgets (cleanrl style)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def run_benchmark(name: str, *args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--threads", "1", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=BENCHMARKS.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # one JSON line, nothing else on stdout
    return json.loads(lines[0])


def test_rl_vs_random_smoke(tmp_path):
    png = tmp_path / "rl_vs_random.png"
    report = run_benchmark(
        "rl_vs_random.py",
        *("--env", "EAS-Surrogate-v0", "--agents", "reinforce,random", "--seeds", "2"),
        *("--nets", "4", "--batch", "2", "--out-dir", str(tmp_path / "runs"), "--out", str(png)),
    )
    assert set(report["agents"]) == {"reinforce", "random"}
    for row in report["agents"].values():
        assert 0 < row["last_third_mean"]["mean"] <= row["best"]["mean"] <= 1
        assert row["best"]["n"] == 2
    assert report["nets"] == 4 and "vs_random" in report["agents"]["reinforce"]["best"]
    assert (tmp_path / "runs" / "reinforce" / "seed-0" / "children.jsonl").exists()
    assert png.stat().st_size > 0


def test_preset_probe_smoke(tmp_path):
    report = run_benchmark(
        "preset_probe.py",
        *("--env", "EAS-Synthetic-v0", "--set", "reward_mode=sparse", "--set", "schedule=WWD"),
        *("--policies", "random,widen-all,kernel-5", "--nets", "2", "--retrain", "1"),
        *("--retrain-seeds", "1", "--name", "smoke", "--out-dir", str(tmp_path)),
    )
    assert set(report["policies"]) == {"random", "widen-all", "kernel-5"}
    assert report["policies"]["random"]["n"] == 2 and report["retrained_nets"] == 1
    assert set(report["gate"]) == {"gap", "spread", "cost", "passed"}
    lines = (tmp_path / "smoke.jsonl").read_text().splitlines()
    assert len(lines) == 7  # 3 policies x 2 nets + 1 retrain
    # a rerun resumes: nothing is evaluated again
    again = run_benchmark(
        "preset_probe.py",
        *("--env", "EAS-Synthetic-v0", "--set", "reward_mode=sparse", "--set", "schedule=WWD"),
        *("--policies", "random,widen-all,kernel-5", "--nets", "2", "--retrain", "1"),
        *("--retrain-seeds", "1", "--name", "smoke", "--out-dir", str(tmp_path)),
    )
    assert again["policies"] == report["policies"]
    assert len((tmp_path / "smoke.jsonl").read_text().splitlines()) == 7


def test_child_cost_smoke(tmp_path):
    records = tmp_path / "children.jsonl"
    nets = ["C4-3 MP C4-3 MP C8-3 GAP FC8", "C4-3 MP C4-3 MP C4-3 GAP FC8"]
    records.write_text("".join(json.dumps({"net": n, "cache_hit": False}) + "\n" for n in nets))
    report = run_benchmark(
        "child_cost.py", "--env", "EAS-Synthetic-v0", "--records", str(records), "--nets", "5"
    )
    assert report["nets"] == 2 and [p["net"] for p in report["per_net"]] == nets
    for p in report["per_net"]:  # one epoch of the preset's 1, plus an evaluation
        assert p["child"] == pytest.approx(p["epoch"] + p["evaluation"], abs=0.01)
    assert report["median_over_start"] > 0 and len(report["start_net_measurements"]) == 3
    one = run_benchmark(
        "child_cost.py", "--env", "EAS-Synthetic-v0", "--records", str(records), "--nets", "1"
    )
    assert one["nets"] == 1 and len(one["start_net_measurements"]) == 3


def test_reuse_vs_scratch_smoke(tmp_path):
    png = tmp_path / "reuse.png"
    report = run_benchmark(
        "reuse_vs_scratch.py",
        *("--env", "EAS-Synthetic-v0", "--store", str(tmp_path / "store.sqlite")),
        *("--children", "1", "--max-factor", "2", "--out", str(png)),
    )
    assert report["children"] == 1 and report["source"] == "random actions"
    child = report["per_child"][0]
    assert child["preservation_error"] < 0.1  # replayed transforms kept the start net's function
    assert (
        set(child["scratch"]) <= {"1", "2"}
        and child["scratch_same_budget"] == child["scratch"]["1"]
    )
    assert png.stat().st_size > 0


def test_search_cost_smoke(tmp_path):
    png = tmp_path / "cost.png"
    report = run_benchmark(
        "search_cost.py",
        *("--env", "EAS-Surrogate-v0", "--nets", "2", "--batch", "2", "--out", str(png)),
    )
    parts = report["seconds_per_net_by_part"]
    assert report["nets"] == 2 and parts["train_eval"] == 0.0  # the surrogate does not train
    # ... and carries no weights: nothing to check
    assert parts["transform"] > 0 and parts["preservation_check"] == 0 and parts["agent"] > 0
    assert abs(sum(parts.values()) - report["seconds_per_net"]) < 1e-2
    assert png.stat().st_size > 0


def test_morph_speed_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for space in ("plain", "densenet"):
        png = tmp_path / f"{space}.png"
        done = subprocess.run(
            [
                sys.executable,
                str(BENCHMARKS / "morph_speed.py"),
                "--space",
                space,
                "--repeats",
                "1",
                "--batch-size",
                "4",
                "--out",
                str(png),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip())
        assert report["space"] == space and report["seconds"]["train_step"] > 0 and png.exists()


def run_report_script(name: str, out: Path, timeout: float) -> subprocess.CompletedProcess:
    """A script that reads the committed records and writes `out`; it must exit 0."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=BENCHMARKS.parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_bench_vs_real_reads_two_reports(tmp_path):
    out = tmp_path / "vs_real.md"
    done = run_report_script("bench_vs_real.py", out, timeout=60)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["metrics"]) >= {"last_third_mean", "best", "recheck_mean"}
    assert "| recheck_mean | evolution |" in out.read_text()


def test_bench_vs_campaign_scores_only_what_the_fit_never_saw(tmp_path):
    """The fit's records are rebuilt from git (and counted): only later trainings are scored."""
    pytest.importorskip("scipy")
    fit = subprocess.run(["git", "cat-file", "-e", "f92cb89^{commit}"], cwd=BENCHMARKS.parent)
    if fit.returncode != 0:
        pytest.skip("a shallow clone: the fit's commit is not here")
    out = tmp_path / "vs_campaign.json"
    done = run_report_script("bench_vs_campaign.py", out, timeout=120)
    report = json.loads(done.stdout)
    assert report == json.loads(out.read_text())
    groups = report["groups"]
    runs = {g: s for g, s in groups.items() if g.startswith("cpu_v2_")}
    # the 60-network study's four arms were all fitted on; its fifth (fixed) came later
    assert not any(g.startswith(("cpu_v2_study/random", "cpu_v2_study/reinforce")) for g in runs)
    assert sum(s["n"] for s in runs.values()) == groups["all"]["n"] == report["new_trainings"]
    assert all(0.0 <= s["inside_95"] <= 1.0 and s["mae_points"] >= 0 for s in groups.values())
    assert groups["all"]["kendall_tau"] > 0.2  # the model ranks unseen trainings, if not well
