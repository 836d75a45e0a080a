"""Compare search agents over seeds, as a reviewer asks: mean +- SE, CIs, p-values, rechecks.

``agents x seeds`` searches (resumable, one shared evaluation store), then per run: the mean
validation accuracy of the last third of its sampled networks, the best validation accuracy
(best-so-far at the end), the *test* accuracy of that best-by-validation network (evaluated once
per distinct network and cached in ``test_accuracy.json``; trained again from its lineage where
the store kept no weights, :mod:`agents.best_test`; none on the weightless evaluators, whose test
accuracy is their validation accuracy), and optionally the mean of a
recheck (:func:`agents.runner.run_recheck`: fresh episodes of the final policy whose children
are fine-tuned again, never read from the store). Each is summarised as mean +- standard error
over seeds, and every agent is compared with ``random`` and with the best other agent by
Welch's t-test (difference, 95% CI, two-sided p), with the exact permutation p beside it and a
Holm-adjusted p within each family of tests; a size-adjusted comparison takes out what larger
networks alone buy (:mod:`agents.compare_analysis`, :mod:`agents.stats`). With ``fixed[...]``
arms (fixed heuristic policies, :mod:`agents.fixed`), every learned agent is also compared
with the best of them, in a family of its own.

Writes ``compare.json`` (every per-seed number), ``compare.md`` (the tables) and
``compare.png`` (best-so-far validation accuracy against networks evaluated and against
cumulative child training time, and each update's mean accuracy, mean +- SE bands), and
keeps the start network every run grows from in ``start/`` (:mod:`agents.pinned_start`), so a
copy of the folder without its store resumes on the same start.

:func:`report` tabulates a comparison still in progress: the runs finished so far, read from
their folders, with nothing trained.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.best_test import best_test_accuracies
from agents.checks import check_agent, check_env_args
from agents.compare_analysis import agent_rows, last_third, per_run_metrics, power
from agents.compare_plot import plot_comparison
from agents.compare_table import METRICS, REFERENCE, format_tables
from agents.metrics_log import agent_cpu_seconds
from agents.pinned_start import PIN_FOLDER, pin_start, restore_start
from agents.registry import AgentSpec, parse_agent_spec
from agents.run_folder import (
    hold_run_folder,
    read_as_recorded,
    read_jsonl,
    set_aside_unfinished,
)
from agents.runner import SearchArgs, is_weightless, read_summary, run_recheck, run_search
from agents.search_args import check_search_numbers
from eas_gym.env import EASEnv
from eas_gym.store import EvalStore

__all__ = ["METRICS", "compare", "format_tables", "report", "summarise"]

TEST = (
    "Welch's t-test (two-sided), 95% CI with Welch-Satterthwaite df; exact permutation p beside "
    "it; Holm-adjusted p within each family of tests"
)


def summarise(accuracies: list[float]) -> dict[str, float]:
    """Mean of all, mean of the last third, and best accuracy of one run's sampled networks.

    >>> summarise([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])["last_third_mean"]
    0.55
    """
    acc = np.asarray(accuracies, dtype=float)
    return {
        "mean": float(acc.mean()),
        "last_third_mean": round(float(np.mean(last_third(list(acc)))), 12),
        "best": float(acc.max()),
    }


def compare(
    env_id: str,
    *,
    agents: list[str],
    seeds: int = 10,
    nets: int,
    batch: int = 10,
    out: str = "runs/compare",
    env_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    recheck: int = 0,
    test: bool = True,
    first_seed: int = 0,
) -> str:
    """Run (or resume, or reuse) ``agents x seeds`` searches; write and return the tables.

    Args:
        env_id: A registered env id.
        agents: Agent specs (``"reinforce"``, ``"reinforce[lr=0.01]"``, ``"random"``...).
        seeds: Seeds per agent (``first_seed`` .. ``first_seed + seeds - 1``).
        nets: Networks per search (rounded up to a multiple of `batch`).
        batch: Networks per agent update.
        out: The comparison folder: one run folder per agent and seed, one shared store, the
            pinned start network in ``start/``.
        env_kwargs: Passed to ``gym.make``.
        progress: Show progress bars (one per run, labelled agent and seed).
        recheck: Fresh episodes per run from its final policy, fine-tuned again (0: none).
        test: Evaluate each run's best-by-validation network on the test split.
        first_seed: The first seed.

    Raises:
        ValueError: Bad agent specs or options (every agent is built once to check them),
            `seeds`, `nets` or `batch` < 1, a negative `first_seed`, `recheck` < 0 or a `store`
            in `env_kwargs`, before any run.
    """
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"Expected `seeds` >= 1, actually: {seeds!r}")
    check_search_numbers(nets, batch, first_seed, seed_name="first_seed")
    if not isinstance(recheck, int) or recheck < 0:
        raise ValueError(f"Expected `recheck` >= 0, actually: {recheck!r}")
    specs = [parse_agent_spec(a) for a in agents]
    labels = [s.label() for s in specs]
    if not specs:
        raise ValueError("`agents` names no agent; name at least one, e.g. 'random,reinforce'")
    twins = [f"{a!r}" for a, label in zip(agents, labels, strict=True) if labels.count(label) > 1]
    if twins:
        raise ValueError(
            f"`agents` must name distinct agents: {' and '.join(twins)} are the same agent "
            f"({sorted({lb for lb in labels if labels.count(lb) > 1})} once parsed)"
        )
    env_kwargs = dict(env_kwargs or {})
    if "store" in env_kwargs:
        raise ValueError(
            f"`env_kwargs` sets store={env_kwargs['store']!r}, but a comparison's runs share "
            f"its own store, {Path(out) / 'store.sqlite'}: leave `store` out"
        )
    check_env_args(env_id, env_kwargs)
    for spec in specs:  # option values too: a bad one must not stop the study halfway
        check_agent(spec, env_id, env_kwargs, seed=first_seed, nets=nets, batch=batch)
    root = Path(out)
    _write_plan(root, labels, recheck)  # what `report` tabulates a study in progress by
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    run_config = _a_run_config(root)  # a comparison read back: the device its runs keyed
    start = _start_of(env_id, env_kwargs, run_config)
    _keep_start(root, start, restore=True)
    for seed in range(first_seed, first_seed + seeds):  # seed-major: partial results stay balanced
        for spec in specs:
            args = _search_args(env_id, spec, seed, nets, batch, root, env_kwargs, progress)
            total = math.ceil(nets / batch) * batch
            with hold_run_folder(Path(args.out)):  # before anything in it is renamed
                earlier = set_aside_unfinished(Path(args.out), total, recheck)
                children = run_search(args)
                if earlier is not None:
                    _report_restart(Path(args.out), earlier, children)
                started = read_summary(Path(args.out)).get("start_accuracy")
                run: dict[str, Any] = {"seed": seed, "children": children, "start": started}
                run["agent_cpu_seconds"] = agent_cpu_seconds(Path(args.out))
                if recheck:
                    run["recheck"] = run_recheck(args, recheck)
            runs[spec.label()].append(run)
            if not progress:  # no bars: one line per finished run says how far the study is
                print(_run_line(spec.label(), run), file=sys.stderr, flush=True)
            _keep_start(root, start, restore=False)
    env_kwargs_in_store = {**env_kwargs, "store": str(root / "store.sqlite")}
    probe = gym.make(env_id, **env_kwargs_in_store)
    try:
        summaries = [read_summary(root / s.folder_name() / f"seed-{first_seed}") for s in specs]
        recorded = [x["start_accuracy"] for x in summaries if x.get("start_accuracy") is not None]
        eas = probe.unwrapped
        if not isinstance(eas, EASEnv):
            raise TypeError(f"`env_id` {env_id!r} is not an EASEnv id")
        read_as_recorded(eas, _a_run_config(root))  # the runs' device, not necessarily this
        start_accuracy = recorded[0] if recorded else eas.scorer.start()[1]
        # A weightless evaluator's test accuracy is its validation accuracy: not a column.
        tests = (
            best_test_accuracies(
                eas, runs, root, env_id=env_id, env_kwargs=env_kwargs_in_store, batch=batch
            )
            if test and not eas.weightless
            else {}
        )
        weightless = eas.weightless
    finally:
        probe.close()
    per_run = per_run_metrics(runs, tests)
    rows, families = agent_rows(per_run)
    result = {
        "env_id": env_id,
        "nets": nets,
        "batch": batch,
        "seeds": list(range(first_seed, first_seed + seeds)),
        "recheck": recheck,
        "start_accuracy": start_accuracy,
        "start_accuracies": _start_accuracies(runs),
        "test": TEST,
        "test_is_validation": weightless,
        "families": families,
        "agents": rows,
        "power": power(per_run, families["vs_random"]["tests"]),
        "runs": per_run,
    }
    (root / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    table = format_tables(result)
    (root / "compare.md").write_text(table + "\n")
    plot_comparison(runs, start_accuracy, root / "compare.png", env_id)
    return table


def _report_restart(
    out: Path, earlier: list[dict[str, Any]], children: list[dict[str, Any]]
) -> None:
    """Warn that a run kept without its checkpoint ran again, and whether it reproduced itself."""
    same = 0
    for old, new in zip(earlier, children, strict=False):
        if (old["net"], old["accuracy"]) != (new["net"], new["accuracy"]):
            break
        same += 1
    verdict = (
        "reproduced them exactly"
        if same == len(earlier)
        else f"reproduced the first {same}; from there on training differs (a start network "
        "trained again, or other arithmetic: a thread count or CPU of its own)"
    )
    warnings.warn(
        f"{out} was kept without its checkpoint and had not finished, so it ran again from its "
        f"seed: of its {len(earlier)} earlier networks (kept in children.partial.jsonl) it "
        f"{verdict}",
        stacklevel=2,
    )


def report(out: str, *, recheck: int | None = None) -> str:
    """Tables and plot of the runs finished so far in comparison folder `out`; trains nothing.

    A run counts once its ``children.jsonl`` holds all its networks (and, with `recheck`, its
    ``recheck.jsonl`` that many episodes); unfinished runs are left out. Test accuracies are
    not evaluated. Writes ``report.json``, ``report.md`` and ``report.png`` beside the runs.

    `recheck` None: the comparison's own (from ``compare_plan.json``, written when it starts,
    or a finished one's ``compare.json``; 0 without either), so that the report's size fit
    (over random search's search and recheck networks) and tests are ``compare.md``'s for
    the same runs, except that the report evaluates no test accuracies (no test column, and
    one test fewer per agent in the family against random search). Agents are listed in the
    comparison's order too (random search first without one).

    Raises:
        ValueError: `out` holds no finished run, or runs of different envs or budgets.
    """
    root = Path(out)
    planned = _planned(root)
    if recheck is None:
        recheck = int(planned.get("recheck") or 0)
    if not isinstance(recheck, int) or recheck < 0:
        raise ValueError(f"Expected `recheck` >= 0, actually: {recheck!r}")
    runs: dict[str, list[dict[str, Any]]] = {}
    setups, starts, env_kwargs_seen = set(), [], []
    for config_path in sorted(root.glob("*/seed-*/config.json")):
        config, folder = json.loads(config_path.read_text()), config_path.parent
        env_kwargs_seen.append(config.get("env_kwargs", {}))
        children = read_jsonl(folder / "children.jsonl", live=True)  # runs may be writing
        rechecked = read_jsonl(folder / "recheck.jsonl", live=True) if recheck else []
        if len(children) < config["nets"] or len(rechecked) < recheck:
            continue
        setups.add((config["env_id"], config["nets"], config["batch"]))
        started = read_summary(folder).get("start_accuracy")
        run: dict[str, Any] = {
            "seed": config["seed"],
            "children": children[: config["nets"]],
            "start": started,
            "agent_cpu_seconds": agent_cpu_seconds(folder),
        }
        if recheck:
            run["recheck"] = rechecked[:recheck]
        label = AgentSpec(config["agent"], config["agent_options"]).label()
        runs.setdefault(label, []).append(run)
        starts.append(started)
    if not runs:
        raise ValueError(f"no finished run in {root} (expected AGENT/seed-N/ run folders)")
    if len(setups) != 1:
        raise ValueError(f"{root} holds runs of different envs or budgets: {sorted(setups)}")
    (env_id, nets, batch), known = setups.pop(), [x for x in starts if x is not None]
    known_order = planned.get("agents", [])
    order = sorted(  # compare.json's order, then random search, then by name
        runs,
        key=lambda label: (
            known_order.index(label) if label in known_order else len(known_order),
            label != REFERENCE,
            label,
        ),
    )
    runs = {label: sorted(runs[label], key=lambda r: r["seed"]) for label in order}
    per_run = per_run_metrics(runs, {})
    rows, families = agent_rows(per_run)
    result = {
        "env_id": env_id,
        "nets": nets,
        "batch": batch,
        "seeds": sorted({r["seed"] for rs in runs.values() for r in rs}),
        "seeds_per_agent": {label: [r["seed"] for r in rs] for label, rs in runs.items()},
        "recheck": recheck,
        "start_accuracy": known[0] if known else float("nan"),
        "start_accuracies": _start_accuracies(runs),
        "test": TEST,
        "test_is_validation": _weightless_if_known(env_id, env_kwargs_seen[0]),
        "families": families,
        "agents": rows,
        "power": power(per_run, families["vs_random"]["tests"]),
        "runs": per_run,
    }
    (root / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    table = "Finished runs only; unfinished ones are left out.\n\n" + format_tables(result)
    (root / "report.md").write_text(table + "\n")
    plot_comparison(runs, result["start_accuracy"], root / "report.png", f"{env_id} (so far)")
    return table


PLAN = "compare_plan.json"
"""What a comparison asked for (agents in order, recheck), written before its first run."""


def _write_plan(root: Path, labels: list[str], recheck: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    plan = {"agents": labels, "recheck": recheck}
    (root / PLAN).write_text(json.dumps(plan, indent=2) + "\n")


def _planned(root: Path) -> dict[str, Any]:
    """The comparison's plan: ``{"recheck": K, "agents": [labels]}``, as far as it is known.

    From ``compare_plan.json`` (written when a comparison starts), else ``compare.json`` (a
    comparison finished before the plan was written); a field of the wrong type is left out.
    """
    for name in (PLAN, "compare.json"):
        try:
            found = json.loads((root / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(found, dict):
            break
    else:
        return {}
    planned: dict[str, Any] = {}
    recheck = found.get("recheck")
    if isinstance(recheck, int) and not isinstance(recheck, bool) and recheck >= 0:
        planned["recheck"] = recheck
    agents = found.get("agents")
    if isinstance(agents, dict | list) and all(isinstance(a, str) for a in agents):
        planned["agents"] = list(agents)
    return planned


def _weightless_if_known(env_id: str, env_kwargs: dict[str, Any]) -> bool:
    """Whether `env_id` has a weightless evaluator; False for an id not registered here."""
    try:
        return is_weightless(env_id, env_kwargs)
    except gym.error.Error:  # runs of an env this installation does not know
        return False


def _run_line(label: str, run: dict[str, Any]) -> str:
    """``random seed 3: 60 networks, best 44.1%, last third 40.9%, recheck 41.2%``."""
    accuracies = [c["accuracy"] for c in run["children"]]
    third = last_third(accuracies)
    text = (
        f"{label} seed {run['seed']}: {len(accuracies)} networks, best "
        f"{100 * max(accuracies):.2f}%, last third {100 * sum(third) / len(third):.2f}%"
    )
    if run.get("recheck"):
        rechecked = [c["accuracy"] for c in run["recheck"]]
        text += f", recheck {100 * sum(rechecked) / len(rechecked):.2f}%"
    return text


def _start_of(
    env_id: str, env_kwargs: dict[str, Any], recorded: dict[str, Any] | None = None
) -> tuple[str, str] | None:
    """The start network's net string and store key of `env_id`, or None for other envs.

    Builds the env on a private store; nothing is loaded or trained. `recorded`: a run's
    ``config.json``, whose device key the start's key takes (a comparison read back elsewhere).
    """
    env = gym.make(env_id, **{**env_kwargs, "store": ":memory:"})
    try:
        eas = env.unwrapped
        if not isinstance(eas, EASEnv):
            return None
        read_as_recorded(eas, recorded or {})
        return eas.start_arch.to_string(), eas.eval_config.start_key()
    finally:
        env.close()


def _a_run_config(root: Path) -> dict[str, Any]:
    """The ``config.json`` of the comparison's first run folder that has one, or {}."""
    for path in sorted(root.glob("*/seed-*/config.json")):
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(config, dict):
            return config
    return {}


def _keep_start(root: Path, start: tuple[str, str] | None, *, restore: bool) -> None:
    """Give the store the start pinned in ``root/start/`` (`restore`), or pin the store's.

    See :mod:`agents.pinned_start`; a pin already there stays.
    """
    if start is None or (restore and not (root / PIN_FOLDER).exists()):
        return
    store = EvalStore(root / "store.sqlite")
    try:
        (restore_start if restore else pin_start)(root, store, *start)
    finally:
        store.close()


def _start_accuracies(runs: dict[str, list[dict[str, Any]]]) -> dict[str, list[float]]:
    """Per seed, the distinct start accuracies its runs grew from.

    One, unless a start network was trained again between them (another CPU or thread count).
    """
    by_seed: dict[int, set[float]] = {}
    for rs in runs.values():
        for r in rs:
            if r.get("start") is not None:
                by_seed.setdefault(r["seed"], set()).add(r["start"])
    return {str(seed): sorted(accs) for seed, accs in sorted(by_seed.items())}


def _search_args(env_id, spec: AgentSpec, seed, nets, batch, root: Path, env_kwargs, progress):
    return SearchArgs(
        env_id=env_id,
        agent=spec.name,
        agent_options=dict(spec.options),
        nets=nets,
        batch=batch,
        seed=seed,
        out=str(root / spec.folder_name() / f"seed-{seed}"),
        store=str(root / "store.sqlite"),
        env_kwargs=dict(env_kwargs),
        progress=progress,
    )
