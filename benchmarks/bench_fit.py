"""Fit EAS-Bench's surrogate of ``EAS-CIFAR10-CPU-v2`` on every real training, and measure it.

    pip install -e ".[bench]"   # lightgbm, scikit-learn
    OMP_NUM_THREADS=1 python benchmarks/bench_fit.py [--data-dir benchmarks/data] \
        [--models ridge,lgbm,...] [--folds 5] [--repeats 3] [--curve-repeats 3]

Rerun it when the studies under ``benchmarks/data`` have more records: it rebuilds the data set
(:mod:`bench_data`: sources, what is dropped), then

1. compares the candidate models (:mod:`bench_models`) by grouped cross-validation (every
   training of a net in one fold; ``--repeats`` shuffles): R^2, Spearman, Kendall tau and sparse
   Kendall tau (ties within 0.1 points) on the held-out random-search nets (each net's mean over
   its trainings; random search samples the space the way a benchmark's user would), also on
   all held-out nets, and leave-one-agent-out (fitted without any net an agent trained, tested
   on that agent's nets);
2. picks an exportable model (LightGBM trees, evaluated by :mod:`eas_gym.bench` without
   LightGBM) by :func:`selection_score` (held-out random-search Kendall tau and
   leave-one-agent-out Kendall tau, averaged) and :func:`choose` (the cheapest within one CV
   standard error of the best), and says which model was best of all;
3. fits the retrain noise on the nets trained more than once (:mod:`bench_noise`) and validates
   the sd against their empirical within-net sd;
4. refits the model on everything, writes it (``--out-model``, by default the packaged
   ``eas_gym/bench_models/cifar10_cpu_v2.json``) and checks that :class:`eas_gym.bench.BenchModel`
   reproduces LightGBM's predictions;
5. measures the learning curve (Kendall tau and Spearman against the number of trainings fitted
   on, several random subsets each) and the query speed of the written model.

Prints one JSON line (the fit table and the chosen model), writes the whole record to
``--out-json`` (``benchmarks/data/bench/fit.json``) and the learning curve to ``--out-png``.
Deterministic: the same records give the same model file, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_data  # noqa: E402
import bench_models as bm  # noqa: E402
import bench_noise  # noqa: E402

from eas_gym.bench import (  # noqa: E402
    DEFAULT_MODEL_PATH,
    MODEL_FORMAT,
    BenchModel,
    arch_features,
    feature_names,
    trees_from_lightgbm,
)

METRICS = ("r2", "spearman", "kendall_tau", "sparse_kendall_tau")
STUDY_AGENTS = ("random", "evolution", "reinforce", "reinforce-lr=0.01")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=bench_data.DATA)
    p.add_argument("--models", default=",".join(bm.CANDIDATES))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="shuffles of the grouped folds")
    p.add_argument("--curve-repeats", type=int, default=3, help="random subsets per size")
    p.add_argument("--curve-step", type=int, default=250, help="trainings between curve points")
    p.add_argument("--out-model", type=Path, default=DEFAULT_MODEL_PATH)
    p.add_argument("--out-json", type=Path, default=HERE / "data" / "bench" / "fit.json")
    p.add_argument("--out-png", type=Path, default=HERE / "bench_fit.png")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    unknown = set(args.models.split(",")) - set(bm.CANDIDATES)
    if unknown:
        p.error(f"unknown --models {sorted(unknown)}; choose from {sorted(bm.CANDIDATES)}")
    if not any(bm.CANDIDATES[m].exportable for m in args.models.split(",")):
        p.error("--models needs at least one exportable (lgbm*) model")
    return args


def summarise(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and sd over CV repeats of each metric."""
    out: dict[str, Any] = {"n": runs[0].get("n")}
    for m in METRICS:
        values = [r[m] for r in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        out[m] = {"mean": round(statistics.fmean(values), 4), "sd": round(sd, 4)}
    return out


def compare(args: argparse.Namespace, d: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """Grouped CV and leave-one-agent-out of every candidate; out-of-fold predictions."""
    x, y, nets, agents = d["x"], d["y"], d["nets"], d["agents"]
    is_random = np.isin(agents, bench_data.RANDOM_AGENTS)
    splits = [bm.grouped_folds(nets, args.folds, seed) for seed in range(args.repeats)]
    table: dict[str, Any] = {}
    oof: dict[str, np.ndarray] = {}
    for name in args.models.split(","):
        c = bm.CANDIDATES[name]
        cols = bm.column_mask(c.columns)
        start = time.perf_counter()
        preds = [bm.out_of_fold(c.make, x[:, cols], y, s) for s in splits]
        oof[name] = preds[0]
        loao = {}
        for agent in (*STUDY_AGENTS, "probe"):
            test = agents == agent if agent != "probe" else np.char.startswith(agents, "probe:")
            test &= ~(is_random & (agent == "probe"))  # fixed policies only
            train = ~np.isin(nets, nets[test])
            p = c.make().fit(x[train][:, cols], y[train]).predict(x[test][:, cols])
            m = bm.net_metrics(y[test], p, nets[test], np.ones(int(test.sum()), dtype=bool))
            m["bias_points"] = float(100 * np.mean(p - y[test]))
            loao[agent] = {k: round(v, 4) if isinstance(v, float) else v for k, v in m.items()}
        table[name] = {
            "kind": c.kind,
            "features": c.columns,
            "exportable": c.exportable,
            "random_nets": summarise([bm.net_metrics(y, p, nets, is_random) for p in preds]),
            "all_nets": summarise(
                [bm.net_metrics(y, p, nets, np.ones(len(y), dtype=bool)) for p in preds]
            ),
            "rmse_points": round(float(100 * np.sqrt(np.mean((preds[0] - y) ** 2))), 3),
            "leave_one_agent_out": loao,
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"{name}: {table[name]['random_nets']}", file=sys.stderr, flush=True)
    return table, oof


def selection_score(row: dict[str, Any]) -> float:
    """Mean of the held-out random-search Kendall tau and the study agents' mean LOAO tau.

    A benchmark is queried by random samplers and by searches that go where the data is thin
    (an agent's own region): the model should rank both well.
    """
    loao = statistics.fmean(row["leave_one_agent_out"][a]["kendall_tau"] for a in STUDY_AGENTS)
    return (row["random_nets"]["kendall_tau"]["mean"] + loao) / 2


def choose(table: dict[str, Any], score: dict[str, float]) -> tuple[str, dict[str, Any]]:
    """The cheapest exportable model within one CV standard error of the best one's score.

    Breiman's one-standard-error rule: a score gap smaller than the spread of the best model's
    held-out random-search Kendall tau across CV shuffles is noise, and then fewer trees (a
    smaller file, faster queries) decide.
    """
    exportable = [m for m in table if table[m]["exportable"]]
    best = max(exportable, key=lambda m: score[m])
    tolerance = table[best]["random_nets"]["kendall_tau"]["sd"]
    near = [m for m in exportable if score[m] >= score[best] - tolerance]
    chosen = min(near, key=lambda m: (bm.CANDIDATES[m].trees, -score[m]))
    return chosen, {
        "best_exportable": best,
        "tolerance": tolerance,
        "within_tolerance": near,
        "trees": {m: bm.CANDIDATES[m].trees for m in exportable},
    }


def fit_noise(d: dict[str, Any], resid: np.ndarray) -> tuple[dict, dict, dict]:
    """The noise model of the best leave-one-net-out likelihood, its validation, a constant sd."""
    groups = bench_noise.repeat_groups(resid, d["nets"], d["x"], d["starts"])
    spec, scores = bench_noise.choose_noise(groups)
    loo = bench_noise.leave_one_out_sd(groups, tuple(spec["features"]))
    report = {
        "choice": "+".join(spec["features"]) or "constant",
        "leave_one_net_out_nll": {k: round(v, 2) for k, v in scores.items()},
        **bench_noise.validate(groups, bench_noise.noise_sd(spec, groups.x), loo),
    }
    constant = bench_noise.fit_noise(groups, ())
    report["constant_sd_points"] = round(float(100 * np.exp(constant["log_var"] / 2)), 3)
    return spec, report, constant


def refit(
    args: argparse.Namespace, d: dict[str, Any], name: str, noise: dict[str, Any], info: dict
) -> tuple[dict[str, Any], float]:
    """The chosen model fitted on everything, as a model file; the export's largest error."""
    c = bm.CANDIDATES[name]
    cols = bm.column_mask(c.columns)
    model = c.make().fit(d["x"][:, cols], d["y"])
    boosters = model.boosters  # type: ignore[attr-defined]
    starts = sorted(set(d["starts"].tolist()))
    spec = {
        "format": MODEL_FORMAT,
        "env_id": bench_data.V2_ID,
        "target": "validation accuracy, a fraction; sd: one training's retrain noise",
        "model": {
            "name": name,
            "kind": c.kind,
            "lightgbm": {**model.params, "rounds": model.rounds},  # type: ignore[attr-defined]
        },
        "features": [n for n, keep in zip(feature_names(), cols, strict=True) if keep],
        "default_start_accuracy": bench_data.PINNED_START,
        "start_accuracies_seen": starts,
        "data": info,
        "noise": noise,
        "members": [trees_from_lightgbm(b.dump_model()) for b in boosters],
    }
    ours = BenchModel(spec)
    rows = np.arange(0, len(d["y"]), max(len(d["y"]) // 300, 1))  # 300 trainings
    mine = [ours.mean([d["nets"][i]], start_accuracy=float(d["starts"][i]))[0] for i in rows]
    theirs = np.clip(model.predict(d["x"][rows][:, cols]), 0, 1)
    return spec, float(np.max(np.abs(mine - theirs)))


def learning_curve(args: argparse.Namespace, d: dict[str, Any], name: str) -> dict[str, Any]:
    """Held-out random-search Kendall tau and Spearman against the trainings fitted on."""
    c = bm.CANDIDATES[name]
    x, y, nets = d["x"][:, bm.column_mask(c.columns)], d["y"], d["nets"]
    is_random = np.isin(d["agents"], bench_data.RANDOM_AGENTS)
    smallest = min(len(train) for train, _ in bm.grouped_folds(nets, args.folds, 0))
    sizes = [*range(args.curve_step, smallest, args.curve_step), smallest]
    points = []
    for size in sizes:
        runs = []
        for r in range(args.curve_repeats):
            rng = np.random.default_rng([size, r])
            splits = bm.grouped_folds(nets, args.folds, r)
            pred = bm.out_of_fold(c.make, x, y, splits, subsample=size, rng=rng)
            runs.append(bm.net_metrics(y, pred, nets, is_random))
        points.append({"trainings": size, **{k: v for k, v in summarise(runs).items() if k != "n"}})
        print(f"curve {size}: {points[-1]['kendall_tau']}", file=sys.stderr, flush=True)
    return {"model": name, "folds": args.folds, "repeats": args.curve_repeats, "points": points}


def plot(curve: dict[str, Any], ceiling: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    n = [p["trainings"] for p in curve["points"]]
    for metric, colour in (("kendall_tau", "C0"), ("spearman", "C1")):
        mean = np.array([p[metric]["mean"] for p in curve["points"]])
        sd = np.array([p[metric]["sd"] for p in curve["points"]])
        label = metric.replace("_", " ").replace("kendall", "Kendall").replace("spear", "Spear")
        ax.errorbar(n, mean, yerr=sd, marker="o", capsize=3, color=colour, label=label)
        ax.axhline(ceiling[metric], ls="--", lw=1, color=colour, label=f"{label}: noise ceiling")
    ax.set_xlabel(f"trainings fitted on (random subsets; {curve['folds']}-fold, net-grouped CV)")
    ax.set_ylabel("rank correlation, held-out random-search nets")
    ax.set_title(f"EAS-Bench EAS-CIFAR10-CPU-v2: {curve['model']} learning curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def query_speed(path: Path, nets: list[str]) -> dict[str, float]:
    """Networks per second of the written model: a batch, one at a time, and cached."""
    model = BenchModel.load(path)
    start = time.perf_counter()
    model.mean(nets)
    batch = time.perf_counter() - start
    model = BenchModel.load(path)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for net in nets:
        model.sample(net, rng)
    single = time.perf_counter() - start
    start = time.perf_counter()
    for net in nets:
        model.sample(net, rng)
    cached = time.perf_counter() - start
    return {
        "nets": len(nets),
        "batch_nets_per_second": round(len(nets) / batch),
        "one_at_a_time_nets_per_second": round(len(nets) / single),
        "cached_nets_per_second": round(len(nets) / cached),
    }


def simulated_spread(
    model: BenchModel, d: dict[str, Any], oof: np.ndarray, constant: dict[str, Any]
) -> dict[str, Any]:
    """Real random-search accuracies against bench draws for the same nets, out of fold.

    A draw is the out-of-fold mean (a model that never saw the net) plus noise, so the
    comparison is not flattered by the final model having been fitted on these trainings; 100
    draws of every training give the bench's mean, sd and upper tail (90th and 99th percentile,
    best) with their spread, under the model's noise and under one constant sd.
    """
    mask = np.isin(d["agents"], bench_data.RANDOM_AGENTS)
    rows = zip(d["nets"][mask], d["starts"][mask], strict=True)
    sds = {
        "model_noise": np.array([model.sd([n], start_accuracy=s)[0] for n, s in rows]),
        "constant_noise": bench_noise.noise_sd(constant, d["x"][mask]),
    }
    real = 100 * d["y"][mask]
    out: dict[str, Any] = {
        "trainings": int(mask.sum()),
        "bench_mean_only_sd_points": round(float(100 * oof[mask].std(ddof=1)), 3),
        "real": _distribution(real[None, :]),
    }
    for name, sd in sds.items():
        draws = 100 * (oof[mask] + np.random.default_rng(0).normal(0.0, sd, (100, len(sd))))
        out[name] = _distribution(draws)
    return out


def _distribution(draws: np.ndarray) -> dict[str, Any]:
    """Mean, sd, 90th/99th percentile and best of each row (points); mean and sd over rows."""
    rows = {
        "mean": draws.mean(axis=1),
        "sd": draws.std(axis=1, ddof=1),
        "q90": np.percentile(draws, 90, axis=1),
        "q99": np.percentile(draws, 99, axis=1),
        "best": draws.max(axis=1),
    }
    if len(draws) == 1:
        return {k: round(float(v[0]), 3) for k, v in rows.items()}
    return {k: [round(float(v.mean()), 3), round(float(v.std(ddof=1)), 3)] for k, v in rows.items()}


def dataset(data_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Feature rows, targets and labels of every training, and the data's description."""
    trainings, info = bench_data.load_trainings(data_dir)
    d = {
        "x": np.stack([arch_features(t.net, t.start_accuracy) for t in trainings]),
        "y": np.array([t.accuracy for t in trainings]),
        "nets": np.array([t.net for t in trainings]),
        "agents": np.array([t.agent for t in trainings]),
        "starts": np.array([t.start_accuracy for t in trainings]),
    }
    return d, {**bench_data.counts(trainings), **info}


def main(args: argparse.Namespace) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    bm.LGBM_PARAMS["num_threads"] = args.threads
    d, info = dataset(args.data_dir)
    table, oof = compare(args, d)
    score = {m: selection_score(row) for m, row in table.items()}
    chosen, selection = choose(table, score)
    noise, noise_report, constant = fit_noise(d, d["y"] - oof[chosen])
    data_info = {k: info[k] for k in ("trainings", "nets", "probes_matching_v2", "dropped")}
    spec, export_error = refit(args, d, chosen, noise, data_info)
    args.out_model.parent.mkdir(parents=True, exist_ok=True)
    args.out_model.write_text(json.dumps(spec, separators=(",", ":")) + "\n")
    model = BenchModel.load(args.out_model)
    groups = bench_noise.repeat_groups(d["y"] - oof[chosen], d["nets"], d["x"], d["starts"])
    sd_model = np.array([model.sd([n], start_accuracy=s)[0] for n, s in _group_heads(d)])
    sd_fit = bench_noise.noise_sd(noise, groups.x)
    noise_report["model_file_sd_max_abs_error"] = float(np.max(np.abs(sd_model - sd_fit)))
    is_random = np.isin(d["agents"], bench_data.RANDOM_AGENTS)
    ceiling = bm.noise_ceiling(d["y"], d["nets"], is_random, np.exp(noise["log_var"] / 2))
    curve = learning_curve(args, d, chosen)
    plot(curve, ceiling, args.out_png)
    result = {
        "benchmark": "bench_fit",
        "env": bench_data.V2_ID,
        "data": info,
        "models": table,
        "chosen": chosen,
        "selection_score": {m: round(v, 4) for m, v in score.items()},
        "selection": selection,
        "best_overall": max(score, key=lambda m: score[m]),
        "noise_ceiling_random_nets": {k: round(v, 4) for k, v in ceiling.items()},
        "noise": noise_report,
        "simulated_random_search": simulated_spread(model, d, oof[chosen], constant),
        "export_max_abs_error": export_error,
        "model_file": _relative(args.out_model),
        "model_file_bytes": args.out_model.stat().st_size,
        "query_speed": query_speed(args.out_model, sorted(set(d["nets"].tolist()))),
        "learning_curve": curve,
    }
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _relative(path: Path) -> str:
    """`path` relative to the repository when inside it (reports name no local folders)."""
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def _group_heads(d: dict[str, Any]) -> list[tuple[str, float]]:
    """(net, start accuracy) of each repeated net's first training, in repeat_groups' order."""
    first: dict[str, int] = {}
    count: dict[str, int] = {}
    for i, net in enumerate(d["nets"].tolist()):
        first.setdefault(net, i)
        count[net] = count.get(net, 0) + 1
    return [(n, float(d["starts"][i])) for n, i in first.items() if count[n] >= 2]


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON line: the fit table (mean metrics) and the chosen model, without the curve."""
    table = {
        name: {
            "random_nets": {m: row["random_nets"][m]["mean"] for m in METRICS},
            "all_nets": {m: row["all_nets"][m]["mean"] for m in METRICS},
            "leave_one_agent_out_tau": {
                a: v.get("kendall_tau") for a, v in row["leave_one_agent_out"].items()
            },
        }
        for name, row in result["models"].items()
    }
    keys = (
        "chosen",
        "best_overall",
        "selection_score",
        "noise_ceiling_random_nets",
        "export_max_abs_error",
    )
    noise = {k: v for k, v in result["noise"].items() if not isinstance(v, dict | list)}
    return {
        "benchmark": "bench_fit",
        "trainings": result["data"]["trainings"],
        "nets": result["data"]["nets"],
        "models": table,
        **{k: result[k] for k in keys},
        "noise": noise,
        "query_speed": result["query_speed"],
    }


if __name__ == "__main__":
    print(json.dumps(headline(main(parse_args()))), flush=True)
