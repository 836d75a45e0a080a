"""The search's progress line: a count per network, the live best, and a status word."""

import io

from tqdm.auto import tqdm

from agents.progress import SearchProgress as _Progress
from agents.runner import SearchArgs, run_search


def _bar(stream: io.StringIO, total: int) -> tqdm:
    return tqdm(total=total, file=stream, mininterval=0, miniters=1, dynamic_ncols=False)


def test_status_words_show_until_a_network_is_counted():
    stream = io.StringIO()
    bar = _bar(stream, 4)
    progress = _Progress(bar, [])
    progress.status("training (or loading) the start network")
    assert "training (or loading) the start network" in stream.getvalue()
    progress.network_done({"accuracy": 0.25})
    progress.network_done({"accuracy": 0.5})
    last = stream.getvalue().splitlines()[-1].split("\r")[-1]
    assert "2/4" in last and "best=0.5000" in last and "start network" not in last
    progress.status("scoring 2 networks side by side")
    records = [{"accuracy": a} for a in (0.25, 0.5, 0.75, 0.125)]
    progress.batch_done(records)  # an asynchronous batch: its networks are counted at its end
    last = stream.getvalue().split("\r")[-1]
    assert "4/4" in last and "best=0.7500" in last and "side by side" not in last
    bar.close()


def test_resumed_bar_starts_from_the_records(tmp_path, capsys):
    run = tmp_path / "run"
    args = dict(env_id="EAS-Surrogate-v0", nets=4, batch=2, out=str(run))
    run_search(SearchArgs(**args, progress=False))
    run_search(SearchArgs(**{**args, "nets": 6}, progress=True))
    assert f"resuming {run}: 4 of 6 networks done" in capsys.readouterr().err


def test_worker_networks_are_counted_as_they_reach_the_store(tmp_path):
    """Worker processes cannot call back: the bar counts the batch's new store rows."""
    import time

    from eas_gym.store import EvalStore, Evaluation

    store = EvalStore(tmp_path / "store.sqlite")
    store.put(Evaluation("C4-3 GAP", "k", 0.9, lineage="before the batch"))
    stream = io.StringIO()
    bar = tqdm(total=6, initial=2, file=stream, mininterval=0, miniters=1, dynamic_ncols=False)
    progress = _Progress(bar, [{"accuracy": 0.1}, {"accuracy": 0.2}], tick=0.05)
    progress.watch_store(str(tmp_path / "store.sqlite"))
    time.sleep(0.01)
    progress.batch_started(4)
    for k, accuracy in enumerate((0.3, 0.6, 0.4)):
        store.put(Evaluation(f"C{4 + k}-3 GAP", "k", accuracy, lineage=str(k)))
    deadline = time.time() + 5
    while progress.shown < 5 and time.time() < deadline:
        time.sleep(0.05)
    assert progress.shown == 5 and progress.best == 0.6  # 2 + 3 (the older row not counted)
    store.put(Evaluation("C8-3 GAP", "k", 0.5, lineage="3"))
    time.sleep(0.3)
    assert progress.shown == 5  # the batch's last network is counted by its records
    progress.batch_done([{"accuracy": a} for a in (0.1, 0.2, 0.3, 0.6, 0.4, 0.5)])
    assert progress.shown == 6
    progress.close()
    store.close()
    assert "6/6" in stream.getvalue().split("\r")[-1]


def test_the_store_is_watched_only_where_each_network_adds_one_row():
    from agents.runner import _one_row_per_network

    assert _one_row_per_network("EAS-CIFAR10-CPU-v2", {"store": "s.sqlite"})
    assert not _one_row_per_network("EAS-CIFAR10-CPU-v2", {"store": ":memory:"})
    assert not _one_row_per_network("EAS-CIFAR10-CPU-v2", {"store": "s.sqlite", "cache": False})
    assert not _one_row_per_network("EAS-Surrogate-v0", {"store": "s.sqlite"})
    assert not _one_row_per_network("EAS-Synthetic-v0", {"store": "s.sqlite"})  # dense reward
