"""A cluster coordinator: the same release and the same two phases as a local fleet, carried to
every node of an engine (Celery, Dask) by the engine's own messages.

The coordinator is any process that holds a :class:`Transport` (a developer's process, the
``hotswap fleet`` command, CI). A round: **prepare** goes to every node the transport knows
(each node prepares in itself and in its own processes and answers with one vote, see
:mod:`hotswap._fleet.node`); a node that is behind is sent the committed state and asked
again; on all-yes **commit** goes to every node, and once every node committed the new state is
written to the engine's store; otherwise **abort**. A node whose commit fails makes the others
**roll back** (the store never held that epoch). Nodes that appear during or after a commit are
sent **sync**. The store is the truth: a node that committed while the coordinator died before
storing is "behind" in the next round and is brought back to what the store says.

The committed state lives in the engine's store (a :class:`Record`: epoch, overlay, the bytes
the modules had before their first release, a short history), so a node that starts later takes
it before it runs anything, and ``rollback --to EPOCH`` knows the bytes of every epoch it keeps.
Each coordinator takes a new *term* from the store when it starts; nodes refuse messages of an
older term, so a stale coordinator cannot commit. Its rounds are numbered (``seq``) within the
term, and a node refuses a message of a round older than the newest it has seen, or of a round
that is over (aborted, rolled back, or closed by a ``sync``): an engine may deliver a phase
late, after the link to a cut node is back (a commit that would apply a release the cluster
rolled back, a rollback that would undo the next round's commit of the same epoch).
"""

from __future__ import annotations

import base64
import difflib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hotswap._config import settings as _settings
from hotswap._fleet import cluster_canary, wire
from hotswap._fleet.release import GENESIS, Release, short
from hotswap.exceptions import HotswapError

__all__ = (
    "Cluster",
    "ClusterResult",
    "NodeReport",
    "Record",
    "Transport",
    "engine",
    "register_engine",
)

logger = logging.getLogger(__name__)

_HISTORY = 20  # committed epochs kept in the store, for rollback --to


class Transport(Protocol):
    """What an engine's integration gives a cluster coordinator."""

    def members(self) -> list[str]:
        """The nodes expected to answer now."""
        ...

    def call(
        self, command: str, body: dict[str, Any], nodes: list[str], timeout: float
    ) -> dict[str, dict[str, Any] | None]:
        """Send ``command`` (status, prepare, commit, abort, rollback, sync) to ``nodes``;
        node -> its answer, None for a node that did not answer within ``timeout``."""
        ...

    def load(self) -> str | None:
        """The stored record (JSON text), or None."""
        ...

    def save(self, text: str) -> None:
        """Store the record (JSON text)."""
        ...


@dataclass
class Record:
    """The cluster's committed state, as stored.

    Attributes:
        term: the newest coordinator's term.
        epoch: the committed epoch.
        overlay: module name -> committed bytes.
        base: module name -> the bytes it ran before its first release.
        history: the last committed (epoch, overlay) pairs, newest last.
        canary: the cluster's running canary (:func:`hotswap._fleet.cluster_canary.spec_body`),
            or None.
    """

    term: int = 0
    epoch: str = GENESIS
    overlay: dict[str, bytes] = field(default_factory=dict)
    base: dict[str, bytes] = field(default_factory=dict)
    history: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)
    canary: dict[str, Any] | None = None

    def dumps(self) -> str:
        """As JSON text."""
        return json.dumps(
            {
                "term": self.term,
                "epoch": self.epoch,
                "overlay": wire.encode(self.overlay),
                "base": wire.encode(self.base),
                "history": [[e, wire.encode(o)] for e, o in self.history],
                "canary": self.canary,
            }
        )

    @classmethod
    def loads(cls, text: str | None) -> Record:
        """From JSON text (an empty record for None)."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            int(data["term"]),
            data["epoch"],
            wire.decode(data["overlay"]),
            wire.decode(data["base"]),
            [(e, wire.decode(o)) for e, o in data["history"]],
            data.get("canary"),
        )

    def sync_body(self, term: int, closes: int = 0) -> dict[str, Any]:
        """The ``sync`` message that brings a node to this state (and its canary); the rounds
        of ``term`` up to ``closes`` are over for the node once it took it."""
        body = {
            "term": term,
            "closes": closes,
            "epoch": self.epoch,
            "overlay": wire.encode(self.overlay),
        }
        return {**body, "canary": self.canary} if self.canary else body


@dataclass(frozen=True)
class NodeReport:
    """One node's part in a round.

    Attributes:
        node: its name.
        vote: True, False, or None (no answer).
        outcome: ``committed``, ``voted no``, ``no vote``, ``aborted``, ``commit failed``,
            ``no answer``, ``rolled back`` or ``synced``.
        error: why it refused or failed (naming the process, file and line).
        workers: its processes' pids -> epoch, as it answered.
    """

    node: str
    vote: bool | None
    outcome: str
    error: str | None = None
    workers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterResult:
    """The outcome of one release across a cluster.

    Attributes:
        epoch: the release's epoch.
        parent: the epoch it applied to.
        ok: True when every node committed it.
        outcome: ``committed``, ``aborted``, ``rolled back``, ``unchanged`` or ``dry run``
            (every node voted; nothing was committed).
        nodes: one :class:`NodeReport` per node.
        duration: seconds from the proposal to the last answer.
    """

    epoch: str
    parent: str
    ok: bool
    outcome: str
    nodes: tuple[NodeReport, ...]
    duration: float

    def describe(self) -> str:
        """One line: ``cluster 1a2b3c4d5e6f: committed on 2/2 nodes (41.0 ms)``, or why not."""
        ms = self.duration * 1000
        count = len(self.nodes)
        if self.outcome == "dry run":
            yes = sum(n.vote is True for n in self.nodes)
            votes = f"{yes}/{count} nodes vote yes"
            return f"cluster {short(self.epoch)}: dry run, {votes} ({ms:.1f} ms)"
        if self.ok:
            done = sum(n.outcome == "committed" for n in self.nodes)
            return (
                f"cluster {short(self.epoch)}: {self.outcome} on {done}/{count} nodes ({ms:.1f} ms)"
            )
        why = "; ".join(
            f"{n.node} {n.outcome}: {n.error}"
            for n in self.nodes
            if n.error and n.outcome not in ("aborted", "rolled back")
        )
        return (
            f"cluster {short(self.epoch)}: {self.outcome} on {count} nodes, "
            f"{short(self.parent)} stays: {why} ({ms:.1f} ms)"
        )


class Cluster:
    """Runs rounds across the nodes a transport reaches; see the module's docstring.

    Args:
        transport: the engine's (``hotswap.integrations.celery.transport(app)``, ...).
        timeout: seconds each node has to answer a phase (default: ``commit_timeout``).
    """

    def __init__(self, transport: Transport, *, timeout: float | None = None) -> None:
        self.transport = transport
        self.timeout = _settings.current().commit_timeout if timeout is None else timeout
        record = self.record()
        record.term += 1
        self.term = record.term
        self.seq = 0  # the number of this coordinator's latest round
        transport.save(record.dumps())

    def record(self) -> Record:
        """The committed state in the store now."""
        return Record.loads(self.transport.load())

    # --- reading -------------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any] | None]:
        """Node -> its answer (epoch, term, pid, workers: pid -> epoch), None if silent."""
        nodes = self.transport.members()
        return self.transport.call("status", {"term": 0}, nodes, self.timeout)

    def diff(self, modules: Mapping[str, bytes]) -> str:
        """A unified diff of ``modules`` against the committed bytes (or the bytes they ran
        before any release, where the store knows them)."""
        record = self.record()
        out: list[str] = []
        for name in sorted(modules):
            old = record.overlay.get(name, record.base.get(name))
            if old == modules[name]:
                continue
            before = [] if old is None else old.decode(errors="replace").splitlines(True)
            after = modules[name].decode(errors="replace").splitlines(True)
            label = name if old is not None else f"{name} (committed bytes unknown)"
            out += difflib.unified_diff(before, after, f"{label} @ {short(record.epoch)}", name)
        return "".join(out)

    # --- rounds --------------------------------------------------------------------------------

    def propose(self, modules: Mapping[str, bytes], *, dry_run: bool = False) -> ClusterResult:
        """Prepare ``modules`` (name -> bytes) on every node, then commit or abort them as one
        release; ``dry_run`` aborts after the votes (what would happen)."""
        record = self.record()
        changed = {n: b for n, b in modules.items() if record.overlay.get(n) != b}
        release = Release.of(record.epoch, changed)
        overlay = {**record.overlay, **changed}
        return self._round(record, release, overlay, dry_run=dry_run)

    def rollback(self, to: str) -> ClusterResult:
        """Go back to a committed epoch the store keeps, named by its hash or a prefix (or
        ``"genesis"``: the code first imported), as a new round."""
        record = self.record()
        to = GENESIS if to == "genesis" else to
        target: dict[str, bytes] | None = {} if to == GENESIS else None
        for epoch, overlay in record.history:
            if epoch == to or epoch.startswith(to):
                to, target = epoch, overlay
        if target is None:
            raise HotswapError(f"epoch {to} is not in the cluster's history")
        modules: dict[str, bytes] = {}
        for name in set(record.overlay) | set(target):
            wanted = target.get(name, record.base.get(name))
            if wanted is None:
                raise HotswapError(f"the bytes {name} ran before its first release are unknown")
            if record.overlay.get(name) != wanted:
                modules[name] = wanted
        release = Release(record.epoch, modules, to)
        return self._round(record, release, {**record.overlay, **modules})

    def abort(self) -> dict[str, dict[str, Any] | None]:
        """Drop any prepared round on every node (a coordinator died between the phases)."""
        body = {"term": self.term, "seq": self.seq, "round": ""}
        return self.transport.call("abort", body, self.transport.members(), self.timeout)

    def reconcile(self) -> dict[str, dict[str, Any] | None]:
        """Send the committed state to every node not on it."""
        record = self.record()
        nodes = self.transport.members()
        answers = self.transport.call("status", {"term": 0}, nodes, self.timeout)
        behind = [n for n, a in answers.items() if a is None or a.get("epoch") != record.epoch]
        if not behind:
            return {}
        body = record.sync_body(self.term, closes=self.seq)  # a late phase is refused then
        return self.transport.call("sync", body, behind, self.timeout)

    # --- the cluster's canary ---------------------------------------------------------------

    def canary(
        self,
        module: str,
        data: bytes,
        *,
        weight: float = 0.1,
        min_calls: int = 100,
        max_error_rate: float = 0.01,
    ) -> dict[str, dict[str, Any] | None]:
        """Start a canary of ``module`` with the candidate ``data`` on every node, at
        ``weight``: on every node or on none. It is kept in the store, so a node that joins
        while it runs starts it as it joins. Node -> its answer.

        Raises:
            HotswapError: a canary runs already, or a node could not start it (no node runs
                it then).
        """
        record = self.record()
        if record.canary:
            raise HotswapError(f"a canary of {record.canary['module']} runs in the cluster")
        body = cluster_canary.spec_body(module, data, weight, min_calls, max_error_rate)
        nodes = self.transport.members()
        answers = self.transport.call(
            "canary", {"term": self.term, "canary": body}, nodes, self.timeout
        )
        refused = {n: a for n, a in answers.items() if a is None or not a["ok"]}
        if refused:
            end = {"term": self.term, "module": module, "reason": "a node could not start it"}
            self.transport.call("end_canary", end, nodes, self.timeout)
            why = "; ".join(
                f"{n}: {(a or {}).get('error', 'no answer')}" for n, a in refused.items()
            )
            raise HotswapError(f"the canary of {module} did not start: {why}")
        record = self.record()
        record.canary = body
        self.transport.save(record.dumps())
        late = [n for n in self.transport.members() if n not in nodes]
        if late:
            answers.update(
                self.transport.call(
                    "sync", record.sync_body(self.term, closes=self.seq), late, self.timeout
                )
            )
        logger.info(
            "hotswap: cluster canary of %s at weight %g on %d nodes", module, weight, len(answers)
        )
        return answers

    def end_canary(self, *, promote: bool) -> ClusterResult | None:
        """End the cluster's canary on every node; with ``promote``, then release its
        candidate as one round (its result; it may abort as any round may).

        Raises:
            HotswapError: no canary runs in the cluster.
        """
        record = self.record()
        body = record.canary
        if not body:
            raise HotswapError("no canary runs in the cluster")
        record.canary = None
        self.transport.save(record.dumps())
        reason = "promoted by the cluster" if promote else "aborted by the cluster"
        end = {"term": self.term, "module": body["module"], "reason": reason}
        self.transport.call("end_canary", end, self.transport.members(), self.timeout)
        if not promote:
            return None
        return self.propose({body["module"]: base64.b64decode(body["data"])})

    def _round(
        self, record: Record, release: Release, overlay: dict[str, bytes], *, dry_run: bool = False
    ) -> ClusterResult:
        start = time.perf_counter()
        if record.term > self.term:
            raise HotswapError(
                f"a newer coordinator (term {record.term}) took over from this one ({self.term})"
            )
        if not release.modules:
            # Nothing to release; a node that took a late phase of a cut round may still run
            # something else: it is brought back to the committed state.
            self.reconcile()
            return ClusterResult(record.epoch, record.epoch, True, "unchanged", (), 0.0)
        round_id = uuid.uuid4().hex
        self.seq += 1
        seq = self.seq
        nodes = self.transport.members()
        call = self.transport.call
        prepare = {
            "term": self.term,
            "seq": seq,
            "round": round_id,
            "parent": release.parent,
            "modules": wire.encode(release.modules),
        }
        votes = call("prepare", prepare, nodes, self.timeout)
        behind = [n for n, v in votes.items() if v is not None and v.get("behind")]
        if behind:
            call("sync", record.sync_body(self.term, closes=seq - 1), behind, self.timeout)
            votes.update(call("prepare", prepare, behind, self.timeout))
        refused = [n for n, v in votes.items() if v is None or not v["ok"]]
        base = dict(record.base)
        for vote in votes.values():
            for name, data in wire.decode((vote or {}).get("base", {})).items():
                base.setdefault(name, data)
        if refused or dry_run:
            if base != record.base:  # what the modules ran before any release: for diff
                learnt = self.record()
                learnt.base = {**base, **learnt.base}
                self.transport.save(learnt.dumps())
            abort = {"term": self.term, "seq": seq, "round": round_id}
            call("abort", abort, nodes, self.timeout)
            reports = tuple(_vote_report(n, votes[n]) for n in nodes)
            result = ClusterResult(
                release.epoch,
                release.parent,
                False,
                "aborted" if refused else "dry run",
                reports,
                time.perf_counter() - start,
            )
            return self._log(result)
        history = [*record.history, (release.epoch, overlay)][-_HISTORY:]
        if not record.history:
            history.insert(0, (release.parent, dict(record.overlay)))
        after = Record(self.term, release.epoch, overlay, base, history, record.canary)
        commit = {
            "term": self.term,
            "seq": seq,
            "round": round_id,
            "release": wire.release_body(release),
        }
        dones = call("commit", commit, nodes, self.timeout)
        failed = [n for n, d in dones.items() if d is None or not d["ok"]]
        if failed:
            # Every node: one that answered late may have committed (a node that did not
            # commit this epoch ignores it).
            undo = {"term": self.term, "seq": seq, "round": round_id, "epoch": release.epoch}
            call("rollback", undo, nodes, self.timeout)
            reports = tuple(_done_report(n, dones[n], rolled_back=True) for n in nodes)
            result = ClusterResult(
                release.epoch,
                release.parent,
                False,
                "rolled back",
                reports,
                time.perf_counter() - start,
            )
            return self._log(result)
        # Stored once every node committed: the store is what a node that starts from now on
        # takes (a worker plugin, a node's start), so it never holds an epoch that may still
        # roll back. A node that started meanwhile took the parent and is in ``late``.
        self.transport.save(after.dumps())
        reports = tuple(_done_report(n, dones[n], rolled_back=False) for n in nodes)
        late = [n for n in self.transport.members() if n not in nodes]
        if late:
            synced = call("sync", after.sync_body(self.term, closes=seq), late, self.timeout)
            reports += tuple(_done_report(n, synced[n], rolled_back=False) for n in late)
        result = ClusterResult(
            release.epoch, release.parent, True, "committed", reports, time.perf_counter() - start
        )
        return self._log(result)

    def _log(self, result: ClusterResult) -> ClusterResult:
        quiet = result.ok or result.outcome == "dry run"
        logger.log(logging.INFO if quiet else logging.WARNING, "hotswap: %s", result.describe())
        return result


def _workers(answer: dict[str, Any] | None) -> dict[str, str]:
    return dict((answer or {}).get("workers", {}))


def _vote_report(node: str, vote: dict[str, Any] | None) -> NodeReport:
    if vote is None:
        return NodeReport(node, None, "no vote", "no answer in time")
    if not vote["ok"]:
        errors = [vote.get("error")] + [w["error"] for w in vote.get("votes", ()) if not w["ok"]]
        why = "; ".join(str(e) for e in errors if e)
        return NodeReport(node, False, "voted no", why or None, _workers(vote))
    return NodeReport(node, True, "aborted", None, _workers(vote))


def _done_report(node: str, done: dict[str, Any] | None, *, rolled_back: bool) -> NodeReport:
    if done is None:
        return NodeReport(node, True, "no answer", "no answer to commit in time")
    if not done["ok"]:
        return NodeReport(node, True, "commit failed", done.get("error"), _workers(done))
    outcome = "rolled back" if rolled_back else "committed"
    return NodeReport(node, True, outcome, None, _workers(done))


# --- engines: how an operator command finds a cluster's transport --------------------------------

_ENGINES: dict[str, Callable[[str], Transport]] = {}


def register_engine(name: str, connect: Callable[[str], Transport]) -> None:
    """An integration says how to reach its engine from an address the operator gives
    (``hotswap fleet --celery tasks``: ``connect("tasks")``)."""
    _ENGINES[name] = connect


def engine(name: str, address: str) -> Transport:
    """The transport of engine ``name`` at ``address``.

    Raises:
        KeyError: no integration registered ``name``.
    """
    return _ENGINES[name](address)
