"""EAS-Bench: features, the packaged model file, queries, sampling and the fit script's format."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from eas_gym.arch import SMALL_SPACE, SMALL_START, Arch
from eas_gym.bench import (
    DEFAULT_MODEL_PATH,
    MODEL_FORMAT,
    BenchModel,
    arch_features,
    default_model,
    feature_names,
    features_matrix,
    trees_from_lightgbm,
)
from eas_gym.bench_features import IMAGE_SIZE, NUM_SLOTS

REPO = Path(__file__).resolve().parents[1]
NETS = [
    "C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8",
    "C12-3 C12-1 MP C20-3 C20-1 C20-3 MP C8-3 C8-1 MP C20-3 C20-3 GAP FC24",
    "C16-3 C16-3 C16-5 MP C12-3 MP C12-3 MP C16-3 GAP FC16 FC16 FC16 FC16",
    "C40-5 C40-5 C40-5 C40-5 MP C40-5 C40-5 C40-5 C40-5 MP C4-1 MP C4-1 GAP",
]


def random_net(rng: np.random.Generator) -> str:
    """A random network of the bench's space: 4 conv blocks of 1-4 convs, 0-4 FC layers."""
    while True:
        blocks = []
        for _ in range(4):
            convs = [f"C{rng.integers(1, 11) * 4}-{rng.choice([1, 3, 5])}" for _ in range(4)]
            blocks.append(" ".join(convs[: rng.integers(1, 5)]))
        fcs = [f"FC{rng.integers(1, 11) * 8}" for _ in range(rng.integers(0, 5))]
        net = " ".join([" MP ".join(blocks), "GAP", *fcs])
        if SMALL_SPACE.contains(Arch.from_string(net)):
            return net


# ---- features --------------------------------------------------------------------------------


def test_features_shape_names_and_determinism():
    names = feature_names()
    assert len(names) == len(set(names)) == NUM_SLOTS * 3 + 5 * 8 + 10
    x = arch_features(NETS[1], 0.36)
    assert x.shape == (len(names),) and x.dtype == np.float64
    np.testing.assert_array_equal(x, arch_features(Arch.from_string(NETS[1]), 0.36))
    assert features_matrix(NETS, 0.36).shape == (len(NETS), len(names))
    assert features_matrix([], 0.36).shape == (0, len(names))
    assert x[names.index("start_accuracy")] == 0.36
    assert not np.array_equal(x, arch_features(NETS[2], 0.36))


def test_features_agree_with_arch_costs_and_blocks():
    rng = np.random.default_rng(0)
    names = feature_names()
    for net in NETS + [random_net(rng) for _ in range(40)]:
        arch = Arch.from_string(net)
        x = dict(zip(names, arch_features(arch, 0.5), strict=True))
        assert x["params"] == arch.num_params()
        assert x["flops"] == arch.num_flops(IMAGE_SIZE)
        assert math.isclose(x["log_flops"], math.log10(arch.num_flops(IMAGE_SIZE)))
        assert x["depth"] == arch.depth and x["fcs"] == len(arch.blocks()[-1])
        for b, block in enumerate(arch.blocks()):
            widths = [arch.width(i) for i in block]
            assert x[f"block{b}_layers"] == len(block)
            assert x[f"block{b}_max_width"] == (max(widths) if widths else 0)
        for i, layer in enumerate(arch.layers):
            assert x[f"slot{i}_width"] == getattr(layer, "filters", getattr(layer, "units", 0))
        assert all(x[f"slot{i}_kind"] == 0 for i in range(len(arch.layers), NUM_SLOTS))


@pytest.mark.parametrize(
    ("arch", "start", "error", "match"),
    [
        (NETS[0], 1.5, ValueError, "start_accuracy"),
        (NETS[0], -0.1, ValueError, "start_accuracy"),
        (NETS[0], float("nan"), ValueError, "start_accuracy"),
        (NETS[0], "0.3", TypeError, "start_accuracy"),
        (NETS[0], True, TypeError, "start_accuracy"),
        ("C4-3 MP C4-3 GAP FC8", 0.3, ValueError, "outside"),  # two conv blocks
        ("C4-3 C4-3 C4-3 C4-3 C4-3 MP C4-3 MP C4-3 MP C4-3 GAP", 0.3, ValueError, "outside"),
        ("C4-3 MP C4-3 MP CX-3 MP C4-3 GAP", 0.3, ValueError, "bad token"),
        (3, 0.3, TypeError, "arch"),
    ],
)
def test_features_refuse_bad_input(arch, start, error, match):
    with pytest.raises(error, match=match):
        arch_features(arch, start)


def test_features_refuse_other_datasets():
    with pytest.raises(ValueError, match="10 classes"):
        arch_features(Arch(SMALL_START.layers, num_classes=100), 0.3)


# ---- the packaged model ----------------------------------------------------------------------


def test_packaged_model_round_trips():
    model = BenchModel.load()
    assert model.env_id == "EAS-CIFAR10-CPU-v2"
    assert default_model() is default_model()
    spec = json.loads(DEFAULT_MODEL_PATH.read_text())
    assert spec["format"] == MODEL_FORMAT and set(spec["features"]) <= set(feature_names())
    assert 0 < model.start_accuracy < 1 and model.start_accuracy == spec["default_start_accuracy"]
    again = BenchModel(spec)
    np.testing.assert_array_equal(again.mean(NETS), model.mean(NETS))
    np.testing.assert_array_equal(again.sd(NETS), model.sd(NETS))


def test_mean_and_sd_are_fractions_cached_and_batch_consistent():
    model = BenchModel.load()
    rng = np.random.default_rng(1)
    nets = NETS + [random_net(rng) for _ in range(50)]
    mean, sd = model.mean(nets), model.sd(nets)
    assert mean.shape == sd.shape == (len(nets),)
    assert np.all((mean >= 0) & (mean <= 1)) and np.all((sd > 0) & (sd < 0.1))
    fresh = BenchModel.load()
    one_by_one = [fresh.mean([n])[0] for n in reversed(nets)][::-1]
    np.testing.assert_allclose(one_by_one, mean, rtol=0, atol=1e-12)
    arch = Arch.from_string(nets[5])
    assert model.mean([arch])[0] == model.mean([nets[5]])[0]  # an Arch or its string
    other = model.mean(nets[:3], start_accuracy=0.30)
    assert other.shape == (3,) and np.all((other >= 0) & (other <= 1))


def test_sample_is_reproducible_per_seed_and_varies_across_seeds():
    model = default_model()
    net = NETS[1]
    a = [model.sample(net, np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(7)
    seq = [model.sample(net, rng) for _ in range(200)]
    assert seq[0] == a[0] and len(set(seq)) == 200
    assert {model.sample(net, np.random.default_rng(s)) for s in range(20)}.__len__() == 20
    assert np.all((np.array(seq) >= 0) & (np.array(seq) <= 1))
    # the draws spread like the model says one training does (loose: 200 draws)
    mean, sd = model.mean([net])[0], model.sd([net])[0]
    assert abs(np.mean(seq) - mean) < 4 * sd / math.sqrt(200)
    assert 0.7 * sd < np.std(seq) < 1.3 * sd
    assert 0 <= model.sample(Arch.from_string(net), rng, start_accuracy=0.35) <= 1


def test_queries_refuse_bad_input():
    model = default_model()
    with pytest.raises(TypeError, match="sequence"):
        model.mean(NETS[0])
    with pytest.raises(TypeError, match="sequence"):
        model.sd(Arch.from_string(NETS[0]))
    with pytest.raises(TypeError, match="rng"):
        model.sample(NETS[0], 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start_accuracy"):
        model.sample(NETS[0], np.random.default_rng(0), start_accuracy=2.0)
    with pytest.raises(ValueError, match="start_accuracy"):
        model.mean(NETS, start_accuracy=-1.0)
    with pytest.raises(ValueError, match="outside"):
        model.mean(["C4-3 MP C4-3 GAP FC8"])
    with pytest.raises(ValueError, match="bad token"):
        model.sample("C4-3 MP nonsense", np.random.default_rng(0))


def test_load_refuses_bad_files(tmp_path):
    spec = json.loads(DEFAULT_MODEL_PATH.read_text())
    bad = {
        "format": {**spec, "format": "other-v9"},
        "features": {**spec, "features": ["no_such_feature"]},
        "members": {**spec, "members": []},
        "trees": {**spec, "members": [{**spec["members"][0], "left": [5_000_000]}]},
        "noise": {**spec, "noise": {"log_var": -9.0}},
        "start": {**spec, "default_start_accuracy": 3.0},
    }
    for name, content in bad.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(content))
        with pytest.raises(ValueError):
            BenchModel.load(path)
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(ValueError, match="not JSON"):
        BenchModel.load(tmp_path / "text.json")
    with pytest.raises(FileNotFoundError):
        BenchModel.load(tmp_path / "missing.json")


# ---- the fit script writes what the model reads ----------------------------------------------


def _bench_fit():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_fit
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return bench_fit


def test_fit_script_writes_the_packaged_model_file():
    bench_fit = _bench_fit()
    args = bench_fit.parse_args([])
    assert args.out_model == DEFAULT_MODEL_PATH
    spec = json.loads(DEFAULT_MODEL_PATH.read_text())
    candidate = bench_fit.bm.CANDIDATES[spec["model"]["name"]]
    assert candidate.exportable
    mask = bench_fit.bm.column_mask(candidate.columns)
    assert spec["features"] == [n for n, k in zip(feature_names(), mask, strict=True) if k]
    assert spec["env_id"] == bench_fit.bench_data.V2_ID
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"bench_models/*.json"' in pyproject  # shipped in the wheel


def test_exported_lightgbm_trees_predict_as_lightgbm():
    lgb = pytest.importorskip("lightgbm")
    bench_fit = _bench_fit()
    rng = np.random.default_rng(0)
    nets = [random_net(rng) for _ in range(300)]
    x = features_matrix(nets, 0.36)
    mask = bench_fit.bm.column_mask("arch")
    y = 0.3 + 0.02 * np.log(x[:, feature_names().index("params")]) + 0.01 * rng.random(300)
    params = {**bench_fit.bm.LGBM_PARAMS, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(x[:, mask], y), 40)
    spec = json.loads(DEFAULT_MODEL_PATH.read_text())
    spec["members"] = [trees_from_lightgbm(booster.dump_model())]
    spec["features"] = [n for n, k in zip(feature_names(), mask, strict=True) if k]
    model = BenchModel(spec)
    np.testing.assert_allclose(
        model.mean(nets, start_accuracy=0.36), booster.predict(x[:, mask]), rtol=0, atol=1e-12
    )


def _bench_episode(seed, store):
    import gymnasium as gym

    env = gym.make("EAS-Bench-CIFAR10-CPU-v2", store=str(store))
    env.action_space.seed(seed)
    _, info = env.reset(seed=seed)
    trace, done = [], False
    while not done:
        action = env.action_space.sample(mask=info["action_mask"])
        _, reward, done, _, info = env.step(action)
        trace.append((action.tolist(), reward, info["net"], info["accuracy"], info["lineage"]))
    return env, trace


def test_the_bench_env_is_v2_without_data_and_reproducible_per_seed(tmp_path):
    import gymnasium as gym

    bench, first = _bench_episode(3, tmp_path / "a.sqlite")
    _, again = _bench_episode(3, tmp_path / "b.sqlite")
    _, other = _bench_episode(4, tmp_path / "c.sqlite")
    assert first == again and first != other  # the seed fixes the episode, noise included
    assert first[-1][3] is not None and all(t[3] is None for t in first[:-1])  # -v2 is sparse
    real = gym.make("EAS-CIFAR10-CPU-v2", store=":memory:")
    assert bench.observation_space == real.observation_space
    assert bench.action_space == real.action_space
    assert bench.unwrapped.schedule == real.unwrapped.schedule
    assert not list(tmp_path.iterdir())  # no store, no weights: nothing written


@pytest.mark.parametrize(
    "key, value",
    [
        ("epochs", 1.0),
        ("lr", 0.5),
        ("noise", False),
        ("train_size", 500),
        ("image_size", 32),
        ("dataset", "cifar100"),
        ("start_net", "C40-3 MP C40-3 MP C40-3 MP C40-3 GAP FC80"),
        ("reward_mode", "dense"),  # a fine-tune after every step: not what the model saw
    ],
)
def test_the_bench_env_refuses_what_it_cannot_model(key, value):
    """A training or data argument would be ignored (the model is -v2's): refused at make."""
    import gymnasium as gym

    with pytest.raises(ValueError, match=rf"Expected `{key}` .* with `evaluator` 'bench'"):
        gym.make("EAS-Bench-CIFAR10-CPU-v2", store=":memory:", **{key: value})
    same = {"epochs": 17, "start_net": "C4-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8"}  # -v2's own
    search_settings = {"schedule": "WWDD", "cost_weight": 0.1, "reward_shape": "acc"}
    gym.make("EAS-Bench-CIFAR10-CPU-v2", store=":memory:", **same, **search_settings).close()


def test_the_search_command_refuses_a_bench_training_argument_before_writing(tmp_path, capsys):
    from agents.cli import main

    out = tmp_path / "run"
    argv = ["search", "--env", "EAS-Bench-CIFAR10-CPU-v2", "--nets", "10", "--out", str(out)]
    assert main([*argv, "--set", "epochs=8"]) == 2
    assert "Expected `epochs` 17.0" in capsys.readouterr().err
    assert not out.exists()


def test_a_bench_search_records_its_model_and_refuses_to_resume_under_another(tmp_path, capsys):
    from agents.cli import main
    from eas_gym.bench import default_model_digest

    out = tmp_path / "run"
    argv = ["search", "--env", "EAS-Bench-CIFAR10-CPU-v2", "--nets", "10", "--out", str(out)]
    assert main(argv) == 0
    config = out / "config.json"
    saved = json.loads(config.read_text())
    assert saved["bench_model"] == default_model_digest()
    assert main([*argv[:4], "20", *argv[5:]]) == 0  # same model: extends
    capsys.readouterr()
    config.write_text(json.dumps({**saved, "bench_model": "0123456789abcdef"}))  # fit changed
    assert main([*argv[:4], "30", *argv[5:]]) == 2
    err = capsys.readouterr().err
    assert "bench_model: '0123456789abcdef' there" in err
    assert len((out / "children.jsonl").read_text().splitlines()) == 20
    other = tmp_path / "surrogate"  # another evaluator records no bench model
    assert main(["search", "--env", "EAS-Surrogate-v0", "--nets", "10", "--out", str(other)]) == 0
    assert "bench_model" not in json.loads((other / "config.json").read_text())
