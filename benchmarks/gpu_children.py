"""The GPU suite's parts with many children: processes side by side, and a REINFORCE search."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from gpu_common import Rows, epochs_for, gen, load_data

from eas_gym.arch import PAPER_START
from eas_gym.net import build_net
from eas_gym.train import SEARCH_CONFIG, fine_tune

# ---- (5) many children at once -------------------------------------------------------------


def _worker(index: int, cfg: dict[str, Any], commands: Any, results: Any) -> None:
    """One process fine-tuning the start net in chunks whenever told, for the seconds told."""
    from eas_gym.vector import apply_worker_settings

    apply_worker_settings(cfg["device"], cfg["threads"], cfg["sharing"])
    device = torch.device(cfg["device"])
    data = load_data(cfg["data"], device)
    net = build_net(PAPER_START, generator=gen(index), device=device)
    chunk = dataclasses.replace(SEARCH_CONFIG, epochs=cfg["chunk_epochs"], eval_split=None)
    warm = dataclasses.replace(chunk, epochs=epochs_for(5, data))
    fine_tune(net, data, warm, generator=gen(index), device=device)  # CUDA context, autotune
    results.put(("ready", index, None))
    while (command := commands.get()) is not None:
        start_at, seconds = command
        time.sleep(max(0.0, start_at - time.time()))
        begin, images, chunks = time.time(), 0, 0
        while time.time() - begin < seconds:
            result = fine_tune(net, data, chunk, generator=gen(chunks), device=device)
            images += result.steps * chunk.batch_size
            chunks += 1
        results.put(("done", index, {"images": images, "begin": begin, "end": time.time()}))


def _receive(results: Any, procs: list, deadline: float) -> tuple:
    """The next message from the workers; RuntimeError as soon as one of them has died."""
    while time.time() < deadline:
        try:
            return results.get(timeout=0.5)
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode is not None]
            if dead:
                raise RuntimeError(f"a worker process exited with {dead[0]}") from None
    raise TimeoutError("the workers did not answer before the part's limit")


def part_workers(cfg: dict[str, Any], rows: Rows) -> None:
    """Processes added in stages (1, then up to 4, then 8): each stage's row is written at once.

    Every process keeps ``0.95 / most`` of the GPU's memory and ``cores / most`` threads from
    the start (eas_gym.vector's settings for that many workers), so the stages differ only in
    how many of them train.
    """
    from eas_gym.vector import worker_threads

    sizes, counts = cfg["sizes"], sorted(cfg["sizes"]["counts"])
    most = max(counts)
    context = mp.get_context("spawn")  # as make_vector_env: CUDA cannot be forked
    commands = [context.Queue() for _ in range(most)]
    results = context.Queue()
    worker_cfg = {
        **{k: cfg[k] for k in ("device", "data")},
        "threads": worker_threads(most),
        "sharing": most,
        "chunk_epochs": sizes["chunk_epochs"],
    }
    procs: list[Any] = []
    ready = 0
    try:
        for stage, count in enumerate(counts):
            started = time.time()
            while len(procs) < count:
                i = len(procs)
                args = (i, worker_cfg, commands[i], results)
                procs.append(context.Process(target=_worker, args=args, daemon=True))
                procs[-1].start()
            while ready < count:
                _receive(results, procs, cfg["deadline"])
                ready += 1
            startup = time.time() - started
            # what is left, shared with the later stages (each about as slow to start as this)
            later = len(counts) - stage - 1
            left = cfg["deadline"] - time.time() - 3 - later * startup
            seconds = min(sizes["seconds"], left / (later + 1) - 1)
            if seconds < 0.5:
                rows.add(processes=count, skipped="time limit", startup_seconds=startup)
                continue
            start_at = time.time() + 0.3
            for command in commands[:count]:
                command.put((start_at, seconds))
            done = [_receive(results, procs, cfg["deadline"])[2] for _ in range(count)]
            wall = max(d["end"] for d in done) - min(d["begin"] for d in done)
            images = sum(d["images"] for d in done)
            rows.add(
                processes=count,
                net=PAPER_START.to_string(),
                seconds=wall,
                images=images,
                images_per_second=round(images / wall),
                per_process=[round(d["images"] / (d["end"] - d["begin"])) for d in done],
                startup_seconds=startup,
                threads_each=worker_cfg["threads"],
                memory_share=round(0.95 / most, 3),
            )
    finally:
        for command in commands[: len(procs)]:
            command.put(None)
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


# ---- (6) a REINFORCE search ----------------------------------------------------------------


def part_search(cfg: dict[str, Any], rows: Rows) -> None:
    from agents.runner import SearchArgs, run_search

    sizes = cfg["sizes"]
    env_sizes = {k: v for k, v in cfg["data"]["sizes"].items() if k != "test_size"}
    kwargs = {"dataset": cfg["data"]["dataset"], **env_sizes, "device": cfg["device"]}
    kwargs.update(epochs=sizes["epochs"], start_epochs=sizes["start_epochs"])
    if "schedule" in sizes:
        kwargs["schedule"] = sizes["schedule"]
    run = Path(cfg["scratch"]) / "search"
    rows.add(
        kind="plan",
        env="EAS-CIFAR10-v0",
        agent="reinforce",
        batch=sizes["batch"],
        env_kwargs=kwargs,
        asynchronous=sizes["asynchronous"],
    )
    begin, last = time.perf_counter(), 0.0
    for nets in sizes["nets"]:
        if last and time.time() + 1.5 * last > cfg["deadline"]:
            rows.add(kind="update", nets=nets, skipped="time limit")
            break
        start = time.perf_counter()
        args = SearchArgs(
            env_id="EAS-CIFAR10-v0",
            agent="reinforce",
            nets=nets,
            batch=sizes["batch"],
            out=str(run),
            env_kwargs=dict(kwargs),
            asynchronous=sizes["asynchronous"],
            progress=False,
        )
        children = run_search(args)
        last = time.perf_counter() - start
        trained = [c for c in children if not c["cache_hit"]]
        best = max(children, key=lambda c: c["accuracy"])
        rows.add(  # over all the networks so far
            kind="update",
            nets=len(children),
            seconds=last,
            total_seconds=time.perf_counter() - begin,
            start_accuracy=children[0].get("start_accuracy"),
            best={k: best[k] for k in ("net", "accuracy", "params")},
            mean_accuracy=sum(c["accuracy"] for c in children) / len(children),
            trained=len(trained),
            mean_child_train_seconds=sum(c["train_seconds"] for c in trained)
            / max(1, len(trained)),
        )
        if (run / "search.png").exists():
            shutil.copyfile(run / "search.png", Path(cfg["out"]) / "search.png")
