"""Watching any files (configuration, data), not modules: :class:`FileWatch`.

The module watcher (``_watcher``) maps saved files to loaded modules and hands change sets to
the transaction; a live configuration file wants something simpler: the complete bytes of one
file each time it changes. The same rules say when a file is complete (closed after writing,
or renamed into place; after a short settle where the platform cannot tell), with an observer
of its own. Like ``_watcher``, it is one of the two modules that import watchdog.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

__all__ = ("FileWatch",)

logger = logging.getLogger(__name__)

_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent, FileDeletedEvent]
# How long a bare creation waits for the events of a write, in seconds.
_CREATED_GRACE = 0.002
# Why a path is due: its reading rules differ.
_COMPLETE = "complete"  # closed or renamed into place: read now
_CREATED = "created"  # appeared: read after the grace, unless a write shows up
_SETTLED = "settled"  # modified: read once the debounce window passed without events


class _FileHandler(FileSystemEventHandler):
    """Files events for the watched files only; runs on watchdog's thread, so it stays short."""

    def __init__(self, watch: FileWatch) -> None:
        super().__init__()
        self._watch = watch

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        kind = event.event_type
        if kind == "closed":
            self._watch.notify(os.fsdecode(event.src_path), _COMPLETE)
        elif kind == "moved":
            self._watch.notify(os.fsdecode(event.dest_path), _COMPLETE)
        elif kind == "created":
            self._watch.notify(os.fsdecode(event.src_path), _CREATED)
        elif kind == "modified":
            self._watch.notify(os.fsdecode(event.src_path), _SETTLED)


class FileWatch:
    """Watches a few given files of any kind (configuration, data) with its own observer and
    calls ``callback(path, data)`` with the complete bytes of each new content.

    The reading rules are the :class:`Reloader`'s (see the module docstring): a file closed
    after writing or renamed into place is read at once; a modified file is read once it
    settled for ``debounce`` seconds (where the platform reports no closes, this is the rule);
    a file changing while it is read is read again later. Each distinct content is delivered
    once; a deleted file delivers nothing (its last content stays in force). Independent of
    :func:`hotswap.enable`: it runs whether or not the source watcher does.

    A watched path that is a symlink (a Kubernetes ConfigMap mounts ``app.toml`` as a link
    through ``..data``, which an update renames to point elsewhere) is read again on any event
    in its folder: the link's target may have changed without an event naming the path.

    Args:
        paths: the files to watch (they need not exist yet).
        callback: called on the ``hotswap-filewatch`` thread with the absolute path and the
            bytes; what it raises is logged.
        debounce: seconds a modified file must settle before it is read.
        polling: use watchdog's polling observer.
    """

    def __init__(
        self,
        paths: list[str],
        callback: Callable[[str, bytes], object],
        *,
        debounce: float = 0.05,
        polling: bool = False,
    ) -> None:
        self.paths = frozenset(os.path.abspath(p) for p in paths)
        # folder -> the watched symlinks in it (see the class docstring)
        self._links: dict[str, list[str]] = {}
        for path in sorted(self.paths):
            if os.path.islink(path):
                self._links.setdefault(os.path.dirname(path), []).append(path)
        self.callback = callback
        self.debounce = debounce
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[float, str]] = {}
        self._hashes: dict[str, str] = {}
        self._stopping = False
        self._observer: BaseObserver = (
            PollingObserver(timeout=max(debounce, 0.1)) if polling else Observer()
        )
        self._observer.name = "hotswap-filewatch-observer"
        self._observer.daemon = True
        self._worker = threading.Thread(target=self._run, name="hotswap-filewatch", daemon=True)

    @property
    def running(self) -> bool:
        """Whether the observer and the worker are alive."""
        return self._observer.is_alive() and self._worker.is_alive()

    def start(self) -> None:
        """Start watching; the watches are live when this returns."""
        self._observer.start()
        handler = _FileHandler(self)
        # The folders, not the files: an editor's atomic save replaces the file, and a watch
        # on the old inode would go quiet after the first save.
        for folder in sorted({os.path.dirname(p) for p in self.paths}):
            if not os.path.isdir(folder):
                logger.warning("hotswap: %s: cannot watch, the folder does not exist", folder)
                continue
            try:
                self._observer.schedule(handler, folder, recursive=False, event_filter=_EVENTS)
            except TypeError:  # a watchdog without event filters
                self._observer.schedule(handler, folder, recursive=False)
        for thread in threading.enumerate():
            if type(thread).__module__.startswith("watchdog.") and not thread.name.startswith(
                "hotswap-"
            ):
                thread.name = f"hotswap-{type(thread).__name__.lower()}"
        self._worker.start()

    def stop(self) -> None:
        """Stop watching and join the threads (from any thread but the callback's)."""
        self._observer.stop()
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        if self._observer.is_alive():
            self._observer.join()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join()

    def notify(self, path: str, why: str) -> None:
        """File an event for ``path`` (ignored unless it is one of the watched files)."""
        path = os.path.abspath(path)
        if path not in self.paths:
            for link in self._links.get(os.path.dirname(path), ()):
                self.notify(link, why)
            return
        due = time.monotonic()
        if why == _SETTLED:
            due += self.debounce
        elif why == _CREATED:
            due += _CREATED_GRACE
        with self._cond:
            self._pending[path] = (due, why)
            self._cond.notify()

    def _requeue(self, path: str) -> None:
        with self._cond:
            if path not in self._pending:
                self._pending[path] = (time.monotonic() + self.debounce, _SETTLED)

    def _next_batch(self) -> list[tuple[str, str]] | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                ready = [(p, why) for p, (due, why) in self._pending.items() if due <= now]
                if ready:
                    for path, _ in ready:
                        del self._pending[path]
                    return ready
                wait = min(d for d, _ in self._pending.values()) - now if self._pending else None
                self._cond.wait(wait)
            return None

    def _run(self) -> None:
        while True:
            try:
                batch = self._next_batch()
                if batch is None:
                    return
                for path, why in batch:
                    self._read(path, why)
            except BaseException:  # the watch never dies, whatever the callback does
                logger.exception("hotswap: the file watch hit an error and keeps running")

    def _read(self, path: str, why: str) -> None:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
                read = os.fstat(handle.fileno())
        except OSError:
            return  # deleted or replaced meanwhile: a later event brings the new file
        if not data and why != _SETTLED:
            self._requeue(path)  # truncated by a writer that has not written yet
            return
        with self._cond:
            if path in self._pending:
                return  # written again since: the newer event decides
        try:
            now = os.stat(path)
        except OSError:
            return
        if (now.st_size, now.st_mtime_ns) != (read.st_size, read.st_mtime_ns):
            self._requeue(path)  # changing under us: never deliver a file mid-write
            return
        digest = hashlib.sha256(data).hexdigest()
        if self._hashes.get(path) == digest:
            return
        self._hashes[path] = digest
        try:
            self.callback(path, data)
        except KeyboardInterrupt:
            raise
        except BaseException:
            logger.exception("hotswap: file watch callback %r raised", self.callback)
