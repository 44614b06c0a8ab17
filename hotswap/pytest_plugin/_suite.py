"""The suite state the supervisor keeps across runs, and the events file it writes."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import IO, Any

__all__ = ("OUTCOMES", "EventLog", "Suite")

OUTCOMES = ("passed", "failed", "error", "skipped")


def file_of(nodeid: str) -> str:
    """The file part of a node id (``tests/test_a.py::test_x`` -> ``tests/test_a.py``)."""
    return nodeid.split("::", 1)[0]


def _is_conftest(nodeid: str) -> bool:
    return os.path.basename(nodeid) == "conftest.py"


class Suite:
    """The latest outcome of every test in scope; None marks a test pending (selected by a run
    that did not reach it, or that a change affected since its last result)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str | None] = {}
        self.verified: bool | None = None  # None: not verified since the last change

    def begin(self, files: Iterable[str] | None) -> None:
        """A run over ``files`` (relative node-id paths; None: all) starts: their tests are
        pending until it reports them."""
        chosen = None if files is None else set(files)
        for nodeid in self.outcomes:
            if chosen is None or file_of(nodeid) in chosen:
                self.outcomes[nodeid] = None
        self.verified = None

    def finish(
        self,
        files: Iterable[str] | None,
        selected: Iterable[str],
        outcomes: Mapping[str, str],
        *,
        complete: bool,
    ) -> None:
        """Merge a run's results. A complete run over ``files`` replaces what was known of
        them: tests that are gone (deleted, renamed, no longer collected) leave the suite."""
        chosen = None if files is None else set(files)
        seen = set(selected) | set(outcomes)
        if complete:
            for nodeid in list(self.outcomes):
                covered = chosen is None or file_of(nodeid) in chosen
                if covered and nodeid not in seen:
                    del self.outcomes[nodeid]
        if not any(_is_conftest(nodeid) for nodeid in outcomes):
            # A conftest.py that failed to import stops every run, whatever its files: a run
            # that got past loading it clears that error.
            for nodeid in [n for n in self.outcomes if _is_conftest(n)]:
                del self.outcomes[nodeid]
        for nodeid in selected:
            self.outcomes.setdefault(nodeid, None)
        self.outcomes.update(outcomes)

    def counts(self) -> dict[str, int]:
        """How many tests have each outcome, plus ``pending``."""
        counts = dict.fromkeys((*OUTCOMES, "pending"), 0)
        for outcome in self.outcomes.values():
            counts[outcome or "pending"] += 1
        return counts

    def failing(self) -> list[str]:
        """Node ids whose latest outcome is a failure or an error."""
        return [n for n, o in self.outcomes.items() if o in ("failed", "error")]

    def line(self, keys: bool = True) -> str:
        """The status line shown after each run."""
        counts = self.counts()
        shown = [f"{counts[k]} {k}" for k in (*OUTCOMES, "pending") if counts[k] or k == "passed"]
        verified = {None: "not verified", True: "verified", False: "VERIFY MISMATCH"}
        text = f"[hotswap] suite: {', '.join(shown)} | {verified[self.verified]}"
        if keys:
            text += " | q quit, Enter rerun, a all, f failed, r restart"
        return text


class EventLog:
    """``--hotswap-events=FILE``: one JSON object a line, written and flushed as each event
    happens."""

    def __init__(self, path: str | None) -> None:
        self._lock = threading.Lock()
        self._stream: IO[str] | None = None
        if path:
            self._stream = open(path, "w", encoding="utf-8")  # noqa: SIM115 - kept open

    @property
    def path(self) -> str | None:
        return None if self._stream is None else os.path.abspath(self._stream.name)

    def write(self, event: str, **fields: Any) -> None:
        """Write one event; ``time`` (seconds since the epoch) is added to every event."""
        if self._stream is None:
            return
        line = json.dumps({"event": event, **fields, "time": time.time()})
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
