"""The watchdog observer, event filtering and debouncing; the only importer of watchdog.

Event path: watchdog's observer thread calls :meth:`_Handler.dispatch`, which only files the
path under a due time and wakes the worker; the worker (``hotswap-worker``) reads the file,
skips it when its content did not change, and reloads every module the file backs.

When is a file read? A write the writer *finished* (it closed the file, or renamed it into
place) is due at once. A file that appears without a write (inotify reports a rename from
another folder as a bare creation) is due after a short grace, in which the events of a real
creation (modified, closed) arrive and take over. Any other event (modified: a write that may
be in progress) makes it due ``debounce`` seconds after the last such event. So a half-written
file is never executed, a burst of saves coalesces into at most a couple of reloads (the one
running and one with the final content), and an edit made during a reload is picked up after
it. Before executing, the worker checks that no newer event came and that the file did not
change under it, and it hands the transaction the very bytes it checked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
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

from hotswap import _transaction
from hotswap._config import Settings
from hotswap._events import ReloadResult, call_safely
from hotswap._gil import Lowered
from hotswap._modules import ModuleIndex, Scope
from hotswap.exceptions import PinTimeoutError

__all__ = ("FileWatch", "Reloader")

logger = logging.getLogger(__name__)

# How often the worker looks for newly imported packages to watch, in seconds.
_REFRESH = 1.0
# How long a bare creation waits for the events of a write, in seconds.
_CREATED_GRACE = 0.002
# The events hotswap acts on. watchdog turns this into the inotify mask, so the kernel does not
# even report the opens and reads of every import (they slowed imports by 17%).
_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent, FileDeletedEvent]
# GIL switch interval from the first event until the work is done: every thread hop and
# syscall on the way waits for the GIL, up to the default 5 ms each behind a busy main thread.
_SWITCH_INTERVAL = 0.0002

# Why a path is due: its reading rules differ.
_COMPLETE = "complete"  # closed or renamed into place: read now
_CREATED = "created"  # appeared: read after the grace, unless a write shows up
_SETTLED = "settled"  # modified: read once the debounce window passed without events


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's thread: keep it short, it delays every event behind it."""

    def __init__(self, reloader: Reloader) -> None:
        super().__init__()
        self._reloader = reloader

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        kind = event.event_type
        if kind == "closed":
            self._reloader.notify(os.fsdecode(event.src_path), _COMPLETE)
        elif kind == "moved":
            self._reloader.notify(os.fsdecode(event.dest_path), _COMPLETE)
        elif kind == "created":
            self._reloader.notify(os.fsdecode(event.src_path), _CREATED)
        elif kind == "modified":
            self._reloader.notify(os.fsdecode(event.src_path), _SETTLED)
        # deleted: the module keeps running; opened, closed_no_write: nothing was written.


class Reloader:
    """The running watcher, as returned by :func:`hotswap.enable`.

    Attributes:
        paths: the watched files and directories (resolved).
        settings: the settings it runs with.
        on_reload: called with the result of every reload the watcher attempts.
    """

    def __init__(
        self,
        settings: Settings,
        paths: list[str],
        on_reload: Callable[[ReloadResult], object] | None = None,
    ) -> None:
        self.settings = settings
        self.scope = Scope(paths, settings.exclude)
        self.paths = self.scope.roots
        self.on_reload = on_reload
        self._index = ModuleIndex()
        self._cond = threading.Condition()
        # path -> (when it is due, why: _COMPLETE, _CREATED or _SETTLED)
        self._pending: dict[str, tuple[float, str]] = {}
        self._watching: Lowered | None = None  # the switch interval while the watcher runs
        self._boosted: Lowered | None = None  # ... and from an event until its work is done
        self._hashes: dict[str, str] = {}
        self._stopping = False
        self._watched: set[tuple[str, bool]] = set()
        self._modules_seen = 0
        self._handler = _Handler(self)
        self._observer: BaseObserver = (
            PollingObserver(timeout=max(settings.debounce, 0.1)) if settings.polling else Observer()
        )
        self._observer.name = "hotswap-observer"
        self._observer.daemon = True
        self._worker = threading.Thread(target=self._run, name="hotswap-worker", daemon=True)

    @property
    def running(self) -> bool:
        """Whether the observer and the worker are alive."""
        return self._observer.is_alive() and self._worker.is_alive()

    def start(self) -> None:
        """Start watching; the watches are live when this returns."""
        if self.settings.switch_interval:
            self._watching = Lowered(self.settings.switch_interval)
        self._observer.start()
        self._schedule()
        self._worker.start()

    def stop(self) -> None:
        """Stop watching and join the threads."""
        self._observer.stop()
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        self._unboost()
        if self._watching is not None:
            self._watching.restore()
            self._watching = None
        if self._observer.is_alive():
            self._observer.join()
        if self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join()

    def _schedule(self) -> None:
        """Watch what the scope asks for now (new packages are added by later calls)."""
        self._modules_seen = len(sys.modules)
        for directory, recursive in self.scope.watches():
            if (directory, recursive) in self._watched or not os.path.isdir(directory):
                continue
            try:
                self._observer.schedule(
                    self._handler, directory, recursive=recursive, event_filter=_EVENTS
                )
            except TypeError:  # a watchdog without event filters
                self._observer.schedule(self._handler, directory, recursive=recursive)
            self._watched.add((directory, recursive))
        # watchdog's own threads (emitters, the inotify reader) are daemon threads already;
        # name them so a thread dump shows whose they are.
        for thread in threading.enumerate():
            if type(thread).__module__.startswith("watchdog.") and not thread.name.startswith(
                "hotswap-"
            ):
                thread.name = f"hotswap-{type(thread).__name__.lower()}"

    def notify(self, path: str, why: str) -> None:
        """File an event for ``path``; see the module docstring for when it is due."""
        if not path.endswith(".py"):
            return
        due = time.monotonic()
        if why == _SETTLED:
            due += self.settings.debounce
        elif why == _CREATED:
            due += _CREATED_GRACE
        with self._cond:
            self._pending[path] = (due, why)
            self._boost()
            self._cond.notify()

    def _requeue(self, path: str) -> None:
        """Look again once the debounce window has passed, unless newer events came."""
        with self._cond:
            if path not in self._pending:
                self._pending[path] = (time.monotonic() + self.settings.debounce, _SETTLED)

    def _boost(self) -> None:
        """Shorten the GIL switch interval until the pending work is done (lock held)."""
        if self._boosted is None:
            self._boosted = Lowered(_SWITCH_INTERVAL)

    def _unboost(self) -> None:
        """Give the program its own switch interval back once nothing is pending."""
        with self._cond:
            if self._boosted is not None and not self._pending:
                self._boosted.restore()
                self._boosted = None

    def _next_batch(self) -> list[tuple[str, str]] | None:
        """Wait until paths are due; None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                ready = [(p, why) for p, (due, why) in self._pending.items() if due <= now]
                if ready:
                    for path, _ in ready:
                        del self._pending[path]
                    return ready
                wait = (
                    min(d for d, _ in self._pending.values()) - now if self._pending else _REFRESH
                )
                if not self._cond.wait(wait) and not self._pending:
                    return []  # idle: a chance to look for new packages
            return None

    def _run(self) -> None:
        self._index.refresh()  # ahead of the first event, off the event path
        while True:
            try:
                batch = self._next_batch()
                if batch is None:
                    return
                for path, why in batch:
                    self._apply(path, why)
                self._unboost()
                if len(sys.modules) != self._modules_seen:
                    self._schedule()
            except BaseException:  # the watcher never dies (SystemExit from user code too)
                logger.exception("hotswap: the watcher hit an error and keeps running")
                self._unboost()

    def _apply(self, path: str, why: str) -> None:
        if not self.scope.contains(path):
            logger.warning("hotswap: %s: refused, it resolves outside the watched paths", path)
            return
        names = self._index.modules_for(path)
        if not names:
            return  # never imported: nothing runs this file
        try:
            with open(path, "rb") as handle:
                data = handle.read()
                read = os.fstat(handle.fileno())
        except OSError:
            return  # deleted or replaced meanwhile: a later event brings the new file
        if not data and why != _SETTLED:
            # Truncated or created by a writer that has not written yet (a close we heard was
            # an earlier write's): give it the debounce window.
            self._requeue(path)
            return
        with self._cond:
            if path in self._pending:
                return  # written again since: the newer event decides
        digest = hashlib.sha256(data).hexdigest()
        if self._hashes.get(path) == digest:
            return  # saved without a change
        try:
            now = os.stat(path)
        except OSError:
            return
        if (now.st_size, now.st_mtime_ns) != (read.st_size, read.st_mtime_ns):
            self._requeue(path)  # changing under us: never execute a file mid-write
            return
        self._hashes[path] = digest
        for name in names:
            # The program's __main__ is updated definitions-only: its top-level statements
            # (the main loop, say) must not run again.
            result = _transaction.reload(name, definitions_only=name == "__main__", data=data)
            if isinstance(result.error, PinTimeoutError):
                # Not the content's fault: saving the same content again must retry.
                self._hashes.pop(path, None)
            if self.on_reload is not None:
                call_safely(self.on_reload, result)


# --- any files: FileWatch -------------------------------------------------------------------------


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
