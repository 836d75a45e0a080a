"""The search's progress bar: one tick per scored network, the live best, the rate, a status."""

from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm

__all__ = ["SearchProgress"]


class SearchProgress:
    """The search's bar: one tick per scored network, live best and rate."""

    def __init__(self, bar: tqdm, children: list[dict[str, Any]]) -> None:
        self.bar, self.start, self.initial = bar, time.perf_counter(), len(children)
        self.shown, self.words = len(children), ""
        self.best = max((c["accuracy"] for c in children), default=None)

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

    def _postfix(self) -> None:
        minutes = (time.perf_counter() - self.start) / 60
        rate = (self.shown - self.initial) / max(minutes, 1e-9)
        best = "n/a" if self.best is None else f"{self.best:.4f}"
        fields = {"best": best, "nets_per_min": f"{rate:.1f}"}
        if self.words:
            fields["now"] = self.words
        self.bar.set_postfix(fields)
