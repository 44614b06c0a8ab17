"""Facts about files and the event pipeline that watchdog's event types do not carry.

The watcher (``hotswap._watch.watcher``) decides from these whether a file is complete and whether
more events are on their way. Nothing here imports watchdog: the observer is inspected through
attributes, best effort, and where they differ (another watchdog version, another platform)
the answer is "nothing known", which only makes a change set be cut sooner.
"""

from __future__ import annotations

import array
import os
import stat

from hotswap._watch.changeset import COMPLETE, CREATED, WRITING

try:
    import fcntl
    import termios

    _FIONREAD = True
except ImportError:  # pragma: no cover - Windows
    _FIONREAD = False

__all__ = ("Backlog", "created_means", "folder_identity")


def created_means(path: str) -> str:
    """What a creation means where closes are reported: a new regular file is being written
    (its close will say when it is complete); a hard link or a symlink made in place has no
    writer, so it is complete as it appears."""
    try:
        found = os.lstat(path)
    except OSError:
        return CREATED  # gone already: the worker finds nothing to read
    if stat.S_ISREG(found.st_mode) and found.st_nlink == 1:
        return WRITING
    return COMPLETE


def folder_identity(folder: str) -> tuple[int, int] | None:
    """A folder's (device, inode), or None when no folder is there."""
    try:
        found = os.stat(folder)
    except OSError:
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISDIR(found.st_mode) else None


class Backlog:
    """Whether events wait on their way to the observer's queue: in an inotify emitter's
    queue, or still in the kernel's (where the next file of a save-all shows first)."""

    def __init__(self, observer: object) -> None:
        self._observer = observer
        # watchdog >= 7 reads one inotify descriptor per observer; where it can be found, how
        # many bytes of events the kernel holds tells whether more are on their way.
        found = getattr(getattr(observer, "_inotify_fd", None), "_inotify_fd", None)
        self._fd: int | None = found if isinstance(found, int) and _FIONREAD else None

    def waiting(self) -> bool:
        """Whether any event is known to be on its way."""
        return self._emitters() or self._kernel()

    def _kernel(self) -> bool:
        if self._fd is None:
            return False
        waiting = array.array("i", [0])
        try:
            fcntl.ioctl(self._fd, termios.FIONREAD, waiting, True)
        except OSError:
            self._fd = None
            return False
        return waiting[0] > 0

    def _emitters(self) -> bool:
        """Whether an inotify emitter holds events it has not queued for the observer yet,
        through watchdog 7's internals (the move grouper's queue). Moves out that wait for
        their pair are not counted: they are no write."""
        for emitter in list(getattr(self._observer, "emitters", ())):
            group = getattr(emitter, "_inotify", None)
            queue = getattr(getattr(group, "_move_event_grouper", None), "_queue", None)
            items = getattr(queue, "_queue", None)
            if items is None:
                continue
            try:
                if any(not delayed for _, _, delayed in list(items)):
                    return True
            except (TypeError, ValueError, RuntimeError):
                continue
        return False
