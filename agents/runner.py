"""Run a search into a run folder that survives interruption, and re-evaluate its final policy.

A run folder (see :mod:`agents.run_folder`) holds the settings, the agent's checkpoint with every
child record, ``children.jsonl``, the evaluation store (unless ``store`` points elsewhere),
``best/`` (``eas_gym.load_model(run / "best")``) and ``search.png`` (:mod:`agents.summary`).

Protocol agents (:class:`agents.base.Agent`) checkpoint after every update of ``batch``
networks, and each update's environments are seeded from ``(seed, update)``. Rerunning an
interrupted search restores the agent and repeats the unfinished update; its children are found
in the store (not trained again), so the result equals that of an uninterrupted run.

:func:`run_recheck` is the honest re-evaluation: fresh episodes from the finished search's final
policy, with new environment seeds and ``cache=False``, so every child is fine-tuned afresh and
none is read from the store. With a protocol agent it asks the agent's optional ``recommend``
hook (:mod:`agents.base`), else samples with ``act``. Each update's metrics go to
``metrics.jsonl`` (and TensorBoard with ``tensorboard=True``: :mod:`agents.metrics_log`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from agents.base import Agent, InfoObserver, Recommender, SimulatorUser
from agents.checks import RunChecks, check_actions, check_agent, check_env_args, make_agent
from agents.executors import check_executor, make_envs
from agents.metrics_log import AgentClock, MetricsLog, check_tensorboard, update_metrics
from agents.progress import SearchProgress
from agents.registry import AGENTS, AgentSpec, load_agent_class, parse_agent_spec
from agents.replay import load_replay, seed_store
from agents.run_folder import (
    RECHECK_UPDATE_OFFSET,
    check_config,
    child_record,
    episode_seed,
    finished_records,
    hold_run_folder,
    load_checkpoint,
    read_children,
    record_device_key,
    records_text,
    repair_jsonl,
    restore_search,
    save_checkpoint,
    save_recheck,
)
from agents.search_args import SearchArgs, check_search_numbers
from agents.summary import export_best, plot_search, read_summary

__all__ = [
    "AGENTS",
    "SearchArgs",
    "check_env_args",
    "episode_seed",
    "is_weightless",
    "load_agent_class",
    "read_children",
    "read_summary",
    "resolve_agent",
    "run_recheck",
    "run_search",
]


def resolve_agent(args: SearchArgs) -> AgentSpec:
    """The agent spec of `args` (name and options), checked; ValueError if it is not valid."""
    extra = [f"{k}={json.dumps(v)}" for k, v in args.agent_options.items()]
    return parse_agent_spec(args.agent, extra)


def run_search(args: SearchArgs) -> list[dict[str, Any]]:
    """Run (or resume, or extend) a search; returns every sampled network's record."""
    check_search_numbers(args.nets, args.batch, args.seed)  # the fields may have been set since
    spec = resolve_agent(args)  # fail before creating the run folder
    check_executor(args, spec)
    check_env_args(args.env_id, args.env_kwargs)
    if args.tensorboard:
        check_tensorboard()
    args.env_kwargs = absolute_dataset_path(args.env_kwargs)
    check_agent(  # option values too, before config.json is written
        spec, args.env_id, args.env_kwargs, seed=args.seed, nets=args.nets, batch=args.batch
    )
    out = Path(args.out)
    with hold_run_folder(out):
        check_config(out, _config_record(args, spec))
        store = args.store or str(out / "store.sqlite")
        env_kwargs = {"store": store, "keep_weights": True, **args.env_kwargs}
        if spec.is_sb3:
            from agents.sb3_runner import run_sb3

            children = run_sb3(args, spec, out, env_kwargs)
        else:
            children = _run_protocol(args, spec, out, env_kwargs)
        total = math.ceil(args.nets / args.batch) * args.batch
        if len(children) > total:  # a search only grows: its records stay as they are
            warnings.warn(
                f"{out} already holds {len(children)} networks, more than the {total} asked "
                f"for: nothing was run, and all {len(children)} are kept and reported",
                stacklevel=2,
            )
        start_accuracy = export_best(children, out, store)
        title = f"{spec.label()} on {args.env_id}"
        plot_search(children, out / "search.png", title, start_accuracy)
    return children


def run_recheck(args: SearchArgs, episodes: int) -> list[dict[str, Any]]:
    """`episodes` fresh episodes from a finished search's final policy, never read from the store.

    The agent is restored from the search's last checkpoint and acts without learning (no
    ``update``): through its ``recommend`` hook, its best guess, if it has one, else by sampling
    with ``act`` (see :mod:`agents.base`); the environments get seeds no search update uses and
    ``cache=False``, so every child is fine-tuned again with new seeds. `episodes` is rounded up
    to whole batches of ``min(args.batch, episodes)``. Records go to ``recheck.jsonl``
    (resumable per batch).

    Raises:
        ValueError: `episodes` < 1, or the search in ``args.out`` has not finished.
    """
    if episodes < 1:
        raise ValueError(f"Expected `episodes` >= 1 for a recheck, actually: {episodes}")
    spec = resolve_agent(args)
    out = Path(args.out)
    batch = min(args.batch, episodes)
    episodes = math.ceil(episodes / batch) * batch  # whole batches, as `nets`
    env_kwargs = {
        "store": args.store or str(out / "store.sqlite"),
        **args.env_kwargs,
        "cache": False,
    }
    if not out.is_dir():
        raise ValueError(f"the search in {out} has not finished; run it before its recheck")
    with hold_run_folder(out):
        if not (out / "recheck.pt").exists():  # a finished recheck kept without its .pt file
            if kept := finished_records(out / "recheck.jsonl", episodes):
                return kept
        if spec.is_sb3:
            from agents.sb3_runner import recheck_sb3

            return recheck_sb3(args, spec, out, env_kwargs, episodes, batch)
        return _recheck_protocol(args, spec, out, env_kwargs, episodes, batch)


def _recheck_protocol(
    args: SearchArgs,
    spec: AgentSpec,
    out: Path,
    env_kwargs: dict[str, Any],
    episodes: int,
    batch: int,
) -> list[dict[str, Any]]:
    saved = load_checkpoint(out / "recheck.pt")
    final = load_checkpoint(out / "checkpoint.pt")
    if final is None or final["update"] < math.ceil(args.nets / args.batch):
        raise ValueError(f"the search in {out} has not finished; run it before its recheck")
    agent = _make_agent(spec, _spaces(args, env_kwargs), args.seed, args)
    if saved is not None and saved.get("episodes") == episodes:
        agent.load_state_dict(saved["agent"])
        records, done = list(saved["records"]), saved["batches"]
    else:
        agent.load_state_dict(final["agent"])
        records, done = [], 0
    repair_jsonl(out / "recheck.jsonl", records)
    if done >= episodes // batch:
        return records
    envs = make_envs(args, out, env_kwargs, num_envs=batch)
    try:
        for j in range(done, episodes // batch):
            seed = episode_seed(args.seed, RECHECK_UPDATE_OFFSET + j, batch)
            records += _run_batch(envs, agent, seed, update=j, recommend=True)
            save_recheck(out, records, j + 1, episodes, agent=agent.state_dict())
    finally:
        envs.close()
    return records


def _config_record(args: SearchArgs, spec: AgentSpec) -> dict[str, Any]:
    from eas_gym.data import dataset_identity
    from eas_gym.own_data import is_own_dataset

    record = dataclasses.asdict(args)
    record["agent"], record["agent_options"] = spec.name, spec.options
    record["device_key"] = _device_key(args.env_id, args.env_kwargs)
    dataset = args.env_kwargs.get("dataset")
    if isinstance(dataset, str) and is_own_dataset(dataset):
        # a resume compares the data, not the path: an edited file is refused, a moved one is not
        record["dataset_identity"] = dataset_identity(dataset)
    if _evaluator(args.env_id, args.env_kwargs) == "bench":
        from eas_gym.bench import default_model_digest

        # a resume under a refitted model would mix two benchmarks' accuracies in one search
        record["bench_model"] = default_model_digest()
    return record


def _evaluator(env_id: str, env_kwargs: dict[str, Any]) -> str:
    import gymnasium as gym

    return str({**gym.spec(env_id).kwargs, **env_kwargs}.get("evaluator", "train"))


def _device_key(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """The numerics the search's children are keyed under (``"cpu"``, ``"cuda-fp32"``).

    As its envs resolve ``device`` here (worker processes on several GPUs get ``cuda:k``, the
    same kind); a reader on another kind of machine looks its rows up under it.
    """
    import gymnasium as gym

    from eas_gym.data import resolve_device
    from eas_gym.eval_config import device_key

    device = {**gym.spec(env_id).kwargs, **env_kwargs}.get("device", "auto")
    return device_key(resolve_device(device).type)


def absolute_dataset_path(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """`env_kwargs` with a path to your own dataset made absolute (run folders, other dirs)."""
    from eas_gym.own_data import is_own_dataset

    dataset = env_kwargs.get("dataset")
    if not (isinstance(dataset, str) and is_own_dataset(dataset)):
        return env_kwargs
    return {**env_kwargs, "dataset": str(Path(dataset).expanduser().resolve())}


def _spaces(args: SearchArgs, env_kwargs: dict[str, Any]) -> Any:
    """An object with the single env's spaces (built without loading data or workers)."""
    import gymnasium as gym

    env = gym.make(args.env_id, **env_kwargs)
    spaces = type("Spaces", (), {})()
    spaces.single_observation_space = env.observation_space
    spaces.single_action_space = env.action_space
    env.close()
    return spaces


def _make_agent(spec: AgentSpec, envs: Any, seed: int, args: SearchArgs | None = None) -> Agent:
    """The agent on `envs`' spaces; given the run's `args`, with a simulator if it uses one."""
    agent = make_agent(spec, envs.single_observation_space, envs.single_action_space, seed)
    if args is not None and isinstance(agent, SimulatorUser):
        agent.use_simulator(functools.partial(make_simulator, args.env_id, args.env_kwargs))
    return agent


def make_simulator(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """The run's env with the weightless surrogate evaluator and a private store.

    Its networks, masks and observations follow the same actions as the run's env (the
    architecture does not depend on the weights), and nothing is trained or written.
    """
    import gymnasium as gym

    kwargs = {**env_kwargs, "evaluator": "surrogate", "store": ":memory:"}
    kwargs.pop("keep_weights", None)
    return gym.make(env_id, **kwargs)


def _run_protocol(
    args: SearchArgs, spec: AgentSpec, out: Path, env_kwargs: dict[str, Any]
) -> list[dict[str, Any]]:
    num_updates = math.ceil(args.nets / args.batch)
    spaces = _spaces(args, env_kwargs)
    agent = _make_agent(spec, spaces, args.seed, args)
    done, children = restore_search(agent, out, args.batch, num_updates)
    if done >= num_updates:  # finished: no environments (nor worker processes) needed
        return children
    text = records_text(children)  # the checkpoint's copy, extended by each update
    saved = load_checkpoint(out / "checkpoint.pt") if done else None
    log = MetricsLog(out, done, (saved or {}).get("log"), tensorboard=args.tensorboard)
    weightless = is_weightless(args.env_id, env_kwargs)
    replay = load_replay(out)
    if replay is not None and len(children) < len(replay.records):
        seeded = seed_store(replay, args.env_id, env_kwargs)
        print(
            f"{out}: starting again from its seed; {seeded} of its {len(replay.records)} earlier "
            f"networks ({replay.source.name}) are served from their records, not retrained",
            file=sys.stderr,
        )
    envs = make_envs(args, out, env_kwargs, num_envs=args.batch)
    if not weightless:  # Ray actors (or worker processes) may train on another kind of device
        record_device_key(out, (c.device_type for c in envs.get_attr("eval_config")))
    total = num_updates * args.batch
    bar = tqdm(
        total=total,
        initial=len(children),
        desc=f"{spec.label()} seed {args.seed}",
        unit="net",
        disable=not args.progress,
        dynamic_ncols=True,
    )
    if children and len(children) < total:
        bar.write(f"resuming {out}: {len(children)} of {total} networks done", file=sys.stderr)
    progress = SearchProgress(bar, children)
    in_turn = hasattr(envs, "envs")  # a SyncVectorEnv: count each network as it is scored
    if in_turn:
        for env in envs.envs:
            env.unwrapped.on_episode_end = progress.network_done
    elif _one_row_per_network(args.env_id, env_kwargs):  # workers: count their store rows
        progress.watch_store(env_kwargs["store"])
    checks = RunChecks(spec.label(), lambda: _make_agent(spec, spaces, args.seed, args))
    clock = AgentClock()
    try:
        for update in range(done, num_updates):
            log.lap()  # the update's clock starts
            status = "" if in_turn else f"scoring {args.batch} networks side by side"
            if not children and not weightless:
                status = "training (or loading) the start network" + (
                    f", then {status}" if status else ""
                )
            if status:
                progress.status(status)
            seed = episode_seed(args.seed, update, args.batch)
            progress.batch_started(args.batch)
            batch = _run_batch(envs, agent, seed, update, checks.first_step(update), clock=clock)
            if replay is not None:
                batch = replay.restore(batch, len(children))
            checks.episodes_done(batch)
            with clock.timing():
                metrics = checks.metrics(agent.update())
            state = agent.state_dict()
            checks.checkpoint(state, update + 1)
            children += batch
            line = update_metrics(update, batch, children, metrics, *log.lap(), clock.lap())
            kept = {"agent": state, "update": update + 1, "metrics": metrics, "log": line}
            added = records_text(batch)
            text += added
            save_checkpoint({**kept, "children_jsonl": text}, out / "checkpoint.pt")
            with open(out / "children.jsonl", "a", encoding="utf-8") as records:
                records.write(added)
            log.write(line)
            progress.batch_done(children)
    finally:
        log.close()
        progress.close()
        envs.close()
    return children


def _one_row_per_network(env_id: str, env_kwargs: dict[str, Any]) -> bool:
    """Whether each finished network adds one row to a store file (sparse reward, cached)."""
    import gymnasium as gym

    kwargs = {**gym.spec(env_id).kwargs, **env_kwargs}
    store = str(kwargs.get("store", ""))
    return (
        kwargs.get("reward_mode", "dense") == "sparse"
        and kwargs.get("cache", True)
        and not is_weightless(env_id, env_kwargs)
        and store not in ("", ":memory:")
        and not store.startswith("ray-store:")
    )


def is_weightless(env_id: str, env_kwargs: dict[str, Any]) -> bool:
    """Whether the env's evaluator needs no weights (no start network is trained)."""
    import gymnasium as gym

    from eas_gym.eval_config import WEIGHTLESS_EVALUATORS

    kwargs = {**gym.spec(env_id).kwargs, **env_kwargs}
    return kwargs.get("evaluator", "train") in WEIGHTLESS_EVALUATORS


def _run_batch(
    envs,
    agent: Agent,
    seed: int,
    update: int,
    first_step: Callable[..., None] | None = None,
    *,
    recommend: bool = False,
    clock: AgentClock | None = None,
) -> list[dict[str, Any]]:
    """One episode in every environment; returns the final networks' records.

    `first_step`, if given, is called with the first step's observations, masks and actions.
    After each step the agent's optional ``observe_info`` hook gets the step's vector ``infos``.
    With `recommend`, an agent's optional ``recommend`` hook chooses the actions instead of
    ``act`` (see :mod:`agents.base`). `clock`, if given, counts the agent's CPU time.
    """
    obs, infos = envs.reset(seed=seed)
    num_envs = envs.num_envs
    returns = np.zeros(num_envs)
    illegal = np.zeros(num_envs, dtype=int)
    terminated = np.zeros(num_envs, dtype=bool)
    taken: list[np.ndarray] = []  # (num_envs, action entries) per step
    choose = agent.recommend if recommend and isinstance(agent, Recommender) else agent.act
    observe_info = agent.observe_info if isinstance(agent, InfoObserver) else None
    timing = clock.timing if clock is not None else contextlib.nullcontext
    while not terminated.all():
        masks = np.stack([np.concatenate(m) for m in infos["action_mask"]]).astype(bool)
        with timing():
            actions = check_actions(choose(obs, masks), envs.action_space, envs.single_action_space)
        if first_step is not None and not taken:
            first_step(obs, masks, actions)
        taken.append(actions)
        obs, rewards, terminated, truncated, infos = envs.step(actions)
        with timing():
            agent.observe(rewards, terminated)
            if observe_info is not None:
                observe_info(infos)
        returns += rewards
        illegal += np.asarray(infos.get("illegal_action", np.zeros(num_envs)), dtype=int)
    provenance = envs.get_attr("last_episode_provenance")
    keys = ("net", "accuracy", "params", "flops", "lineage")
    return [
        child_record(
            update,
            i,
            {k: infos[k][i] for k in keys},
            returns[i],
            provenance[i],
            [step[i].tolist() for step in taken],
            illegal[i],
        )
        for i in range(num_envs)
    ]
