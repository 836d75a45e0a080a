"""The run folder survives damage: records repaired from the checkpoint, atomic writes, config."""

import json
import random
import warnings

import numpy as np
import pytest
from conftest import held_by_another_process

from agents.run_folder import (
    RECHECK_UPDATE_OFFSET,
    check_config,
    episode_seed,
    read_jsonl,
    save_checkpoint,
    write_jsonl,
)
from agents.runner import SearchArgs, read_children, run_search


def _args(out, nets=8):
    return SearchArgs(
        env_id="EAS-Surrogate-v0",
        agent="reinforce",
        nets=nets,
        batch=2,
        out=str(out),
        env_kwargs={"probe_size": 4},
        progress=False,
    )


def test_a_truncated_children_file_is_repaired_with_every_record(tmp_path):
    out = tmp_path / "run"
    original = run_search(_args(out))
    text = (out / "children.jsonl").read_bytes()
    rng = random.Random(0)
    for cut in [0, 1, len(text) // 2, len(text) - 1, *rng.sample(range(len(text)), 4)]:
        (out / "children.jsonl").write_bytes(text[:cut])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again = run_search(_args(out))
        assert again == original, cut
        assert read_jsonl(out / "children.jsonl") == original
        messages = [str(w.message) for w in caught]
        intact = cut == len(text) - 1  # only the final newline was cut: every record is there
        warned = any("children.jsonl" in m and "rewritten" in m for m in messages)
        assert warned != intact, (cut, messages)
        assert (out / "children.jsonl").read_bytes() == text


def test_a_deleted_children_file_is_rewritten_and_a_resume_extends(tmp_path):
    out = tmp_path / "run"
    first = run_search(_args(out, nets=4))
    (out / "children.jsonl").unlink()
    assert run_search(_args(out, nets=8))[:4] == first
    assert len(read_children(out)) == 8


def test_the_checkpoint_keeps_the_records_as_the_files_text(tmp_path, monkeypatch):
    """Not the record dicts, pickled again at every update (40x the cost per record)."""
    import agents.runner as runner
    from agents.run_folder import load_checkpoint

    saved = []
    real_save = runner.save_checkpoint
    monkeypatch.setattr(
        runner, "save_checkpoint", lambda state, path: (saved.append(state), real_save(state, path))
    )
    out = tmp_path / "run"
    children = run_search(_args(out))
    assert len(saved) == 4 and all("children" not in state for state in saved)
    assert [state["children_jsonl"].count("\n") for state in saved] == [2, 4, 6, 8]
    text = (out / "children.jsonl").read_text()
    assert load_checkpoint(out / "checkpoint.pt")["children_jsonl"] == text
    assert read_children(out) == children == read_jsonl(out / "children.jsonl")


def test_a_checkpoint_holding_the_records_as_a_list_still_resumes(tmp_path):
    """Checkpoints written before 2026-12-05 (the campaign's among them) keep a record list."""
    from agents.run_folder import load_checkpoint

    whole = run_search(_args(tmp_path / "whole", nets=8))
    out = tmp_path / "old"
    run_search(_args(out, nets=4))
    state = load_checkpoint(out / "checkpoint.pt")
    state["children"] = read_jsonl(out / "children.jsonl")
    del state["children_jsonl"]
    save_checkpoint(state, out / "checkpoint.pt")
    (out / "children.jsonl").write_text("")  # repaired from the list
    assert read_children(out) == whole[:4]
    with pytest.warns(UserWarning, match="held 0 of 4 records; rewritten from the checkpoint"):
        assert run_search(_args(out, nets=8)) == whole
    assert read_jsonl(out / "children.jsonl") == whole


def test_damaged_records_in_a_checkpoint_name_the_file(tmp_path):
    from agents.run_folder import load_checkpoint

    out = tmp_path / "run"
    run_search(_args(out, nets=4))
    state = load_checkpoint(out / "checkpoint.pt")
    state["children_jsonl"] = state["children_jsonl"][:-5]  # the last record cut short
    save_checkpoint(state, out / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint.pt \(its records\), line 4: damaged"):
        run_search(_args(out, nets=8))


def test_a_folder_in_use_is_refused_and_left_as_it_was(tmp_path):
    from agents.runner import run_recheck

    out = tmp_path / "run"
    first = run_search(_args(out, nets=4))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "run.lock"}
    with held_by_another_process(out) as pid:
        with pytest.raises(ValueError, match=rf"run folder .*run is in use by process {pid}"):
            run_search(_args(out, nets=8))
        with pytest.raises(ValueError, match=f"is in use by process {pid}"):
            run_recheck(_args(out, nets=4), 2)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != "run.lock"}
    assert after == before
    assert run_search(_args(out, nets=8))[:4] == first  # free again once the holder is gone


def test_a_process_holds_its_own_folder_again(tmp_path):
    """Reentrant: a comparison holds a run's folder around the search, which holds it too."""
    from agents.run_folder import hold_run_folder

    out = tmp_path / "run"
    with hold_run_folder(out), hold_run_folder(tmp_path / "." / "run"):
        assert len(run_search(_args(out, nets=4))) == 4
    with held_by_another_process(out):  # released by the outer block, not the inner ones
        with pytest.raises(ValueError, match="in use by process"):
            run_search(_args(out, nets=4))


def test_another_thread_is_refused_as_another_process_is(tmp_path):
    import threading

    from agents.run_folder import hold_run_folder

    out, refused = tmp_path / "run", []

    def second_writer():
        try:
            with hold_run_folder(out):
                pass
        except ValueError as e:
            refused.append(str(e))

    with hold_run_folder(out):
        thread = threading.Thread(target=second_writer)
        thread.start()
        thread.join()
    assert refused and "is in use by process" in refused[0]


def test_numpy_integers_are_whole_numbers_of_a_search():
    args = _args("unused", nets=np.int64(4))
    args.seed = np.int32(1)
    from agents.search_args import check_search_numbers

    check_search_numbers(args.nets, args.batch, args.seed)
    with pytest.raises(ValueError, match=r"`nets` an integer >= 1, actually: 2.5"):
        check_search_numbers(2.5, 2, 0)
    with pytest.raises(ValueError, match="`seed` an integer >= 0, actually: True"):
        check_search_numbers(4, 2, True)


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    import errno
    import fcntl

    from agents.run_folder import hold_run_folder

    real_flock = fcntl.flock

    def no_locks(handle, operation):  # on the run folder's lock only: the store keeps its own
        if handle.name.endswith("run.lock"):
            raise OSError(errno.ENOLCK, "No locks available")
        return real_flock(handle, operation)

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match=r"cannot be locked \(No locks available\)") as seen:
        with hold_run_folder(tmp_path / "run"):  # as compare holds it around the search
            assert len(run_search(_args(tmp_path / "run", nets=4))) == 4
    assert len([w for w in seen if "cannot be locked" in str(w.message)]) == 1  # said once
    with pytest.warns(UserWarning), pytest.raises(KeyError) as raised:
        with hold_run_folder(tmp_path / "other"):
            raise KeyError("the search's own error")
    assert raised.value.__context__ is None  # not chained to the lock's OSError


def test_a_damaged_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"x.jsonl, line 2"):
        read_jsonl(path)


def test_config_allows_moving_and_data_paths_but_not_other_settings(tmp_path):
    record = {"seed": 0, "out": "a", "store": None, "env_kwargs": {"data_dir": "/x", "epochs": 1}}
    check_config(tmp_path, record)
    write_jsonl(tmp_path / "children.jsonl", [{"update": 0}])  # the search has begun
    check_config(tmp_path, {**record, "out": "b", "env_kwargs": {"data_dir": "/y", "epochs": 1}})
    with pytest.raises(
        ValueError,
        match=r"other settings \(env_kwargs: \{'epochs': 1\} there, \{'epochs': 2\} now\)",
    ):
        check_config(tmp_path, {**record, "env_kwargs": {"epochs": 2}})
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(ValueError, match="config.json is damaged"):
        check_config(tmp_path, record)


def test_a_start_that_failed_before_any_record_takes_corrected_settings(tmp_path, monkeypatch):
    """A bad dataset fails inside the env, after config.json: the fixed command must run."""
    import agents.runner as runner

    def bad_start(*args, **kwargs):
        raise ValueError("`train_size` 10000 needs 3334 images of class 0")

    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(runner, "_run_protocol", bad_start)
        with pytest.raises(ValueError, match="train_size"):
            run_search(_args(out, nets=4))
    assert (out / "config.json").exists()
    fixed = _args(out, nets=4)
    fixed.env_kwargs = {"probe_size": 8}
    assert len(run_search(fixed)) == 4
    with pytest.raises(ValueError, match=r"other settings \(env_kwargs: "):
        run_search(_args(out, nets=4))  # now it holds a search: settings must match
    (out / "checkpoint.pt").unlink()  # study data set aside to be replayed is a search too
    (out / "children.jsonl").rename(out / "children.partial.jsonl")
    with pytest.raises(ValueError, match=r"other settings \(env_kwargs: "):
        run_search(_args(out, nets=4))


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "records.jsonl"
    write_jsonl(path, [{"a": 1}])
    import agents.run_folder as run_folder

    def failing_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(run_folder.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_jsonl(path, [{"a": 2}, {"a": 3}])
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"x": 1}, tmp_path / "c.pt")
    assert json.loads(path.read_text()) == {"a": 1}  # the old content is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.jsonl"]  # no temp files


def test_a_finished_run_kept_without_checkpoints_is_read_not_rerun(tmp_path):
    """Study data in a repository keeps records, not .pt files: reading it trains nothing."""
    from agents.runner import run_recheck

    out = tmp_path / "run"
    original = run_search(_args(out, nets=4))
    recheck = run_recheck(_args(out, nets=4), 2)
    for name in ("checkpoint.pt", "recheck.pt"):
        (out / name).unlink()
    assert run_search(_args(out, nets=4)) == original
    assert run_recheck(_args(out, nets=4), 2) == recheck
    assert not (out / "checkpoint.pt").exists()  # nothing was run again
    with pytest.raises(ValueError, match="cannot go on without the agent's state"):
        run_search(_args(out, nets=6))


def test_search_episode_seeds_are_what_they_always_were():
    """Runs in progress and committed records were seeded so: they must stay reproducible."""
    for seed in (0, 1, 4, 7, 4000):
        for update in (0, 1, 5, 29, 299, 999_999):
            for batch in (1, 5, 10, 32):
                assert episode_seed(seed, update, batch) == seed * 1_000_003 + update * batch


def _episodes(seed, first_update, batches, batch):
    return np.array(
        [
            episode_seed(seed, first_update + u, batch) + i
            for u in range(batches)
            for i in range(batch)
        ]
    )


@pytest.mark.parametrize("batch", [1, 3, 10, 20])
def test_recheck_episodes_never_replay_a_search_episode_of_any_seed(batch):
    """The old scheme gave seed s's recheck batch j >= 3 seed s + batch's update j - 3's seeds."""
    nets, recheck = 3_000, 100  # per run: well past today's studies (300 networks, 10 episodes)
    search = np.concatenate([_episodes(s, 0, -(-nets // batch), batch) for s in range(250)])
    rechecks = np.concatenate(
        [_episodes(s, RECHECK_UPDATE_OFFSET, -(-recheck // batch), batch) for s in range(100)]
    )
    assert np.intersect1d(search, rechecks).size == 0
    assert np.unique(rechecks).size == rechecks.size  # and no two recheck episodes share one
    assert rechecks.min() >= 0 and rechecks.max() < 2**32  # SB3 seeds numpy's legacy RNG


def test_a_recheck_past_its_room_is_refused():
    assert episode_seed(3, RECHECK_UPDATE_OFFSET + 9_999, 10) == 3 * 1_000_003 + 900_003
    with pytest.raises(ValueError, match="at most 100000 episodes"):
        episode_seed(3, RECHECK_UPDATE_OFFSET + 10_000, 10)
