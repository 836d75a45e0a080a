import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eas_gym.arch import SMALL_START, Arch
from eas_gym.data import load_dataset
from eas_gym.net import build_net
from eas_gym.train import (
    FINAL_CONFIG,
    SCRATCH_CONFIG,
    SEARCH_CONFIG,
    TrainConfig,
    TrainResult,
    evaluate,
    fine_tune,
    resolve_device,
)

TINY = Arch.from_string("C8-3 MP C8-3 GAP FC16")


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", train_size=640, val_size=200, test_size=100, image_size=16)


def make(arch: Arch = TINY, seed: int = 0) -> torch.nn.Module:
    return build_net(arch, generator=torch.Generator().manual_seed(seed))


def run(net, data, seed=0, **config):
    config = TrainConfig(**{"epochs": 1, "lr": 0.05, **config})
    return fine_tune(net, data, config, generator=torch.Generator().manual_seed(seed), device="cpu")


# ---- config --------------------------------------------------------------------------------


def test_config_is_hashable_and_json_round_trips():
    for config in (SEARCH_CONFIG, FINAL_CONFIG, SCRATCH_CONFIG, TrainConfig(epochs=0.5)):
        text = json.dumps(config.to_dict(), sort_keys=True)
        assert TrainConfig.from_dict(json.loads(text)) == config
        assert hash(config) == hash(TrainConfig.from_dict(config.to_dict()))
    assert json.dumps(TrainConfig(epochs=20).to_dict()) == json.dumps(TrainConfig().to_dict())
    assert (SEARCH_CONFIG.epochs, SEARCH_CONFIG.lr, SEARCH_CONFIG.batch_size) == (20, 0.02, 64)
    assert SEARCH_CONFIG.nesterov and SEARCH_CONFIG.momentum == 0.9
    assert SEARCH_CONFIG.weight_decay == 1e-4 and SEARCH_CONFIG.schedule == "cosine"
    assert (FINAL_CONFIG.epochs, FINAL_CONFIG.lr, FINAL_CONFIG.train_split) == (
        300,
        0.1,
        "train+val",
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [({"epochs": -1}, "`epochs` >= 0, got -1"), ({"batch_size": 0}, "`batch_size`"),
     ({"schedule": "step"}, "`schedule` 'step'"), ({"eval_split": "train"}, "`eval_split`"),
     ({"train_split": "all"}, "`train_split` 'all'"), ({"lr": -0.1}, "`lr`")],
)  # fmt: skip
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


# ---- training ------------------------------------------------------------------------------


def test_synthetic_data_is_learnable(data):
    net = make(Arch.from_string("C16-3 MP C32-3 MP C64-3 GAP FC64"))
    result = run(net, data, epochs=5, lr=0.1)
    assert isinstance(result, TrainResult) and result.ok and result.steps == 50
    assert result.eval_split == "val" and result.epochs == 5
    assert result.eval_accuracy > 0.5, result  # chance is 0.1; 0.70-0.75 over seeds 0-2
    assert result.images_per_second > 0 and result.seconds > 0
    assert result.train_loss < 2.0
    json.dumps(result.to_dict())


def test_cpu_training_is_deterministic(data):
    a, b, c = make(), make(), make()
    ra, rb = run(a, data, seed=3), run(b, data, seed=3)
    run(c, data, seed=4)
    assert ra.eval_accuracy == rb.eval_accuracy and ra.eval_loss == rb.eval_loss
    assert ra.train_loss == rb.train_loss
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert not torch.equal(a.classifier.weight, c.classifier.weight)  # the seed matters


def test_divergence_is_reported_not_raised(data):
    result = run(make(), data, lr=1e6)
    assert result.diverged and not result.ok and not result.oom
    assert result.eval_accuracy is None and result.eval_loss is None
    assert result.steps < 10  # stopped early, not after the whole epoch


def test_injected_inf_is_reported(data):
    net = make()
    net.classifier.register_forward_hook(lambda module, args, out: out * float("inf"))
    result = run(net, data)
    assert result.diverged and result.steps == 1


def test_out_of_memory_is_reported_and_mode_restored(data):
    net = make().eval()

    calls = []

    def boom(module, args):
        calls.append(1)
        if len(calls) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    net.layers[0].register_forward_pre_hook(boom)
    result = run(net, data)
    assert result.oom and not result.diverged and not result.ok
    assert result.eval_accuracy is None and result.steps == 2
    assert not net.training


def test_modes_restored_and_evaluate_uses_running_stats(data):
    net = make().eval()
    run(net, data, epochs=0.2)
    assert not net.training
    net.train()
    bn = net.layers[0].bn
    before = bn.running_mean.clone()
    acc, loss = evaluate(net, data.val, mean=data.mean, std=data.std)
    assert net.training and torch.equal(bn.running_mean, before)
    assert 0.0 <= acc <= 1.0 and loss > 0
    acc7, loss7 = evaluate(net, data.val, mean=data.mean, std=data.std, batch_size=7)
    assert acc7 == acc and loss7 == pytest.approx(loss)


def test_zero_epochs_only_evaluates(data):
    net = make()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = run(net, data, epochs=0)
    assert result.steps == 0 and result.train_loss is None
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert result.eval_accuracy == evaluate(net, data.val, mean=data.mean, std=data.std)[0]


def test_eval_split_and_train_plus_val(data):
    result = run(make(), data, epochs=1, train_split="train+val", eval_split="test")
    assert result.eval_split == "test" and result.steps == (640 + 200) // 64
    assert run(make(), data, epochs=0.1, eval_split=None).eval_accuracy is None


def test_channels_last_option_matches_default_and_restores_format(data):
    a, b = make(), make()
    ra, rb = run(a, data, epochs=0.3, channels_last=True), run(b, data, epochs=0.3)
    assert ra.eval_accuracy == pytest.approx(rb.eval_accuracy, abs=0.02)
    assert a.layers[0].conv.weight.is_contiguous()


def test_global_rng_untouched(data):
    net = make()  # (building a net still draws from the global RNG: nn.Conv2d's own init)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    run(net, data, epochs=0.2)
    assert torch.equal(torch.get_rng_state(), state)


# ---- real CIFAR-10 -------------------------------------------------------------------------

REAL_DATA = Path(os.environ.get("EAS_DATA_DIR") or Path(__file__).parents[2] / "shared" / "data")


@pytest.mark.skipif(
    not (REAL_DATA / "cifar-10-batches-py" / "data_batch_1").is_file(),
    reason=f"real CIFAR-10 not found in {REAL_DATA}/cifar-10-batches-py (set EAS_DATA_DIR)",
)
def test_small_start_learns_real_cifar10():
    data = load_dataset("cifar10", data_dir=REAL_DATA, train_size=5000, val_size=1000)
    result = run(make(SMALL_START), data, epochs=4, lr=0.1)
    assert result.ok and result.eval_accuracy > 0.25, result  # 0.315-0.32 over seeds 0-2


# ---- benchmark smoke run (cleanrl-style subprocess) ----------------------------------------


@pytest.mark.slow
def test_throughput_benchmark_smoke(tmp_path):
    script = Path(__file__).parents[1] / "benchmarks" / "trainer_throughput.py"
    out = tmp_path / "plot.png"
    args = "--device cpu --synthetic --train-size 256 --nets small --batches 2 --warmup 1"
    args += f" --repeats 1 --workers 0 --out {out}"
    done = subprocess.run(
        [sys.executable, str(script), *args.split()], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["data"] == "synthetic" and report["nets"]["small"]["trainer"] > 0
    assert out.stat().st_size > 0
