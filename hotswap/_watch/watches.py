"""Which folders the observer watches: what the scope asks for, followed by path (a folder
swapped in by rename, deleted, or created after ``enable()``), with the watcher told which
folders it must look through again (:class:`hotswap._watch.watcher.Reloader`)."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEventHandler
from watchdog.observers.api import BaseObserver, ObservedWatch

from hotswap._plan.modules import Scope
from hotswap._watch.fsfacts import folder_identity
from hotswap._watch.handler import EVENTS

__all__ = ("Watches",)

logger = logging.getLogger(__name__)

Key = tuple[str, bool]  # (folder, recursive)


class Watches:
    """The observer's watches, kept on the worker's thread."""

    def __init__(
        self,
        observer: BaseObserver,
        handler: FileSystemEventHandler,
        scope: Scope,
        rescan: Callable[[str, bool], None],
    ) -> None:
        self._observer = observer
        self._handler = handler
        self._scope = scope
        self._rescan = rescan  # queue the loaded files of a folder watched anew
        # (folder, recursive) -> its watch and the folder's identity when it was scheduled.
        self._watches: dict[Key, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._missing: set[Key] = set()
        self._modules_seen = 0

    def schedule(self) -> None:
        """Watch what the scope asks for now (new packages are added by later calls)."""
        self._modules_seen = len(sys.modules)
        for folder, recursive in self._scope.watches():
            if (folder, recursive) not in self._watches:
                self._watch(folder, recursive, rescan=False)

    def imports_moved_on(self) -> bool:
        """Whether modules were imported or removed since the last :meth:`schedule`."""
        return len(sys.modules) != self._modules_seen

    def check(self) -> None:
        """Follow each watched path, not the folder first found there: a folder swapped by
        rename (``mv src src.old && mv src.new src``) or created after enable() is watched
        again, and its files that differ from what runs are applied."""
        for key, (watch, identity) in list(self._watches.items()):
            now = folder_identity(key[0])
            if now == identity:
                continue
            # Its emitter may have stopped already (the folder was deleted).
            with contextlib.suppress(KeyError, OSError):
                self._observer.unschedule(watch)
            del self._watches[key]
            if now is None:
                logger.warning(
                    "hotswap: %s no longer exists: not watched until it appears again", key[0]
                )
                self._missing.add(key)
            else:
                logger.warning("hotswap: %s was replaced by another folder: watching it", key[0])
                self._watch(*key, rescan=False)
                self._rescan(*key)
        for key in list(self._missing):
            if folder_identity(key[0]) is not None:
                self._watch(*key, rescan=True)

    def _watch(self, folder: str, recursive: bool, *, rescan: bool) -> None:
        key = (folder, recursive)
        identity = folder_identity(folder)
        if identity is None:
            if key not in self._missing:
                logger.warning(
                    "hotswap: %s does not exist: it will be watched once it appears", folder
                )
                self._missing.add(key)
            return
        try:
            watch = self._observer.schedule(
                self._handler, folder, recursive=recursive, event_filter=EVENTS
            )
        except TypeError:  # a watchdog without event filters
            watch = self._observer.schedule(self._handler, folder, recursive=recursive)
        except OSError as error:  # gone again, or out of inotify watches
            logger.warning("hotswap: %s: cannot watch it: %s", folder, error)
            self._missing.add(key)
            return
        self._watches[key] = (watch, identity)
        self._missing.discard(key)
        _name_threads()
        if rescan:
            logger.warning("hotswap: %s appeared: watching it", folder)
            self._rescan(folder, recursive)


def _name_threads() -> None:
    """watchdog's own threads (emitters, the inotify reader) are daemon threads already; name
    them so a thread dump shows whose they are."""
    for thread in threading.enumerate():
        if type(thread).__module__.startswith("watchdog.") and not thread.name.startswith(
            "hotswap-"
        ):
            thread.name = f"hotswap-{type(thread).__name__.lower()}"
