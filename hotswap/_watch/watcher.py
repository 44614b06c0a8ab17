"""The watchdog observer, event filtering, settling and change sets (watchdog is imported
here and by the observer thread's handler, :mod:`hotswap._watch.handler`).

Event path: watchdog's observer thread calls :meth:`hotswap._watch.handler.Handler.dispatch`,
which only files the path with a due time and wakes the worker; the worker
(``hotswap-worker``) reads the due files, skips those whose content did not change, and hands
the rest to the transaction as one change set
(:func:`hotswap._engine.transaction.reload_many`).

When is a file complete? Facts first, time only where the platform cannot tell:

* a file renamed into place is complete (inotify's IN_MOVED_TO; a rename from an unwatched
  folder arrives as a move without a source, because the observer is asked for full events);
* a file opened for writing is complete when its writer closes it (IN_CLOSE_WRITE). On
  inotify a write (modified) or a creation makes the file wait for that close: nothing is read
  while a writer may be half way, however long it pauses;
* a file that appears without a writer (a hard link or a symlink made in place) is complete:
  ``lstat`` tells it from a new file, which waits for its writer's close;
* polling and other platforms report no closes: there a file is read once ``debounce``
  passed without events and its size and time did not change while it was read.

A folder renamed into place holds complete files. An empty file is read only after it stayed
empty and quiet for half a second: it is what a writer leaves between truncating and writing
(``debounce=0`` executed it).

Bursts and change sets: a complete save made while the file's previous save is still waiting
or being applied waits ``_BURST_QUIET`` for the next, so a burst gives a couple of reloads. A
due file waits until file events pause for ``_GATHER``, until no event is on its way to the
handler (the observer's queue, the inotify emitters' and the kernel's), and until the files
whose write has begun are complete, all within ``debounce``: the files of a save-all, a
refactoring or a checkout then form one change set. Reading and applying it is
:mod:`hotswap._watch.changeset`'s.

Watched paths are followed, not the folders found there when watching began: the idle worker
checks every ``_REFRESH`` seconds that each watched folder is the one at its path, watches a
folder that replaced it or appeared since, and applies what differs in it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from hotswap._config.settings import Settings
from hotswap._engine import adapters as _adapters
from hotswap._engine import importers as _importers
from hotswap._engine.gil import Lowered
from hotswap._ops import events as _events
from hotswap._ops.events import ReloadResult, location
from hotswap._plan import datafiles as _datafiles
from hotswap._plan import signing as _signing
from hotswap._plan.modules import ModuleIndex, Scope, watched_scope
from hotswap._watch.changeset import (
    CHECKED_OUT,
    COMPLETE,
    CREATED,
    SETTLED,
    UNCLOSED,
    WRITING,
    Apply,
    ApplyFiles,
    ChangeSets,
)
from hotswap._watch.fsfacts import (
    Backlog,
    created_means,
    git_index_locks,
    lock_taken,
    locked,
    written_since,
)
from hotswap._watch.handler import GONE, Handler, inotify_observer
from hotswap._watch.reconcile import Announced
from hotswap._watch.watches import Watches

__all__ = ("Reloader",)

# The watcher prepares the first reload once the program's imports paused this long
# (seconds), and pauses again while it imports (a program's start, and its imports, come
# first; a save before that is prepared by its own reload, or waits for the module the
# warm-up is at). The warm-up costs imports that run beside it (a module's parse is not
# split): at 0.05 s, bench_latency's imports while watching, 0.2 s after enable(), ran
# beside it and took 1.1-1.8x as long, median 1.6x, at load 3.
_WARM_QUIET = 0.25

logger = logging.getLogger(__name__)

# How often the idle worker checks that each watched folder is still the one at its path (a
# folder swapped by rename, or one that did not exist yet), and looks for new packages.
_REFRESH = 0.5
# A file saved again before its previous save was handed over, or while that one is being
# reloaded, is in a burst (a formatter, a script, git): each complete save then waits this long
# for the next before it is read, so a burst costs a couple of reloads, not one per save
# (seconds). A save after the last one went live is read at once.
_BURST_QUIET = 0.002
# The files of one save-all or checkout come without a gap this long between their events: a
# complete file waits for such a gap, so they go live as one change set (seconds; what it adds
# to a single save's latency).
_GATHER = 0.0005
# A deleted module file is reported once the deletion stood this long (seconds): an editor that
# moves the old file away and writes the new one brings it back within it.
_GONE_GRACE = 0.25
# A change set waits while git holds its index lock (a checkout writing the working tree), at
# most this long (seconds): a lock left behind by a git that crashed does not stop reloads.
_CHECKOUT_LIMIT = 3.0
# How often the lock is looked at meanwhile (seconds): its removal brings no event.
_CHECKOUT_POLL = 0.002
# GIL switch interval from the first event until the work is done: every thread hop and
# syscall on the way waits for the GIL, up to the default 5 ms each behind a busy main thread.
_SWITCH_INTERVAL = 0.0002


@dataclass
class _Pending:
    due: float
    why: str
    at: float = 0.0  # when its last event came (0: requeued by the worker)


# Files no framework caches from the watched folders: bytecode, databases, logs, editors' own.
_NOT_TEMPLATES = (".pyc", ".pyo", ".sqlite3", ".sqlite3-journal", ".db", ".log", ".swp", "~")


class Reloader:
    """The running watcher, as returned by :func:`hotswap.enable`.

    Attributes:
        paths: the watched files and directories (resolved).
        settings: the settings it runs with.
        on_reload: called with the result of every reload the watcher attempts, one per
            module.
    """

    def __init__(
        self,
        settings: Settings,
        paths: list[str],
        on_reload: Callable[[ReloadResult], object] | None = None,
        apply: Apply | None = None,
        apply_files: ApplyFiles | None = None,
    ) -> None:
        self.settings = settings
        self.scope = Scope(paths, settings.exclude)
        self.paths = self.scope.roots
        self.on_reload = on_reload
        self._index = ModuleIndex()
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._watching: Lowered | None = None  # the switch interval while the watcher runs
        self._boosted: Lowered | None = None  # ... and from an event until its work is done
        self._completes: dict[str, int] = {}  # path -> complete saves not yet taken
        self._inflight: frozenset[str] = frozenset()  # the paths of the set being applied
        self._settling = False  # the worker is waiting for a change set to be complete
        self._last_event = 0.0  # when the last event for a source file came
        self._stopping = False
        self._deleted: set[str] = set()  # module files reported deleted (said once)
        self._handler = Handler(self)
        observer = None if settings.polling else inotify_observer()
        # Only inotify reports closes; elsewhere a write is read once it settled.
        self._closes = observer is not None
        if observer is None:
            observer = (
                PollingObserver(timeout=max(settings.debounce, 0.1))
                if settings.polling
                else Observer()
            )
        self._sets = ChangeSets(
            self.scope,
            self._index,
            debounce=settings.debounce,
            requeue=self._requeue,
            requeue_set=self._requeue_set,
            pending=self._is_pending,
            apply=apply,
            apply_files=apply_files,
        )
        self._observer: BaseObserver = observer
        self._watches = Watches(observer, self._handler, self.scope, self._rescan)
        self._backlog = Backlog(observer)
        self._git_locks = git_index_locks(self.paths)
        self._observer.name = "hotswap-observer"
        self._observer.daemon = True
        self._worker = threading.Thread(target=self._run, name="hotswap-worker", daemon=True)
        self._warmer = threading.Thread(target=self._warm, name="hotswap-warm", daemon=True)
        self._then: Callable[[], object] | None = None  # run by the worker first (start())
        self._announced = Announced()  # the paths events came for, until ``then`` ran
        self._stopped = threading.Event()
        self._started = time.time()

    @property
    def running(self) -> bool:
        """Whether the observer and the worker are alive."""
        return self._observer.is_alive() and self._worker.is_alive()

    def start(self, then: Callable[[], object] | None = None) -> None:
        """Start watching; the watches of existing paths are live when this returns. The rest
        runs on the worker before its first change set: ``then`` (``enable()``'s look for
        files saved before the start), the index of the loaded modules, the warm-up's start."""
        if self.settings.switch_interval:
            self._watching = Lowered(self.settings.switch_interval)
        self._then = then
        self._observer.start()
        self._watches.schedule()
        # What this watcher may reload is the user's code the importer search reads.
        watched_scope(self.scope.contains)
        self._started = time.time()
        _events.publish(_events.WatcherState("started", tuple(self.paths)))
        # Last: the worker's start-up work takes the interpreter from here on, and each
        # blocking call the caller still made (a stat, a lock) would wait for it.
        self._worker.start()

    def delegate(self, apply_files: ApplyFiles) -> None:
        """From the next change set on, hand every changed source file to ``apply_files``
        (a fleet's coordinator), see :class:`~hotswap._watch.changeset.ChangeSets`."""
        self._sets.delegate(apply_files)

    def stop(self) -> None:
        """Stop watching and join the threads."""
        watched_scope(self.scope.contains, remove=True)
        self._stopped.set()
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
        self._sets.stop()  # after the worker: it refuses no set any more
        if self._warmer.is_alive() and self._warmer is not threading.current_thread():
            self._warmer.join()
        _events.publish(_events.WatcherState("stopped", tuple(self.paths)))

    # --- watches ---------------------------------------------------------------------------

    def _rescan(self, folder: str, recursive: bool) -> None:
        """Queue the loaded modules' files in a folder that was not watched until now."""
        files = self._index.files_under(folder, recursive=recursive)
        with self._cond:
            for path in files:
                self._sets.reread(path)
                self._pending[path] = _Pending(time.monotonic(), COMPLETE)
            self._cond.notify_all()

    # --- events ----------------------------------------------------------------------------

    def notify(self, path: str, why: str | None) -> None:
        """File an event for ``path`` (the observer thread calls this once per event, ``why``
        None for one hotswap ignores, so the worker knows the event queue moved on)."""
        if why is not None and path.endswith(".py" + _signing.SUFFIX):
            # A signature that arrives after its file lets the file apply (signed changes).
            path, why = path[: -len(_signing.SUFFIX)], COMPLETE
        if why is not None:
            self._announced.add(path)
        if why is None or not (path.endswith(".py") or _datafiles.readers(path)):
            # (A data file that module code read at import counts: its readers run again.)
            done = why in (COMPLETE, GONE) or (why == WRITING and self.settings.polling)
            if done and not path.endswith(_NOT_TEMPLATES):
                # Another file (a template): the framework adapters drop what they cached.
                _adapters.files_changed((path,), self.paths)
            if self._settling:  # the worker waits for the queue to drain: it moved on
                with self._cond:
                    self._cond.notify_all()
            return
        created = why == CREATED
        if created and self._closes:
            why = created_means(path)
        logger.debug("hotswap: event: %s %s", why, path)
        with self._cond:
            if why == GONE:
                self._pending.pop(path, None)
                self._completes.pop(path, None)
                if path.endswith(".py"):
                    # The worker says so once the deletion stood (see _report_deleted).
                    self._pending[path] = _Pending(time.monotonic() + _GONE_GRACE, GONE)
                    self._cond.notify_all()
                return
            self._deleted.discard(path)  # back: a later deletion is news again
            known = self._pending.get(path)
            if created and known is not None and known.why == COMPLETE:
                # Created without being gone first: watchdog's creation for a file of a folder
                # renamed into place, complete already.
                return
            now = self._last_event = time.monotonic()
            if why == COMPLETE:
                due = now
                if self._completes.get(path, 0) or path in self._inflight:
                    due += _BURST_QUIET
                self._completes[path] = self._completes.get(path, 0) + 1
            elif why == WRITING and self._closes:
                due = now + max(self.settings.debounce, UNCLOSED)
            else:  # created; or modified where closes are not reported
                due = now + self.settings.debounce
            # The newest event decides: a write that begins after a close makes the file wait
            # for the next close, so the half-written file of the next save is never read.
            self._pending[path] = _Pending(due, why, now)
            self._boost()
            self._cond.notify_all()

    def arrived(self, folder: str) -> None:
        """A folder was renamed into place: its source files are complete."""
        for parent, _, names in os.walk(folder):
            for name in names:
                if name.endswith(".py"):
                    self.notify(os.path.join(parent, name), COMPLETE)

    def unannounced(self, paths: list[str]) -> list[str]:
        """Those of ``paths`` (files found saved before the watcher started) that no event
        came for since (see :class:`~hotswap._watch.reconcile.Announced`); asked once."""
        return self._announced.unannounced(paths, self._undispatched)

    def _is_pending(self, path: str) -> bool:
        with self._cond:
            return path in self._pending

    def _requeue(self, path: str, delay: float, why: str = SETTLED) -> None:
        """Look again after ``delay`` seconds, unless a newer event came meanwhile."""
        with self._cond:
            if path not in self._pending:
                self._pending[path] = _Pending(time.monotonic() + delay, why)
                self._cond.notify_all()  # (from a read-ahead thread: the worker may be waiting)

    def _requeue_set(self, paths: list[str], why: str) -> None:
        """Look at ``paths`` again now, in one batch (a change set stays whole), except those
        a newer event came for."""
        with self._cond:
            now = time.monotonic()
            for path in paths:
                if path not in self._pending:
                    self._pending[path] = _Pending(now, why)
            self._boost()
            self._cond.notify_all()

    def _boost(self) -> None:
        """Shorten the GIL switch interval until the pending work is done (lock held)."""
        if self._boosted is None:
            self._boosted = Lowered(_SWITCH_INTERVAL)

    def _unboost(self) -> None:
        """Give the program its own switch interval back once nothing is due soon."""
        with self._cond:
            soon = time.monotonic() + self.settings.debounce
            if self._boosted is not None and all(p.due > soon for p in self._pending.values()):
                self._boosted.restore()
                self._boosted = None

    def _undispatched(self) -> bool:
        """Whether events wait on their way to the handler: in the observer's queue, in an
        inotify emitter's queue, or still in the kernel's (where a save-all's next file shows
        first)."""
        return self._observer.event_queue.qsize() > 0 or self._backlog.waiting()

    def _next_batch(self) -> list[tuple[str, str]] | None:
        """Wait until paths are due and the change set they belong to has settled; [] when
        idle for a while (time to check the watches), None when stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if any(p.due <= now for p in self._pending.values()):
                    self._settle(now)
                    now = time.monotonic()
                    ready = [(k, p.why) for k, p in self._pending.items() if p.due <= now]
                    for path, _ in ready:
                        del self._pending[path]
                        self._completes.pop(path, None)
                    if ready:
                        return ready
                    continue  # a newer event made the due file wait again
                wait = min((p.due for p in self._pending.values()), default=now + _REFRESH)
                if not self._cond.wait(min(wait - now, _REFRESH)) and not self._pending:
                    return []
            return None

    def _settle(self, start: float) -> None:
        """Let the rest of a change set arrive before it is cut (lock held), for up to
        ``debounce`` seconds: the files saved while events keep coming (no gap of ``_GATHER``
        between them), the events still on their way to the handler, and the files whose
        write has begun (the other files of a save-all or a checkout)."""
        limit = start + self.settings.debounce
        self._settling = True
        try:
            self._settle_until(limit)
            # A checkout writes its files over a while (6-180 ms seen) and may pause between
            # them longer than the window: while git holds the index lock, the set is not cut.
            if not (self._git_locks and locked(self._git_locks)):
                return
            logger.debug("hotswap: git holds its index lock: the change set waits for it")
            taken = lock_taken(self._git_locks)
            checkout = start + _CHECKOUT_LIMIT
            while locked(self._git_locks) and not self._stopping:
                if time.monotonic() >= checkout:
                    break
                self._cond.wait(_CHECKOUT_POLL)
            if taken is not None and not locked(self._git_locks):
                self._take_checkout(taken)
            # What the checkout wrote before it let the lock go is in the kernel's queue or on
            # its way to the handler already: take all of it, however long a loaded machine
            # takes to hand it over (bounded like the lock: events keep coming elsewhere).
            drained = time.monotonic() + _CHECKOUT_LIMIT
            while self._undispatched() and not self._stopping and time.monotonic() < drained:
                self._cond.wait(_CHECKOUT_POLL)
            # The checkout's last files: let them arrive and become due within one more window.
            limit = time.monotonic() + self.settings.debounce
            self._settle_until(limit)
            while not self._stopping:
                now = time.monotonic()
                later = [p.due for p in self._pending.values() if p.due > now]
                if not later or min(later) > limit:
                    break
                self._cond.wait(min(later) - now)
        finally:
            self._settling = False

    def _take_checkout(self, taken: int) -> None:
        """Git let the lock go: every file it wrote is complete. The loaded modules' files
        written since it took the lock join the set now, whatever their events' way: on a
        loaded machine one can still be between watchdog's threads, where no queue shows it
        (lock held). Each is reported as a save is (one whose bytes are those that run, as
        the file's clock may count one written just before the lock, is no save)."""
        files = [
            file
            for path in self.paths
            for file in (
                self._index.files_under(path, recursive=True) if os.path.isdir(path) else [path]
            )
        ]
        now = time.monotonic()
        for path in written_since(files, taken):
            known = self._pending.get(path)
            if known is None or known.why != GONE:
                self._pending[path] = _Pending(now, CHECKED_OUT, now)

    def _settle_until(self, limit: float) -> None:
        while not self._stopping:
            now = time.monotonic()
            gather = min(self._last_event + _GATHER, limit)
            queued = self._undispatched()
            # A write counts as part of the set while its events keep coming: a file some
            # program holds open for writing does not hold every change set back.
            recent = now - self.settings.debounce
            writing = any(
                p.due > now and p.why in (WRITING, CREATED) and p.at > recent
                for p in self._pending.values()
            )
            if now >= limit or (now >= gather and not queued and not writing):
                return
            # The handler notifies after every event; the timeout covers an event the
            # observer takes without calling it (a filtered one) and the windows' ends.
            if queued or now < gather:
                self._cond.wait(max(min(gather - now, 0.001), 0.0002))
            else:
                self._cond.wait(limit - now)

    # --- the worker ------------------------------------------------------------------------

    def _warm(self) -> None:
        """Prepare what the first reload needs (the importer search's reading and parsing) in
        the background, while the program does not import: its own imports come first."""
        try:
            _importers.warm(
                self._stopped.is_set,
                since=self._started,
                quiet=_WARM_QUIET,
                sleep=self._stopped.wait,
            )
        except Exception:  # only a preparation: the reload does the work itself if need be
            logger.debug("hotswap: preparing the importer search failed", exc_info=True)

    def _run(self) -> None:
        then, self._then = self._then, None
        if then is not None:
            try:
                then()
            except Exception:
                logger.exception("hotswap: the watcher's start-up work failed")
        self._announced.close()
        if not self._stopped.is_set():  # (stop() joins this thread before the warm-up's)
            self._warmer.start()
        try:
            self._index.refresh()  # ahead of the first event, off the event path
        except Exception:  # the index is rebuilt on a miss anyway: never die for it
            logger.exception("hotswap: indexing the loaded modules failed; retried on use")
        while True:
            try:
                batch = self._next_batch()
                if batch is None:
                    return
                if batch:
                    self._apply(dict(batch))
                self._unboost()
                if not batch:
                    self._watches.check()
                if self._watches.imports_moved_on():
                    self._watches.schedule()
            except BaseException:  # the watcher never dies (SystemExit from user code too)
                logger.exception("hotswap: the watcher hit an error and keeps running")
                self._unboost()

    def _apply(self, paths: dict[str, str]) -> None:
        for path in [p for p, why in paths.items() if why == GONE]:
            if os.path.lexists(path):
                # Back already, with no event since the deletion's: a folder swapped in whose
                # arrival the observer reported before the old folder's removal (inotify keeps
                # no order across two watches). Read what is there now.
                paths[path] = COMPLETE
                continue
            del paths[path]
            self._report_deleted(path)
        if not paths:
            return
        self._inflight = frozenset(paths)
        try:
            self._sets.apply(paths, self.on_reload)
        finally:
            self._inflight = frozenset()

    def _report_deleted(self, path: str) -> None:
        """A watched module's file is gone: say so once (a deletion brings one or more events:
        a move away, an unlink, the folder's), unless it came back meanwhile."""
        if os.path.lexists(path):
            return
        with self._cond:
            if path in self._deleted:
                return
        names = self._index.modules_for(path)
        if not names:
            return  # never imported: nothing runs it
        with self._cond:
            self._deleted.add(path)
        logger.warning(
            "hotswap: %s: the file was deleted or moved away; the module keeps running the code "
            "it has",
            location(names[0], path),
        )
