"""A fleet worker's side: join the coordinator, run its committed release, vote and commit.

On joining, the agent receives the fleet's epoch and committed overlay (module name -> bytes),
applies the overlay to the modules this process has loaded already (a process forked before a
commit, or one that imported the files on disk), and puts :class:`CommittedFinder` first on
``sys.meta_path``: a module of the overlay imported later runs the committed bytes, never the
file on disk, which may hold a save the fleet rejected. The agent never watches files.

Then a daemon thread (``hotswap-fleet-agent``) serves the coordinator: ``prepare`` plans the
files against this process's live code and votes (nothing live changes), ``commit`` applies
the release's bytes through the same transaction as :func:`hotswap.reload`, retrying while
pinned requests keep it from committing, within ``commit_timeout``; ``rollback`` puts the
modules and the epoch back to the parent.
"""

from __future__ import annotations

import dataclasses
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hotswap._config import settings as _settings
from hotswap._engine import importers, transaction
from hotswap._engine.history import records
from hotswap._fleet import protocol
from hotswap._fleet.protocol import Address
from hotswap._fleet.release import Release, State, digest, ledger, short
from hotswap._ops.events import ReloadResult
from hotswap._plan import sources
from hotswap._plan.modules import ModuleIndex
from hotswap._release import canary as _canary
from hotswap._release import health as _health
from hotswap.exceptions import HotswapError, PinTimeoutError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ("Agent", "CommittedFinder", "current", "join")

logger = logging.getLogger(__name__)

# Seconds without a message after which the agent prepares for the next vote (_warm).
_IDLE = 0.5
# Each commit attempt waits this long at most for pinned sections, so requests arriving
# meanwhile wait no longer than this; it retries until commit_timeout.
_ATTEMPT = 0.2


class _CommittedLoader(importlib.machinery.SourceFileLoader):
    """Loads a module from the fleet's committed bytes instead of its file, and never reads or
    writes a cached ``.pyc`` (one written for these bytes would claim the file's mtime)."""

    def __init__(self, fullname: str, path: str, data: bytes) -> None:
        super().__init__(fullname, path)
        self._data = data

    def get_data(self, path: str) -> bytes:
        if path == self.path:
            return self._data
        if path.endswith(tuple(importlib.machinery.BYTECODE_SUFFIXES)):
            raise OSError(f"{path}: not used for committed bytes")
        return super().get_data(path)

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        try:
            super().exec_module(module)
        except Exception as error:
            # A release that kills a new process at import: the fleet rolls it back, and
            # this process boots on the parent's bytes instead of dying.
            failed = _on_boot_failure
            parent = None if failed is None else failed(module.__name__, error)
            if parent is None or parent == self._data:
                raise
            self._data = parent
            super().exec_module(module)
        hook = _on_import
        if hook is not None:
            hook(module.__name__)

    def get_code(self, fullname: str) -> Any:
        code = super().get_code(fullname)
        # The engine diffs the first reload against the source the module ran.
        sources.remember(self.path, self._data)
        return code


class CommittedFinder(importlib.abc.MetaPathFinder):
    """First on ``sys.meta_path`` in a fleet worker: a module with committed bytes imports
    them; every other import goes on as usual."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        data = ledger.bytes_of(fullname)
        if data is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        assert spec.origin is not None
        spec.loader = _CommittedLoader(fullname, spec.origin, data)
        return spec


class Agent:
    """This process's membership of a fleet."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self._conn: Connection | None = None
        self._thread: threading.Thread | None = None
        self._index = ModuleIndex()
        # Of the round being prepared: the entries this process runs, and what to roll back to.
        self._entries: list[tuple[str, bytes]] = []
        self._before: tuple[State, dict[str, int]] | None = None
        self._promoting: tuple[str, str] | None = None  # a fleet canary's (module, reason)
        # The fleet's canaries of modules this process has not imported yet: started as the
        # module is imported (a worker that joined during the canary, before its app).
        self._pending: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        """Whether the coordinator's connection is open."""
        return self._conn is not None and self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float) -> bool:
        """Connect, take the fleet's committed release, and serve the coordinator from a
        daemon thread. False (logged) when the coordinator cannot be reached."""
        try:
            conn = protocol.connect(self.address)
            conn.send((protocol.HELLO, 0, {"pid": os.getpid()}))
            if not conn.poll(timeout):
                raise TimeoutError(f"no welcome within {timeout} s")
            kind, _, body = conn.recv()
        except (OSError, EOFError, TimeoutError, ValueError) as error:
            logger.warning(
                "hotswap: this process (pid %d) could not join the fleet of pid %d, and runs "
                "without its releases: %s",
                os.getpid(),
                self.address.pid,
                error,
            )
            return False
        self._conn = conn
        if kind == protocol.WELCOME:
            self._take(body["epoch"], body["overlay"])
            for spec in body.get("canaries", ()):  # joining while the fleet runs a canary
                self._canary(spec)
        results = logging.getLogger("hotswap._engine.transaction")
        if results.level == logging.NOTSET:
            # The coordinator logs one line per release for the fleet; a worker's own
            # results would repeat it once per worker. Its failures still show.
            results.setLevel(logging.WARNING)
        global _on_import, _on_boot_failure
        _on_import = self.imported
        _on_boot_failure = self.boot_failed
        install_finder()
        self._thread = threading.Thread(target=self._serve, name="hotswap-fleet-agent", daemon=True)
        self._thread.start()
        logger.debug("hotswap: pid %d joined the fleet at %s", os.getpid(), short(ledger.epoch))
        return True

    def close(self) -> None:
        """Leave the fleet (the coordinator sees the connection close)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _take(self, epoch: str, overlay: dict[str, bytes]) -> None:
        """Run the fleet's committed overlay: the loaded modules that differ take its bytes."""
        release = Release(ledger.epoch, overlay, epoch)
        entries = []
        for name, data in overlay.items():
            module = sys.modules.get(name)
            if module is None or _live_hash(module) == digest(data):
                continue
            entries.append((name, data))
        ledger.adopt(epoch, overlay)
        if not entries:
            return
        with ledger.applying(release):
            results = transaction.reload_many(entries)
        for result in results:
            if not result.ok:
                logger.warning(
                    "hotswap: pid %d could not take the fleet's release %s: %s",
                    os.getpid(),
                    short(epoch),
                    result.error,
                )

    # --- the coordinator's requests ------------------------------------------------------------

    def _serve(self) -> None:
        conn = self._conn
        warmed = -1
        while conn is not None:
            try:
                if not conn.poll(_IDLE):
                    if len(sys.modules) != warmed:
                        warmed = len(sys.modules)
                        _warm(lambda: bool(conn.poll(0)))
                    continue
                kind, number, body = conn.recv()
            except (EOFError, OSError):
                logger.warning(
                    "hotswap: the fleet's coordinator (pid %d) is gone; pid %d keeps running "
                    "epoch %s",
                    self.address.pid,
                    os.getpid(),
                    short(ledger.epoch),
                )
                self._conn = None
                return
            try:
                reply = self._handle(kind, body)
            except BaseException as error:  # the agent never dies; the coordinator hears why
                logger.exception("hotswap: the fleet agent failed on %s", kind)
                reply = {"ok": False, "error": HotswapError(f"pid {os.getpid()}: {error!r}")}
            if reply is None:
                continue
            reply.setdefault("pid", os.getpid())
            reply.setdefault("epoch", ledger.epoch)
            try:
                conn.send(
                    (protocol.VOTE if kind == protocol.PREPARE else protocol.DONE, number, reply)
                )
            except (OSError, ValueError):
                self._conn = None
                return

    def _handle(self, kind: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if kind == protocol.PREPARE:
            return self._prepare(
                body["parent"], body["files"], body.get("canary", ""), body.get("why", "")
            )
        if kind == protocol.COMMIT:
            return self._commit(body["release"], body["timeout"], body.get("deadline"))
        if kind == protocol.ROLLBACK:
            return self._rollback(body["epoch"])
        if kind == protocol.ABORT:
            self._entries, self._before, self._promoting = [], None, None
            return None
        if kind == protocol.WELCOME:  # a resynchronisation: the fleet moved on without it
            self._take(body["epoch"], body["overlay"])
            return None
        if kind == protocol.CANARY:
            return self._canary(body["spec"])
        if kind == protocol.STATS and body.get("health"):
            return {"ok": True, "health": _health.figures()}
        if kind == protocol.STATS:
            run = _canary.running().get(body["module"])
            if run is None:
                return {"ok": True, "stats": None}
            stats, latency = run.measured()
            return {"ok": True, "stats": stats, "latency": latency}
        if kind == protocol.END:
            self._pending.pop(body["module"], None)
            run = _canary.running().get(body["module"])
            if run is not None:
                run._finish("abort", body["reason"] or "aborted by the fleet", by_caller=True)
            return {"ok": True}
        return None

    def _canary(self, spec: Any) -> dict[str, Any]:
        """Start the fleet's candidate here (the fleet decides); the module, or "" when this
        process does not run it."""
        name = spec.module
        if not name:
            found = self._index.modules_for(spec.path)
            name = found[0] if found else ""
        module = sys.modules.get(name) if name else None
        if module is None:
            if name:
                self._pending[name] = spec
            return {"ok": True, "module": ""}
        # What the live version runs: a worker that starts during the canary imports it.
        running = {}
        if ledger.bytes_of(name) is None and (live := _live_bytes(module)) is not None:
            running[name] = live
        try:
            _canary.start(module, spec.data, **spec.params(), log=False, fleet=True)
        except HotswapError as error:
            return {"ok": False, "module": "", "error": error, "running": running}
        return {"ok": True, "module": name, "running": running}

    def boot_failed(self, name: str, error: BaseException) -> bytes | None:
        """Importing the release's bytes of ``name`` raised: tell the coordinator (the fleet
        rolls the release back and marks it bad); the bytes of the epoch to boot on, or None
        (genesis code failing is not a release's fault: the error stands)."""
        if ledger.state().overlay.get(name) is None:
            return None
        body = {"epoch": ledger.epoch, "module": name, "error": f"{type(error).__name__}: {error}"}
        logger.error(
            "hotswap: pid %d could not import %s of the fleet's release %s: %s",
            os.getpid(),
            name,
            short(ledger.epoch),
            body["error"],
        )
        try:
            timeout = _settings.current().commit_timeout * 2 + 5.0
            welcome = protocol.ask(self.address, "boot-failed", body, timeout).get("welcome")
        except OSError:
            return None
        if not welcome:
            return None
        ledger.adopt(welcome["epoch"], welcome["overlay"])
        return ledger.bytes_of(name)

    def imported(self, name: str) -> None:
        """Module ``name`` was just imported: the fleet's canary of it, if any, starts."""
        spec = self._pending.pop(name, None)
        if spec is None:
            return
        answer = self._canary(spec)
        if answer.get("error") is not None:
            logger.warning(
                "hotswap: pid %d could not join the fleet's canary of %s: %s",
                os.getpid(),
                name,
                answer["error"],
            )

    def _prepare(
        self, parent: str, files: dict[str, bytes], canary: str = "", why: str = ""
    ) -> dict[str, Any]:
        self._entries, self._before, self._promoting = [], None, None
        if ledger.epoch != parent:
            message = (
                f"pid {os.getpid()} is at epoch {short(ledger.epoch)}, not at the parent "
                f"{short(parent)}"
            )
            return {"ok": False, "behind": True, "error": HotswapError(message), "names": {}}
        if canary:  # a fleet canary's promotion: this process runs its candidate, or not
            run = _canary.running().get(canary)
            if run is not None:
                self._promoting = (canary, why)
            elif canary in sys.modules:
                error = HotswapError(f"pid {os.getpid()} runs no candidate of {canary}")
                return {"ok": False, "error": error, "names": {}}
            return {"ok": True, "names": {}}
        names: dict[str, list[str]] = {}
        entries = []
        for path, data in files.items():
            found = self._index.modules_for(path)
            names[path] = found
            entries += [(name, data) for name in found]
        # What the modules of genesis run, for the coordinator to hand to later workers.
        running = {
            name: live
            for name, _ in entries
            if ledger.bytes_of(name) is None and (live := _live_bytes(sys.modules[name]))
        }
        try:
            warnings = transaction.prepare_many(entries) if entries else ()
        except HotswapError as error:
            return {"ok": False, "error": error, "names": names, "running": running}
        self._entries = entries
        return {"ok": True, "names": names, "warnings": warnings, "running": running}

    def _commit(
        self, release: Release, timeout: float, deadline: float | None = None
    ) -> dict[str, Any]:
        if deadline is not None:
            # time.monotonic() is one clock for every process of the machine.
            late = time.monotonic() - deadline
            if late > 0:
                self._entries, self._before, self._promoting = [], None, None
                message = (
                    f"pid {os.getpid()} read the commit of {short(release.epoch)} {late:.1f} s "
                    "after its deadline (stopped?); not committed"
                )
                return {"ok": False, "error": HotswapError(message), "results": []}
            timeout = min(timeout, deadline - time.monotonic())
        entries = [(n, release.modules[n]) for n, _ in self._entries if n in release.modules]
        self._entries = []
        versions = {n: s.version for n, s in transaction.module_statuses().items()}
        self._before = (ledger.state(), versions)
        promoting, self._promoting = self._promoting, None
        run = None if promoting is None else _canary.running().get(promoting[0])
        if promoting is not None and run is not None:
            with ledger.applying(release):
                result = run._finish("promote", promoting[1], by_caller=True)
            if not result.ok:
                self._before = None
            return {"ok": result.ok, "error": result.error, "results": [result]}
        if not entries:
            with ledger.applying(release):
                ledger.advance({})
            return {"ok": True, "results": []}
        results = _commit_within(entries, release, timeout)
        failed = next((r for r in results if not r.ok), None)
        if failed is not None:
            self._before = None  # the transaction rolled itself back: at the parent already
        return {
            "ok": failed is None,
            "error": None if failed is None else failed.error,
            "results": results,
        }

    def _rollback(self, epoch: str) -> dict[str, Any]:
        before, self._before = self._before, None
        if before is None or ledger.epoch != epoch:
            return {"ok": True, "results": []}
        state, versions = before
        results = []
        for name, status in transaction.module_statuses().items():
            earlier = versions.get(name)
            if earlier is not None and status.version != earlier:
                results.append(transaction.rollback(name, to=earlier, reason="fleet rollback"))
        ledger.restore(state)
        failed = next((r for r in results if not r.ok), None)
        return {"ok": failed is None, "error": None if failed is None else failed.error}


def _commit_within(
    entries: list[tuple[str, bytes]], release: Release, timeout: float
) -> list[ReloadResult]:
    """Apply the entries, retrying while pinned sections stay, until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        with ledger.applying(release):
            results = transaction.reload_many(
                entries, pin_timeout=max(0.0, min(_ATTEMPT, remaining))
            )
        waited = any(isinstance(r.error, PinTimeoutError) for r in results)
        if not waited:
            return results
        if time.monotonic() >= deadline:
            message = (
                f"pid {os.getpid()}: pinned sections did not leave within {timeout:.1f} s "
                "(commit_timeout); nothing changed"
            )
            error = PinTimeoutError(message)
            return [dataclasses.replace(r, error=error) for r in results]


def _warm(stop: Callable[[], bool]) -> None:
    """Prepare the importer search and the first reloads' baselines while idle (see
    :func:`hotswap._engine.importers.warm`): the first vote after the program imported its
    code pays it otherwise, on the path from save to every worker. ``stop()``: a message
    came; it is served at once."""
    try:
        importers.warm(stop)
    except Exception:  # a warm-up only; the vote does the same and reports
        logger.debug("hotswap: fleet warm-up failed", exc_info=True)


def _live_bytes(module: types.ModuleType) -> bytes | None:
    """The bytes of the source ``module`` runs, when hotswap knows them."""
    record = records.get(module.__name__)
    if record is None or record.namespace is not vars(module):
        file = getattr(module, "__file__", None)
        return sources.peek(file) if isinstance(file, str) else None
    live = record.current.source
    if live is None or record.current.source_hash is None:
        return None
    data = live.source.encode()
    return data if digest(data) == record.current.source_hash else None


def _live_hash(module: types.ModuleType) -> str | None:
    """sha256 of the source ``module`` runs, when hotswap knows it."""
    status = transaction.module_statuses().get(module.__name__)
    if status is not None and status.source_hash is not None:
        return status.source_hash
    file = getattr(module, "__file__", None)
    data = sources.peek(file) if isinstance(file, str) else None
    return None if data is None else digest(data)


def install_finder() -> None:
    """Put :class:`CommittedFinder` first on ``sys.meta_path`` (once)."""
    remove_finder()
    sys.meta_path.insert(0, CommittedFinder())


def remove_finder() -> None:
    """Take :class:`CommittedFinder` off ``sys.meta_path``."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, CommittedFinder)]


_agent: Agent | None = None
_lock = threading.Lock()
# Called with a module's name after the committed bytes of it were imported (the agent's).
_on_import: Callable[[str], None] | None = None
# Called when importing a module's committed bytes raised: the bytes to import instead.
_on_boot_failure: Callable[[str, BaseException], bytes | None] | None = None


def current() -> Agent | None:
    """This process's agent, if it joined a fleet."""
    return _agent


def join(address: Address) -> Agent | None:
    """Join the fleet at ``address`` (once per process); the agent, or None if unreachable."""
    global _agent
    with _lock:
        if _agent is not None and _agent.connected:
            return _agent
        agent = Agent(address)
        timeout = _settings.current().commit_timeout + 5.0
        _agent = agent if agent.join(timeout) else None
        return _agent


def forget() -> None:
    """Drop the membership inherited through ``fork()`` (its thread did not come along)."""
    global _agent, _lock, _on_import, _on_boot_failure
    _agent = None
    _on_import = _on_boot_failure = None
    _lock = threading.Lock()
