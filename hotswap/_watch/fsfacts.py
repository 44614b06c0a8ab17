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

__all__ = (
    "Backlog",
    "created_means",
    "folder_identity",
    "git_index_locks",
    "lock_taken",
    "locked",
    "written_since",
)


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
    queue, read from the kernel but not handed to the emitters yet, or still in the kernel's
    (where the next file of a save-all shows first)."""

    def __init__(self, observer: object) -> None:
        self._observer = observer
        self._broken = not _FIONREAD

    def waiting(self) -> bool:
        """Whether any event is known to be on its way."""
        return self._emitters() or self._kernel()

    def _kernel(self) -> bool:
        # watchdog >= 7 reads one inotify descriptor per observer, from a thread that queues
        # what it read for the emitters; both are made when the observer starts, so they are
        # looked up on each call. How many bytes of events the kernel holds tells whether
        # more are on their way.
        reader = getattr(self._observer, "_inotify_fd", None)
        read = getattr(reader, "_raw_queue", None)
        empty = getattr(read, "empty", None)
        if callable(empty) and not empty():
            return True
        fd = getattr(reader, "_inotify_fd", None)
        if self._broken or not isinstance(fd, int):
            return False
        waiting = array.array("i", [0])
        try:
            fcntl.ioctl(fd, termios.FIONREAD, waiting, True)
        except OSError:
            self._broken = True
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


def _git_dir(start: str) -> str | None:
    """The git directory of the repository ``start`` lies in: ``.git`` of the nearest folder
    holding one, or where a worktree's ``.git`` file points."""
    folder = os.path.abspath(start)
    while True:
        dot = os.path.join(folder, ".git")
        if os.path.isdir(dot):
            return dot
        if os.path.isfile(dot):
            try:
                with open(dot, encoding="utf-8") as handle:
                    line = handle.readline().strip()
            except OSError:
                return None
            if line.startswith("gitdir:"):
                return os.path.abspath(os.path.join(folder, line.split(":", 1)[1].strip()))
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def git_index_locks(roots: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The ``index.lock`` paths of the repositories the watched paths lie in. git holds that
    lock while a checkout, merge, reset or stash writes the working tree, and renames it over
    the index when it is done: while it exists, more files of the same change are coming."""
    found: list[str] = []
    for root in roots:
        git = _git_dir(root if os.path.isdir(root) else os.path.dirname(root))
        if git is not None:
            lock = os.path.join(git, "index.lock")
            if lock not in found:
                found.append(lock)
    return tuple(found)


def locked(locks: tuple[str, ...]) -> bool:
    """Whether one of the ``index.lock`` files exists (a git command is writing)."""
    return any(os.path.exists(lock) for lock in locks)


def lock_taken(locks: tuple[str, ...]) -> int | None:
    """When the oldest of the ``index.lock`` files that exist was written (``st_mtime_ns``):
    git takes it before it writes the working tree. None when none exists."""
    taken: list[int] = []
    for lock in locks:
        try:
            taken.append(os.stat(lock).st_mtime_ns)
        except OSError:
            continue
    return min(taken, default=None)


def written_since(files: list[str], since_ns: int) -> list[str]:
    """Those of ``files`` written at or after ``since_ns`` (the file system's clock, which
    stamped the lock too)."""
    written: list[str] = []
    for path in files:
        try:
            if os.stat(path).st_mtime_ns >= since_ns:
                written.append(path)
        except OSError:
            continue
    return written
