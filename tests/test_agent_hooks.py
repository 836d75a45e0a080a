"""The runner's optional agent hooks, its metrics log and its progress bar (issues #31, #32)."""

import io
import json
import sys
import time
from typing import Any

import numpy as np
import pytest
from tqdm.auto import tqdm

from agents.base import InfoObserver, Recommender
from agents.progress import SearchProgress
from agents.random_search import RandomSearch
from agents.run_folder import load_checkpoint
from agents.runner import SearchArgs, run_recheck, run_search

ENV = "EAS-Surrogate-v0"
_SEEN: list[dict[str, Any]] = []  # what the hooked agents saw, across their instances


class InfoRandom(RandomSearch):
    """Random search that keeps the (net, accuracy) pairs of each step's infos."""

    def observe_info(self, infos: dict[str, Any]) -> None:
        _SEEN.append({"net": list(infos["net"]), "accuracy": list(infos["accuracy"])})


class RecommendRandom(RandomSearch):
    """Random search whose best guess is the first legal value of every entry."""

    def recommend(self, obs: dict[str, np.ndarray], masks: np.ndarray) -> np.ndarray:
        _SEEN.append({"recommend": True})
        parts = np.split(masks, np.cumsum(self.action_space.nvec)[:-1], axis=1)
        return np.stack([np.argmax(p, axis=1) for p in parts], axis=1)


@pytest.fixture(autouse=True)
def _hooked_agents(monkeypatch):
    monkeypatch.setitem(sys.modules, "hook_agents", sys.modules[__name__])  # --agent module:Class
    _SEEN.clear()


def _args(tmp_path, agent: str, **kw: Any) -> SearchArgs:
    return SearchArgs(
        env_id=ENV,
        agent=f"hook_agents:{agent}",
        nets=4,
        batch=2,
        out=str(tmp_path / "run"),
        progress=False,
        **kw,
    )


def test_observe_info_gets_every_steps_infos(tmp_path):
    children = run_search(_args(tmp_path, "InfoRandom"))
    assert isinstance(InfoRandom.__new__(InfoRandom), InfoObserver)
    assert _SEEN, "observe_info was never called"
    finals = [(n, a) for seen in _SEEN for n, a in zip(seen["net"], seen["accuracy"], strict=True)]
    for child in children:
        assert (child["net"], pytest.approx(child["accuracy"])) in finals


def test_recheck_uses_recommend_and_search_does_not(tmp_path):
    args = _args(tmp_path, "RecommendRandom")
    run_search(args)
    assert _SEEN == []  # the search explores with act
    records = run_recheck(args, 2)
    assert _SEEN and all(s == {"recommend": True} for s in _SEEN)
    assert isinstance(RecommendRandom.__new__(RecommendRandom), Recommender)
    assert len({r["net"] for r in records}) == 1  # the deterministic guess, twice


def test_agents_without_hooks_are_not_hooked():
    agent = RandomSearch.__new__(RandomSearch)
    assert not isinstance(agent, InfoObserver) and not isinstance(agent, Recommender)


def test_metrics_jsonl_one_line_per_update_and_resumable(tmp_path):
    args = _args(tmp_path, "InfoRandom")
    children = run_search(args)
    path = tmp_path / "run" / "metrics.jsonl"
    lines = [json.loads(t) for t in path.read_text().splitlines()]
    assert [line["update"] for line in lines] == [0, 1]
    assert [line["nets"] for line in lines] == [2, 4]
    first = children[:2]
    assert lines[0]["charts/batch_best_acc"] == max(c["accuracy"] for c in first)
    assert lines[0]["charts/batch_mean_acc"] == pytest.approx(
        np.mean([c["accuracy"] for c in first])
    )
    assert lines[1]["search/best_acc"] == max(c["accuracy"] for c in children)
    for key in (
        "charts/batch_mean_params",
        "charts/update_wall_seconds",
        "charts/update_cpu_seconds",
    ):
        assert key in lines[1]
    # a stop after the checkpoint but before the line, plus a line of an unfinished update
    path.write_text(json.dumps(lines[0]) + "\n" + json.dumps({**lines[1], "update": 2}) + "\n{")
    with pytest.warns(UserWarning, match="damaged"):
        run_search(SearchArgs(**{**vars(args), "nets": 6}))
    again = [json.loads(t) for t in path.read_text().splitlines()]
    assert [line["update"] for line in again] == [0, 1, 2]
    assert again[:2] == lines
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["log"] == again[-1]


def test_reinforce_metrics_reach_the_log(tmp_path):
    args = SearchArgs(env_id=ENV, agent="reinforce", nets=2, batch=2, out=str(tmp_path / "r"))
    args.progress = False
    run_search(args)
    (line,) = [json.loads(t) for t in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert "losses/policy_loss" in line and "losses/entropy" in line


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_search(_args(tmp_path, "InfoRandom", tensorboard=True))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"charts/batch_mean_acc", "search/best_acc", "charts/update_wall_seconds"} <= set(
        scalars
    )
    assert [e.step for e in events.Scalars("search/best_acc")] == [2, 4]


def test_tensorboard_missing_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "torch.utils.tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(ValueError, match=r"eas-gym\[tb\]"):
        run_search(_args(tmp_path, "InfoRandom", tensorboard=True))
    assert not (tmp_path / "run").exists()  # refused before the run folder is written


def test_elapsed_time_ticks_without_networks():
    stream = io.StringIO()
    bar = tqdm(total=4, file=stream, mininterval=0, miniters=1, dynamic_ncols=False)
    progress = SearchProgress(bar, [], tick=0.02)
    drawn = stream.getvalue().count("\r")
    time.sleep(0.3)
    assert stream.getvalue().count("\r") >= drawn + 3  # redrawn with no network counted
    progress.close()
    assert bar.disable  # closed; the ticker has stopped
    with pytest.raises(ValueError, match="tick"):
        SearchProgress(tqdm(total=1, disable=True), [], tick=0)


def test_a_bar_into_a_file_is_redrawn_every_minute_not_every_second():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    into_file = SearchProgress(tqdm(total=1, file=io.StringIO()), [])
    on_terminal = SearchProgress(tqdm(total=1, file=Terminal()), [])
    assert (into_file.tick, on_terminal.tick) == (60.0, 1.0)
    into_file.close()
    on_terminal.close()


def test_surrogate_search_does_not_train_a_start_network(tmp_path, capsys):
    args = _args(tmp_path, "InfoRandom")
    args.progress = True
    run_search(args)
    assert "start network" not in capsys.readouterr().err


def test_tensorboard_is_a_search_option():
    from agents.cli import build_parser

    assert build_parser().parse_args(["search", "--tensorboard"]).tensorboard is True
    assert build_parser().parse_args(["search"]).tensorboard is False


def test_sb3_tensorboard_goes_to_its_own_logger(tmp_path):
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("tensorboard")
    args = SearchArgs(env_id=ENV, agent="ppo", nets=4, batch=2, out=str(tmp_path / "run"))
    args.progress, args.tensorboard = False, True
    run_search(args)
    assert list((tmp_path / "run" / "tensorboard").glob("PPO_*/events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))  # the search's own lines
    events.Reload()
    assert {"search/best_acc", "charts/batch_mean_acc"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("search/best_acc")] == [2, 4]  # networks so far
    run_search(args)  # read back, finished: no new (empty) event file
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))) == 1
