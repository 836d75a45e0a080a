"""The GPU path without a GPU: fake CUDA tensors, the meta device, and the per-device settings.

``FakeTensorMode`` makes tensors that claim ``cuda:0`` on this CPU-only machine and raises
on device mixing, as CUDA does; it cannot run a backward pass (the autograd engine asks the
driver for a context), so training steps run on the ``meta`` device, which mixes with the
CPU exactly as CUDA does and also computes nothing. Neither computes values: ``.item()`` is
patched to a constant where the code reads a scalar back.
"""

import dataclasses
import multiprocessing
import os
from types import SimpleNamespace

import gymnasium as gym
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

import eas_gym.scorer as scorer_module
import eas_gym.settings as settings
import eas_gym.vector as vector_module
from eas_gym.arch import SMALL_SPACE, SMALL_START
from eas_gym.batches import iterate_batches
from eas_gym.data import load_dataset
from eas_gym.densenet import DENSE_SMALL_SPACE, DENSE_SMALL_START, build_dense_net
from eas_gym.densenet.morph import dense_deeper, dense_wider
from eas_gym.morph import net2deeper, widen_layers
from eas_gym.net import EASNet, build_net
from eas_gym.net2net import DEEPER_NOISE, WIDER_NOISE, build_module, fp32_exact
from eas_gym.ray_vector import _resources_per_copy, gpu_share
from eas_gym.splits import Split
from eas_gym.store import EvalStore
from eas_gym.train import TrainConfig, evaluate, fine_tune, is_out_of_memory


@pytest.fixture
def fake_cuda(monkeypatch):
    """(mode, to_cuda): a FakeTensorMode (enter it) and a function putting tensors on cuda:0."""
    monkeypatch.setattr(FakeTensor, "item", lambda self: 0.0, raising=False)
    monkeypatch.setattr(FakeTensor, "__float__", lambda self: 0.0, raising=False)
    mode = FakeTensorMode(allow_non_fake_inputs=True)

    def to_cuda(tensor):
        return mode.from_tensor(tensor).to("cuda")

    return mode, to_cuda


def _plain_state():
    net = build_net(SMALL_START, generator=torch.Generator().manual_seed(0)).eval()
    probe = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return net.state_dict(), probe


def _plain_chain(state, probe, noise):
    """A wider then a deeper step of the small space, noise from a CPU generator."""
    g = torch.Generator().manual_seed(2)
    arch, state = widen_layers(
        SMALL_START, state, {0: 8, 7: 16}, space=SMALL_SPACE, noise=noise, generator=g
    )
    noise = noise and DEEPER_NOISE
    return net2deeper(arch, state, 2, 3, batch=probe, space=SMALL_SPACE, noise=noise, generator=g)


def _dense_chain(state, noise):
    g = torch.Generator().manual_seed(2)
    arch, state = dense_wider(
        DENSE_SMALL_START, state, 0, 0, 6, space=DENSE_SMALL_SPACE, noise=noise, generator=g
    )
    noise = noise and DEEPER_NOISE
    return dense_deeper(arch, state, 1, 1, space=DENSE_SMALL_SPACE, noise=noise, generator=g)


# ---- transforms follow their input's device -------------------------------------------------


@pytest.mark.parametrize("noise", [0.0, WIDER_NOISE])
def test_plain_transforms_on_fake_cuda(fake_cuda, noise):
    mode, to_cuda = fake_cuda
    state, probe = _plain_state()
    with mode:
        cuda_state, cuda_probe = {k: to_cuda(v) for k, v in state.items()}, to_cuda(probe)
        arch, new = _plain_chain(cuda_state, cuda_probe, noise)
        logits = build_net(arch, new)(cuda_probe)  # the child builds and runs where it lives
    assert {str(v.device) for v in new.values()} == {"cuda:0"}
    assert logits.device.type == "cuda" and logits.shape == (8, 10)


@pytest.mark.parametrize("noise", [0.0, WIDER_NOISE])
@pytest.mark.parametrize("family", ["plain", "dense"])
def test_transforms_on_the_meta_device(family, noise):
    # The DenseNet rewrite reads its (CPU) index maps, which a FakeTensorMode would fake too;
    # on the meta device they stay real while every weight is off the CPU.
    if family == "plain":
        state, probe = _plain_state()
        meta = {k: v.to("meta") for k, v in state.items()}
        arch, new = _plain_chain(meta, probe.to("meta"), noise)
        out = build_net(arch, new)(probe.to("meta"))
    else:
        net = build_dense_net(DENSE_SMALL_START, generator=torch.Generator().manual_seed(0))
        arch, new = _dense_chain({k: v.to("meta") for k, v in net.state_dict().items()}, noise)
        out = build_dense_net(arch, new)(torch.zeros(2, 3, 16, 16, device="meta"))
    assert {v.device.type for v in new.values()} == {"meta"}
    assert out.device.type == "meta"


def _draws_made_here(state, probe, dense_state):
    """What this library draws from CPU generators: transforms, a fresh net, data, batches."""
    plain = _plain_chain(state, probe, WIDER_NOISE)
    fresh = build_dense_net(DENSE_SMALL_START, generator=torch.Generator().manual_seed(0))
    dense = _dense_chain(dense_state, WIDER_NOISE)
    data = load_dataset("synthetic", train_size=20, val_size=10, image_size=8)
    batches = iterate_batches(
        data.train,
        8,
        mean=data.mean,
        std=data.std,
        shuffle=True,
        augment=True,
        generator=torch.Generator().manual_seed(3),
    )
    tensors = [*plain[1].values(), *fresh.state_dict().values(), *dense[1].values()]
    return [*tensors, data.train.images, *next(batches)]


def test_a_callers_default_device_moves_no_draw():
    """Under ``torch.set_default_device("cuda")`` a CPU generator's draws must stay on the CPU
    (torch raises there); the meta device stands in, and would make every number a fake."""
    state, probe = _plain_state()
    dense = build_dense_net(DENSE_SMALL_START, generator=torch.Generator().manual_seed(0))
    expected = _draws_made_here(state, probe, dense.state_dict())
    with torch.device("meta"):
        got = _draws_made_here(state, probe, dense.state_dict())
    assert [t.device.type for t in got] == ["cpu"] * len(expected)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_cifar_read_under_a_callers_default_device_stays_on_the_cpu(tmp_path, monkeypatch):
    """torchvision's labels are a list: made into a tensor on the default device, they would
    meet the CPU images when the splits are drawn."""
    import numpy as np
    import torchvision

    from eas_gym.data import _FILES

    for name in _FILES["cifar10"][1]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()

    class FakeCIFAR10:  # torchvision's attributes: NHWC uint8 images, a list of labels
        classes = [str(k) for k in range(10)]

        def __init__(self, root, train, download):
            n = 60 if train else 20
            self.data = np.random.default_rng(n).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
            self.targets = [k % 10 for k in range(n)]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    kwargs = {"data_dir": tmp_path, "val_size": 20, "train_size": 30}
    expected = load_dataset("cifar10", **kwargs)
    with torch.device("meta"):
        got = load_dataset("cifar10", **kwargs)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(got, split).images, getattr(expected, split).images)
        assert torch.equal(getattr(got, split).labels, getattr(expected, split).labels)


def test_a_generator_off_the_cpu_is_refused_by_name():
    state, _ = _plain_state()
    on_a_gpu = SimpleNamespace(device=torch.device("cuda", 0))  # a CUDA generator's face
    with pytest.raises(ValueError, match="CPU `generator`, got one on cuda:0"):
        widen_layers(SMALL_START, state, {0: 8}, space=SMALL_SPACE, generator=on_a_gpu)


def test_a_built_module_copies_its_state_and_never_aliases_it():
    state, probe = _plain_state()
    net = build_module(EASNet, SMALL_START, state)
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, state[name])
        assert tensor.data_ptr() != state[name].data_ptr()  # training it leaves `state` alone
    before = {k: v.clone() for k, v in state.items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert all(torch.equal(state[k], before[k]) for k in state)


def test_a_built_module_keeps_the_caller_rng_and_generator_untouched():
    state, _ = _plain_state()
    g = torch.Generator().manual_seed(5)
    torch.manual_seed(7)
    build_module(EASNet, SMALL_START, state, generator=g)
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(after, torch.rand(3))
    assert torch.equal(
        torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(5))
    )


# ---- the scorer's check and the trainer -----------------------------------------------------


def test_the_scorer_verifies_a_child_on_fake_cuda(fake_cuda, tmp_path):
    mode, to_cuda = fake_cuda
    env = gym.make("EAS-Synthetic-v0", store=str(tmp_path / "s.sqlite"), noise=False)
    env.reset(seed=0)  # a real env on the CPU, whose scorer then checks a child on cuda:0
    scorer = env.unwrapped.scorer
    with mode:
        scorer._probe = to_cuda(scorer.probe)
        cuda_state = {k: to_cuda(v) for k, v in env.unwrapped._start[0].items()}
        parent_logits = scorer.logits(build_net(SMALL_START, cuda_state))
        arch, child = widen_layers(SMALL_START, cuda_state, {0: 8}, space=SMALL_SPACE)
        checked = scorer.verify(arch, child, parent_logits, exact=True)
    assert next(checked.net.parameters()).device.type == "cuda"
    assert checked.logits.device.type == "cuda"


@pytest.mark.parametrize(
    ("space", "reward_mode", "schedule"),
    [("small", "dense", "WWDD"), ("small", "sparse", "WD"), ("dense-small", "dense", "WD")],
)
def test_whole_episodes_run_with_every_env_tensor_off_the_cpu(
    space, reward_mode, schedule, monkeypatch
):
    """The env's own path (start network, probe, transforms, checks, fine-tunes, logits) on
    the meta device, which raises where a CPU tensor meets it as CUDA would. Numbers read back
    from it are stand-ins, and nothing is stored."""
    real_item, real_float = torch.Tensor.item, torch.Tensor.__float__
    monkeypatch.setattr(torch.Tensor, "item", lambda t: 0.5 if t.is_meta else real_item(t))
    monkeypatch.setattr(torch.Tensor, "__float__", lambda t: 0.5 if t.is_meta else real_float(t))
    monkeypatch.setattr(settings, "_check_device", lambda device: None)  # users may not ask
    monkeypatch.setattr(EvalStore, "save_weights", lambda self, net, key, state: None)
    monkeypatch.setattr(scorer_module, "state_digest", lambda state: "0" * 16)
    env = gym.make(
        "EAS-Synthetic-v0",
        store=":memory:",
        device="meta",
        space=space,
        reward_mode=reward_mode,
        epochs=0.2,
        start_epochs=0.2,
        schedule=schedule,
    )
    obs, info = env.reset(seed=0)
    env.action_space.seed(0)
    unwrapped = env.unwrapped
    assert unwrapped.scorer.probe.is_meta
    for _ in schedule:
        obs, reward, terminated, truncated, info = env.step(
            env.action_space.sample(mask=info["action_mask"])
        )
        assert {v.device.type for v in unwrapped.network()[1].values()} == {"meta"}
    assert terminated


@pytest.fixture
def small_data():
    return load_dataset("synthetic", train_size=200, val_size=100, image_size=16)


def test_evaluation_runs_on_fake_cuda(fake_cuda, small_data):
    mode, to_cuda = fake_cuda
    state, _ = _plain_state()
    with mode:
        net = build_net(SMALL_START, {k: to_cuda(v) for k, v in state.items()})
        val = Split(to_cuda(small_data.val.images), to_cuda(small_data.val.labels))
        evaluate(net, val, mean=small_data.mean, std=small_data.std)  # fp32, the default
        evaluate(net, val, mean=small_data.mean, std=small_data.std, amp=True)  # bf16


def test_training_steps_on_the_meta_device(monkeypatch, small_data):
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda t: 0.5 if t.is_meta else real_item(t))
    state, _ = _plain_state()
    net = build_net(SMALL_START, {k: v.to("meta") for k, v in state.items()})
    data = small_data.to("cpu")
    meta = dataclasses.replace(
        data,
        **{
            name: Split(
                getattr(data, name).images.to("meta"), getattr(data, name).labels.to("meta")
            )
            for name in ("train", "val", "test")
        },
    )
    result = fine_tune(
        net,
        meta,
        TrainConfig(epochs=1.0, batch_size=32),
        generator=torch.Generator().manual_seed(0),
        device="meta",
    )
    assert result.steps == 6 and result.ok  # augmented, shuffled batches and SGD on the device


def test_a_gpu_trains_in_fp32_nchw_without_autotuning(monkeypatch, small_data):
    """On CUDA, fine_tune's defaults are fp32, NCHW and cuDNN autotuning left off.

    On an H200 autotuning cost 2.4-10.4 s per new child for no faster steps, and bf16 + NHWC
    stepped no faster (benchmarks/RESULTS.md). The device is faked up to the training loop,
    which records what it was asked to do.
    """
    import eas_gym.train as train_module

    asked = []

    def record(net, train, data, config, generator, progress, amp, channels_last, on_epoch):
        asked.append((amp, channels_last, torch.backends.cudnn.benchmark))

    monkeypatch.setattr(train_module, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(train_module, "_is_on", lambda tensor, device: True)
    monkeypatch.setattr(Split, "to", lambda self, device: self)
    monkeypatch.setattr(train_module, "_train", record)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    net = build_net(SMALL_START, generator=torch.Generator().manual_seed(0))
    for config in (
        TrainConfig(epochs=1.0, eval_split=None),
        TrainConfig(epochs=1.0, eval_split=None, amp=True, channels_last=True),
    ):
        fine_tune(net, small_data, config, generator=torch.Generator(), device="cuda")
    assert asked == [(False, False, False), (True, True, False)]


def test_a_net_on_a_second_gpu_trains_with_its_data_there(fake_cuda, monkeypatch, small_data):
    """``device="cuda"`` (the resolved "auto") leaves a net on cuda:1 there: its data follows.

    Before, the net stayed on cuda:1 and the data went to ``cuda`` (cuda:0): the first forward
    pass mixed devices. Faked up to one forward pass of the training loop.
    """
    import eas_gym.train as train_module

    mode, _ = fake_cuda
    seen = {}

    def one_forward(net, train, data, config, generator, progress, amp, channels_last, on_epoch):
        seen["net"], seen["data"] = next(net.parameters()).device, train.images.device
        net(train.images[:8].float())  # raises on mixed devices, as CUDA does

    monkeypatch.setattr(train_module, "_train", one_forward)
    state = build_net(SMALL_START, generator=torch.Generator().manual_seed(0)).state_dict()
    with mode:
        net = build_net(
            SMALL_START, {k: mode.from_tensor(v).to("cuda:1") for k, v in state.items()}
        )
        config = TrainConfig(epochs=1.0, eval_split=None)
        fine_tune(net, small_data, config, generator=torch.Generator(), device="cuda")
    assert seen == {"net": torch.device("cuda:1"), "data": torch.device("cuda:1")}


# ---- TF32 and out of memory -----------------------------------------------------------------


def _tf32_flags():
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def test_preservation_checks_run_without_tf32_and_restore_it(tmp_path, monkeypatch):
    before = _tf32_flags()
    with fp32_exact():
        inside = _tf32_flags()
    assert inside in (("ieee", "ieee"), (False, False)) and _tf32_flags() == before
    env = gym.make("EAS-Synthetic-v0", store=str(tmp_path / "s.sqlite"))
    env.reset(seed=0)
    seen = []
    net = build_net(SMALL_START).eval()
    net.register_forward_pre_hook(lambda module, args: seen.append(_tf32_flags()))
    env.unwrapped.scorer.logits(net)
    assert seen == [inside]


def _all_tf32_switches():
    """Every TF32 switch torch has, legacy and per operator, as read (a read may raise)."""
    reads = {
        "cudnn.allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
        "matmul.allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
        "matmul_precision": torch.get_float32_matmul_precision,
    }
    for name in ("conv", "rnn"):
        if hasattr(getattr(torch.backends.cudnn, name, None), "fp32_precision"):
            reads[name] = lambda name=name: getattr(torch.backends.cudnn, name).fp32_precision
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        reads["mm"] = lambda: torch.backends.cuda.matmul.fp32_precision
    if hasattr(torch.backends.cudnn, "fp32_precision"):
        reads["cudnn"] = lambda: torch.backends.cudnn.fp32_precision
    mkldnn = getattr(torch.backends, "mkldnn", None)
    if hasattr(getattr(mkldnn, "matmul", None), "fp32_precision"):  # set by the legacy setter
        reads["mkldnn.matmul"] = lambda: torch.backends.mkldnn.matmul.fp32_precision
    return {name: read() for name, read in reads.items()}


@pytest.mark.parametrize("user", ["defaults", "matmul high", "cudnn tf32", "conv ieee", "mm tf32"])
def test_inside_a_check_every_tf32_switch_reads_off(user):
    """Legacy and per-operator switches agree inside ``fp32_exact``: reading either works.

    Torch raises on reading ``cudnn.allow_tf32`` when the two sets disagree (and on
    ``matmul.allow_tf32`` after the common ``set_float32_matmul_precision("high")``), which
    code calling cuDNN or cuBLAS without an operator name would do mid-check.
    """
    legacy = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    cudnn = getattr(torch.backends.cudnn, "fp32_precision", None)
    onednn = getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)
    onednn_saved = getattr(onednn, "fp32_precision", None)
    try:
        if onednn_saved is not None:  # torch's default: inherit (the legacy setter writes it)
            onednn.fp32_precision = "none"
        if user == "matmul high":
            torch.set_float32_matmul_precision("high")
        if user == "cudnn tf32":
            if cudnn is None:
                pytest.skip("torch < 2.9 has no per-backend TF32 switch")
            torch.backends.cudnn.fp32_precision = "tf32"
        conv = getattr(torch.backends.cudnn, "conv", None)
        if user in ("conv ieee", "mm tf32"):  # per operator, as gpu_common.tf32 sets them
            if not hasattr(conv, "fp32_precision"):
                pytest.skip("torch < 2.9 has no per-operator TF32 switch")
            on = user == "mm tf32"
            saved_conv, conv.fp32_precision = conv.fp32_precision, "tf32" if on else "ieee"
            saved_mm = torch.backends.cuda.matmul.fp32_precision
            torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
            switches = (conv, torch.backends.cudnn.rnn, torch.backends.cuda.matmul)
            before = [s.fp32_precision for s in switches]
            with fp32_exact():  # legacy switches the caller's state cannot express stay unread
                assert [s.fp32_precision for s in switches] == ["ieee"] * 3
            assert [s.fp32_precision for s in switches] == before
            conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved_conv, saved_mm
            return
        before = _all_tf32_switches()
        with fp32_exact():
            inside = _all_tf32_switches()
        assert _all_tf32_switches() == before
        assert inside["cudnn.allow_tf32"] is False and inside["matmul.allow_tf32"] is False
        assert inside["matmul_precision"] == "highest"
        assert all(inside[k] == "ieee" for k in ("conv", "rnn", "mm") if k in inside)
    finally:
        if cudnn is not None:
            torch.backends.cudnn.fp32_precision = cudnn
        torch.backends.cudnn.allow_tf32 = legacy[0]
        torch.set_float32_matmul_precision(legacy[1])
        if onednn_saved is not None:
            onednn.fp32_precision = onednn_saved


def test_evaluation_retries_at_smaller_batches_when_memory_runs_out(small_data):
    net = build_net(SMALL_START, generator=torch.Generator().manual_seed(0))
    expected = evaluate(net, small_data.val, mean=small_data.mean, std=small_data.std)
    sizes = []

    def alloc_fails_over_32(module, args):
        sizes.append(len(args[0]))
        if len(args[0]) > 32:  # cuDNN reports its failed allocations as a plain RuntimeError
            raise RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")

    net.layers[0].register_forward_pre_hook(alloc_fails_over_32)
    got = evaluate(net, small_data.val, mean=small_data.mean, std=small_data.std)
    assert got == pytest.approx(expected) and sizes[:3] == [100, 50, 25]
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_a_child_out_of_memory_is_never_scored(tmp_path, monkeypatch):
    import eas_gym.scorer as scorer_module

    env = gym.make("EAS-Synthetic-v0", store=str(tmp_path / "s.sqlite"), schedule="W")
    _, info = env.reset(seed=0)
    real = scorer_module.fine_tune
    monkeypatch.setattr(
        scorer_module, "fine_tune", lambda *a, **k: dataclasses.replace(real(*a, **k), oom=True)
    )
    action = env.action_space.sample(mask=info["action_mask"])
    action[0] = 1  # widen the first layer: a changed child that must be trained
    with pytest.raises(torch.OutOfMemoryError, match="ran out of memory"):
        env.step(action)
    assert env.unwrapped.scorer.store.all(env.unwrapped.config_key) == []


# ---- workers and their GPUs -----------------------------------------------------------------


def test_worker_settings_apply_in_the_workers_only(monkeypatch):
    applied = []
    monkeypatch.setattr(vector_module, "apply_worker_settings", lambda *a: applied.append(a))

    class Recorder:  # stands in for AsyncVectorEnv: calls one factory here, as it does
        def __init__(self, env_fns, context):
            self.env_fns = env_fns
            env_fns[0]().close()

    monkeypatch.setattr(gym.vector, "AsyncVectorEnv", Recorder)
    envs = vector_module.make_vector_env(
        "EAS-Surrogate-v0", 3, device="cpu", threads=1, store=":memory:"
    )
    assert applied == []  # not in this (the parent) process
    pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: pid + 1)  # as a worker process sees itself
    envs.env_fns[1]().close()
    assert applied == [("cpu", 1, 3)]


def test_a_shared_gpu_gets_an_indexed_memory_share(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("current", d)))
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, d: calls.append((f, d))
    )
    vector_module.apply_worker_settings("cuda", 1, 4)
    vector_module.apply_worker_settings("cuda:1", 2, 2)
    vector_module.apply_worker_settings("cuda:1", 2, 1)  # alone on its GPU: no cap
    vector_module.apply_worker_settings("cpu", 1, 2)
    # a worker on cuda:1 makes it current: device-less calls act on its own GPU
    assert calls == [
        *[("threads", 1), (0.95 / 4, 0)],
        *[("threads", 2), ("current", 1), (0.95 / 2, 1)],
        *[("threads", 2), ("current", 1)],
        ("threads", 1),
    ]


def test_fork_is_refused_with_cuda(monkeypatch):
    with pytest.raises(ValueError, match="'fork'"):
        vector_module.make_vector_env("EAS-Surrogate-v0", 2, context="fork", device="cuda")
    # None is the platform's default: fork on Linux (before Python 3.14), refused as "fork" is
    real = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda method=None: real(method or "fork"))
    with pytest.raises(ValueError, match="None, which starts workers by 'fork'"):
        vector_module.make_vector_env("EAS-Surrogate-v0", 2, context=None, device="cuda")


def test_ray_gpu_shares_tile_whole_gpus():
    assert gpu_share(8, 10) == 0.5  # not 0.8: five GPUs take two actors each
    for gpus in range(1, 12):
        for envs in range(1, 25):
            share = gpu_share(gpus, envs)
            assert share <= 1 and gpus * int(1 / share + 1e-9) >= envs or share == 1
            assert int(1 / share + 1e-9) * share <= 1 + 1e-12
    assert _resources_per_copy({"GPU": 8.0, "CPU": 16.0}, 10, None, None, "auto")[1] == 0.5


def test_a_ray_actor_on_a_shared_gpu_caps_its_memory(monkeypatch):
    """Ray hands out GPU fractions without a memory limit: the actor sets its own."""
    from eas_gym.ray_worker import cap_gpu_memory

    caps = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "set_per_process_memory_fraction", lambda f, i: caps.append((f, i))
    )
    for share in (0.1, 0.5, 1.0, 0.0):
        cap_gpu_memory(share)
    assert caps == [(pytest.approx(0.095), 0), (pytest.approx(0.475), 0)]
