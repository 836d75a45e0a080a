"""The comparison protocol: learning agents beat random with p < 0.05, honest rechecks, resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import eas_gym.scorer
from agents.compare import compare, report
from agents.compare_table import _pct
from agents.run_folder import load_checkpoint
from agents.runner import SearchArgs, run_recheck, run_search
from agents.stats import seeds_for_power
from eas_gym.cli import main
from eas_gym.scorer import ChildScorer
from eas_gym.store import EvalStore

FAST_SURROGATE = {"probe_size": 4}


def test_reinforce_and_evolution_beat_random_search_on_the_surrogate(tmp_path):
    agents = ["random", "reinforce[lr=0.01]", "evolution[population_size=10,tournament_size=3]"]
    compare(
        "EAS-Surrogate-v0",
        agents=agents,
        seeds=5,
        nets=30,
        batch=5,
        out=str(tmp_path / "cmp"),
        env_kwargs=FAST_SURROGATE,
        progress=False,
    )
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
        "eas_gym.cli",
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
    resumed = json.loads((out / "compare.json").read_text())
    uninterrupted = json.loads((reference / "compare.json").read_text())
    assert resumed == uninterrupted
    assert (out / "compare.md").read_text() == (reference / "compare.md").read_text()


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
    kwargs = {"seeds": 2, "nets": 6, "batch": 3, "env_kwargs": FAST_SURROGATE}
    compare("EAS-Surrogate-v0", agents=agents, out=str(out), progress=False, **kwargs)
    full = json.loads((out / "compare.json").read_text())
    children = out / "reinforce-lr=0.01" / "seed-1" / "children.jsonl"
    children.write_text("".join(children.read_text().splitlines(keepends=True)[:4]))  # unfinished

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
    assert sizing["seeds_for_gap"]["1"] == need and "Sizing the study" in printed
    with pytest.raises(ValueError, match="no finished run"):
        report(str(tmp_path / "empty"))


@pytest.mark.parametrize("kept", ["half-search", "search-without-recheck"])
def test_study_data_kept_without_checkpoints_runs_again_from_its_seed(tmp_path, kept):
    """A study folder from another machine: records only, no .pt files, no store."""
    kwargs = {"seeds": 1, "nets": 6, "batch": 3, "recheck": 3, "env_kwargs": FAST_SURROGATE}
    reference = tmp_path / "reference"
    compare("EAS-Surrogate-v0", agents=["reinforce"], out=str(reference), progress=False, **kwargs)
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
        compare("EAS-Surrogate-v0", agents=["reinforce"], out=str(out), progress=False, **kwargs)
    assert (run / "children.partial.jsonl").exists()  # the earlier records are kept
    again, first = (json.loads((d / "compare.json").read_text()) for d in (out, reference))
    assert again["agents"] == first["agents"]


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
    kwargs = {"seeds": 2, "nets": 4, "batch": 2, "env_kwargs": FAST_SURROGATE}
    compare(
        "EAS-Surrogate-v0", agents=["random", "reinforce"], out=str(out), progress=False, **kwargs
    )
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
