"""EvalStore: concurrent writers and openers, stores from the previous release, damaged files."""

import multiprocessing as mp
import os
import sqlite3

import gymnasium as gym
import numpy as np
import pytest
import torch

import eas_gym  # noqa: F401  (registers the EAS-* ids)
from eas_gym.store import BY_NET, SCHEMA_VERSION, EvalStore, Evaluation, StoreError


def _write_rows(path, worker, count):
    store = EvalStore(path)
    for i in range(count):
        store.put(Evaluation(f"C{4 * (worker + 1)}-3 GAP FC{i + 1}", "key", 0.5, seed=worker))
    store.close()


def test_two_processes_writing_one_store_lose_nothing(tmp_path):
    path = str(tmp_path / "store.sqlite")
    EvalStore(path).close()
    ctx = mp.get_context("spawn")
    workers = [ctx.Process(target=_write_rows, args=(path, w, 150)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    rows = EvalStore(path).all("key")
    assert len(rows) == 300 and {r.seed for r in rows} == {0, 1}


def _open_at_once(path, barrier):
    barrier.wait()
    EvalStore(path).close()


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path):
    # Without the open lock about 3% of these opens failed with "database is locked".
    ctx = mp.get_context("fork")
    failed = 0
    for trial in range(20):
        barrier = ctx.Barrier(6)
        path = str(tmp_path / f"store{trial}.sqlite")
        workers = [ctx.Process(target=_open_at_once, args=(path, barrier)) for _ in range(6)]
        for p in workers:
            p.start()
        for p in workers:
            p.join(60)
        failed += sum(p.exitcode != 0 for p in workers)
    assert failed == 0


_V0_SCHEMA = """
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, net TEXT NOT NULL, config_key TEXT NOT NULL,
    parent TEXT, transforms TEXT NOT NULL DEFAULT '[]', accuracy REAL NOT NULL, loss REAL,
    params INTEGER, flops INTEGER, seconds REAL, config TEXT NOT NULL DEFAULT '{}',
    seed INTEGER, diverged INTEGER NOT NULL DEFAULT 0, oom INTEGER NOT NULL DEFAULT 0,
    weights TEXT, created REAL NOT NULL, UNIQUE (net, config_key)
);
"""  # what eas_gym 0.1.0 wrote


def test_a_store_written_by_the_previous_release_is_migrated_and_read(tmp_path):
    path = tmp_path / "old.sqlite"
    env = gym.make("EAS-Surrogate-v0", store=":memory:", cache_by="net").unwrapped
    legacy = env.eval_config.legacy_key()  # 0.1.0's key of these children
    connection = sqlite3.connect(path)
    connection.executescript(_V0_SCHEMA)
    connection.execute(
        "INSERT INTO evaluations (net, config_key, accuracy, created) VALUES (?, ?, ?, 0)",
        ("C8-3 MP C4-3 MP C4-3 MP C4-3 GAP FC8", legacy, 0.75),
    )
    connection.commit()
    connection.close()
    store = EvalStore(path)
    (row,) = store.all()
    assert row.lineage == BY_NET and row.accuracy == 0.75
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store.close()
    env.scorer.store_path = str(path)
    env.scorer.setup()
    assert env.scorer._lookup(row.net, BY_NET).accuracy == 0.75


_V2_SCHEMA = _V0_SCHEMA.replace(
    "UNIQUE (net, config_key)",
    "lineage TEXT NOT NULL DEFAULT '', UNIQUE (net, config_key, lineage)",
)  # layout 2: lineages, no start digest


def test_a_layout_2_store_keeps_its_rows_but_serves_them_to_no_run_that_knows_its_start(tmp_path):
    path = tmp_path / "v2.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(_V2_SCHEMA + "PRAGMA user_version = 2;")
    connection.execute(
        "INSERT INTO evaluations (net, config_key, lineage, accuracy, created) "
        "VALUES ('C4-3 GAP', 'k', 'abc', 0.5, 0)"
    )
    connection.commit()
    connection.close()
    store = EvalStore(path)
    (row,) = store.all()
    assert (row.lineage, row.start_digest, row.accuracy) == ("abc", "", 0.5)
    assert store.get("C4-3 GAP", "k", "abc", start_digest="0123456789abcdef") is None
    store.put(Evaluation("C4-3 GAP", "k", 0.6, lineage="abc", start_digest="0123456789abcdef"))
    assert store.get("C4-3 GAP", "k", "abc", start_digest="0123456789abcdef").accuracy == 0.6
    assert store.get("C4-3 GAP", "k", "abc").accuracy == 0.5  # both kept: one per start
    store.close()


def test_children_of_another_start_network_are_not_served(tmp_path, monkeypatch):
    """One configuration, two start weights (as another CPU would train): equal lineages, no hit."""
    from eas_gym.scorer import ChildScorer

    path = str(tmp_path / "store.sqlite")
    trained = []
    real_train = ChildScorer._train
    monkeypatch.setattr(
        ChildScorer,
        "_train",
        lambda self, arch, *a, **k: trained.append(1) or real_train(self, arch, *a, **k),
    )

    def episode():
        env = gym.make("EAS-Synthetic-v0", store=path, reward_mode="sparse", schedule="WD")
        _, info = env.reset(seed=3)
        for _ in range(2):
            masks = info["action_mask"]
            action = np.array([int(np.flatnonzero(m)[-1]) for m in masks])
            _, _, _, _, info = env.step(action)
        env.close()
        return info["lineage"], info["accuracy"]

    first = episode()
    trained.clear()
    assert episode() == first and not trained  # the same start: a cache hit
    store = EvalStore(path)
    start = next(e for e in store.all() if e.start_digest == "")
    weights = {
        k: v + 0.01 if v.is_floating_point() else v for k, v in store.load_weights(start).items()
    }
    store.set_weights(start, store.save_weights(start.net, start.config_key, weights))
    store.close()
    lineage, _ = episode()
    assert lineage == first[0] and trained  # the same lineage, trained again: another start


def test_damaged_and_foreign_files_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(StoreError, match="cannot be opened"):
        EvalStore(junk)
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with pytest.warns(UserWarning, match="empty file"):
        EvalStore(empty).close()

    store = EvalStore(tmp_path / "s.sqlite")
    name = store.save_weights("C4-3 GAP", "k", {"w": torch.ones(3)})
    row = Evaluation("C4-3 GAP", "k", 0.5, weights=name)
    assert torch.equal(store.load_weights(row)["w"], torch.ones(3))
    target = tmp_path / name
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum"):
        store.load_weights(row)
    with pytest.raises(StoreError, match="outside"):
        store.load_weights(Evaluation("C4-3 GAP", "k", 0.5, weights="/etc/passwd"))
    with pytest.raises(StoreError, match="outside"):
        store.load_weights(Evaluation("C4-3 GAP", "k", 0.5, weights="../../x.pt"))
    target.unlink()
    with pytest.warns(UserWarning, match="missing"):
        assert store.load_weights(row) is None


def test_a_read_only_store_says_so(tmp_path):
    path = tmp_path / "store.sqlite"
    store = EvalStore(path)
    store.put(Evaluation("C4-3 GAP", "k", 0.5))
    store._conn.close()  # reopen the same file read-only, as a store on a read-only mount
    store._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    store._conn.row_factory = sqlite3.Row
    assert store.get("C4-3 GAP", "k").accuracy == 0.5  # reading still works
    with pytest.raises(StoreError, match="cannot save the evaluation of C8-3 GAP.*read-only"):
        store.put(Evaluation("C8-3 GAP", "k", 0.6))


def test_a_full_disk_leaves_no_partial_weights(tmp_path, monkeypatch):
    store = EvalStore(tmp_path / "store.sqlite")
    real_fdopen = os.fdopen

    def full(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        handle.write = lambda data: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        return handle

    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(StoreError, match="cannot save the weights of C4-3 GAP.*disk full"):
        store.save_weights("C4-3 GAP", "k", {"w": torch.zeros(2)})
    assert list((tmp_path / "weights").iterdir()) == []
