"""The comparison protocol: learning agents beat random with p < 0.05, honest rechecks, resume."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import held_by_another_process

import eas_gym.scorer
from agents.cli import main
from agents.compare import compare, report
from agents.compare_plot import plot_comparison
from agents.compare_table import _pct
from agents.run_folder import load_checkpoint
from agents.runner import SearchArgs, run_recheck, run_search
from agents.stats import holm, seeds_for_power
from eas_gym.scorer import ChildScorer
from eas_gym.store import EvalStore

FAST_SURROGATE = {"probe_size": 4}


def _on_surrogate(out, agents, **settings):
    """A comparison on the surrogate, quiet and with a tiny probe batch: what most tests need."""
    return compare(
        "EAS-Surrogate-v0",
        agents=agents,
        out=str(out),
        progress=False,
        env_kwargs=FAST_SURROGATE,
        **settings,
    )


def test_reinforce_and_evolution_beat_random_search_on_the_surrogate(tmp_path):
    agents = ["random", "reinforce[lr=0.01]", "evolution[population_size=10,tournament_size=3]"]
    _on_surrogate(tmp_path / "cmp", agents, seeds=5, nets=30, batch=5)
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())["agents"]
    for agent in agents[1:]:
        versus = rows[agent]["last_third_mean"]["vs_random"]
        assert versus["diff"] > 0 and versus["p"] < 0.05, (agent, versus)
        assert versus["ci_low"] > 0
    assert rows["random"]["last_third_mean"]["n"] == 5
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "Welch" in table and "95% CI" in table


def test_recheck_fine_tunes_every_child_afresh_and_never_reads_the_store(tmp_path, monkeypatch):
    env_kwargs = {"schedule": "WD", "reward_mode": "sparse"}
    args = SearchArgs(
        env_id="EAS-Synthetic-v0",
        agent="random",
        nets=4,
        batch=2,
        out=str(tmp_path / "run"),
        env_kwargs=env_kwargs,
        progress=False,
    )
    with pytest.raises(ValueError, match="has not finished"):
        run_recheck(args, 3)
    run_search(args)

    trained, child_lookups = [], []
    real_fine_tune, real_get = eas_gym.scorer.fine_tune, EvalStore.get

    def counting_fine_tune(net, *a, **k):
        trained.append(net.arch.to_string())
        return real_fine_tune(net, *a, **k)

    def recording_get(self, net, key):
        found = real_get(self, net, key)
        if found is None or found.config.get("role") != "start":
            child_lookups.append(net)
        return found

    monkeypatch.setattr(eas_gym.scorer, "fine_tune", counting_fine_tune)
    monkeypatch.setattr(EvalStore, "get", recording_get)
    rows_before = len(EvalStore(tmp_path / "run" / "store.sqlite").all())
    records = run_recheck(args, 3)
    assert len(records) == 4  # rounded up to whole batches of 2
    changed = [r["net"] for r in records if r["net"] != "C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8"]
    assert trained == changed and changed  # one fine-tune per changed child, none skipped
    assert child_lookups == []  # the store was asked only for the start network
    assert not any(r["cache_hit"] for r in records)
    assert len(EvalStore(tmp_path / "run" / "store.sqlite").all()) == rows_before  # nothing written
    assert [r["update"] for r in records] == [0, 0, 1, 1]
    # a second call reads its own finished records back instead of training again
    trained.clear()
    assert run_recheck(args, 3) == records and trained == []


def _compare_cmd(out):
    return [
        sys.executable,
        "-m",
        "agents.cli",
        "compare",
        "--env",
        "EAS-Surrogate-v0",
        "--agents",
        "reinforce[lr=0.01],random,local-search",
        "--seeds",
        "2",
        "--nets",
        "40",
        "--batch",
        "5",
        "--recheck",
        "3",
        "--set",
        "probe_size=4",
        "--out",
        str(out),
        "--no-progress",
    ]


def test_killed_compare_resumes_to_the_same_table(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run(_compare_cmd(reference), check=True, env=env, capture_output=True)

    out = tmp_path / "cmp"
    proc = subprocess.Popen(
        _compare_cmd(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    target = out / "random" / "seed-0" / "checkpoint.pt"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "compare.json").exists(), "the compare finished before it could be killed"
    done = load_checkpoint(target)["update"]
    assert done < 8

    subprocess.run(_compare_cmd(out), check=True, env=env, capture_output=True)
    resumed, uninterrupted = (
        _untimed(json.loads((d / "compare.json").read_text())) for d in (out, reference)
    )
    assert resumed == uninterrupted
    tables = [
        re.sub(r"\| [0-9.]+ s \|\n", "| s |\n", (d / "compare.md").read_text())
        for d in (out, reference)
    ]
    assert tables[0] == tables[1]


def _untimed(result):
    """`result` without the agents' measured CPU time, which no two runs share."""
    for runs in result["runs"].values():
        for run in runs:
            assert run.pop("agent_cpu_seconds") >= 0
    return result


def test_agent_options_reach_the_agent(tmp_path):
    out = tmp_path / "run"
    argv = ["search", "--env", "EAS-Surrogate-v0", "--nets", "2", "--batch", "2"]
    argv += ["--agent", "reinforce", "--agent-set", "lr=0.01", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["agent"] == "reinforce" and config["agent_options"] == {"lr": 0.01}
    state = load_checkpoint(out / "checkpoint.pt")["agent"]
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.01


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--agents", "reinforce,randm"], "unknown agent 'randm'"),
        (["compare", "--agents", "reinforce[lrr=0.01],random"], "has no option 'lrr'"),
        (["compare", "--seeds", "0"], "`seeds` >= 1"),
        (["compare", "--recheck", "-1"], "`recheck` >= 0"),
        (["compare", "--set", "store=elsewhere.sqlite"], "leave `store` out"),
        (["compare", "--agent-set", "evolution:population_size=5"], "not in --agents"),
        (["search", "--agent-set", "lr=abc"], "expected a number"),
        (["search", "--agent", "random", "--agent-set", "lr=0.1"], "valid options: none"),
        (["search", "--agent", "evolution[population_size=x]"], "expected an integer"),
        (["search", "--batch", "0"], "Expected `batch` an integer >= 1, actually: 0"),
        (["search", "--nets", "-3"], "Expected `nets` an integer >= 1, actually: -3"),
        (["search", "--seed", "-1"], "Expected `seed` an integer >= 0, actually: -1"),
        (["compare", "--batch", "0"], "Expected `batch` an integer >= 1, actually: 0"),
        (["compare", "--first-seed", "-2"], "Expected `first_seed` an integer >= 0"),
        (["compare", "--agents", ""], "`agents` names no agent"),
        (["search", "--agent", "ppo[seed=3]"], "its seed is the search's (--seed)"),
        (["search", "--threads", "0"], "Expected `threads` >= 1 or None, actually: 0"),
        (["compare", "--agents", "reinforce[lr=0.01],reinforce[lr=0.010]"], "the same agent"),
    ],
)
def test_bad_comparison_input_is_one_line_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*argv, "--env", "EAS-Surrogate-v0", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_report_tabulates_the_finished_runs_and_trains_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cmp"
    agents = ["random", "reinforce[lr=0.01]"]
    _on_surrogate(out, agents, seeds=2, nets=6, batch=3)
    full = json.loads((out / "compare.json").read_text())
    children = out / "reinforce-lr=0.01" / "seed-1" / "children.jsonl"
    lines = children.read_text().splitlines(keepends=True)
    children.write_text("".join(lines[:4]) + lines[4][:20])  # unfinished, an append in flight

    def no_training(*args, **kwargs):
        raise AssertionError("report must not run a search")

    monkeypatch.setattr("agents.compare.run_search", no_training)
    assert main(["compare", "--report", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 seeds per agent" in (out / "compare.md").read_text()
    assert "seeds per agent: random 2, reinforce[lr=0.01] 1" in printed and "report.md" in printed
    partial = json.loads((out / "report.json").read_text())
    assert partial["seeds_per_agent"] == {"random": [0, 1], "reinforce[lr=0.01]": [0]}
    assert partial["runs"]["random"][0]["accuracies"] == full["runs"]["random"][0]["accuracies"]
    kept = partial["agents"]["random"]["last_third_mean"]
    assert kept["mean"] == pytest.approx(full["agents"]["random"]["last_third_mean"]["mean"])
    assert (out / "report.png").stat().st_size > 0
    # sizing: only random has two finished seeds, so the pooled sd is theirs (df 1)
    thirds = [r["last_third_mean"] for r in partial["runs"]["random"]]
    sizing = partial["power"]["last_third_mean"]
    assert sizing["df"] == 1 and sizing["seed_sd"] == pytest.approx(np.std(thirds, ddof=1))
    need = seeds_for_power(100 * sizing["seed_sd"], 1.0)
    assert sizing["seeds_for_gap"]["1"] in (None if need is None else max(need, 4),)
    assert "Sizing the study" in printed
    with pytest.raises(ValueError, match="no finished run"):
        report(str(tmp_path / "empty"))


@pytest.mark.parametrize("kept", ["half-search", "search-without-recheck"])
def test_study_data_kept_without_checkpoints_runs_again_from_its_seed(tmp_path, kept):
    """A study folder from another machine: records only, no .pt files, no store."""
    kwargs = {"seeds": 1, "nets": 6, "batch": 3, "recheck": 3}
    reference = tmp_path / "reference"
    _on_surrogate(reference, ["reinforce"], **kwargs)
    out = tmp_path / "copy"
    run = out / "reinforce" / "seed-0"
    run.mkdir(parents=True)
    for name in ("config.json", "children.jsonl", "recheck.jsonl"):
        (run / name).write_bytes((reference / "reinforce" / "seed-0" / name).read_bytes())
    lines = (run / "children.jsonl").read_text().splitlines(keepends=True)
    if kept == "half-search":
        (run / "children.jsonl").write_text("".join(lines[:3]))
        (run / "recheck.jsonl").unlink()
    else:
        (run / "recheck.jsonl").write_text("")
    with pytest.warns(UserWarning, match=r"ran again from its seed: of its \d earlier .* exactly"):
        _on_surrogate(out, ["reinforce"], **kwargs)
    assert (run / "children.partial.jsonl").exists()  # the earlier records are kept
    again, first = (json.loads((d / "compare.json").read_text()) for d in (out, reference))
    assert again["agents"] == first["agents"]


def test_a_run_in_use_is_refused_before_its_records_are_set_aside(tmp_path):
    """Two comparisons on one folder: the second touches nothing of a run the first holds."""
    kwargs = {"seeds": 1, "nets": 6, "batch": 3, "recheck": 0}
    out = tmp_path / "study"
    _on_surrogate(out, ["random"], **kwargs)
    run = out / "random" / "seed-0"
    (run / "checkpoint.pt").unlink()  # kept as study data: records only, half of them
    lines = (run / "children.jsonl").read_text().splitlines(keepends=True)
    (run / "children.jsonl").write_text("".join(lines[:3]))
    with held_by_another_process(run) as pid:
        with pytest.raises(ValueError, match=f"in use by process {pid}"):
            _on_surrogate(out, ["random"], **kwargs)
    assert not (run / "children.partial.jsonl").exists()  # not set aside under the holder
    assert (run / "children.jsonl").read_text() == "".join(lines[:3])


def test_a_fresh_clone_of_a_study_resumes_on_its_pinned_start_network(tmp_path, monkeypatch):
    """Study data kept in git (records and start/, no store) grows its new seeds from the same
    start network, which another machine could not train back bit for bit."""
    kwargs = {"agents": ["random"], "nets": 4, "batch": 2, "progress": False, "test": False}
    kwargs["env_kwargs"] = {"schedule": "WD", "reward_mode": "sparse"}
    first = tmp_path / "first"
    compare("EAS-Synthetic-v0", seeds=1, out=str(first), **kwargs)
    pinned = json.loads((first / "start" / "evaluation.json").read_text())
    assert (first / "start" / pinned["weights"]).is_file()
    clone = tmp_path / "clone"
    shutil.copytree(first, clone, ignore=shutil.ignore_patterns("store.sqlite*", "weights", "*.pt"))
    shutil.copy(first / "start" / pinned["weights"], clone / "start")
    real_train = ChildScorer._train

    def no_start_training(self, arch, *args, **kw):
        if arch.to_string() == pinned["net"]:
            raise AssertionError("the start network was trained again")
        return real_train(self, arch, *args, **kw)

    monkeypatch.setattr(ChildScorer, "_train", no_start_training)
    compare("EAS-Synthetic-v0", seeds=2, out=str(clone), **kwargs)
    result = json.loads((clone / "compare.json").read_text())
    assert result["start_accuracies"] == {"0": [pinned["accuracy"]], "1": [pinned["accuracy"]]}
    assert f"start network {100 * pinned['accuracy']:.2f}%" in (clone / "compare.md").read_text()


def test_seeds_run_on_different_start_networks_are_named_in_the_table(tmp_path):
    out = tmp_path / "cmp"
    _on_surrogate(out, ["random", "reinforce"], seeds=2, nets=4, batch=2)
    summary_path = out / "reinforce" / "seed-1" / "summary.json"
    summary = json.loads(summary_path.read_text())
    start = summary["start_accuracy"]
    summary_path.write_text(json.dumps({**summary, "start_accuracy": start + 0.01}))
    report(str(out))
    result = json.loads((out / "report.json").read_text())
    assert result["start_accuracies"] == {"0": [start], "1": [start, start + 0.01]}
    line = (out / "report.md").read_text()
    assert (
        f"start networks {_pct(start)}% (seed 0), {_pct(start)}/{_pct(start + 0.01)}% (seed 1)"
        in line
    )
    assert [r["start_accuracy"] for r in result["runs"]["reinforce"]] == [start, start + 0.01]


def test_a_finished_run_read_back_keeps_the_start_it_grew_from(tmp_path):
    """A store whose start was trained again (or restored from a pin) must not relabel the
    summaries of runs that grew from an earlier start network."""
    out = tmp_path / "cmp"
    kwargs = {"agents": ["random"], "nets": 4, "batch": 2, "progress": False, "test": False}
    kwargs["env_kwargs"] = {"schedule": "WD", "reward_mode": "sparse"}
    compare("EAS-Synthetic-v0", seeds=1, out=str(out), **kwargs)
    summary_path = out / "random" / "seed-0" / "summary.json"
    earlier = json.loads(summary_path.read_text())["start_accuracy"] - 0.05
    summary_path.write_text(
        json.dumps({**json.loads(summary_path.read_text()), "start_accuracy": earlier})
    )
    compare("EAS-Synthetic-v0", seeds=2, out=str(out), **kwargs)
    assert json.loads(summary_path.read_text())["start_accuracy"] == earlier
    result = json.loads((out / "compare.json").read_text())
    assert result["start_accuracies"]["0"] == [earlier]
    assert result["start_accuracies"]["1"] == [earlier + 0.05]
    table = (out / "compare.md").read_text()  # children are trained: what that cost
    assert "| agent | cache hits | child training, wall | fine-tunes, CPU |" in table


def _fake_run(folder, agent, options, seed, *, size, bonus, nets=30, recheck=10, cpu=False):
    """A finished run's records: accuracy grows with log size, plus the agent's `bonus`."""
    rng = np.random.default_rng(seed + 100 * len(agent))
    folder.mkdir(parents=True)
    config = {"agent": agent, "agent_options": options, "seed": seed, "nets": nets, "batch": 10}
    (folder / "config.json").write_text(json.dumps({**config, "env_id": "EAS-Fake-v0"}))
    for name, count in (("children", nets), ("recheck", recheck)):
        records = []
        for k in range(count):
            params = int(rng.uniform(*size))
            flops = int(params * rng.uniform(30, 60))
            accuracy = 0.1 + 0.02 * np.log(params) + 0.01 * np.log(flops) + bonus
            records.append(
                {
                    "update": k // 10,
                    "env": k % 10,
                    "net": f"net-{agent}-{seed}-{k}",
                    "accuracy": float(accuracy + rng.normal(0, 0.002)),
                    "params": params,
                    "flops": flops,
                    "cache_hit": name == "children" and k < 2,
                    "train_seconds": 30.0 + k % 10,
                    **({"cpu_seconds": 20.0} if cpu else {}),
                }
            )
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_report_adjusts_for_size_tests_the_best_other_and_corrects_each_family(tmp_path):
    """An agent that only picks bigger networks beats random search on accuracy, not on the
    size-adjusted residual; one a point above the size curve keeps its point."""
    arms = {
        ("random", ()): {"size": (5_000, 20_000), "bonus": 0.0},
        ("reinforce", (("lr", 0.01),)): {"size": (40_000, 80_000), "bonus": 0.0},
        ("evolution", ()): {"size": (5_000, 20_000), "bonus": 0.01},
    }
    for (agent, options), arm in arms.items():
        folder = tmp_path / agent
        for seed in range(5):
            _fake_run(folder / f"seed-{seed}", agent, dict(options), seed, **arm)
    report(str(tmp_path), recheck=10)
    result = json.loads((tmp_path / "report.json").read_text())
    rows, families = result["agents"], result["families"]
    bigger, better = rows["reinforce[lr=0.01]"], rows["evolution"]
    for metric in ("last_third_mean", "recheck_mean"):
        adjusted = metric.replace("_mean", "_size_adjusted")
        raw = bigger[metric]["vs_random"]
        assert raw["diff"] > 0.02 and raw["p_holm"] < 0.05  # bigger networks score higher...
        assert abs(bigger[adjusted]["vs_random"]["diff"]) < 0.003  # ...and that is all
        assert bigger[adjusted]["vs_random"]["p_permutation"] > 0.05
        kept = better[adjusted]["vs_random"]
        assert kept["diff"] == pytest.approx(0.01, abs=0.003)
        assert kept["p_permutation"] == pytest.approx(2 / 252)  # the floor of 5 v 5
    size = bigger["network_size"]["late_params_median"]
    assert size > 2 * rows["random"]["network_size"]["late_params_median"]
    # each agent against the best other: here each other, one test per pair and metric
    versus = better["recheck_mean"]["vs_best_other"]
    assert versus["other"] == "reinforce[lr=0.01]"
    assert bigger["recheck_mean"]["vs_best_other"]["p"] == pytest.approx(versus["p"])
    # Holm within each family: 3 metrics x 2 agents, 2 x 2 size-adjusted, 3 pairs
    counts = {name: f["tests"] for name, f in families.items()}
    assert counts == {"vs_random": 6, "size_adjusted": 4, "vs_best_other": 3}
    tests = [
        rows[a][m]["vs_random"]
        for a in rows
        if a != "random"
        for m in ("last_third_mean", "best", "recheck_mean")
    ]
    assert [t["p_holm"] for t in tests] == pytest.approx(holm([t["p"] for t in tests]))
    table = (tmp_path / "report.md").read_text()
    for text in (
        "Holm p",
        "permutation p",
        "adjusted over the 6 tests of this table",
        "Size-adjusted difference to random",
        "best other",
        "its smallest p with 5 v 5",
    ):
        assert text in table, text
    assert "| random | 10 | " in table  # the costs table: cache hits over the 5 seeds


def test_the_time_axis_is_cpu_time_when_records_have_it(tmp_path):
    child = {"accuracy": 0.4, "train_seconds": 30.0, "net": "n", "update": 0}
    wall_only = {"a": [{"children": [child, child]}, {"children": [child, child]}]}
    assert plot_comparison(wall_only, 0.3, tmp_path / "wall.png", "t") == "train_seconds"
    clocked = {"a": [{"children": [{**child, "cpu_seconds": 12.0}] * 2}] * 2}
    assert plot_comparison(clocked, 0.3, tmp_path / "cpu.png", "t") == "cpu_seconds"
    untimed = {"a": [{"children": [{**child, "train_seconds": 0.0}] * 2}] * 2}
    assert plot_comparison(untimed, 0.3, tmp_path / "none.png", "t") is None


STUDY = Path(__file__).parents[1] / "benchmarks" / "data" / "cpu_v2_study"


@pytest.mark.skipif(not STUDY.exists(), reason="the -v2 study's records are not here")
def test_the_v2_studys_committed_records_give_the_numbers_results_quotes(tmp_path):
    """Its finished runs (rechecks seeded before the recheck seeds moved) still count as done.

    The four arms RESULTS quotes; the fixed-policy arm added later is read on its own.
    """
    arms = ("random", "reinforce", "reinforce-lr=0.01", "evolution")
    for path in STUDY.glob("*/seed-*/*"):
        if path.parts[-3] not in arms:
            continue
        if path.name in ("config.json", "children.jsonl", "recheck.jsonl", "summary.json"):
            target = tmp_path / path.relative_to(STUDY)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    report(str(tmp_path), recheck=10)
    result = json.loads((tmp_path / "report.json").read_text())
    assert {len(seeds) for seeds in result["seeds_per_agent"].values()} == {5}
    rows = result["agents"]
    best = rows["reinforce"]["best"]["vs_random"]
    assert best["p"] == pytest.approx(0.024, abs=5e-4) and best["p_holm"] == pytest.approx(
        0.072, abs=2e-3
    )
    sized = rows["reinforce[lr=0.01]"]["recheck_size_adjusted"]["vs_random"]
    assert 100 * sized["diff"] == pytest.approx(0.09, abs=0.005)
    assert sized["p"] == pytest.approx(0.78, abs=0.005)
    kept = rows["evolution"]["recheck_size_adjusted"]["vs_random"]
    assert 100 * kept["diff"] == pytest.approx(0.98, abs=0.005)
    assert sum(r["cache_hits"] for r in result["runs"]["reinforce[lr=0.01]"]) == 67


def test_the_plot_adds_per_update_means_and_zooms_to_the_agents(tmp_path):
    import matplotlib.image

    def run(offset):
        return {
            "children": [
                {"accuracy": 0.6 + offset + 0.01 * k, "train_seconds": 0.0, "update": k // 2}
                for k in range(6)
            ]
        }

    runs = {"a": [run(0.0), run(0.002)], "b": [run(0.01), run(0.012)]}
    plot_comparison(runs, 0.2, tmp_path / "far.png", "t")  # the start far below the agents
    plot_comparison(runs, 0.62, tmp_path / "near.png", "t")
    far, near = (matplotlib.image.imread(tmp_path / f"{n}.png") for n in ("far", "near"))
    assert far.shape[1] > 1.5 * far.shape[0]  # two panels side by side
    assert not (far == near).all()  # the start line is drawn only where it falls in the axis


def test_on_the_surrogate_compare_prints_a_line_per_run_and_no_test_column(tmp_path, capsys):
    _on_surrogate(tmp_path, ["random"], seeds=2, nets=4, batch=2, recheck=2)
    printed = capsys.readouterr().err
    assert printed.count("random seed ") == 2 and "4 networks, best " in printed
    table = (tmp_path / "compare.md").read_text()
    assert "test acc of best-by-val" not in table and "test accuracy is its validation" in table
    # nothing is fine-tuned: no training columns, and the recheck is of fresh episodes
    assert "fine-tune" not in table and "recheck mean (fresh episodes)" in table
    assert "this evaluator trains no network" in table and "child training" not in table
    assert re.search(r"\| random \| [0-9.]+ s \|", table)
    result = json.loads((tmp_path / "compare.json").read_text())
    assert all(r["agent_cpu_seconds"] >= 0 for r in result["runs"]["random"])


def test_one_seed_says_there_is_no_test(tmp_path):
    _on_surrogate(tmp_path, ["random", "reinforce"], seeds=1, nets=4, batch=2)
    table = (tmp_path / "compare.md").read_text()
    assert "no test (n/a): it needs at least 2 seeds of each agent" in table
    assert "over the 0 tests" not in table


def test_a_report_of_a_finished_comparison_repeats_its_tables(tmp_path):
    """`--report` without `--recheck` reads the comparison's own: the same size fit (random
    search's search and recheck networks), Holm families and agent order as compare.md."""
    out = tmp_path / "cmp"
    _on_surrogate(out, ["reinforce", "random", "evolution"], seeds=2, nets=6, batch=2, recheck=2)
    table = report(str(out))
    compared = json.loads((out / "compare.json").read_text())
    reported = json.loads((out / "report.json").read_text())
    assert reported["recheck"] == 2 and list(reported["agents"]) == list(compared["agents"])
    assert reported["agents"] == compared["agents"] and reported["families"] == compared["families"]
    assert table.split("\n", 2)[2] == (out / "compare.md").read_text().rstrip("\n")
    report(str(out), recheck=0)  # asked for: the search alone
    assert json.loads((out / "report.json").read_text())["recheck"] == 0
    (out / "compare.json").unlink()  # a study still running: its plan is there from the start
    assert json.loads((out / "compare_plan.json").read_text())["recheck"] == 2
    report(str(out))
    assert json.loads((out / "report.json").read_text())["recheck"] == 2
    for bad in ({"recheck": "x", "agents": 5}, {"recheck": True, "agents": [1]}, [3]):
        (out / "compare_plan.json").write_text(json.dumps(bad))  # damaged: not trusted
        report(str(out))
        reported = json.loads((out / "report.json").read_text())
        assert reported["recheck"] == 0 and list(reported["agents"])[0] == "random"
