"""The coordinator: the one process of a fleet that watches, and turns each change set into a
release that every worker prepares, then commits, or that every worker drops.

A round, for one change set (path -> bytes of every changed file):

1. **prepare**: every worker maps the files to the modules it runs and plans them against its
   own live code (read, compatibility, audit, compile: nothing live changes), then votes, with
   the error (file, line) when it votes no. A worker not at the parent epoch votes no; it is
   sent the fleet's state and asked once more. The coordinator prepares the modules it runs
   itself (``--preload``) the same way.
2. the release is the bytes of every module some participant runs, on the parent epoch.
3. **commit** on all-yes: every worker applies the exact bytes with the transaction of
   :func:`hotswap.reload` (retrying while pinned requests hold it, within ``commit_timeout``),
   and so does the coordinator; otherwise **abort** everywhere. When a commit fails, or a
   worker does not answer in time, the workers that committed **roll back** to the parent
   epoch. A worker that is gone (its connection closed) is no longer a participant.

One :class:`FleetResult` per round is logged (``hotswap: fleet e3f2a1b4c5d6: committed in 3/3
workers (12.1 ms)``) and kept; the watcher's ``on_reload`` gets one result per module, whose
``reason`` says the same.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hotswap._config import settings as _settings
from hotswap._engine import transaction
from hotswap._engine.outcome import report
from hotswap._fleet import protocol
from hotswap._fleet.canary import Canaries, Spec
from hotswap._fleet.health import Health
from hotswap._fleet.release import Release, State, ledger, short, welcome_body
from hotswap._fleet.result import FleetResult, WorkerReport, vote_report
from hotswap._ops.events import ReloadResult
from hotswap.exceptions import HotswapError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ("Coordinator", "FleetResult", "WorkerReport")

logger = logging.getLogger(__name__)

Entries = list[tuple[str, bytes]]
Local = Callable[[Entries], list[ReloadResult]]

# Seconds a joining process has to say hello after it connected.
_HELLO_TIMEOUT = 5.0


class Peer:
    """A connected worker: its connection, pid and the epoch it last reported."""

    def __init__(self, conn: Connection, pid: int) -> None:
        self.conn = conn
        self.pid = pid
        self.epoch = ""


class Coordinator:
    """Listens for workers and runs the rounds; see the module's docstring.

    Args:
        local: how a change set goes live while no worker is connected (the API's: one
            transaction, or a canary).
    """

    def __init__(self, local: Local) -> None:
        self.address = protocol.new_address()
        self._server = protocol.Server(self.address)
        self._local = local
        self._peers: list[Peer] = []
        # One round at a time, and no worker joins in the middle of one: a joiner would get
        # the parent's overlay and miss the commit.
        self._lock = threading.RLock()
        self._round = 0
        self._closed = False
        self.results: deque[FleetResult] = deque(maxlen=100)
        self._listeners: list[Callable[[FleetResult], object]] = []
        self.canaries = Canaries(self)
        self.health = Health(self)
        # The last committed release, its parent state and this process's versions before it
        # (what a worker dying at boot on it rolls the fleet back to), and the releases
        # marked bad (their modules' hashes -> why): the same bytes saved again are refused.
        self._last_commit: tuple[Release, State, dict[str, int]] | None = None
        self.bad: dict[frozenset[tuple[str, str]], str] = {}
        self._thread = threading.Thread(
            target=self._accept, name="hotswap-fleet-listener", daemon=True
        )

    def start(self) -> None:
        """Listen, and name this fleet in the environment children inherit."""
        self._thread.start()
        os.environ[protocol.ENV] = self.address.export()

    def stop(self) -> None:
        """Stop listening, drop the workers (they keep their code) and remove the socket."""
        self._closed = True
        self.canaries.stop()
        self.health.stop()
        self._server.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            for peer in self._peers:
                peer.conn.close()
            self._peers.clear()
        if os.environ.get(protocol.ENV) == self.address.export():
            del os.environ[protocol.ENV]
        self.address.remove()

    def on_result(self, callback: Callable[[FleetResult], object]) -> None:
        """Call ``callback(fleet_result)`` after every round."""
        self._listeners.append(callback)

    def workers(self) -> dict[int, str]:
        """pid -> the epoch each connected worker last reported (never waits for a round:
        a worker's ``status()`` asks it while a round may run)."""
        return {p.pid: p.epoch for p in list(self._peers)}

    # --- what a cluster node uses (hotswap._fleet.node) -----------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """Held for a whole round: no worker joins in the middle of one."""
        return self._lock

    def peers(self) -> list[Peer]:
        """The connected workers, now."""
        return list(self._peers)

    def new_round(self) -> int:
        """The number of a new round (hold :attr:`lock`)."""
        self._round += 1
        return self._round

    def commit(
        self,
        release: Release,
        peers: list[Peer],
        entries: Entries,
        parent_state: State,
        number: int,
        timeout: float,
        start: float,
    ) -> FleetResult:
        """Commit a release ``peers`` prepared in round ``number`` in them and in this process
        (its ``entries``); the fleet's result (hold :attr:`lock`)."""
        self._commit(release, peers, entries, parent_state, number, timeout, start)
        return self.results[-1]

    def welcome(self, peers: list[Peer]) -> list[Peer]:
        """Send ``peers`` this process's committed state and the running canaries (a worker
        that missed a commit, or joined during a round); the ones it reached (hold
        :attr:`lock`)."""
        sent = self.send(peers, (protocol.WELCOME, 0, self._welcome_body(ledger.state())))
        for peer in sent:
            peer.epoch = ledger.epoch
        return sent

    # --- joining -------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn = self._server.accept()
            except OSError:
                continue  # the server closed: the loop ends
            threading.Thread(
                target=self._welcome, args=(conn,), name="hotswap-fleet-join", daemon=True
            ).start()

    def _welcome(self, conn: Connection) -> None:
        try:
            self._server.authenticate(conn)
            if not conn.poll(_HELLO_TIMEOUT):
                conn.close()
                return
            kind, _, body = conn.recv()
            if kind == protocol.REQUEST and body.get("op") == "boot-failed":
                self._boot_failed(conn, body)
                return
            if kind == protocol.REQUEST:
                self.canaries.answer(conn, body)
                return
            if kind != protocol.HELLO:
                conn.close()
                return
            with self._lock:
                state = ledger.state()
                conn.send((protocol.WELCOME, 0, self._welcome_body(state)))
                peer = Peer(conn, int(body["pid"]))
                peer.epoch = state.epoch
                self._peers.append(peer)
        except (OSError, EOFError, ValueError, protocol.authentication_error()):
            conn.close()

    # --- rounds --------------------------------------------------------------------------------

    def apply_files(self, files: dict[str, bytes], entries: Entries) -> list[ReloadResult]:
        """The watcher's change set: path -> bytes of every changed file, and the (module,
        bytes) entries of the modules this process runs. One result per module."""
        policy = _settings.current().canary
        with self._lock:
            if not self._peers:
                return self._local(entries) if entries else []
            if policy is None or len(files) != 1:
                return self._two_phase(files, entries)
        # The watcher's canary mode: the saved module's candidate in every worker.
        ((path, data),) = files.items()
        return [self.canaries.from_save(path, data, next((n for n, _ in entries), ""), policy)]

    def promote(self, spec: Spec, reason: str) -> list[ReloadResult]:
        """A fleet canary's promotion, as a fleet transaction: every worker votes that it runs
        the candidate, then promotes it under the release of its bytes (a new epoch), or the
        fleet stays on (or rolls back to) the parent epoch."""
        with self._lock:
            start = time.perf_counter()
            timeout = _settings.current().commit_timeout
            parent_state = ledger.state()
            self._round += 1
            number = self._round
            body = {"parent": parent_state.epoch, "files": {}, "canary": spec.module, "why": reason}
            peers = self.send(list(self._peers), (protocol.PREPARE, number, body))
            votes = self.gather(peers, number, protocol.VOTE, timeout)
            live = [p for p in peers if p in votes and votes[p] is not _GONE]
            release = Release.of(parent_state.epoch, {spec.module: spec.data})
            mine = getattr(sys.modules.get(spec.module), "__file__", None)
            runs = isinstance(mine, str) and os.path.realpath(mine) == spec.path
            entries = [(spec.module, spec.data)] if runs else []  # --preload: it runs it too
            refused = [p for p in live if votes[p] is None or not votes[p]["ok"]]
            if refused or not live:
                self.send(live, (protocol.ABORT, number, {}))
                self.ask_all(protocol.END, {"module": spec.module, "reason": reason}, 5)
                reports = tuple(vote_report(p.pid, votes[p], timeout) for p in live)
                why = next((r.error for r in reports if r.error is not None), None)
                fleet = FleetResult(
                    release.epoch,
                    parent_state.epoch,
                    False,
                    "aborted",
                    (spec.module,),
                    reports,
                    time.perf_counter() - start,
                )
                return self.finish(fleet, release, why, [], rolled_back=False)
            return self._commit(release, live, entries, parent_state, number, timeout, start)

    def _marked_bad(self, release: Release) -> str:
        """Why ``release`` is refused: it holds the bytes of a release marked bad; else ""."""
        held = set(release.hashes.items())
        return next((why for bad, why in self.bad.items() if bad <= held), "")

    def _boot_failed(self, conn: Connection, body: dict[str, Any]) -> None:
        """A worker died importing the fleet's latest release (a respawn, a new pool worker):
        the fleet rolls it back to the parent epoch and marks it bad, before the server gives
        up respawning; the worker gets the parent's state in the answer and boots on it."""
        pid, epoch = int(body["pid"]), str(body["epoch"])
        answer: dict[str, Any] = {"welcome": None}
        with self._lock:
            last = self._last_commit
            if last is not None and last[0].epoch == epoch == ledger.epoch:
                release, parent, versions = last
                why = f"worker {pid} died at boot on it: {body['module']}: {body['error']}"
                self.bad[frozenset(release.hashes.items())] = why
                self._last_commit = None
                self.health.roll_back(release, parent, versions, why, exclude=pid)
                welcome = self._welcome_body(ledger.state())
                # Workers that joined after the commit run it too, with nothing to roll back.
                self.send([p for p in self._peers if p.pid != pid], (protocol.WELCOME, 0, welcome))
                logger.warning("hotswap: fleet %s marked bad: %s", short(epoch), why)
                answer["welcome"] = welcome
            elif epoch != ledger.epoch:
                answer["welcome"] = self._welcome_body(ledger.state())
        try:
            conn.send((protocol.ANSWER, 0, answer))
        finally:
            conn.close()

    def view(self) -> dict[str, Any]:
        """The fleet as the coordinator sees it: each worker's epoch, the canaries, the last
        release, its mixed-version window and its health window."""
        last = self.results[-1] if self.results else None
        return {
            "coordinator": os.getpid(),
            "epoch": ledger.epoch,
            "workers": {str(pid): epoch for pid, epoch in self.workers().items()},
            "canaries": self.canaries.view(),
            "last": None if last is None else last.describe(),
            "window": None if last is None else last.window,
            "health": self.health.view(),
        }

    def _welcome_body(self, state: State) -> dict[str, Any]:
        return {**welcome_body(state), "canaries": self.canaries.specs()}

    def ask_all(self, kind: str, body: dict[str, Any], timeout: float) -> dict[Peer, Any]:
        """Every worker's answer to one message (hold :attr:`lock`)."""
        return self.ask(list(self._peers), kind, body, timeout)

    def ask(
        self, peers: list[Peer], kind: str, body: dict[str, Any], timeout: float
    ) -> dict[Peer, Any]:
        """Each of ``peers``' answer to one message, as a round of its own (hold
        :attr:`lock`): peer -> its answer, or None when it gave none within ``timeout``."""
        self._round += 1
        number = self._round
        sent = self.send(peers, (kind, number, body))
        reply = protocol.VOTE if kind == protocol.PREPARE else protocol.DONE
        return self.gather(sent, number, reply, timeout)

    def _two_phase(self, files: dict[str, bytes], entries: Entries) -> list[ReloadResult]:
        start = time.perf_counter()
        timeout = _settings.current().commit_timeout
        parent_state = ledger.state()
        parent = parent_state.epoch
        self._round += 1
        number = self._round
        peers = self.send(
            list(self._peers), (protocol.PREPARE, number, {"parent": parent, "files": files})
        )
        local_error: BaseException | None = None
        if entries:
            try:
                transaction.prepare_many(entries)
            except HotswapError as error:
                local_error = error
        votes = self.gather(peers, number, protocol.VOTE, timeout)
        behind = [p for p, v in votes.items() if isinstance(v, dict) and v.get("behind")]
        if behind:
            # Not at the parent (it missed a release): send it the fleet's state, ask again.
            welcome = (protocol.WELCOME, 0, self._welcome_body(parent_state))
            again = self.send(behind, welcome)
            again = self.send(again, (protocol.PREPARE, number, {"parent": parent, "files": files}))
            votes.update(self.gather(again, number, protocol.VOTE, timeout))
        modules = {name: data for name, data in entries}
        for vote in votes.values():
            if not isinstance(vote, dict):  # no answer, or gone (a child that exited)
                continue
            for path, names in vote.get("names", {}).items():
                for name in names:
                    modules.setdefault(name, files[path])
            for name, data in vote.get("running", {}).items():
                ledger.pin(name, data)  # genesis bytes: what a later worker must import
        live = [p for p in peers if p in votes and votes[p] is not _GONE]
        refused = [p for p in live if votes[p] is None or not votes[p]["ok"]]
        if not modules and not refused and local_error is None:
            self.send(live, (protocol.ABORT, number, {}))
            return []  # no participant runs these files
        release = Release.of(parent, modules)
        why = self._marked_bad(release)
        if why and local_error is None:
            local_error = HotswapError(f"release {short(release.epoch)} is marked bad: {why}")
        if refused or local_error is not None:
            self.send(live, (protocol.ABORT, number, {}))
            reports = tuple(vote_report(p.pid, votes[p], timeout) for p in live)
            fleet = FleetResult(
                release.epoch,
                parent,
                False,
                "aborted",
                tuple(modules),
                reports,
                time.perf_counter() - start,
                error=local_error,
            )
            reason = local_error or next(
                r.error for r in reports if r.outcome in ("voted no", "no vote")
            )
            return self.finish(fleet, release, reason, [], rolled_back=False)
        return self._commit(release, live, entries, parent_state, number, timeout, start)

    def _commit(
        self,
        release: Release,
        peers: list[Peer],
        entries: Entries,
        parent_state: State,
        number: int,
        timeout: float,
        start: float,
    ) -> list[ReloadResult]:
        # The workers commit in parallel with the coordinator's own commit.
        # A worker reads the commit after its deadline (it was stopped meanwhile): it refuses,
        # so it never serves a release the fleet rolled back for want of its answer.
        body = {
            "release": release,
            "timeout": timeout * 0.9,
            "deadline": time.monotonic() + timeout * 0.9,
        }
        sent = self.send(peers, (protocol.COMMIT, number, body))
        versions = {n: s.version for n, s in transaction.module_statuses().items()}
        local: list[ReloadResult] = []
        with ledger.applying(release):
            if entries:
                local = transaction.reload_many(entries)
            else:
                ledger.advance({})
        local_failed = next((r for r in local if not r.ok), None)
        answers, first, last = self._gather_timed(sent, number, protocol.DONE, timeout)
        failed = [
            p
            for p in sent
            if answers[p] is not _GONE and (answers[p] is None or not answers[p]["ok"])
        ]
        results_of = [
            r for p in sent if isinstance(answers[p], dict) for r in answers[p].get("results", ())
        ]
        if not failed and local_failed is None:
            reports = tuple(
                WorkerReport(p.pid, True, "gone" if answers[p] is _GONE else "committed")
                for p in sent
            )
            for p in sent:
                p.epoch = release.epoch
            fleet = FleetResult(
                release.epoch,
                parent_state.epoch,
                True,
                "committed",
                tuple(release.modules),
                reports,
                time.perf_counter() - start,
                last - first,
            )
            out = self.finish(fleet, release, None, local + results_of, rolled_back=False)
            self._last_commit = (release, parent_state, versions)
            self.health.watch(release, parent_state, versions)
            return out
        # Someone could not commit: everyone who did goes back to the parent epoch.
        others = self.send(
            [p for p in sent if answers[p] is not _GONE],
            (protocol.ROLLBACK, number, {"epoch": release.epoch}),
        )
        if local_failed is None:
            for name, status in transaction.module_statuses().items():
                earlier = versions.get(name)
                if earlier is not None and status.version != earlier:
                    transaction.rollback(name, to=earlier, reason="fleet rollback")
        ledger.restore(parent_state)
        self.gather(others, number, protocol.DONE, timeout)
        reports = tuple(
            WorkerReport(
                p.pid,
                True,
                "gone"
                if answers[p] is _GONE
                else "no answer"
                if answers[p] is None
                else "commit failed"
                if not answers[p]["ok"]
                else "rolled back",
                None if not isinstance(answers[p], dict) else answers[p].get("error"),
            )
            for p in sent
        )
        error = local_failed.error if local_failed is not None else None
        if error is None:
            culprit = next(r for r in reports if r.outcome in ("commit failed", "no answer"))
            error = culprit.error or HotswapError(
                f"worker {culprit.pid}: no answer to commit within {timeout} s"
            )
        fleet = FleetResult(
            release.epoch,
            parent_state.epoch,
            False,
            "rolled back",
            tuple(release.modules),
            reports,
            time.perf_counter() - start,
            last - first,
            None if local_failed is None else local_failed.error,
        )
        return self.finish(fleet, release, error, [], rolled_back=True)

    def finish(
        self,
        fleet: FleetResult,
        release: Release,
        error: BaseException | None,
        results: list[ReloadResult],
        *,
        rolled_back: bool,
    ) -> list[ReloadResult]:
        """Log and keep the fleet result (hold :attr:`lock`); one result per module for
        ``on_reload``."""
        line = fleet.describe()
        logger.log(logging.INFO if fleet.ok else logging.WARNING, "hotswap: %s", line)
        self.results.append(fleet)
        for callback in list(self._listeners):
            try:
                callback(fleet)
            except Exception:
                logger.exception("hotswap: fleet result callback %r raised", callback)
        statuses = transaction.module_statuses()
        chosen: dict[str, ReloadResult] = {}
        for result in results:
            chosen.setdefault(result.module, result)
        out = []
        for name in release.modules:
            found = chosen.get(name)
            epoch = release.epoch if fleet.ok else fleet.parent
            if found is not None:
                out.append(dataclasses.replace(found, reason=line, epoch=epoch))
                continue
            status = statuses.get(name)
            made = ReloadResult(
                module=name,
                ok=fleet.ok,
                version=status.version if status is not None else 0,
                error=error,
                rolled_back=rolled_back,
                duration=fleet.duration,
                reason=line,
                epoch=epoch,
            )
            # Recorded, counted and announced; logged at DEBUG: the fleet's line says it.
            out.append(report(made, level=logging.DEBUG))
        return out

    # --- messages ------------------------------------------------------------------------------

    def send(self, peers: list[Peer], message: protocol.Message) -> list[Peer]:
        """Send to each; the peers it reached (a peer that is gone is dropped). Hold
        :attr:`lock`."""
        reached = []
        for peer in peers:
            try:
                peer.conn.send(message)
                reached.append(peer)
            except (OSError, ValueError):
                self._drop(peer)
        return reached

    def gather(self, peers: list[Peer], number: int, kind: str, timeout: float) -> dict[Peer, Any]:
        """Each peer's ``kind`` answer to round ``number``: its body, None (no answer within
        ``timeout``) or gone. Hold :attr:`lock`."""
        return self._gather_timed(peers, number, kind, timeout)[0]

    def _gather_timed(
        self, peers: list[Peer], number: int, kind: str, timeout: float
    ) -> tuple[dict[Peer, Any], float, float]:
        """Each peer's answer to round ``number``: its body, None (no answer within
        ``timeout``) or ``_GONE``; and when the first and last answers came."""
        deadline = time.monotonic() + timeout
        pending = {peer.conn: peer for peer in peers}
        answers: dict[Peer, Any] = {}
        first = last = 0.0
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for ready in protocol.wait(list(pending), remaining):
                peer = pending[ready]
                conn = peer.conn
                try:
                    got, round_, body = conn.recv()
                except (EOFError, OSError):
                    answers[peer] = _GONE
                    del pending[conn]
                    self._drop(peer)
                    continue
                if got != kind or round_ != number:
                    continue  # a late answer of an earlier round (a worker that was stopped)
                now = time.perf_counter()
                first = first or now
                last = now
                peer.epoch = body.get("epoch", peer.epoch)
                answers[peer] = body
                del pending[conn]
        for peer in pending.values():
            answers[peer] = None
        return answers, first, last

    def _drop(self, peer: Peer) -> None:
        if peer in self._peers:
            self._peers.remove(peer)
        peer.conn.close()


_GONE: Any = object()  # an answer: the worker's connection closed (it exited)
