"""A run kept without its checkpoint is extended from its records, not trained again."""

import json
import shutil

import pytest

from agents.compare import compare
from agents.replay import Replay
from eas_gym.scorer import ChildScorer

KWARGS = {
    "seeds": 1,
    "nets": 6,
    "batch": 3,
    "progress": False,
    "test": False,
    "env_kwargs": {"schedule": "WD", "reward_mode": "sparse"},
}


def _clone_half(reference, clone, agent):
    """A fresh clone's view of `reference` with `agent`'s run cut to its first update."""
    shutil.copytree(
        reference, clone, ignore=shutil.ignore_patterns("store.sqlite*", "weights", "*.pt")
    )
    pinned = json.loads((reference / "start" / "evaluation.json").read_text())
    shutil.copy(reference / "start" / pinned["weights"], clone / "start")
    run = clone / agent / "seed-0"
    lines = (run / "children.jsonl").read_text().splitlines(keepends=True)
    (run / "children.jsonl").write_text("".join(lines[:3]))
    return run


def _count_trainings(monkeypatch):
    trained = []
    real_train = ChildScorer._train

    def counting(self, arch, *args, **kw):
        trained.append(arch.to_string())
        return real_train(self, arch, *args, **kw)

    monkeypatch.setattr(ChildScorer, "_train", counting)
    return trained


@pytest.mark.parametrize("agent", ["random", "reinforce[lr=0.01]"])
def test_an_unfinished_run_is_extended_training_only_its_new_networks(tmp_path, monkeypatch, agent):
    reference = tmp_path / "reference"
    compare("EAS-Synthetic-v0", agents=[agent], out=str(reference), **KWARGS)
    folder = agent.replace("[", "-").replace("]", "")
    run = _clone_half(reference, tmp_path / "clone", folder)
    trained = _count_trainings(monkeypatch)
    with pytest.warns(UserWarning, match=r"of its 3 earlier .* exactly"):
        compare("EAS-Synthetic-v0", agents=[agent], out=str(tmp_path / "clone"), **KWARGS)
    assert len(trained) == 3  # the second update's networks only
    expected = _read(reference / folder / "seed-0" / "children.jsonl")
    got = _read(run / "children.jsonl")
    assert got[:3] == expected[:3]  # provenance too (seconds, no cache hit): as never stopped
    clocks = ("train_seconds", "cpu_seconds")
    assert [_without(r, clocks) for r in got[3:]] == [_without(r, clocks) for r in expected[3:]]
    assert [r["cache_hit"] for r in got] == [False] * 6


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without(record, keys):
    return {k: v for k, v in record.items() if k not in keys}


def test_records_grown_from_another_start_network_are_trained_again(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    compare("EAS-Synthetic-v0", agents=["random"], out=str(reference), **KWARGS)
    run = _clone_half(reference, tmp_path / "clone", "random")
    records = [json.loads(line) for line in (run / "children.jsonl").read_text().splitlines()]
    for record in records:
        record["start_digest"] = "0" * 16
    (run / "children.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    trained = _count_trainings(monkeypatch)
    with pytest.warns(UserWarning, match="grew from another start network"):
        compare("EAS-Synthetic-v0", agents=["random"], out=str(tmp_path / "clone"), **KWARGS)
    assert len(trained) == 6


def _record(net, accuracy, **provenance):
    return {
        "net": net,
        "lineage": net.lower(),
        "accuracy": accuracy,
        "actions": [[0]],
        **provenance,
    }


def test_restore_gives_reproduced_records_their_provenance_until_the_first_difference():
    earlier = [
        _record("A", 0.5, cache_hit=False, cpu_seconds=9.0),
        _record("B", 0.6, cache_hit=False, cpu_seconds=8.0),
        _record("C", 0.7, cache_hit=False, cpu_seconds=7.0),
    ]
    replay = Replay(earlier, source=None)  # type: ignore[arg-type]
    rerun = [
        _record("A", 0.5, cache_hit=True, cpu_seconds=0.0),
        _record("B", 0.61, cache_hit=False, cpu_seconds=5.0),  # trained again: differs
        _record("C", 0.7, cache_hit=True, cpu_seconds=0.0),  # after a difference: left as is
    ]
    restored = replay.restore(rerun, 0)
    assert restored[0] == earlier[0]
    assert restored[1:] == rerun[1:]
    assert (replay.replayed, replay.diverged_at) == (1, 1)
    assert replay.restore([_record("D", 0.8, cache_hit=False)], 3)[0]["net"] == "D"


def test_a_clone_without_weights_gets_the_best_networks_test_accuracy_by_training_again(
    tmp_path, monkeypatch
):
    reference = tmp_path / "reference"
    kwargs = {**KWARGS, "test": True}
    compare("EAS-Synthetic-v0", agents=["random"], out=str(reference), **kwargs)
    expected = json.loads((reference / "test_accuracy.json").read_text())
    assert list(expected.values()) and None not in expected.values()
    clone = tmp_path / "clone"
    _clone_half(reference, clone, "random")
    (clone / "test_accuracy.json").unlink()
    (clone / "random" / "seed-0" / "children.jsonl").write_bytes(
        (reference / "random" / "seed-0" / "children.jsonl").read_bytes()
    )  # finished, kept without weights
    trained = _count_trainings(monkeypatch)
    compare("EAS-Synthetic-v0", agents=["random"], out=str(clone), **kwargs)
    assert json.loads((clone / "test_accuracy.json").read_text()) == expected
    assert len(trained) == 1  # the best network alone, trained again from its lineage


def test_a_best_network_that_trains_again_to_another_accuracy_gets_no_test_accuracy(tmp_path):
    reference = tmp_path / "reference"
    compare("EAS-Synthetic-v0", agents=["random"], out=str(reference), **KWARGS)
    run = _clone_half(reference, tmp_path / "clone", "random")
    records = _read(reference / "random" / "seed-0" / "children.jsonl")
    best = max(records, key=lambda r: r["accuracy"])
    best["accuracy"] += 1e-6  # as if its fine-tune had run on another CPU
    (run / "children.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.warns(UserWarning, match="another start network, CPU or thread count; its test"):
        compare(
            "EAS-Synthetic-v0",
            agents=["random"],
            out=str(tmp_path / "clone"),
            test=True,
            **{k: v for k, v in KWARGS.items() if k != "test"},
        )
    assert list(json.loads((tmp_path / "clone" / "test_accuracy.json").read_text()).values()) == [
        None
    ]


def test_on_a_gpu_the_warning_says_a_retrain_cannot_repeat_its_record():
    """Its fine-tunes are not bit-reproducible: "another CPU" would send the user astray."""
    import torch

    from agents.best_test import why_not_repeated

    assert "a GPU does not repeat a fine-tune" in why_not_repeated(torch.device("cuda", 1))
    assert "keep_weights" in why_not_repeated(torch.device("cuda"))
    assert why_not_repeated(torch.device("cpu")).startswith("another start network")
