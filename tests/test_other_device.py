"""A run folder read on another kind of machine than its search ran on (GPU vs CPU).

A child's store key holds its device's numerics, and ``config.json``'s ``device="auto"``
resolves to the reading machine's device, so the readers take the key the run recorded
(``device_key``). The other machine is simulated by keying this CPU as a GPU.
"""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest

import eas_gym.env
from agents.compare import compare
from agents.runner import SearchArgs, run_search
from agents.show import describe_run
from eas_gym.scorer import ChildScorer

SYNTHETIC = {"schedule": "WD", "reward_mode": "sparse"}


def _on_a_gpu_machine(monkeypatch):
    """From here on, envs key their children as a GPU's, and train nothing."""
    monkeypatch.setattr(eas_gym.env, "device_key", lambda device_type: "cuda-fp32")

    def no_training(self, *args, **kwargs):
        raise AssertionError("a reader trained a network")

    monkeypatch.setattr(ChildScorer, "_train", no_training)


def _finished_run(out):
    """A 4-network random search on this CPU in `out`: its args and its config.json."""
    args = SearchArgs(env_id="EAS-Synthetic-v0", agent="random", nets=4, batch=2, out=str(out))
    args.env_kwargs, args.progress = SYNTHETIC, False
    run_search(args)
    return args, json.loads((out / "config.json").read_text())


def test_a_run_read_on_another_kind_of_machine_finds_its_rows(tmp_path, monkeypatch):
    out = tmp_path / "run"
    args, config = _finished_run(out)
    assert config["device_key"] == "cpu"
    (out / "best").rename(out / "best-before")
    _on_a_gpu_machine(monkeypatch)
    assert "lineage of the best network" in describe_run(str(out))
    with warnings.catch_warnings(record=True) as seen:  # read back: nothing trained
        warnings.simplefilter("always")
        run_search(args)
    assert not [w for w in seen if "holds no weights" in str(w.message)]
    assert (out / "best" / "weights.pt").exists()  # the weights were found under "cpu"
    assert json.loads((out / "config.json").read_text())["device_key"] == "cpu"  # kept


def test_a_comparison_read_back_on_another_machine_keeps_its_start_and_test_column(
    tmp_path, monkeypatch
):
    kwargs = {"agents": ["random"], "seeds": 1, "nets": 4, "batch": 2, "progress": False}
    compare("EAS-Synthetic-v0", out=str(tmp_path), env_kwargs=SYNTHETIC, **kwargs)
    before = json.loads((tmp_path / "compare.json").read_text())
    (tmp_path / "test_accuracy.json").unlink()  # evaluated again from the stored weights
    _on_a_gpu_machine(monkeypatch)
    compare("EAS-Synthetic-v0", out=str(tmp_path), env_kwargs=SYNTHETIC, **kwargs)
    after = json.loads((tmp_path / "compare.json").read_text())
    assert after["start_accuracy"] == before["start_accuracy"]
    tests = [r["test_of_best"] for r in after["runs"]["random"]]
    assert tests == [r["test_of_best"] for r in before["runs"]["random"]] and None not in tests


def test_an_env_reading_another_devices_rows_trains_nothing(tmp_path):
    env = gym.make("EAS-Synthetic-v0", store=str(tmp_path / "s.sqlite"), **SYNTHETIC)
    eas = env.unwrapped
    with pytest.raises(ValueError, match="`key` in"):
        eas.read_store_as("gpu")
    eas.read_store_as("cuda-fp32")
    assert eas.eval_config.device_type == "cuda-fp32" and eas.device.type == "cpu"
    with pytest.raises(ValueError, match="holds no start network .* cuda-fp32 device"):
        env.reset(seed=0)  # not trained here under a GPU's key
    other = gym.make("EAS-Synthetic-v0", store=str(tmp_path / "s.sqlite"), **SYNTHETIC)
    other.reset(seed=0)  # the CPU's start network, under the CPU's key
    with pytest.raises(RuntimeError, match="before the first reset"):
        other.unwrapped.read_store_as("cuda-fp32")
    reader = gym.make("EAS-Synthetic-v0", store=str(tmp_path / "s.sqlite"), **SYNTHETIC)
    reader.unwrapped.read_store_as("cpu")  # this machine's own key, read only
    _, info = reader.reset(seed=0)
    with pytest.raises(RuntimeError, match="scores no child"):
        for _ in range(2):  # a sparse episode of two steps scores its last child
            action = np.array([int(np.flatnonzero(m)[-1]) for m in info["action_mask"]])
            _, _, _, _, info = reader.step(action)


def test_config_records_the_key_its_envs_train_under_not_this_process_guess(tmp_path, monkeypatch):
    # a head with a GPU whose envs train on the CPU (Ray actors without GPUs, say): the rows
    # are the envs' own, and config.json must say where a reader finds them
    import agents.runner

    monkeypatch.setattr(agents.runner, "_device_key", lambda env_id, env_kwargs: "cuda-fp32")
    out = tmp_path / "run"
    args = SearchArgs(env_id="EAS-Synthetic-v0", agent="random", nets=2, batch=2, out=str(out))
    args.env_kwargs, args.progress = SYNTHETIC, False
    run_search(args)
    assert json.loads((out / "config.json").read_text())["device_key"] == "cpu"
    _on_a_gpu_machine(monkeypatch)  # a reader on a GPU machine still finds the CPU's rows
    assert "lineage of the best network" in describe_run(str(out))


def test_envs_of_different_device_keys_leave_the_record_with_a_warning(tmp_path):
    from agents.run_folder import record_device_key

    (tmp_path / "config.json").write_text(json.dumps({"device_key": "cpu"}))
    with pytest.warns(RuntimeWarning, match=r"different device keys \['cpu', 'cuda-fp32'\]"):
        record_device_key(tmp_path, ["cpu", "cuda-fp32"])
    record_device_key(tmp_path, ["cuda-fp32", "cuda-fp32"])
    assert json.loads((tmp_path / "config.json").read_text())["device_key"] == "cuda-fp32"
    (tmp_path / "children.jsonl").write_text('{"net": "C8-3 GAP FC10"}\n')  # a search: kept
    record_device_key(tmp_path, ["cpu"])
    assert json.loads((tmp_path / "config.json").read_text())["device_key"] == "cuda-fp32"


def test_a_run_from_before_the_device_record_is_read_back_without_one(tmp_path, monkeypatch):
    """Reading such a run on a GPU machine must not label its CPU-trained children as a GPU's."""
    out = tmp_path / "run"
    args, config = _finished_run(out)
    del config["device_key"]  # as the studies committed before 2026-12-05 hold it
    (out / "config.json").write_text(json.dumps(config))
    _on_a_gpu_machine(monkeypatch)
    import agents.runner

    monkeypatch.setattr(agents.runner, "_device_key", lambda env_id, env_kwargs: "cuda-fp32")
    run_search(args)  # read back: nothing trained
    assert "device_key" not in json.loads((out / "config.json").read_text())
