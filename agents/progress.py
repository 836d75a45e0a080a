"""The search's progress bar: one tick per scored network, the live best, the rate, a status.

A daemon thread redraws the bar every `tick` seconds, so the elapsed time moves while a batch
trains. A synchronous env counts each network as its episode ends (:meth:`network_done`); for
worker processes, which cannot call back, the thread counts the batch's networks as they reach
the store (:meth:`SearchProgress.watch_store`), and the batch's records settle the count.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from tqdm.auto import tqdm

__all__ = ["SearchProgress"]


class SearchProgress:
    """The search's bar: one tick per scored network, live best and rate."""

    def __init__(
        self, bar: tqdm, children: list[dict[str, Any]], *, tick: float | None = None
    ) -> None:
        """Show `bar`, which starts from `children`; redraw it every `tick` seconds.

        `tick` None: every second on a terminal, every minute into a file or pipe (a log of a
        long search would otherwise hold a redraw per second).

        Raises:
            ValueError: `tick` is not positive.
        """
        if tick is None:
            tick = 1.0 if _is_terminal(getattr(bar, "fp", None)) else 60.0
        if not tick > 0:
            raise ValueError(f"Expected `tick` > 0 seconds, actually: {tick!r}")
        self.tick = tick
        """Seconds between redraws."""
        self.bar, self.start, self.initial = bar, time.perf_counter(), len(children)
        self.shown, self.words = len(children), ""
        self.best = max((c["accuracy"] for c in children), default=None)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the ticker's counts and the main thread's
        self._store: str | None = None
        self._batch: tuple[int, float, int] | None = None  # (count at its start, time, size)
        self._ticker: threading.Thread | None = None
        if not bar.disable:
            self._ticker = threading.Thread(target=self._tick, args=(tick,), daemon=True)
            self._ticker.start()

    def watch_store(self, path: str) -> None:
        """Count networks as worker processes record them in the store at `path`.

        For sparse-reward, cached runs: one row per finished network, counted from the
        :meth:`batch_started` mark.
        """
        self._store = path

    def batch_started(self, size: int) -> None:
        """A batch of `size` networks starts now (what :meth:`watch_store` counts from)."""
        with self._lock:
            self._batch = (self.shown, time.time(), size)

    def network_done(self, info: dict[str, Any]) -> None:
        """One network scored (called by a synchronous env at the end of its episode)."""
        accuracy = info.get("accuracy")
        if accuracy is not None and (self.best is None or accuracy > self.best):
            self.best = accuracy
        self.shown += 1
        self.words = ""
        self.bar.update(1)
        self._postfix()

    def batch_done(self, children: list[dict[str, Any]]) -> None:
        """An update finished with these records in all (counts what was not counted yet)."""
        with self._lock:
            counted = self._batch[0] if self._batch is not None else self.shown
            new = [c["accuracy"] for c in children[counted:]]
            self.best = max([*new, *([] if self.best is None else [self.best])], default=None)
            self.bar.update(len(children) - self.shown)
            self.shown, self.words, self._batch = len(children), "", None
            self._postfix()

    def status(self, words: str) -> None:
        """Say what the search is doing until the next network is counted."""
        self.words = words
        self._postfix()

    def close(self) -> None:
        """Stop the redraws and close the bar."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.bar.close()

    def _tick(self, seconds: float) -> None:
        connection = None
        try:
            while not self._stop.wait(seconds) and not self.bar.disable:
                if self._store is not None and self._batch is not None:
                    if connection is None:
                        connection = _read_only(self._store)
                    if connection is not None:
                        self._count_from_store(connection)
                self.bar.refresh()  # takes the bar's lock: safe beside the main thread's updates
        finally:
            if connection is not None:
                connection.close()

    def _count_from_store(self, connection: sqlite3.Connection) -> None:
        with self._lock:
            if self._batch is None:
                return
            base, since, size = self._batch
            try:
                count, best = connection.execute(
                    "SELECT COUNT(*), MAX(accuracy) FROM evaluations WHERE created >= ? "
                    "AND oom = 0",
                    (since,),
                ).fetchone()
            except sqlite3.Error:  # busy or not there yet: the next tick tries again
                return
            shown = base + min(int(count), size - 1)  # the batch's records settle the last
            if shown > self.shown:
                if best is not None and (self.best is None or best > self.best):
                    self.best = float(best)
                self.bar.update(shown - self.shown)
                self.shown, self.words = shown, ""
                self._postfix()

    def _postfix(self) -> None:
        minutes = (time.perf_counter() - self.start) / 60
        rate = (self.shown - self.initial) / max(minutes, 1e-9)
        best = "n/a" if self.best is None else f"{self.best:.4f}"
        fields = {"best": best, "nets_per_min": f"{rate:.1f}"}
        if self.words:
            fields["now"] = self.words
        self.bar.set_postfix(fields)


def _read_only(path: str) -> sqlite3.Connection | None:
    """A read-only connection to the store at `path`, or None if it cannot be opened."""
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):  # closed, or a wrapper without isatty
        return False
