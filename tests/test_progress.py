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
