"""The search's progress bar: one tick per scored network, the live best, the rate, a status.

A daemon thread redraws the bar every `tick` seconds, so the elapsed time moves while a batch
trains (an asynchronous batch's networks are counted together when the batch ends).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tqdm.auto import tqdm

__all__ = ["SearchProgress"]


class SearchProgress:
    """The search's bar: one tick per scored network, live best and rate."""

    def __init__(self, bar: tqdm, children: list[dict[str, Any]], *, tick: float = 1.0) -> None:
        """Show `bar`, which starts from `children`; redraw it every `tick` seconds.

        Raises:
            ValueError: `tick` is not positive.
        """
        if not tick > 0:
            raise ValueError(f"Expected `tick` > 0 seconds, actually: {tick!r}")
        self.bar, self.start, self.initial = bar, time.perf_counter(), len(children)
        self.shown, self.words = len(children), ""
        self.best = max((c["accuracy"] for c in children), default=None)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not bar.disable:
            self._ticker = threading.Thread(target=self._tick, args=(tick,), daemon=True)
            self._ticker.start()

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
        new = [c["accuracy"] for c in children[self.shown :]]
        self.best = max([*new, *([] if self.best is None else [self.best])], default=None)
        self.bar.update(len(children) - self.shown)
        self.shown, self.words = len(children), ""
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
        while not self._stop.wait(seconds) and not self.bar.disable:
            self.bar.refresh()  # takes the bar's lock: safe beside the main thread's updates

    def _postfix(self) -> None:
        minutes = (time.perf_counter() - self.start) / 60
        rate = (self.shown - self.initial) / max(minutes, 1e-9)
        best = "n/a" if self.best is None else f"{self.best:.4f}"
        fields = {"best": best, "nets_per_min": f"{rate:.1f}"}
        if self.words:
            fields["now"] = self.words
        self.bar.set_postfix(fields)
