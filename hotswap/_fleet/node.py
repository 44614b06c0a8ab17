"""A node of a cluster: one engine process (a Celery worker's MainProcess, a Dask worker) that
takes a cluster coordinator's messages and carries them to every process it runs.

A node is a participant of the cluster's two phases (:mod:`hotswap._fleet.cluster`) and, at
the same time, the coordinator of its own local fleet: the processes it forked (Celery's
prefork pool children) joined it through :mod:`hotswap._fleet.agent`. ``prepare`` plans the
release in the node itself and in each of its children (nothing live changes) and answers with
one vote for all of them; ``commit`` applies it in the node and in the children that voted, with
the local coordinator's commit (children that joined meanwhile are sent the committed state);
``rollback`` undoes a commit that another node could not make; ``sync`` takes a committed
state the node missed (it started later, or was cut off).

Every message carries the cluster coordinator's *term*: a node refuses a message whose term is
lower than the highest it has seen, so a stale coordinator cannot commit over a newer one. The
phases also carry their round's number in the term (``seq``): a node refuses a phase of a round
older than the newest it has seen, and a prepare or commit of a round that is over here
(aborted, rolled back, or closed by a ``sync``), since an engine may deliver a phase to a node
that was cut off long after the coordinator gave up on it.
Messages and answers are plain JSON-friendly dicts (bytes in base64), whatever the engine
carries them in (:func:`hotswap._fleet.wire.encode`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hotswap._config import settings as _settings
from hotswap._engine import transaction
from hotswap._fleet import cluster_canary, protocol, wire
from hotswap._fleet.agent import CommittedFinder
from hotswap._fleet.agent import _live_bytes as live_bytes
from hotswap._fleet.agent import _live_hash as live_hash
from hotswap._fleet.coordinator import Coordinator, Peer
from hotswap._fleet.release import Release, State, digest, ledger, short
from hotswap._plan import sources
from hotswap.exceptions import HotswapError

__all__ = ("Node", "node")

logger = logging.getLogger(__name__)


_Key = tuple[int, int]  # a round: (term, seq)


def _key(body: dict[str, Any]) -> _Key:
    return int(body.get("term", 0)), int(body.get("seq", 0))


@dataclass
class _Prepared:
    round: str
    key: _Key
    parent: str
    entries: list[tuple[str, bytes]]
    peers: list[Peer]
    number: int


@dataclass
class _Undo:
    key: _Key
    epoch: str
    state: State
    versions: dict[str, int]
    peers: list[Peer] = field(default_factory=list)


class Node:
    """This process as a node of a cluster (one per process: :func:`node`).

    Args:
        local: this process's fleet coordinator (its forked children), or None when it has no
            children of its own.
    """

    def __init__(self, local: Coordinator | None) -> None:
        self.local = local
        self._lock = threading.RLock()
        self._term = 0
        self._last: _Key = (0, 0)  # the newest round seen
        self._closed: _Key = (0, 0)  # the rounds up to this one are over here
        self._prepared: _Prepared | None = None
        self._undo: _Undo | None = None
        self._finder_installed = False
        # A module of a committed release that this process imports later (it had not when
        # the release came) runs the committed bytes, never its file.
        self._install_finder()

    # --- answers -------------------------------------------------------------------------------

    def _answer(self, ok: bool, **extra: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "ok": ok,
            "pid": os.getpid(),
            "epoch": ledger.epoch,
            "term": self._term,
            "workers": self._workers(),
        }
        answer.update(extra)
        return answer

    def _workers(self) -> dict[str, str]:
        workers = {} if self.local is None else self.local.workers()
        return {str(pid): epoch for pid, epoch in workers.items()}

    def _stale(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Refuse a message of an older term; remember a newer one."""
        term = int(body.get("term", 0))
        if term < self._term:
            error = f"pid {os.getpid()}: term {term} is stale (this node has seen {self._term})"
            return self._answer(False, stale=True, error=error)
        self._term = term
        return None

    def _late(self, body: dict[str, Any], *, opens: bool) -> dict[str, Any] | None:
        """Refuse a phase of a round older than the newest seen (or, ``opens``: a prepare or
        a commit, of a round that is over here); remember a newer round."""
        stale = self._stale(body)
        if stale is not None:
            return stale
        key = _key(body)
        if key < self._last or (opens and key <= self._closed):
            why = "is over here" if key >= self._last else "is older than the newest seen"
            error = f"pid {os.getpid()}: round {key[1]} of term {key[0]} {why}"
            return self._answer(False, stale=True, error=error)
        self._last = key
        return None

    def _close(self, key: _Key) -> None:
        self._closed = max(self._closed, key)
        self._last = max(self._last, key)

    # --- the phases ----------------------------------------------------------------------------

    def status(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """This node's epoch, term, children (pid -> epoch) and canaries (module -> weight)."""
        canaries = cluster_canary.running(self.local)
        return self._answer(True, modules=sorted(ledger.state().hashes), canaries=canaries)

    def canary(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start the cluster's canary ``body["canary"]`` here and in the children."""
        with self._lock:
            stale = self._stale(body)
            if stale is not None:
                return stale
            error = cluster_canary.start(self.local, body["canary"])
            return self._answer(error is None, error=error)

    def end_canary(self, body: dict[str, Any]) -> dict[str, Any]:
        """End the cluster's canary of ``body["module"]`` here (the candidate is dropped)."""
        with self._lock:
            stale = self._stale(body)
            if stale is not None:
                return stale
            reason = str(body.get("reason", "the cluster ended it"))
            error = cluster_canary.end(self.local, str(body["module"]), reason)
            return self._answer(error is None, error=error)

    def prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """Plan ``body["modules"]`` (name -> base64 bytes) on ``body["parent"]`` in this
        process and its children; one vote for all, with every refusal's error."""
        with self._lock:
            stale = self._late(body, opens=True)
            if stale is not None:
                return stale
            self._prepared = None
            parent = body["parent"]
            if ledger.epoch != parent:
                why = (
                    f"pid {os.getpid()} is at epoch {short(ledger.epoch)}, not at the parent "
                    f"{short(parent)}"
                )
                return self._answer(False, behind=True, error=why)
            modules = wire.decode(body["modules"])
            base = {n: b for n in modules if (b := _base_of(n)) is not None}
            prepared, votes, error = self._prepare(str(body["round"]), _key(body), parent, modules)
            ok = error is None and all(v["ok"] for v in votes)
            if ok:
                self._prepared = prepared
            elif prepared.number:
                self._send(prepared.peers, (protocol.ABORT, prepared.number, {}))
            return self._answer(ok, error=error, votes=votes, base=wire.encode(base))

    def _prepare(
        self, round_: str, key: _Key, parent: str, modules: dict[str, bytes]
    ) -> tuple[_Prepared, list[dict[str, Any]], str | None]:
        entries = [(n, data) for n, data in modules.items() if n in sys.modules]
        error: str | None = None
        if entries:
            try:
                transaction.prepare_many(entries)
            except HotswapError as failure:
                error = f"pid {os.getpid()}: {failure}"
        files = {p: data for n, data in modules.items() if (p := _path_of(n)) is not None}
        prepared = _Prepared(round_, key, parent, entries, [], 0)
        votes: list[dict[str, Any]] = []
        if self.local is None or not files:
            return prepared, votes, error
        local = self.local
        timeout = _settings.current().commit_timeout
        with local.lock:
            prepared.number = local.new_round()
            message = (protocol.PREPARE, prepared.number, {"parent": parent, "files": files})
            sent = local.send(local.peers(), message)
            answers = local.gather(sent, prepared.number, protocol.VOTE, timeout)
        for peer, answer in answers.items():
            if not isinstance(answer, dict):
                gone = answer is not None
                if not gone:
                    votes.append({"pid": peer.pid, "ok": False, "error": "no vote in time"})
                continue
            prepared.peers.append(peer)
            for name, data in answer.get("running", {}).items():
                ledger.pin(name, data)  # genesis bytes, for the children forked later
            why = answer.get("error")
            error_text = None if why is None else str(why)
            votes.append({"pid": peer.pid, "ok": bool(answer["ok"]), "error": error_text})
        return prepared, votes, error

    def commit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply the release ``body["release"]`` here and in the children that prepared it
        (preparing it first when this node missed the prepare: it started since)."""
        with self._lock:
            stale = self._late(body, opens=True)
            if stale is not None:
                return stale
            release = wire.release_of(body["release"])
            if ledger.epoch == release.epoch:
                return self._answer(True, already=True)
            if ledger.epoch != release.parent:
                why = f"pid {os.getpid()} is at {short(ledger.epoch)}, not {short(release.parent)}"
                return self._answer(False, behind=True, error=why)
            prepared, self._prepared = self._prepared, None
            if prepared is None or prepared.round != str(body["round"]):
                prepared, votes, error = self._prepare(
                    str(body["round"]), _key(body), release.parent, dict(release.modules)
                )
                refused = error or next((str(v["error"]) for v in votes if not v["ok"]), None)
                if refused is not None:
                    self._send(prepared.peers, (protocol.ABORT, prepared.number, {}))
                    return self._answer(False, error=refused)
            return self._commit(release, prepared)

    def _commit(self, release: Release, prepared: _Prepared) -> dict[str, Any]:
        _pin_genesis(release.modules)
        state = ledger.state()
        versions = {n: s.version for n, s in transaction.module_statuses().items()}
        timeout = _settings.current().commit_timeout
        start = time.perf_counter()
        if self.local is None:
            with ledger.applying(release):
                results = transaction.reload_many(prepared.entries) if prepared.entries else []
                if not prepared.entries:
                    ledger.advance({})
            failed = next((r for r in results if not r.ok), None)
            if failed is not None:
                return self._answer(False, error=f"pid {os.getpid()}: {failed.error}")
            self._undo = _Undo(prepared.key, release.epoch, state, versions)
            return self._answer(True)
        local = self.local
        with local.lock:
            number = prepared.number or local.new_round()
            fleet = local.commit(
                release, prepared.peers, prepared.entries, state, number, timeout, start
            )
            if not fleet.ok:
                return self._answer(False, error=fleet.describe())
            self._undo = _Undo(prepared.key, release.epoch, state, versions, list(prepared.peers))
            # Children that joined since the prepare were welcomed at the parent: resync them.
            local.welcome([p for p in local.peers() if p not in prepared.peers])
        return self._answer(True, window=fleet.window)

    def abort(self, body: dict[str, Any]) -> dict[str, Any]:
        """Drop a prepared round (nothing live had changed); it is over here."""
        with self._lock:
            stale = self._late(body, opens=False)
            if stale is not None:
                return stale
            self._close(_key(body))
            prepared, self._prepared = self._prepared, None
            if prepared is not None and prepared.number:
                self._send(prepared.peers, (protocol.ABORT, prepared.number, {}))
            return self._answer(True)

    def rollback(self, body: dict[str, Any]) -> dict[str, Any]:
        """Undo the commit of ``body["epoch"]`` in this round (another node could not commit
        it); the round is over here, and a commit of it that comes later is refused."""
        with self._lock:
            stale = self._late(body, opens=False)
            if stale is not None:
                return stale
            key = _key(body)
            self._close(key)
            undo, self._undo = self._undo, None
            if undo is None or undo.key != key or ledger.epoch != body["epoch"]:
                return self._answer(True)
            errors = []
            if self.local is not None and undo.peers:
                local = self.local
                timeout = _settings.current().commit_timeout
                with local.lock:
                    number = local.new_round()
                    message = (protocol.ROLLBACK, number, {"epoch": undo.epoch})
                    sent = local.send(undo.peers, message)
                    answers = local.gather(sent, number, protocol.DONE, timeout)
                errors += [
                    f"pid {p.pid}: {a.get('error')}"
                    for p, a in answers.items()
                    if isinstance(a, dict) and not a.get("ok")
                ]
            for name, status in transaction.module_statuses().items():
                earlier = undo.versions.get(name)
                if earlier is not None and status.version != earlier:
                    result = transaction.rollback(name, to=earlier, reason="cluster rollback")
                    if not result.ok:
                        errors.append(f"pid {os.getpid()}: {result.error}")
            ledger.restore(undo.state)
            self._resync()
            return self._answer(not errors, error="; ".join(errors) or None)

    def sync(self, body: dict[str, Any]) -> dict[str, Any]:
        """Take the cluster's committed state (epoch and overlay) when this node is not on it:
        the modules it runs take the committed bytes, its children are sent the state."""
        with self._lock:
            stale = self._stale(body)
            if stale is not None:
                return stale
            self._close((self._term, int(body.get("closes", 0))))
            self._install_finder()
            epoch, overlay = body["epoch"], wire.decode(body["overlay"])
            already = ledger.epoch == epoch
            error = None if already else take(epoch, overlay)
            if not already:
                self._prepared = self._undo = None
                self._resync()
            if error is None and body.get("canary"):  # joined while the cluster's canary runs
                error = cluster_canary.start(self.local, body["canary"])
            return self._answer(error is None, error=error, already=already)

    def _resync(self) -> None:
        if self.local is None:
            return
        with self.local.lock:
            self.local.welcome([p for p in self.local.peers() if p.epoch != ledger.epoch])

    def _send(self, peers: list[Peer], message: protocol.Message) -> None:
        if self.local is not None and peers:
            with self.local.lock:
                self.local.send(peers, message)

    def _install_finder(self) -> None:
        """Modules of the committed overlay imported later run its bytes, not the file."""
        if not self._finder_installed:
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, CommittedFinder)]
            sys.meta_path.insert(0, CommittedFinder())
            self._finder_installed = True


def take(epoch: str, overlay: dict[str, bytes]) -> str | None:
    """Run a committed overlay in this process: the loaded modules whose code differs take its
    bytes, in one transaction; the epoch becomes ``epoch``. The error, or None.

    The cluster checked the release when its nodes prepared it; this process may have imported
    something else from its disk since (a node that started later reads whatever the file
    holds, perhaps a save the cluster rejected), so the compatibility policy does not apply
    here: it takes the committed code as the cluster decided (``policy="off"``).

    A module this process changed that ``overlay`` leaves out goes back to the bytes it ran
    before its first release (a commit that reached this node late, of a round the cluster
    rolled back)."""
    _pin_genesis(overlay)
    current = ledger.state().overlay
    back = {n: b for n in current if n not in overlay and (b := ledger.genesis_of(n)) is not None}
    entries = []
    for name, data in {**back, **overlay}.items():
        module = sys.modules.get(name)
        if module is not None and live_hash(module) != digest(data):
            entries.append((name, data))
    release = Release(ledger.epoch, overlay, epoch)
    before = ledger.state()
    ledger.adopt(epoch, overlay)
    if not entries:
        return None
    with ledger.applying(release):
        results = transaction.reload_many(entries, policy="off")
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    ledger.restore(before)  # the transaction rolled back: this process runs the old epoch
    logger.warning(
        "hotswap: pid %d could not take the cluster's release %s: %s",
        os.getpid(),
        short(epoch),
        failed[0].error,
    )
    return f"pid {os.getpid()}: {failed[0].error}"


def _pin_genesis(names: Iterable[str]) -> None:
    """Remember what the loaded modules among ``names`` run before a release first changes
    them (what a later state without them goes back to)."""
    overlay = ledger.state().overlay
    for name in names:
        module = sys.modules.get(name)
        if module is not None and name not in overlay:
            data = live_bytes(module)
            if data is not None:
                ledger.pin(name, data)


def _path_of(name: str) -> str | None:
    """The file module ``name`` runs here, or would import from."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) if module is not None else None
    if isinstance(file, str):
        return os.path.abspath(file)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = None if spec is None else spec.origin
    return os.path.abspath(origin) if origin and origin.endswith(".py") else None


def _base_of(name: str) -> bytes | None:
    """The bytes module ``name`` was imported from, before any release changed it (what a
    cluster rollback to an epoch without it goes back to)."""
    if ledger.state().overlay.get(name) is not None:
        return None
    module = sys.modules.get(name)
    if module is not None:
        return live_bytes(module)
    path = _path_of(name)
    return None if path is None else sources.peek(path)


_node: Node | None = None
_node_lock = threading.Lock()


def node(local: Coordinator | None) -> Node:
    """This process's node (made once; ``local`` is its fleet coordinator, if any)."""
    global _node
    with _node_lock:
        if _node is None or (_node.local is None and local is not None):
            _node = Node(local)
        return _node


def forget() -> None:
    """Drop the node inherited through ``fork()``: a child is a worker, not a node."""
    global _node, _node_lock
    _node = None
    _node_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=forget)
