"""The GPU suite's correctness part: eas_gym's steps and batches on the device against the CPU.

Preservation errors (max ``|logits' - logits|``, eval mode) of the paper's wider and deeper
steps with noise 0, TF32 off and on, and the same step on the CPU; the noisy steps (they run
on the device and perturb the function); shuffled, augmented batches from one seed, equal on
the CPU and the device; the CPU draws under a script's default device set to the device. A
check that raises becomes a row with ``"error"``; the part goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from gpu_common import Rows, epochs_for, gen, load_data, tf32

from eas_gym.arch import FC, PAPER_SPACE, PAPER_START, Arch, Conv, Pool
from eas_gym.data import DataBundle, iterate_batches
from eas_gym.morph import DEEPER_NOISE, WIDER_NOISE, max_logit_diff, net2deeper, widen_layers
from eas_gym.net import build_net
from eas_gym.train import TrainConfig, fine_tune


def _steps(arch: Arch, probe: torch.Tensor) -> dict[str, Callable[..., tuple[Arch, dict]]]:
    """The paper's steps on `arch`: widen every layer to its next width; deepen a conv, an FC.

    Each maps ``(state, generator, noise)`` to the new ``(arch, state)``, on `state`'s device.
    """
    layers = [(i, layer) for i, layer in enumerate(arch.layers) if not isinstance(layer, Pool)]
    widths = {i: PAPER_SPACE.next_width(layer) for i, layer in layers}
    widths = {i: w for i, w in widths.items() if w is not None}
    conv = max(i for i, layer in layers if isinstance(layer, Conv))
    fc = max(i for i, layer in layers if isinstance(layer, FC))

    def wider(state: dict, g: torch.Generator, noise: float) -> tuple[Arch, dict]:
        return widen_layers(arch, state, widths, space=PAPER_SPACE, noise=noise, generator=g)

    def deeper(layer: int, kernel: int | None) -> Callable[..., tuple[Arch, dict]]:
        def step(state: dict, g: torch.Generator, noise: float) -> tuple[Arch, dict]:
            batch = probe.to(next(iter(state.values())).device)
            return net2deeper(
                arch, state, layer, kernel, batch=batch, space=PAPER_SPACE, noise=noise, generator=g
            )

        return step

    return {"wider": wider, "deeper_conv": deeper(conv, 3), "deeper_fc": deeper(fc, None)}


@torch.no_grad()
def _logits(grown: tuple[Arch, dict], probe: torch.Tensor) -> torch.Tensor:
    return build_net(*grown).eval()(probe)


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].cpu().double() - b[k].cpu().double()).abs().max()) for k in a)


def part_correctness(cfg: dict[str, Any], rows: Rows) -> None:
    device, sizes = torch.device(cfg["device"]), cfg["sizes"]
    data = load_data(cfg["data"], "cpu")
    on_device = data.to(device)
    # Trained weights and BN statistics: the start net after a short fine-tune on the device.
    net = build_net(PAPER_START, generator=gen(0), device=device)
    config = TrainConfig(epochs=epochs_for(sizes["train_steps"], data), eval_split=None)
    fine_tune(net, on_device, config, generator=gen(0), device=device)
    start = (PAPER_START, {k: v.detach() for k, v in net.state_dict().items()})
    on_cpu = (PAPER_START, {k: v.cpu() for k, v in start[1].items()})
    probe = next(iterate_batches(data.val, sizes["probe"], mean=data.mean, std=data.std))[0]
    probe_device = probe.to(device)
    rows.add(
        kind="setup",
        device=str(device),
        trained_steps=sizes["train_steps"],
        probe_images=len(probe),
        net=PAPER_START.to_string(),
    )
    clean: dict[str, float] = {}
    steps = _steps(PAPER_START, probe)
    for name, step in steps.items():
        for on in (False, True):
            try:
                with tf32(on):  # the step and both forward passes under one setting
                    grown = step(start[1], gen(1), 0.0)
                    error = float(
                        (_logits(grown, probe_device) - _logits(start, probe_device)).abs().max()
                    )
                library = max_logit_diff(build_net(*start), build_net(*grown), probe_device)
                clean[name] = clean.get(name, error)  # TF32 off comes first
                rows.add(
                    check="preservation",
                    step=name,
                    tf32=on,
                    noise=0.0,
                    net=str(grown[0]),
                    max_abs_logit_diff=error,
                    library_max_logit_diff=library,
                )
            except Exception as e:  # a failing check is a result; the part goes on
                rows.add(check="preservation", step=name, tf32=on, error=repr(e)[:500])
        try:
            with tf32(False):
                grown, cpu_grown = step(start[1], gen(1), 0.0), step(on_cpu[1], gen(1), 0.0)
                logits = _logits(grown, probe_device).cpu()
                cpu_logits = _logits(cpu_grown, probe)
            rows.add(
                check="vs_cpu",
                step=name,
                same_arch=grown[0] == cpu_grown[0],
                max_abs_weight_diff=_max_diff(grown[1], cpu_grown[1]),
                max_abs_logit_diff=float((logits - cpu_logits).abs().max()),
                cpu_preservation=float((cpu_logits - _logits(on_cpu, probe)).abs().max()),
            )
        except Exception as e:
            rows.add(check="vs_cpu", step=name, error=repr(e)[:500])
    for name, step in steps.items():
        noise = WIDER_NOISE if name == "wider" else DEEPER_NOISE
        try:
            with tf32(False):
                grown, cpu_grown = step(start[1], gen(2), noise), step(on_cpu[1], gen(2), noise)
                error = float(
                    (_logits(grown, probe_device) - _logits(start, probe_device)).abs().max()
                )
            rows.add(
                check="noisy",
                step=name,
                noise=noise,
                max_abs_logit_diff=error,
                clean_max_abs_logit_diff=clean.get(name),
                perturbs=error > max(10 * clean.get(name, 0.0), 1e-6),
                max_abs_weight_diff_vs_cpu=_max_diff(grown[1], cpu_grown[1]),
            )
        except Exception as e:
            rows.add(check="noisy", step=name, noise=noise, error=repr(e)[:500])
    _augmentation(data, on_device, sizes["aug_batches"], rows)
    _default_device(device, on_cpu, steps, rows)


def _default_device(device: torch.device, on_cpu: tuple, steps: dict, rows: Rows) -> None:
    """A script's ``torch.set_default_device`` (here the device) moves none of the CPU draws."""
    for name, step in steps.items():
        noise = WIDER_NOISE if name == "wider" else DEEPER_NOISE
        try:
            arch, expected = step(on_cpu[1], gen(2), noise)
            with device:
                _, got = step(on_cpu[1], gen(2), noise)
            rows.add(
                check="default_device",
                step=name,
                device=str(device),
                net=str(arch),
                equal=all(torch.equal(got[k], expected[k]) for k in expected),
                devices=sorted({str(v.device) for v in got.values()}),
            )
        except Exception as e:  # torch raises where a CPU generator meets a GPU default device
            rows.add(check="default_device", step=name, device=str(device), error=repr(e)[:500])
    try:
        fresh = build_net(PAPER_START, generator=gen(0)).state_dict()
        with device:
            fresh_here = build_net(PAPER_START, generator=gen(0)).state_dict()
        equal = all(torch.equal(fresh_here[k], fresh[k]) for k in fresh)
        rows.add(check="default_device", step="fresh net", device=str(device), equal=equal)
    except Exception as e:
        rows.add(check="default_device", step="fresh net", device=str(device), error=repr(e)[:500])


def _augmentation(data: DataBundle, on_device: DataBundle, batches: int, rows: Rows) -> None:
    """Shuffled, augmented batches from one seed: the CPU's and the device's, compared."""
    kwargs = {"mean": data.mean, "std": data.std, "shuffle": True, "augment": True}
    kwargs["drop_last"] = True
    pairs = zip(
        iterate_batches(data.train, 64, generator=gen(3), **kwargs),
        iterate_batches(on_device.train, 64, generator=gen(3), **kwargs),
        strict=True,
    )
    images = labels = True
    worst, count = 0.0, 0
    for (x_cpu, y_cpu), (x_dev, y_dev) in pairs:
        x_dev, y_dev = x_dev.cpu(), y_dev.cpu()
        images &= torch.equal(x_cpu, x_dev)
        labels &= torch.equal(y_cpu, y_dev)
        worst = max(worst, float((x_cpu - x_dev).abs().max()))
        count += 1
        if count == batches:
            break
    rows.add(
        check="augmentation",
        batches=count,
        device=str(on_device.device),
        images_equal=images,
        labels_equal=labels,
        max_abs_diff=worst,
    )
