"""The README's main job with one worker process per core against one per environment.

    python benchmarks/main_job.py [--modes pooled,per-env] [--nets 20]
        [--data-dir ../shared/data] [--record benchmarks/data/main_job/DATE-workers.json]

Runs ``eas-gym search --env EAS-CIFAR10-CPU-v2 --agent reinforce --nets 20`` once per mode, each
in a fresh run folder with a fresh store and a fresh prepared-data cache (so each trains its
start network and prepares its data, as a first run does):

- ``pooled``: the default, no more worker processes than cores (``--workers`` unset);
- ``per-env``: ``--workers 10``, one process per environment (the default until 2026-12-04).

For each it measures the wall time, the CPU time of the whole process tree (``wait4``) as a
share of the wall time, and the peak PSS summed over the process tree (``/proc/PID/smaps_rollup``
every second), and checks that both modes found the same networks with the same accuracies
(every child trains on one thread with its own seed, whichever process runs it). Prints one JSON
line, writes the record and a plot of the summed PSS over time. Linux only; run it with nothing
else busy on the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODES = {"pooled": [], "per-env": ["--workers", "10"]}


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def tree_pss_kb(root: int) -> tuple[int, int]:
    """PSS summed over `root` and its descendants (kB), and how many processes."""
    tree, todo, total, count = _children_of(), [root], 0, 0
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    count += 1
                    break
        except OSError:
            continue
    return total, count


def run_mode(mode: str, nets: int, data_dir: str, work: Path) -> dict:
    out = work / mode / "run"
    env = {
        **os.environ,
        "EAS_DATA_DIR": data_dir,
        "EAS_CACHE_DIR": str(work / mode / "cache"),
    }
    command = [
        sys.executable, "-m", "agents.cli", "search", "--env", "EAS-CIFAR10-CPU-v2",
        "--agent", "reinforce", "--nets", str(nets), "--out", str(out), "--no-progress",
        *MODES[mode],
    ]  # fmt: skip
    samples: list[tuple[float, int, int]] = []
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pss, count = tree_pss_kb(process.pid)
            samples.append((time.perf_counter() - start, pss, count))
            done.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{mode}: the search failed ({command})")
    children = [json.loads(line) for line in (out / "children.jsonl").read_text().splitlines()]
    return {
        "mode": mode,
        "command": " ".join(command),
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "cpu_percent": round(100 * (usage.ru_utime + usage.ru_stime) / wall),
        "peak_pss_mb": round(max(s[1] for s in samples) / 1024),
        "max_processes": max(s[2] for s in samples),
        "pss_mb_over_time": [(round(t, 1), round(p / 1024)) for t, p, _ in samples],
        "start_accuracy": children[0].get("start_accuracy"),
        "children": [(c["net"], c["accuracy"]) for c in children],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="pooled,per-env")
    parser.add_argument("--nets", type=int, default=20)
    parser.add_argument("--data-dir", default=os.environ.get("EAS_DATA_DIR", "../shared/data"))
    today = datetime.date.today().isoformat()
    default_record = Path(f"benchmarks/data/main_job/{today}-workers.json")
    parser.add_argument("--record", type=Path, default=default_record)
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/main_job.png"))
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"unknown --modes {unknown}; allowed: {sorted(MODES)}")

    with tempfile.TemporaryDirectory() as tmp:
        runs = {mode: run_mode(mode, args.nets, args.data_dir, Path(tmp)) for mode in modes}
    summary: dict = {"benchmark": "main_job", "date": today, "cores": len(os.sched_getaffinity(0))}
    for mode, run in runs.items():
        summary[mode] = {k: run[k] for k in ("wall_s", "cpu_percent", "peak_pss_mb")}
        summary[mode]["processes"] = run["max_processes"]
    if {"pooled", "per-env"} <= set(runs):
        pooled, per_env = runs["pooled"], runs["per-env"]
        summary["wall_ratio_pooled_over_per_env"] = round(pooled["wall_s"] / per_env["wall_s"], 3)
        summary["pss_ratio_pooled_over_per_env"] = round(
            pooled["peak_pss_mb"] / per_env["peak_pss_mb"], 3
        )
        summary["same_networks_and_accuracies"] = pooled["children"] == per_env["children"]
    print(json.dumps(summary))
    args.record.parent.mkdir(parents=True, exist_ok=True)
    args.record.write_text(json.dumps({**summary, "runs": runs}, indent=1) + "\n")
    _plot(runs, args.plot)


def _plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, run in runs.items():
        t, pss = zip(*run["pss_mb_over_time"], strict=True)
        label = f"{mode}: {run['max_processes']} processes, {run['wall_s'] / 60:.1f} min"
        ax.plot([x / 60 for x in t], [p / 1024 for p in pss], label=label)
    ax.axhline(3, color="grey", linestyle=":", label="3 GB")
    ax.set_xlabel("minutes")
    ax.set_ylabel("PSS summed over the process tree (GB)")
    ax.set_title("The main job (EAS-CIFAR10-CPU-v2, 20 networks, 2 cores)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
