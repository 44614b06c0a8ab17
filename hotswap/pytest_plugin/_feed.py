"""File events for the supervisor, from hotswap's own watcher."""

from __future__ import annotations

import queue
from typing import Any

import hotswap
from hotswap._seam import Reloader

__all__ = ("ChangeFeed",)


class ChangeFeed(Reloader):
    """The watcher, used only for its file events: the supervisor imports no project code, so
    instead of reloading, every event (any file, not only ``.py``) is put on the supervisor's
    queue as ``("file", path, why)``. The supervisor hashes the file and decides."""

    def __init__(self, paths: list[str], events: queue.Queue[tuple[str, Any, Any]]) -> None:
        super().__init__(hotswap.configure(), paths)
        self._queue = events

    def notify(self, path: str, why: str | None) -> None:
        """Called on watchdog's thread for every event: hand it over, nothing more (an event
        the watcher ignores, such as a read, has no ``why``: nothing was written)."""
        if why is not None:
            self._queue.put(("file", path, why))
