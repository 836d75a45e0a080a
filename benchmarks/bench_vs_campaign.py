"""EAS-Bench against the long run's trainings it was not fitted on (issue 29).

    OMP_NUM_THREADS=1 python benchmarks/bench_vs_campaign.py [--fit-data f92cb89] [--model cb05459]

The first packaged model (``eas_gym/bench_models/cifar10_cpu_v2.json`` as committed in
``--model``, cb05459; read from git, so this stays its record after the refit on every
training) was fitted on the ``-v2`` trainings under ``benchmarks/data`` as committed in
``--fit-data`` (f92cb89, three minutes later: the records the fit read were committed after
the model; the script checks that the count equals the model file's ``data.trainings``). The
studies have trained more since (the long run, ``cpu_v2_long``, 300 networks per search, and the
60-network study's fixed-policy arm), and none of those trainings was seen by the fit. This
scores the model on them alone, as they come: per search (agent and seed), and within the long
run by a child's place in its search (1-60, the range of the 60-network study the fit saw most
of, or 61-300, beyond it; compared within the same runs, so that no arm's bias leaks into the
contrast):

* R^2, Spearman, Kendall tau and sparse tau (:func:`bench_models.ranking_metrics`) of the
  model's mean against each training's accuracy, beside the noise ceiling (what a perfect mean
  model would score against trainings this noisy, :func:`bench_models.noise_ceiling` with the
  root mean square of the model's own sd), and the same ceiling with the packaged model's sd
  (``ceiling_packaged_noise``: after the refit, the retrain noise calibrated on every network
  trained more than once, lighter than the first model's);
* bias: the mean of accuracy minus prediction (points), and the share of trainings inside
  the model's 95% interval (mean +- 1.96 sd), which a calibrated noise model puts at 95%.

Prints one JSON line and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_data  # noqa: E402
import bench_models as bm  # noqa: E402

from eas_gym.bench import DEFAULT_MODEL_PATH, BenchModel  # noqa: E402

FIT_DATA = "f92cb89"
"""The commit whose records the first model was fitted on (its 1,548 trainings)."""
MODEL = "cb05459"
"""The commit of the first packaged model (refitted on every ``-v2`` training since)."""
STUDY_LENGTH = 60
"""Networks per search in the study the fit saw most of."""


def _key(t: bench_data.Training) -> tuple[Any, ...]:
    return (t.source, t.net, t.lineage, t.accuracy)


def model_at(commit: str) -> BenchModel:
    """The packaged model file as committed in `commit`."""
    path = DEFAULT_MODEL_PATH.relative_to(HERE.parent).as_posix()
    text = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=HERE.parent, check=True, capture_output=True
    ).stdout
    return BenchModel(json.loads(text))


def fitted_on(commit: str, model: BenchModel) -> set[tuple[Any, ...]]:
    """The trainings under ``benchmarks/data`` at `commit` (what `model` was fitted on).

    Raises:
        SystemExit: If their count differs from the model file's ``data.trainings``.
    """
    repo = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "data.tar"
        subprocess.run(
            ["git", "archive", "-o", str(archive), commit, "benchmarks/data"], cwd=repo, check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        trainings, _ = bench_data.load_trainings(Path(tmp) / "benchmarks" / "data")
    fitted = model.spec["data"]["trainings"]
    if len(trainings) != fitted:
        raise SystemExit(
            f"{commit}'s records hold {len(trainings)} trainings, the model was fitted on "
            f"{fitted}: not the fit's data"
        )
    return {_key(t) for t in trainings}


def places(data: Path) -> dict[tuple[Any, ...], int]:
    """Each child record's place in its search (1-based), by training key."""
    found = {}
    for study in ("cpu_v2_study", "cpu_v2_long"):
        for path in sorted((data / study).glob("*/seed-*/children*.jsonl")):
            source = f"{study}/{path.parent.parent.name}/{path.parent.name}/{path.name}"
            for i, r in enumerate(bench_data._read_jsonl(path), 1):  # a run may be writing
                found[(source, r["net"], r.get("lineage"), float(r["accuracy"]))] = i
    return found


def scores(
    y: np.ndarray, mean: np.ndarray, sd: np.ndarray, sd_packaged: np.ndarray
) -> dict[str, Any]:
    """Ranking, bias and coverage of one group of trainings."""
    out: dict[str, Any] = {"n": len(y)}
    if len(y) >= 3:
        out.update(bm.ranking_metrics(y, mean))
        nets = np.arange(len(y)).astype(str)  # one training per point: noise is a training's
        for key, noise_sd in (("ceiling", sd), ("ceiling_packaged_noise", sd_packaged)):
            noise = float(np.sqrt(np.mean(noise_sd**2)))
            ceiling = bm.noise_ceiling(y, nets, np.ones(len(y), bool), noise)
            out[key] = {k: ceiling[k] for k in ("r2", "spearman", "kendall_tau")}
            out[key]["noise_rms_points"] = 100 * noise
    out["bias_points"] = float(100 * np.mean(y - mean))
    out["mae_points"] = float(100 * np.mean(np.abs(y - mean)))
    out["inside_95"] = float(np.mean(np.abs(y - mean) <= 1.96 * sd))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-data", default=FIT_DATA, help="the commit of the fit's records")
    parser.add_argument("--model", default=MODEL, help="the commit of the model file scored")
    parser.add_argument("--data", type=Path, default=bench_data.DATA)
    parser.add_argument("--out", type=Path, default=HERE / "data" / "bench" / "vs_campaign.json")
    args = parser.parse_args()

    model = model_at(args.model)
    seen = fitted_on(args.fit_data, model)
    trainings, _ = bench_data.load_trainings(args.data)
    new = [t for t in trainings if _key(t) not in seen]
    if not new:
        raise SystemExit(f"no training under {args.data} is newer than {args.fit_data}'s")
    packaged = BenchModel.load()
    mean, sd, sd_packaged = np.empty(len(new)), np.empty(len(new)), np.empty(len(new))
    by_start = defaultdict(list)
    for i, t in enumerate(new):
        by_start[t.start_accuracy].append(i)
    for start, idx in by_start.items():
        nets = [new[i].net for i in idx]
        mean[idx] = model.mean(nets, start_accuracy=start)
        sd[idx] = model.sd(nets, start_accuracy=start)
        sd_packaged[idx] = packaged.sd(nets, start_accuracy=start)
    y = np.array([t.accuracy for t in new])
    place = places(args.data)

    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(new):
        run = "/".join(t.source.split("/")[:3])
        groups[f"{run} ({t.kind})"].append(i)
        at = place.get(_key(t))
        if t.kind == "child" and at is not None and run.startswith("cpu_v2_long/"):
            within = "1-60" if at <= STUDY_LENGTH else "61-300"
            groups[f"long run, children {within}"].append(i)
            if at > 200:  # where each search had settled
                groups[f"long run, {run.removeprefix('cpu_v2_long/')}, children 201-300"].append(i)
    groups["all"] = list(range(len(new)))
    result = {
        "benchmark": "bench_vs_campaign",
        "fit_data": args.fit_data,
        "model": args.model,
        "records": {  # what this was measured on, since the runs go on writing
            str(p.relative_to(args.data)): len(bench_data._read_jsonl(p))
            for study in ("cpu_v2_study", "cpu_v2_long")
            for p in sorted((args.data / study).glob("*/seed-*/*.jsonl"))
            if p.name.startswith(("children", "recheck"))
        },
        "fitted_trainings": len(seen),
        "new_trainings": len(new),
        "groups": {
            g: scores(y[idx], mean[idx], sd[idx], sd_packaged[idx])
            for g, idx in sorted(groups.items())
        },
    }
    line = json.dumps(result)
    print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
