"""The worker's side of the watcher: from the due files of one window to one change set.

The watcher (``_watcher``) decides *when* files are due; this module reads them, checks that
each is complete and changed, hands them to :func:`hotswap._engine.transaction.reload_many` as one
change set (the exact bytes it checked), and reports one result per module. A set rejected
as a whole is tried again, whole, with the next set that touches one of its files or arrives
within ``debounce``: the rest of a refactoring that landed a moment later completes it, and
fixing the broken file of a save-all applies the others too. After a later set commits, each
set that failed before it and whose files still hold the bytes that failed is tried again,
by itself, oldest first: a checkout cut in several sets (its first file needs a name a later
one adds) then lands whole. Such a retry comes once per later commit, and a failure it
reports was said once only (a file broken for good costs one quiet attempt per commit, no
message). A set refused only because
pinned sections did not leave in time is tried again by itself once they left
(:mod:`hotswap._watch.pinretry`). Nothing here imports watchdog.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from hotswap._engine import ahead as _ahead
from hotswap._engine import outcome as _outcome
from hotswap._engine import transaction as _transaction
from hotswap._ops import events as _events
from hotswap._ops.events import ReloadResult, call_safely, location
from hotswap._plan import datafiles as _datafiles
from hotswap._plan.modules import ModuleIndex, Scope, real_file
from hotswap._watch import reconcile as _reconcile
from hotswap._watch.pending import digest_of
from hotswap._watch.pinretry import PinRetry
from hotswap.exceptions import ExecutionError, PinTimeoutError, SignatureError

__all__ = (
    "COMPLETE",
    "CREATED",
    "EMPTY_SETTLE",
    "HUGE_SOURCE",
    "PINNED",
    "RETRY",
    "SETTLED",
    "UNCLOSED",
    "WRITING",
    "Apply",
    "ApplyFiles",
    "ChangeSets",
)

logger = logging.getLogger(__name__)

# Why a path is due: its reading rules differ (see hotswap._watch.watcher's docstring).
COMPLETE = "complete"  # closed or renamed into place
CREATED = "created"  # appeared
WRITING = "writing"  # modified: a write in progress
SETTLED = "settled"  # requeued: read once quiet; an empty file is accepted then
RETRY = "retry"  # of a rejected change set, tried again with the next one: read as it is
# Written by a git command that has let its index lock go: complete, whatever events for it
# are still on their way.
CHECKED_OUT = "checked out"
# Of a set refused because pinned sections stayed, handed back once they left: applied only
# while the file holds the refused bytes (complete then; a newer save's own event decides).
PINNED = "pinned"

# An empty file is read only after it stayed empty this long without events (seconds).
EMPTY_SETTLE = 0.5
# Where closes are reported (inotify), a write whose close never comes (a writer that keeps the
# file open) is read after this long without events (seconds). Editors, formatters and git all
# close their files.
UNCLOSED = 2.0

# A source file this large (bytes) is read ahead of its reload, on a thread of its own, while
# other files' change sets apply: reading it takes seconds (46,000 statements in 10 MB), and
# the files saved meanwhile must not wait for it (issue 26).
HUGE_SOURCE = 256 * 1024

Requeue = Callable[[str, float, str], None]
# Looks at several paths again at once, as one set, unless a newer event came for one.
RequeueSet = Callable[[list[str], str], None]
# Applies one change set (module name, new bytes) and returns one result per module.
Apply = Callable[[list[tuple[str, bytes]]], list[ReloadResult]]
ApplyFiles = Callable[[dict[str, bytes], list[tuple[str, bytes]]], list[ReloadResult]]


@dataclass(eq=False)
class _Failed:
    """A change set that failed: its files (path -> digest of the bytes that failed), when,
    whether a later commit tries it again (not when pinned sections or a missing signature
    refused it: those have their own way back), and the failures said, (module, message)."""

    files: dict[str, str]
    when: float
    later: bool
    said: set[tuple[str, str]]


@dataclass
class _Reading:
    """A huge file being read ahead: the last part of its module's name, and the files that
    name it (applied once it is read, after it)."""

    word: bytes
    followers: list[str] = field(default_factory=list)


class ChangeSets:
    """Reads due files and applies them as change sets, for one watcher.

    Args:
        scope: what the watcher may read and execute.
        index: source files -> loaded modules.
        debounce: the watcher's settle window, in seconds.
        requeue: ``requeue(path, delay, why)`` looks at ``path`` again later, unless a newer
            event came.
        requeue_set: ``requeue_set(paths, why)`` looks at ``paths`` again now, as one set
            (those without a newer event).
        pending: whether an event for the path came since it was taken (the newer decides).
        apply: what turns a set into live code; by default one transaction
            (:func:`reload_set`). The API passes its own (a canary, a fleet release): the
            stages that decide sit above this one.
        apply_files: when given, it is used instead of ``apply``, and every changed ``.py``
            file in scope is read, whether a module of this process runs it or not:
            ``apply_files(files, entries)`` gets path -> bytes of all of them, and the
            (module, bytes) entries of this process. A fleet's coordinator: its workers may
            run modules it never imported.
    """

    def __init__(
        self,
        scope: Scope,
        index: ModuleIndex,
        *,
        debounce: float,
        requeue: Requeue,
        requeue_set: RequeueSet,
        pending: Callable[[str], bool],
        apply: Apply | None = None,
        apply_files: ApplyFiles | None = None,
    ) -> None:
        self._apply = apply or reload_set
        self._apply_files = apply_files
        self._scope = scope
        self._index = index
        self._debounce = debounce
        self._requeue = requeue
        self._pending = pending
        self._hashes: dict[str, str] = {}  # path -> digest of the content last handed over
        # path -> digest of the content refused because pinned sections stayed (waiting to
        # be tried again), and what waits for those sections to leave.
        self._refused: dict[str, str] = {}
        self._pins = PinRetry(lambda paths: requeue_set(paths, PINNED))
        self._failed: list[_Failed] = []  # rejected sets, oldest first
        self._retrying: _Failed | None = None  # the failed set being tried again
        self._committed = False  # a set committed since the failed ones were last tried
        self._quiet: set[str] = set()  # re-read after a folder swap: report changes only
        # Huge files being read ahead (path -> what waits for it), and those read: each
        # applies once, then is read ahead afresh at its next save.
        self._reading: dict[str, _Reading] = {}
        self._ready: dict[str, bool] = {}
        self._ahead_lock = threading.Lock()

    def delegate(self, apply_files: ApplyFiles) -> None:
        """Use ``apply_files`` from the next change set on (see ``apply_files`` above)."""
        self._apply_files = apply_files

    def stop(self) -> None:
        """Stop waiting for pinned sections (the watcher stops)."""
        self._pins.stop()

    def reread(self, path: str) -> None:
        """``path`` is about to be read again because its folder changed under the watcher:
        report its reload only if it differs from what runs."""
        self._quiet.add(path)

    def read(self, path: str, why: str) -> bytes | None:
        """The complete new content of ``path``, or None when there is nothing to apply now
        (unchanged, outside the scope, or not complete yet: then requeued)."""
        if not self._scope.contains(path):
            logger.warning("hotswap: %s: refused, it resolves outside the watched paths", path)
            return None
        try:
            with open(path, "rb") as handle:
                data = handle.read()
                read = os.fstat(handle.fileno())
        except OSError:
            return None  # deleted or replaced meanwhile: a later event brings the new file
        if not data and why not in (SETTLED, CHECKED_OUT):
            # What a writer leaves between truncating and writing: give it time to write.
            self._requeue(path, max(self._debounce, EMPTY_SETTLE), SETTLED)
            return None
        if self._pending(path) and why != CHECKED_OUT:
            return None  # written again since: the newer event decides
        digest = hashlib.sha256(data).hexdigest()
        if why == PINNED and self._refused.get(path) != digest:
            return None  # saved again since it was refused: that save's own event applies it
        if self._hashes.get(path) == digest and why != RETRY:
            return None  # saved without a change
        try:
            now = os.stat(path)
        except OSError:
            return None
        if (now.st_size, now.st_mtime_ns) != (read.st_size, read.st_mtime_ns):
            self._requeue(path, self._debounce, SETTLED)  # changing under us: never mid-write
            return None
        self._hashes[path] = digest
        return data

    def apply(
        self, paths: dict[str, str], on_reload: Callable[[ReloadResult], object] | None
    ) -> None:
        """Read the due files (path -> why), hand them to the transaction as one set, and
        call ``on_reload`` with each result."""
        reading: list[threading.Thread] = []
        try:
            self._committed = False
            self._apply_due(paths, on_reload, reading)
            self._retry_failed(on_reload, reading)
        finally:
            for thread in reading:  # after the rest of the set: it does not share the GIL
                thread.start()

    def _apply_due(
        self,
        paths: dict[str, str],
        on_reload: Callable[[ReloadResult], object] | None,
        reading: list[threading.Thread],
    ) -> None:
        now = time.monotonic()
        for failed in [] if self._retrying is not None else list(self._failed):
            if failed.files.keys() & paths.keys() or now - failed.when < self._debounce:
                self._failed.remove(failed)
                for path in failed.files.keys() - paths.keys():
                    paths[path] = RETRY
        entries: list[tuple[str, bytes]] = []
        owners: dict[str, str] = {}
        data_files: list[str] = []
        files: dict[str, bytes] = {}
        for path, why in paths.items():
            names = self._index.modules_for(path)
            if not names and (not path.endswith(".py") or self._apply_files is None):
                if not path.endswith(".py") and self.read(path, why) is not None:
                    data_files.append(path)  # read by module code at import
                continue  # never imported: nothing runs this file
            if self._apply_files is None and names and self._set_aside(path, names[0], reading):
                continue  # huge: read on a thread of its own first, this set applies meanwhile
            first = path not in self._hashes
            data = self.read(path, why)
            if data is None:
                continue
            digest = self._hashes[path]  # (read() took it: a 10 MB file hashes in ~20 ms)
            if why != RETRY and names and all(_unchanged(n, path, digest, first) for n in names):
                continue  # no save: the bytes its modules run (or a rollback left)
            files[path] = data
            for name in names:
                if name not in owners:
                    entries.append((name, data))
                    owners[name] = path
            if self._retrying is None:  # (a failed set tried again is no new change)
                _events.publish(_events.ChangeDetected(path, tuple(names), digest))
        for path in data_files:
            self._rerun_readers(path, on_reload, paths[path])
        if self._apply_files is None and self._defer(files):
            entries = [(n, d) for n, d in entries if owners[n] in files]
        if files:
            self._apply_set(entries, owners, files, on_reload, paths)

    def _apply_set(
        self,
        entries: list[tuple[str, bytes]],
        owners: dict[str, str],
        files: dict[str, bytes],
        on_reload: Callable[[ReloadResult], object] | None,
        whys: dict[str, str],
    ) -> None:
        digests = {
            p: self._hashes.get(p) or hashlib.sha256(d).hexdigest() for p, d in files.items()
        }
        retrying = self._retrying
        said = set() if retrying is None else set(retrying.said)
        with contextlib.nullcontext() if retrying is None else _outcome.hushed(said):
            results = self._transact(entries, owners, files)
        self._after_pins(results, digests, whys)
        if not all(r.ok for r in results):
            if len(files) > 1:
                for path in files:
                    self._hashes.pop(path, None)  # not applied: the same content must retry
            failures = {(r.module, str(r.error)) for r in results if not r.ok}
            if retrying is None:
                refused = (PinTimeoutError, SignatureError)
                later = not any(isinstance(r.error, refused) for r in results)
                self._failed.append(_Failed(digests, time.monotonic(), later, failures))
            else:
                retrying.said |= failures  # (it stays where it is, oldest first)
        else:
            if retrying is not None:
                self._failed.remove(retrying)
            self._committed = True
        for result in results:
            if not result.ok and (result.module, str(result.error)) in said:
                continue  # a retry failing as it did: said once already
            path = owners.get(result.module, "")
            if isinstance(result.error, PinTimeoutError | SignatureError):
                # Not the content's fault (or, for a signature, not the content alone): saving
                # the same content again, or its signature arriving, must retry.
                self._hashes.pop(path, None)
            quiet = path in self._quiet
            self._quiet.discard(path)
            if quiet and result.ok and not result.changes and not result.dependents:
                continue  # re-read after a folder swap, and the same as what runs
            if on_reload is not None:
                call_safely(on_reload, result)

    def _retry_failed(
        self, on_reload: Callable[[ReloadResult], object] | None, reading: list[threading.Thread]
    ) -> None:
        """Once a set committed, try again each set that failed before it and waits still (see
        the module's docstring), by itself, oldest first; a retry that commits is a commit too,
        so the others get one more try after it."""
        while self._committed:
            self._committed = False
            for failed in [f for f in self._failed if f.later]:
                if failed in self._failed and not all(map(os.path.lexists, failed.files)):
                    self._failed.remove(failed)  # a file deleted: nothing to try again
                if failed not in self._failed or not self._holds(failed):
                    continue
                logger.debug(
                    "hotswap: %s: failed before a later change set committed: trying again",
                    ", ".join(failed.files),
                )
                self._retrying = failed
                try:
                    self._apply_due(dict.fromkeys(failed.files, RETRY), on_reload, reading)
                finally:
                    self._retrying = None

    def _holds(self, failed: _Failed) -> bool:
        """Whether each file of a failed set holds the bytes that failed, with no newer event
        (else that event's set takes the failed one with it)."""
        for path, digest in failed.files.items():
            if self._pending(path) or digest_of(path) != digest:
                return False
        return True

    def _after_pins(
        self, results: list[ReloadResult], digests: dict[str, str], whys: dict[str, str]
    ) -> None:
        """A set refused because pinned sections did not leave in time waits for them to leave
        and is then tried again, by itself (see :mod:`hotswap._watch.pinretry`); any other
        outcome ends the wait of its files. A fleet's coordinator has its own bound."""
        if self._apply_files is not None:
            return
        if any(isinstance(r.error, PinTimeoutError) for r in results):
            self._refused.update(digests)
            again = {p for p in digests if whys.get(p) in (PINNED, RETRY)}
            self._pins.refused(digests, again)
            return
        for path in digests:
            self._refused.pop(path, None)
        self._pins.settled(digests)

    def _set_aside(self, path: str, name: str, threads: list[threading.Thread]) -> bool:
        """Whether ``path`` is a huge file to read ahead before it applies, without reading
        it here (10 MB take the worker ~15 ms to read and hash); adds the thread that reads it
        to ``threads`` unless one does already. False once it is read: it applies now."""
        try:
            size = os.stat(path).st_size
        except OSError:
            return False
        if size < HUGE_SOURCE or not self._scope.contains(path):
            return False
        with self._ahead_lock:
            if self._ready.pop(path, False):
                return False
            if path not in self._reading:
                self._reading[path] = _Reading(name.rsplit(".", 1)[-1].encode())
                thread = threading.Thread(
                    target=self._read_ahead,
                    args=(path, name),
                    name="hotswap-read-ahead",
                    daemon=True,
                )
                threads.append(thread)
        logger.debug("hotswap: %s: %d bytes, read ahead of its reload", path, size)
        return True

    def _defer(self, files: dict[str, bytes]) -> bool:
        """Take out of the set the files that name a module being read ahead (they may need
        its new version): they apply with or after it. Returns whether some were."""
        deferred: list[str] = []
        with self._ahead_lock:
            for path, data in files.items():
                for reading in self._reading.values():
                    if reading.word in data:
                        reading.followers.append(path)
                        deferred.append(path)
                        break
        for path in deferred:
            del files[path]
            self._hashes.pop(path, None)  # the same content is read again when its turn comes
        return bool(deferred)

    def _read_ahead(self, path: str, name: str) -> None:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            _ahead.prepare(name, data)
        except Exception:  # only a preparation: the reload reads the file itself
            logger.debug("hotswap: reading %s ahead failed", name, exc_info=True)
        with self._ahead_lock:
            self._ready[path] = True
            reading = self._reading.pop(path, None)
        followers = [] if reading is None else reading.followers
        for waiting in [path, *followers]:  # the huge file first
            self._requeue(waiting, 0.0, RETRY)

    def _transact(
        self, entries: list[tuple[str, bytes]], owners: dict[str, str], files: dict[str, bytes]
    ) -> list[ReloadResult]:
        """The results, one per module, also when module code interrupted the transaction."""
        try:
            if self._apply_files is not None:
                return self._apply_files(dict(files), list(entries))
            return self._apply(list(entries))
        except KeyboardInterrupt as interrupt:
            # Module code raised KeyboardInterrupt (the transaction rolls back and re-raises
            # it). It is the worker thread's, not a Ctrl-C of the program: report it for every
            # module of the set, as a failure, and keep watching.
            return _interrupted(entries, owners, interrupt)

    def _rerun_readers(
        self, path: str, on_reload: Callable[[ReloadResult], object] | None, why: str
    ) -> None:
        """A data file changed: the statements that read it at import run again."""
        readers: dict[str, set[int]] = {}
        for reader in _datafiles.readers(path):
            readers.setdefault(reader.module, set()).add(reader.line)
        if not readers:
            return
        digest = self._hashes[path]  # (read() took it)
        results = _transaction.reload_data(path, readers)
        if any(isinstance(r.error, PinTimeoutError) for r in results):
            self._hashes.pop(path, None)  # not the content's fault: saving it again retries
        self._after_pins(results, {path: digest}, {path: why})
        for result in results:
            if on_reload is not None:
                call_safely(on_reload, result)


def _unchanged(name: str, path: str, digest: str, first: bool) -> bool:
    """Whether ``digest`` (the bytes of ``path``) is no save for module ``name``: the content a
    rollback left, or, the first time the watcher reads the file, the content the module runs
    (a file opened for writing and closed unchanged, before any save)."""
    if _transaction.left_by_rollback(name) == digest:
        return True
    return first and _reconcile.runs(name, path) == digest


def reload_set(entries: list[tuple[str, bytes]]) -> list[ReloadResult]:
    """One transaction over the set (the default way a change set goes live)."""
    return _transaction.reload_many(entries, policy=None)


def _interrupted(
    entries: list[tuple[str, bytes]], owners: dict[str, str], interrupt: KeyboardInterrupt
) -> list[ReloadResult]:
    frames = [
        (real_file(f.filename), f.lineno) for f in traceback.extract_tb(interrupt.__traceback__)
    ]
    files = set(owners.values())
    culprit, line = next(((f, n) for f, n in reversed(frames) if f in files), (None, None))
    statuses = _transaction.module_statuses()
    results = []
    for name, data in entries:
        path = owners[name]
        status = statuses.get(name)
        digest = hashlib.sha256(data).hexdigest()
        if status is not None and status.source_hash == digest and status.last_result:
            results.append(status.last_result)  # applied before the interruption
            continue
        if path == culprit:
            message = f"{location(name, path, line)}: the new code raised KeyboardInterrupt"
        elif culprit is not None:
            message = (
                f"{location(name, path)}: not applied: {culprit} raised KeyboardInterrupt "
                "in the same change set"
            )
        else:
            message = f"{location(name, path)}: not applied: KeyboardInterrupt during the reload"
        error = ExecutionError(message, module=name, filename=path, lineno=line)
        error.__cause__ = interrupt
        results.append(
            ReloadResult(
                module=name,
                ok=False,
                version=status.version if status is not None else 1,
                error=error,
                rolled_back=path == culprit,
            )
        )
    return results
