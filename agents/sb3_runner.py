"""Run an SB3 baseline into a run folder (see :mod:`agents.runner`), saving after each rollout.

A rollout holds one whole episode per environment, so after each rollout the model's parameters
(``model.get_parameters()``: policy and optimiser tensors), its step count and every child record
are saved to ``sb3_state.pt``, read back with ``torch.load(weights_only=True)``: a file from
elsewhere cannot run code. (SB3's own ``.zip`` format unpickles objects on load, so eas-gym
writes ``sb3_model.zip`` for users but never reads it.) A rerun rebuilds the model from the run's
settings, loads those parameters and learns for the rest of the budget; children trained before
the stop are found in the store.

A resumed run equals an uninterrupted one (on the CPU, SB3's default here; a policy on a GPU
gets its CUDA generators restored too, not yet checked on one). A checkpoint is taken
between rollouts, where SB3's rollout buffer is empty, so what must be restored is the global
generators SB3 draws from (Python's, numpy's, torch's CPU one), its update count and episode-info
window, and the envs' state: every episode is reset with the seed a protocol agent's episode of
that update gets (:func:`~agents.run_folder.episode_seed`), so env ``i`` of update ``u`` starts
alike in both runs (and as the protocol agents' episodes do: common random numbers across
agents). Checkpoints written before this (2026-12-05) hold no generator states; their runs resume
as before, close to but not equal to an uninterrupted run, and the resume line says so.

Each rollout also writes a line to ``metrics.jsonl`` (:mod:`agents.metrics_log`): SB3's own
``train/...`` values of the update that followed it, and the rollout's networks' accuracies,
size and times, as a protocol agent's search writes them. With ``--tensorboard`` these lines
go to ``OUT/tensorboard`` as a protocol agent's do (step: networks so far), and SB3's own logger
writes its event files beside them (``OUT/tensorboard/PPO_0``, step: timesteps).
"""

from __future__ import annotations

import math
import random
import sys
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from tqdm.auto import tqdm

from agents.checks import warn_illegal
from agents.metrics_log import MetricsLog, update_metrics
from agents.progress import SearchProgress
from agents.registry import AgentSpec
from agents.run_folder import (
    RECHECK_UPDATE_OFFSET,
    checkpoint_children,
    child_record,
    episode_seed,
    finished_records,
    load_checkpoint,
    records_text,
    repair_jsonl,
    save_checkpoint,
    save_recheck,
)
from agents.sb3 import make_sb3_model, make_sb3_vec_env

__all__ = ["run_sb3", "recheck_sb3"]

_STATE = "sb3_state.pt"


class _SeededEpisodes(gym.Wrapper):
    """Resets env `index`'s episodes with the protocol's seeds, update after update.

    Its k-th reset gets ``episode_seed(run_seed, first_update + k, batch) + index`` whatever
    seed the caller passes (SB3's ``VecEnv`` passes one only at its first reset), so an episode's
    start depends on its update alone, not on the episodes before it.
    """

    def __init__(self, env: gym.Env, run_seed: int, index: int, batch: int, first_update: int):
        super().__init__(env)
        self.run_seed, self.index, self.batch, self.update = run_seed, index, batch, first_update

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        seed = episode_seed(self.run_seed, self.update, self.batch) + self.index
        self.update += 1
        return self.env.reset(seed=seed, options=options)


def _generator_states() -> dict[str, Any]:
    """Python's, numpy's and torch's global generators (CUDA's too, once used), as plain data."""
    kind, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, python, python_gauss = random.getstate()
    states = {
        "python": [version, list(python), python_gauss],
        "numpy": [kind, np.asarray(key).tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_initialized():  # a policy on a GPU samples its actions there
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_generator_states(states: dict[str, Any]) -> None:
    version, python, python_gauss = states["python"]
    random.setstate((version, tuple(python), python_gauss))
    kind, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        # as many GPUs as this machine shows (CUDA_VISIBLE_DEVICES may show fewer than before)
        for index, state in enumerate(states["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)


class _RecordChildren(BaseCallback):
    """Records each finished episode's network; saves the model after each rollout."""

    def __init__(
        self,
        out: Path,
        children: list[dict[str, Any]],
        batch: int,
        log: MetricsLog,
        update: int,
        progress: SearchProgress | None = None,
    ) -> None:
        super().__init__()
        self.out, self.children, self.batch, self.progress = out, children, batch, progress
        self.illegal = np.zeros(batch, dtype=int)  # per environment, in its running episode
        self.actions: list[list[list[int]]] = [[] for _ in range(batch)]  # likewise
        self.log, self.update, self.saved_nets = log, update, len(children)
        self.last_line: dict[str, Any] | None = None
        self.text, self.written = records_text(children), len(children)  # the checkpoint's

    def _on_step(self) -> bool:
        infos, dones = self.locals["infos"], self.locals["dones"]
        taken = self.locals.get("clipped_actions", self.locals["actions"])  # what the envs got
        for i, (info, done) in enumerate(zip(infos, dones, strict=True)):
            self.illegal[i] += bool(info.get("illegal_action", False))
            self.actions[i].append(np.asarray(taken[i]).reshape(-1).tolist())
            if done:
                update = len(self.children) // self.batch
                provenance = self.training_env.get_attr("last_episode_provenance", indices=i)[0]
                self.children.append(
                    child_record(
                        update,
                        i,
                        info,
                        info["episode"]["r"],
                        provenance,
                        self.actions[i],
                        self.illegal[i],
                    )
                )
                self.illegal[i], self.actions[i] = 0, []
                if self.progress is not None:
                    self.progress.network_done(info)
        return True

    def _on_rollout_start(self) -> None:
        # The previous rollout's update has been applied by now (on_rollout_end comes before it).
        if self.num_timesteps > 0:
            self._save()

    def _on_training_end(self) -> None:
        self._save()

    def _save(self) -> None:
        batch = self.children[self.saved_nets :]
        line = None
        if batch:  # SB3's train/... values of the update just applied, not yet dumped
            trained = {
                k: float(v)
                for k, v in self.model.logger.name_to_value.items()
                if k.startswith("train/") and isinstance(v, int | float)
            }
            line = update_metrics(self.update, batch, self.children, trained, *self.log.lap())
        added = records_text(self.children[self.written :])
        self.text, self.written = self.text + added, len(self.children)
        state = {
            "params": self.model.get_parameters(),
            "num_timesteps": self.model.num_timesteps,
            "nets": len(self.children),
            "children_jsonl": self.text,
            "update": self.update + (line is not None),
            "log": line if line is not None else self.last_line,
            # between rollouts, SB3's buffer is empty: these and the seeds are all it draws from
            "generators": _generator_states(),
            "n_updates": int(self.model._n_updates),
            "ep_info_buffer": list(self.model.ep_info_buffer or ()),
            "ep_success_buffer": [bool(x) for x in self.model.ep_success_buffer or ()],
        }
        save_checkpoint(state, self.out / _STATE)
        with open(self.out / "children.jsonl", "a", encoding="utf-8") as records:
            records.write(added)
        self.model.save(self.out / "sb3_model.zip")  # for users; never loaded by eas-gym
        if line is not None:
            self.log.write(line)
            self.update, self.saved_nets, self.last_line = self.update + 1, len(self.children), line


def _model(
    spec: AgentSpec,
    venv: VecEnv,
    seed: int,
    saved: dict[str, Any] | None,
    tensorboard_log: str | None = None,
):
    options = dict(spec.options)
    if tensorboard_log is not None:
        options.setdefault("tensorboard_log", tensorboard_log)
    model = make_sb3_model(spec.name, venv, seed=seed, **options)
    if saved is not None:
        model.set_parameters(saved["params"], exact_match=True)
        model.num_timesteps = int(saved["num_timesteps"])
        if "generators" in saved:  # a checkpoint of 2026-12-05 on: the rest runs as it would have
            model._n_updates = int(saved["n_updates"])
            window = model._stats_window_size
            model.ep_info_buffer = deque(saved["ep_info_buffer"], maxlen=window)
            model.ep_success_buffer = deque(saved["ep_success_buffer"], maxlen=window)
    return model


def run_sb3(
    args: Any, spec: AgentSpec, out: Path, env_kwargs: dict[str, Any]
) -> list[dict[str, Any]]:
    """Train ``spec`` (ppo, a2c or maskable-ppo) until ``args.nets`` networks are sampled."""
    total = math.ceil(args.nets / args.batch) * args.batch
    saved = load_checkpoint(out / _STATE)
    if saved is None and (kept := finished_records(out / "children.jsonl", total)):
        return kept  # a finished run kept without its .pt file (study data)
    children = [] if saved is None else checkpoint_children(saved, out / _STATE) or []
    venv = make_sb3_vec_env(args.env_id, args.batch, seed=args.seed, env_kwargs=env_kwargs)
    assert isinstance(venv, DummyVecEnv)  # run_search refuses SB3 agents with workers
    first_update = len(children) // args.batch
    venv.envs = [
        _SeededEpisodes(env, args.seed, i, args.batch, first_update)
        for i, env in enumerate(venv.envs)
    ]
    episode_length = len(venv.get_attr("schedule", indices=0)[0])
    tensorboard_log = str(out / "tensorboard") if getattr(args, "tensorboard", False) else None
    model = _model(spec, venv, args.seed, saved, tensorboard_log)
    repair_jsonl(out / "children.jsonl", children)
    exact = saved is None or "generators" in saved
    if saved is not None and len(children) < total:
        print(
            f"resuming {out}: {len(children)} of {total} networks done"
            + ("" if exact else " (its checkpoint predates exact SB3 resumes: the rest differs)"),
            file=sys.stderr,
        )
    if saved is not None and "generators" in saved:  # last: building the model drew from them
        _set_generator_states(saved["generators"])
    done = 0 if saved is None else int(saved.get("update", 0))
    last = None if saved is None else saved.get("log")
    unfinished = len(children) < total  # a finished search writes no (empty) event file
    tensorboard = unfinished and bool(getattr(args, "tensorboard", False))
    log = MetricsLog(out, done, last, tensorboard=tensorboard)
    if len(children) < total:
        bar = tqdm(
            total=total,
            initial=len(children),
            desc=f"{spec.label()} seed {args.seed}",
            unit="net",
            disable=not getattr(args, "progress", True),
            dynamic_ncols=True,
        )
        progress = SearchProgress(bar, children)  # the protocol search's bar: nets, best, rate
        recorder = _RecordChildren(out, children, args.batch, log, done, progress)
        recorder.last_line = None if saved is None else saved.get("log")
        try:
            model.learn(
                total_timesteps=(total - len(children)) * episode_length,
                callback=recorder,
                reset_num_timesteps=False,
                progress_bar=False,
            )
        finally:
            progress.close()
    log.close()
    venv.close()
    warn_illegal(spec.label(), children)  # ppo and a2c see no masks: say what that cost
    return children


def recheck_sb3(
    args: Any,
    spec: AgentSpec,
    out: Path,
    env_kwargs: dict[str, Any],
    episodes: int,
    batch: int,
) -> list[dict[str, Any]]:
    """Fresh episodes from the finished model's stochastic policy (see ``run_recheck``).

    ``run_recheck`` has already returned a finished recheck kept without its ``.pt`` file.
    """
    episodes = math.ceil(episodes / batch) * batch
    previous = load_checkpoint(out / "recheck.pt")
    saved = load_checkpoint(out / _STATE)
    total = math.ceil(args.nets / args.batch) * args.batch
    if saved is None or saved["nets"] < total:
        raise ValueError(f"the search in {out} has not finished; run it before its recheck")
    venv = make_sb3_vec_env(args.env_id, batch, seed=args.seed, env_kwargs=env_kwargs)
    model = _model(spec, venv, args.seed, saved)
    episode_length = len(venv.get_attr("schedule", indices=0)[0])
    records: list[dict[str, Any]] = []
    start = 0
    if previous is not None and previous.get("episodes") == episodes:
        records, start = list(previous["records"]), previous["batches"]
    masked = spec.name == "maskable-ppo"
    try:
        for j in range(start, math.ceil(episodes / batch)):
            model.set_random_seed(episode_seed(args.seed, RECHECK_UPDATE_OFFSET + j, batch))
            venv.seed(episode_seed(args.seed, RECHECK_UPDATE_OFFSET + j, batch))
            obs = venv.reset()
            returns = np.zeros(batch)
            illegal = np.zeros(batch, dtype=int)
            for _ in range(episode_length):
                kwargs = {}
                if masked:
                    kwargs["action_masks"] = np.stack(venv.env_method("action_masks"))
                actions, _ = model.predict(obs, deterministic=False, **kwargs)
                obs, rewards, dones, infos = venv.step(actions)
                returns += rewards
                illegal += [bool(info.get("illegal_action", False)) for info in infos]
            provenance = venv.get_attr("last_episode_provenance")
            records += [
                child_record(j, i, infos[i], returns[i], provenance[i], (), illegal[i])
                for i in range(batch)
            ]
            save_recheck(out, records, j + 1, episodes)
    finally:
        venv.close()
    return records
