"""What watchdog's observer thread runs: an event's kind becomes why the watcher looks at a
path (complete, created, writing, gone); the watcher (:mod:`hotswap._watch.watcher`) decides
the rest on its own thread."""

from __future__ import annotations

import os
from typing import Protocol

from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from hotswap._watch.changeset import COMPLETE, CREATED, WRITING

__all__ = ("EVENTS", "GONE", "Handler", "Listener", "inotify_observer")

# The events hotswap acts on. watchdog turns this into the inotify mask, so the kernel does not
# even report the opens and reads of every import (they slowed imports by 17%).
EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    DirMovedEvent,
]
# A path that is gone (deleted, or moved away): what was pending for it is void.
GONE = "gone"


class Listener(Protocol):
    """Who hears of the paths: the watcher."""

    def notify(self, path: str, why: str | None) -> None:
        """``path`` changed for ``why`` (None: an event that wrote nothing)."""
        ...

    def arrived(self, folder: str) -> None:
        """A folder was renamed into place: the files in it are complete."""
        ...


def inotify_observer() -> BaseObserver | None:
    """An inotify observer that reports a move from an unwatched folder as a move, not as a
    bare creation (None off Linux)."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except (ImportError, OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    try:
        return InotifyObserver(generate_full_events=True)
    except (TypeError, OSError):  # pragma: no cover - an old watchdog, or no inotify left
        return None


class Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: keep it short, it delays every event behind it."""

    def __init__(self, listener: Listener) -> None:
        super().__init__()
        self._reloader = listener

    def dispatch(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        why: str | None = None
        path = event.src_path
        if event.is_directory:
            if kind == "moved" and event.dest_path:
                # A folder renamed into place holds complete files (watchdog follows with a
                # creation for each, which must not make them wait for a close).
                self._reloader.arrived(os.fsdecode(event.dest_path))
        elif kind == "closed":
            why = COMPLETE
        elif kind == "moved":
            # Full events: a move out of the watched folders has no destination (the module
            # keeps running, as for a deletion); a move in from elsewhere has no source.
            if event.src_path:
                self._reloader.notify(os.fsdecode(event.src_path), GONE)
            path, why = event.dest_path, COMPLETE if event.dest_path else None
        elif kind == "created":
            why = CREATED
        elif kind == "modified":
            why = WRITING
        elif kind == "deleted":
            why = GONE  # the module keeps running; a new file brings its own events
        # opened, closed_no_write: nothing was written.
        self._reloader.notify(os.fsdecode(path) if why else "", why)
