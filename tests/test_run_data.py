"""A run folder remembers where its search read the data; ``eas-gym train RUN`` reads it there.

Fake CIFAR-10 files in torchvision's layout (``tests/test_data.py``); nothing is downloaded.
"""

import json
import shutil

import pytest
from test_data import write_fake_cifar10

from agents.cli import main
from agents.data_location import data_location
from agents.run_folder import check_config

TINY = ["--env", "EAS-CIFAR10-CPU-v2", "--set", "train_size=100", "--set", "val_size=50"]
TINY += ["--set", "epochs=0.5", "--set", "start_epochs=0.5", "--set", "probe_size=4"]
TINY += ["--no-async"]  # in this process: worker processes would not see the patched md5 check


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    """Fake CIFAR-10 in ``tmp/data``, found through ``$EAS_DATA_DIR``; an empty default cache."""
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    write_fake_cifar10(tmp_path / "data")
    monkeypatch.setenv("EAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    return tmp_path


def _search(run, capsys) -> dict:
    argv = ["search", *TINY, "--nets", "2", "--batch", "2", "--out", str(run), "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return json.loads((run / "config.json").read_text())


def test_train_finds_the_data_the_search_found_through_eas_data_dir(data_env, monkeypatch, capsys):
    run = data_env / "run"
    config = _search(run, capsys)
    assert config["data_location"] == str((data_env / "data").resolve())
    assert "data_dir" not in config["env_kwargs"]
    monkeypatch.delenv("EAS_DATA_DIR")
    assert main(["train", str(run), "--epochs", "0.5", "--no-progress"]) == 0, capsys.readouterr()
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["dataset"] == "cifar10" and record["train_images"] == 200


def test_moved_data_is_one_line_naming_the_recorded_folder(data_env, monkeypatch, capsys):
    run = data_env / "run"
    _search(run, capsys)
    monkeypatch.delenv("EAS_DATA_DIR")
    shutil.move(data_env / "data", data_env / "moved")
    assert main(["train", str(run), "--epochs", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str((data_env / "data").resolve()) in err and str(run / "config.json") in err
    assert "--data-dir" in err and "EAS_DATA_DIR" in err
    # pointing elsewhere works, either way
    argv = ["train", str(run), "--epochs", "0.5", "--no-progress"]
    assert main([*argv, "--data-dir", str(data_env / "moved")]) == 0
    monkeypatch.setenv("EAS_DATA_DIR", str(data_env / "moved"))
    assert main(argv) == 0


def test_the_location_may_change_and_older_folders_resume(data_env, monkeypatch, capsys):
    run = data_env / "run"
    config = _search(run, capsys)
    del config["data_location"]  # a folder written before the data location was recorded
    (run / "config.json").write_text(json.dumps(config))
    shutil.move(data_env / "data", data_env / "moved")
    monkeypatch.setenv("EAS_DATA_DIR", str(data_env / "moved"))
    config = _search(run, capsys)  # a resume: same settings, the data elsewhere
    assert config["data_location"] == str((data_env / "moved").resolve())


def test_only_envs_that_read_files_record_a_location(tmp_path, monkeypatch):
    monkeypatch.setenv("EAS_DATA_DIR", str(tmp_path))
    assert data_location("EAS-CIFAR10-v0", {}) == str(tmp_path.resolve())
    monkeypatch.chdir(tmp_path)  # a relative --data-dir is recorded absolute
    assert data_location("EAS-CIFAR10-v0", {"data_dir": "d"}) == str((tmp_path / "d").resolve())
    for env_id in ("EAS-Surrogate-v0", "EAS-Synthetic-v0", "EAS-Nope-v0"):
        assert data_location(env_id, {}) is None
    assert data_location("EAS-CIFAR10-v0", {"evaluator": "surrogate"}) is None
    check_config(tmp_path / "run", {"env_id": "EAS-Surrogate-v0", "env_kwargs": {}})
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data_location"] is None
