"""``eas-gym check-agent``: does an agent keep the contract, checked by running it.

Four checks, each a one-line verdict (:class:`Verdict`), on a cheap env (the surrogate by
default: no training, seconds in all):

* ``constructor``: the agent builds on the env's spaces with its options and a ``seed`` keyword
  (:func:`agents.checks.check_agent`);
* ``state``: after one update, ``state_dict()`` survives the checkpoint's safe loader and a
  fresh agent loads it;
* ``masks``: every action of a few updates' episodes is legal under the env's masks;
* ``resume``: a run stopped after its first update and resumed from its checkpoint samples the
  same networks with the same actions as a run never stopped. An agent whose state leaves
  something out (``{}`` from an agent that draws from a generator) fails here.

The runs go through :func:`agents.runner.run_search` in a temporary folder, as a user's would.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Verdict", "check_agent_contract", "format_verdicts"]

_SAME = ("net", "accuracy", "actions")


@dataclass(frozen=True)
class Verdict:
    """One check's outcome: its name, whether it passed, and what was seen."""

    check: str
    passed: bool | None  # None: not run, an earlier check failed
    detail: str


def check_agent_contract(
    agent: str,
    *,
    env_id: str = "EAS-Surrogate-v0",
    env_kwargs: dict[str, Any] | None = None,
    batch: int = 4,
    updates: int = 3,
    seed: int = 0,
) -> list[Verdict]:
    """Run the four checks of the module docstring on `agent` (a spec: ``module:Class[k=v]``).

    Args:
        agent: An agent spec, as ``eas-gym search --agent`` takes it.
        env_id: A cheap registered env id (the surrogate, or the real-data bench).
        env_kwargs: Passed to ``gym.make``.
        batch: Networks per update.
        updates: Updates of the uninterrupted run (>= 2: the resumed run stops after one).
        seed: The runs' seed.

    Raises:
        ValueError: `batch` < 1 or `updates` < 2 (the spec itself is checked, not raised).
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"Expected `batch` >= 1, actually: {batch!r}")
    if not isinstance(updates, int) or updates < 2:
        raise ValueError(
            f"Expected `updates` >= 2 (one before the stop, one after), got {updates!r}"
        )
    from agents.checks import check_agent, check_env_args
    from agents.registry import parse_agent_spec

    kwargs = dict(env_kwargs or {})
    check_env_args(env_id, kwargs)
    nets = batch * updates
    try:
        spec = parse_agent_spec(agent)
        if spec.is_sb3:
            raise ValueError(
                f"{spec.name!r} is an SB3 algorithm, run through SB3's own API: the protocol "
                "checks are for agents.base.Agent classes"
            )
        check_agent(spec, env_id, kwargs, seed=seed, nets=nets, batch=batch)
    except (ValueError, TypeError) as e:
        return [Verdict("constructor", False, str(e)), *_not_run("masks", "state", "resume")]
    verdicts = [Verdict("constructor", True, f"builds on {env_id}'s spaces: {spec.label()}")]
    with tempfile.TemporaryDirectory(prefix="eas-check-agent-") as folder:
        run = _Runs(agent, env_id, kwargs, batch, seed, Path(folder))
        _, error = run.search("stopped", batch)
        if error is None:
            error = _load_state(spec, env_id, kwargs, seed, Path(folder) / "stopped")
        if error is not None:
            return [*verdicts, Verdict("state", False, error), *_not_run("masks", "resume")]
        verdicts.append(
            Verdict("state", True, "state_dict() survives torch.load(weights_only=True)")
        )
        whole, error = run.search("whole", nets)
        if error is not None:
            return [*verdicts, Verdict("masks", False, error), *_not_run("resume")]
        verdicts.append(_masks_verdict(whole))
        resumed, error = run.search("stopped", nets)
        verdicts.append(_resume_verdict(whole, resumed, error, run.warned, batch, updates))
    return verdicts


def format_verdicts(agent: str, verdicts: list[Verdict]) -> str:
    """One line per check: ``PASS constructor: ...``, ``FAIL``, or ``----`` (not run)."""
    marks = {True: "PASS", False: "FAIL", None: "----"}
    lines = [f"{marks[v.passed]}  {v.check:<11} {v.detail}" for v in verdicts]
    failed = sum(v.passed is False for v in verdicts)
    lines.append(f"{agent}: " + (f"{failed} check(s) failed" if failed else "keeps the contract"))
    return "\n".join(lines)


class _Runs:
    """Searches of one agent in one temporary folder, their warnings kept."""

    def __init__(
        self, agent: str, env_id: str, kwargs: dict[str, Any], batch: int, seed: int, root: Path
    ) -> None:
        self.agent, self.env_id, self.kwargs = agent, env_id, kwargs
        self.batch, self.seed, self.root = batch, seed, root
        self.warned: list[str] = []

    def search(self, name: str, nets: int) -> tuple[list[dict[str, Any]], str | None]:
        """(records, None), or ([], what went wrong) if the search raised."""
        from agents.runner import run_search
        from agents.search_args import SearchArgs

        args = SearchArgs(
            env_id=self.env_id,
            agent=self.agent,
            nets=nets,
            batch=self.batch,
            seed=self.seed,
            out=str(self.root / name),
            env_kwargs=dict(self.kwargs),
            progress=False,
        )
        # the runner's own lines ("resuming ...") are about the checker's folders, not the agent
        with warnings.catch_warnings(record=True) as caught, redirect_stderr(io.StringIO()):
            warnings.simplefilter("always")
            try:
                records = run_search(args)
            except Exception as e:  # the agent's own code: any error is the verdict
                return [], f"the search raised {type(e).__name__}: {e}"
            finally:
                self.warned += [str(w.message) for w in caught]
        return records, None


def _not_run(*checks: str) -> list[Verdict]:
    return [Verdict(check, None, "not run (an earlier check failed)") for check in checks]


def _masks_verdict(records: list[dict[str, Any]]) -> Verdict:
    illegal = [r.get("illegal_actions", 0) for r in records]
    episodes = sum(count > 0 for count in illegal)
    if episodes:
        return Verdict(
            "masks",
            False,
            f"{episodes} of {len(records)} episodes took {sum(illegal)} action(s) the masks "
            "forbid (the env ignores forbidden widen flags and makes a forbidden insert a no-op, "
            "so the agent learns from steps that did not do what it chose)",
        )
    return Verdict("masks", True, f"{len(records)} episodes, every action legal")


def _load_state(spec: Any, env_id: str, kwargs: dict[str, Any], seed: int, out: Path) -> str | None:
    """None if a fresh agent loads the stopped run's checkpoint, else what went wrong."""
    import gymnasium as gym

    from agents.checks import make_agent
    from agents.run_folder import load_checkpoint

    try:
        state = load_checkpoint(out / "checkpoint.pt")
        if state is None:
            return f"the run wrote no checkpoint in {out}"
        env = gym.make(env_id, **{**kwargs, "store": ":memory:"})
        try:
            agent = make_agent(spec, env.observation_space, env.action_space, seed + 1)
        finally:
            env.close()
        agent.load_state_dict(state["agent"])
    except Exception as e:  # the agent's own load_state_dict
        return f"a fresh agent cannot load the checkpoint: {type(e).__name__}: {e}"
    return None


def _resume_verdict(
    whole: list[dict[str, Any]],
    resumed: list[dict[str, Any]],
    error: str | None,
    warned: list[str],
    batch: int,
    updates: int,
) -> Verdict:
    if error is not None:
        return Verdict("resume", False, f"resuming after update 1: {error}")
    for index, (a, b) in enumerate(zip(whole, resumed, strict=False)):
        if any(a[k] != b[k] for k in _SAME):
            hint = next((w for w in warned if "resum" in w or "state" in w), None)
            return Verdict(
                "resume",
                False,
                f"stopped after update 1 and resumed, the run differs from an uninterrupted one "
                f"from network {index + 1} on (update {index // batch + 1}): state_dict() leaves "
                "out something the agent draws from or learns" + (f" ({hint})" if hint else ""),
            )
    if len(resumed) != len(whole):
        return Verdict("resume", False, f"{len(resumed)} networks resumed, {len(whole)} whole")
    return Verdict(
        "resume",
        True,
        f"stopped after update 1 of {updates} and resumed: the same {len(whole)} networks and "
        "actions",
    )
