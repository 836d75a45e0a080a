"""The eas-gym command end to end on the surrogate and synthetic envs, including kill/resume."""

import json
import os
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents.cli import main
from agents.runner import read_children
from eas_gym import load_model
from eas_gym.data import load_dataset
from eas_gym.store import EvalStore
from eas_gym.train import evaluate

SYNTHETIC = ["--env", "EAS-Synthetic-v0", "--set", "schedule=WD", "--set", "reward_mode=sparse"]


def test_search_show_and_load(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--env", "EAS-Surrogate-v0", "--nets", "6", "--batch", "3"]
    assert main([*args, "--out", str(out), "--set", "probe_size=4", "--no-progress"]) == 0
    assert "6 networks; best" in capsys.readouterr().out
    children = read_children(out)
    assert len(children) == 6 and {c["update"] for c in children} == {0, 1}
    for name in ("config.json", "checkpoint.pt", "search.png", "best/arch.json"):
        assert (out / name).exists(), name
    # The surrogate scores architectures: no weights anywhere, no store rows.
    assert not (out / "best/weights.pt").exists() and not (out / "weights").exists()
    net = load_model(out / "best", untrained=True)
    best = max(children, key=lambda c: c["accuracy"])
    assert str(net.arch) == best["net"] and net(torch.rand(2, 3, 16, 16)).shape == (2, 10)
    assert main(["show", str(out)]) == 0
    report = capsys.readouterr().out
    assert "6 networks sampled" in report and f"best {best['accuracy']:.4f}" in report


def test_a_trained_search_keeps_the_best_weights_and_its_lineage(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["search", "--env", "EAS-Synthetic-v0", "--nets", "2", "--batch", "2"]
    sets = ["--set", "schedule=WD", "--set", "epochs=0.2", "--set", "reward_mode=sparse"]
    assert main([*args, "--out", str(out), *sets, "--no-progress"]) == 0
    best = max(read_children(out), key=lambda c: c["accuracy"])
    model = load_model(out / "best")
    assert str(model.arch) == best["net"]  # with its trained weights
    # its record says what inputs it expects: they give back its validation accuracy exactly
    inputs = json.loads((out / "best" / "arch.json").read_text())["inputs"]
    data = load_dataset(**inputs)
    accuracy, _ = evaluate(model, data.val, mean=data.mean, std=data.std)
    assert accuracy == best["accuracy"]
    assert main(["show", str(out)]) == 0
    assert "lineage of the best network" in capsys.readouterr().out


def test_extending_a_finished_search_only_adds(tmp_path):
    out = str(tmp_path / "run")
    base = ["search", "--env", "EAS-Surrogate-v0", "--batch", "2", "--out", out, "--no-progress"]
    assert main([*base, "--nets", "2"]) == 0
    first = read_children(out)
    assert main([*base, "--nets", "4"]) == 0
    assert read_children(out)[:2] == first and len(read_children(out)) == 4
    with pytest.warns(UserWarning, match="already holds 4 networks, more than the 2 asked for"):
        assert main([*base, "--nets", "2"]) == 0  # a search only grows
    assert len(read_children(out)) == 4
    assert main(["show", out, "--top", "-1"]) == 2
    assert main(["show", str(tmp_path)]) == 2  # a folder holding a run, not a run


def test_compare_writes_table_and_plot(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--env", "EAS-Surrogate-v0", "--agents", "reinforce,random"]
    assert (
        main(
            [
                *args,
                "--seeds",
                "2",
                "--nets",
                "4",
                "--batch",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| reinforce |" in table and "| random |" in table
    result = json.loads((out / "compare.json").read_text())
    assert len(result["runs"]["random"]) == 2 and (out / "compare.png").exists()
    assert main(["show", str(out)]) == 2  # a comparison, not a run: says what reads it
    assert f"it holds a comparison: eas-gym compare --report --out {out}" in capsys.readouterr().err


def test_train_a_found_network(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "search",
                *SYNTHETIC,
                "--agent",
                "random",
                "--nets",
                "2",
                "--batch",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["train", str(out), "--epochs", "0.5", "--out", str(tmp_path / "final")]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["inherited_weights"] and 0.0 <= record["test_accuracy"] <= 1.0
    assert len(record["normalize"]["mean"]) == len(record["normalize"]["std"]) == 3
    assert record["dataset"] == "synthetic" and record["image_size"] == 16
    assert (tmp_path / "final" / "weights.pt").exists()
    # its best/ folder as the target: the run's dataset still (it used to read CIFAR-10)
    assert main(["train", str(out / "best"), "--epochs", "0.5", "--out", str(tmp_path / "f2")]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["dataset"] == "synthetic" and record["image_size"] == 16
    assert main(["train", str(out), "--device", "gpu"]) == 2  # one line, before any data
    assert "Expected `device` 'auto', 'cpu', 'cuda' or 'cuda:N'" in capsys.readouterr().err
    for bad, said in (
        (["--epochs", "0"], "`epochs` > 0"),
        (["--image-size", "0"], "`image_size` >= 1"),
        (["--out", str(out / "best")], "is the network's own folder"),
    ):
        assert main(["train", str(out / "best"), *bad]) == 2
        assert said in capsys.readouterr().err


def test_search_and_train_on_your_own_npz(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (80, 16, 16, 3), dtype=np.uint8), np.arange(80) % 4
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
    own = ["--set", f"dataset={tmp_path / 'mine.npz'}", "--set", "train_size=40"]
    out = tmp_path / "run"
    argv = ["search", *SYNTHETIC, *own, "--set", "val_size=20", "--agent", "random"]
    assert main([*argv, "--nets", "2", "--batch", "2", "--out", str(out), "--no-progress"]) == 0
    model = load_model(out / "best")
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 4)  # its 4 classes
    inputs = json.loads((out / "best" / "arch.json").read_text())["inputs"]
    data = load_dataset(**inputs)  # your own file, by its path: its validation accuracy again
    best = max(read_children(out), key=lambda c: c["accuracy"])
    assert evaluate(model, data.val, mean=data.mean, std=data.std)[0] == best["accuracy"]
    capsys.readouterr()
    assert main(["train", str(out), "--epochs", "0.5", "--out", str(tmp_path / "final")]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["dataset"] == str(tmp_path / "mine.npz")
    assert record["train_images"] == 80  # all of them, validation images included
    assert 0.0 <= record["test_accuracy"] <= 1.0
    import shutil

    shutil.copytree(out / "best", tmp_path / "copied")  # a best/ on its own: its inputs say
    assert main(["train", str(tmp_path / "copied"), "--epochs", "0.5"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["dataset"] == str(tmp_path / "mine.npz") and record["image_size"] == 16
    net = ["train", "C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8", "--epochs", "0.5"]  # no run
    own_file = ["--dataset", str(tmp_path / "mine.npz"), "--out", str(tmp_path / "net")]
    assert main([*net, *own_file]) == 0  # 80 images: the paper's 5,000-image split cannot fit
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["train_images"] == 80 and 0.0 <= record["test_accuracy"] <= 1.0
    (tmp_path / "mine.npz").rename(tmp_path / "moved.npz")  # RUN/best reads the run's records
    assert main(["train", str(out / "best"), "--epochs", "0.5"]) == 2
    assert "mine.npz" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "--env", "EAS-Nope-v0"], "unknown env 'EAS-Nope-v0'"),
        (["search", "--env", "EAS-Surrogate-v0", "--agent", "nope"], "unknown agent 'nope'"),
        (["search", "--env", "EAS-Surrogate-v0", "--agent", "os:path"], "does not implement"),
        (["search", "--env", "EAS-Surrogate-v0", "--agent", "nomodule:X"], "cannot load agent"),
        (["search", "--env", "EAS-Surrogate-v0", "--set", "oops"], "key=value"),
        (["show", "/nonexistent/run"], "not a run folder"),
        (["train", "C4-3 XP GAP", "--dataset", "synthetic"], "bad token 'XP'"),
        (["search", *SYNTHETIC, "--set", "dataset=no/such.npz"], "'no/such.npz': does not exist"),
    ],
)
def test_user_errors_are_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, *(["--out", str(tmp_path / "r")] if argv[0] == "search" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def _without_working_dir_on_path(monkeypatch, folder):
    """Run as the installed script does: `folder` is the working dir and not on sys.path."""
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(folder))])


def test_an_agent_module_in_the_working_dir_loads(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_widen_agent.py").write_text(
        "from agents.random_search import RandomSearch\n\n\nclass Mine(RandomSearch):\n    pass\n"
    )
    _without_working_dir_on_path(monkeypatch, tmp_path)
    monkeypatch.delitem(sys.modules, "my_widen_agent", raising=False)
    try:
        argv = ["search", "--env", "EAS-Surrogate-v0", "--agent", "my_widen_agent:Mine"]
        assert main([*argv, "--nets", "2", "--batch", "2", "--out", "r", "--no-progress"]) == 0
    finally:
        sys.modules.pop("my_widen_agent", None)
    assert "2 networks; best" in capsys.readouterr().out


def test_an_agent_module_whose_own_import_fails_names_what_is_missing(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "broken_agent.py").write_text("import no_such_dependency_xyz\n")
    _without_working_dir_on_path(monkeypatch, tmp_path)
    argv = ["search", "--env", "EAS-Surrogate-v0", "--agent", "broken_agent:X", "--out", "r"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "No module named 'no_such_dependency_xyz'" in err and "Traceback" not in err
    assert str(tmp_path) not in sys.path  # the failed attempt leaves sys.path as it was


def test_an_sb3_agent_without_sb3_installed_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "agents.sb3", None)  # import of it raises ImportError
    argv = ["search", "--env", "EAS-Surrogate-v0", "--agent", "ppo", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert 'pip install "eas-gym[sb3]"' in err and err.count("\n") == 1


def test_a_weightless_search_points_at_the_architecture_it_saved(tmp_path, capsys):
    import eas_gym

    out = str(tmp_path / "run")
    argv = ["search", "--env", "EAS-Surrogate-v0", "--nets", "2", "--batch", "2", "--out", out]
    assert main([*argv, "--no-progress"]) == 0
    hint = capsys.readouterr().out.splitlines()[-1]
    assert f"eas_gym.load_model('{out}/best', untrained=True)" in hint, hint
    assert f"eas-gym train {out}" in hint
    with pytest.raises(ValueError, match="without weights"):
        eas_gym.load_model(f"{out}/best")  # what the hint used to say
    assert eas_gym.load_model(f"{out}/best", untrained=True) is not None


def test_run_folder_from_other_settings_is_refused(tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["search", "--env", "EAS-Surrogate-v0", "--nets", "2", "--batch", "2", "--out", out]
    assert main([*base, "--no-progress"]) == 0
    assert main([*base, "--seed", "1", "--no-progress"]) == 2
    assert "other settings (seed: 0 there, 1 now)" in capsys.readouterr().err


def _search_cmd(out):
    return [
        sys.executable,
        "-m",
        "agents.cli",
        "search",
        *SYNTHETIC,
        "--agent",
        "reinforce",
        "--nets",
        "10",
        "--batch",
        "2",
        "--seed",
        "4",
        "--out",
        str(out),
        "--no-progress",
    ]


def test_killed_search_resumes_without_losing_or_retraining(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run(_search_cmd(reference), check=True, env=env, capture_output=True)

    run = tmp_path / "run"
    proc = subprocess.Popen(
        _search_cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    # Kill while the second update is half done: one of its children is in the store already.
    rows = len(EvalStore(run / "store.sqlite").all())
    while len(EvalStore(run / "store.sqlite").all()) == rows and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = len(read_children(run))
    assert killed_after < 10, "the search finished before it could be killed"
    store = EvalStore(run / "store.sqlite")
    evaluated_before = {e.net for e in store.all()}
    store.close()

    subprocess.run(_search_cmd(run), check=True, env=env, capture_output=True)
    resumed, uninterrupted = read_children(run), read_children(reference)
    key = ("net", "accuracy", "params", "return")
    assert [tuple(c[k] for k in key) for c in resumed] == [
        tuple(c[k] for k in key) for c in uninterrupted
    ]
    redone = [c for c in resumed[killed_after:] if c["net"] in evaluated_before]
    assert redone and all(c["cache_hit"] for c in redone)  # found in the store, not retrained


def test_list_prints_every_id(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "EAS-CIFAR10-CPU-v2" in out and "EAS-Surrogate-v0" in out
    assert all(line.count(";") >= 2 for line in out.strip().splitlines())
    lines = {line.split()[0]: line for line in out.strip().splitlines()}
    assert "cifar10 45k/5k 32px" in lines["EAS-CIFAR10-v0"]
    assert "svhn 68k/5k 32px" in lines["EAS-SVHN-v0"]  # 73,257 training images less 5k


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "nosuchkey=1"], "not an argument of EAS-Surrogate-v0; valid keys: augment"),
        (["--set", "epochs=abc"], "--set epochs='abc': expected a number"),
        (["--set", "noise=maybe"], "--set noise='maybe': expected true or false"),
        (["--env", "EAS-CIFAR10-CPU-v1", "--data-dir", "/nonexistent"], "CIFAR-10 not found"),
    ],
)
def test_bad_settings_fail_before_the_run_folder_exists(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["search", "--env", "EAS-Surrogate-v0", "--out", str(out), "--no-progress"]
    assert main([*base, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_train_on_a_missing_folder_says_so(capsys):
    assert main(["train", "/nonexistent/run", "--epochs", "1"]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "(default: 300)" in capsys.readouterr().out


def test_rounded_budget_is_announced(tmp_path, capsys):
    argv = ["search", "--env", "EAS-Surrogate-v0", "--nets", "3", "--batch", "2"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert "--nets 3 rounded up to 4" in capsys.readouterr().err


def test_reset_refuses_unknown_options():
    import gymnasium as gym

    env = gym.make("EAS-Surrogate-v0", store=":memory:")
    with pytest.raises(ValueError, match=r"unknown `options` \['nett'\]"):
        env.reset(seed=0, options={"nett": "C4-3 GAP"})


def test_a_wheel_installs_and_runs(tmp_path):
    """A non-editable install into a fresh venv, offline, with this environment's packages.

    The venv sees this interpreter's site-packages through a ``.pth`` file, not through
    ``--system-site-packages``, which would show the *base* interpreter's when the tests
    themselves run in a venv (where torch is not).
    """
    venv = tmp_path / "venv"
    # Without its own pip and setuptools (3.11's venv seeds setuptools 65, too old to build):
    # ours serve through the .pth below.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # PYTHONPATH's folders too (where a machine keeps packages outside site-packages), but not
    # the checkout: the subprocesses run without PYTHONPATH, so only the wheel can be found
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    extra = [p for p in extra if os.path.realpath(p) != os.path.realpath(repo)]
    ours = [p for p in (*site.getsitepackages(), site.getusersitepackages()) if os.path.isdir(p)]
    Path(purelib, "_tested_env.pth").write_text("\n".join([*ours, *extra]) + "\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    flags = ["--no-deps", "--no-index", "--no-build-isolation"]  # offline: setuptools is ours
    built = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *flags, repo],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    done = subprocess.run(
        [str(venv / "bin" / "eas-gym"), "list"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
    )
    assert done.returncode == 0 and "EAS-CIFAR10-v0" in done.stdout, done.stderr
    where = subprocess.run(
        [str(python), "-c", "import eas_gym, agents.runner; print(eas_gym.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean,
    )
    assert where.returncode == 0 and purelib in where.stdout, where.stdout + where.stderr


def test_search_options_are_search_args_fields(capsys, monkeypatch):
    import dataclasses

    from agents.runner import SearchArgs

    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = capsys.readouterr().out
    assert "--seed SEED Seeds the agent and every episode. (default: 0)" in " ".join(out.split())
    flags = {"env_id": "--env", "asynchronous": "--async", "agent_options": "--agent-set"}
    flags |= {"env_kwargs": "--set", "progress": "--no-progress"}
    for f in dataclasses.fields(SearchArgs):
        assert flags.get(f.name, "--" + f.name.replace("_", "-")) in out, f.name


def test_a_run_on_your_own_data_resumes_by_contents_not_path(tmp_path, monkeypatch, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, 16, 16, 3), dtype=np.uint8), np.arange(60) % 3
    (tmp_path / "a").mkdir()
    np.savez(tmp_path / "a" / "mine.npz", x_train=x, y_train=y)
    monkeypatch.chdir(tmp_path / "a")
    base = ["search", *SYNTHETIC, "--set", "train_size=30", "--set", "val_size=15"]
    base += ["--agent", "random", "--batch", "2", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*base, "--set", "dataset=mine.npz", "--nets", "2"]) == 0  # relative
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["env_kwargs"]["dataset"] == str(tmp_path / "a" / "mine.npz")  # absolute
    # the same contents elsewhere resume the run; other contents under the same path do not
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mine.npz").write_bytes((tmp_path / "a" / "mine.npz").read_bytes())
    assert main([*base, "--set", f"dataset={tmp_path / 'b' / 'mine.npz'}", "--nets", "4"]) == 0
    assert len(read_children(tmp_path / "run")) == 4
    np.savez(tmp_path / "a" / "mine.npz", x_train=x[::-1].copy(), y_train=y)
    capsys.readouterr()
    assert main([*base, "--set", "dataset=mine.npz", "--nets", "6"]) == 2
    assert "dataset_identity" in capsys.readouterr().err


def test_version_and_a_reader_that_leaves_early(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("eas-gym ")
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell
    listing = subprocess.Popen(  # `eas-gym list | true`: the reader is gone before the output
        [sys.executable, "-m", "agents.cli", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=buffered,
    )
    listing.stdout.close()
    assert listing.wait(timeout=120) == 0
    assert "Traceback" not in listing.stderr.read()


def test_weights_that_do_not_save_leave_the_search_and_an_architecture(tmp_path, monkeypatch):
    import agents.summary as summary

    real = summary.save_model

    def refuse_weights(path, arch, state, meta=None):
        if state is not None:
            raise ValueError("`state` does not fit (as a damaged store would give)")
        return real(path, arch, state, meta)

    monkeypatch.setattr(summary, "save_model", refuse_weights)
    out = tmp_path / "run"
    args = ["search", *SYNTHETIC, "--nets", "2", "--batch", "2"]
    with pytest.warns(UserWarning, match="best/ gets the architecture only"):
        assert main([*args, "--out", str(out), "--no-progress"]) == 0
    assert (out / "best" / "arch.json").exists() and not (out / "best" / "weights.pt").exists()
