"""Phases that reach a node late: an engine keeps a message for a node it cannot reach and
delivers it once the link is back (Dask retries its connection, Celery keeps the broadcast),
long after the coordinator gave up on that node and moved on.

One real node in this process (``hotswap._fleet.node.Node``, real reloads of a real module) and
a real cluster coordinator, over a transport that holds the messages sent while the node is
cut off and delivers them when the test says, in any order. A late phase must never move the
node off what the cluster decided since: a rollback of an earlier round must not undo the next
round's commit of the same epoch (epochs are content: the same bytes on the same parent are the
same epoch), and a commit of a round the cluster rolled back must not apply once the node was
brought back to the committed state.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hotswap._fleet.agent import CommittedFinder
from hotswap._fleet.cluster import Cluster
from hotswap._fleet.node import Node
from hotswap._fleet.release import GENESIS, epoch_of, ledger

LOGIC = (Path(__file__).parent / "cluster_apps" / "logic.py").read_text()
HERE = "node-in-this-process"


def source(version: str) -> bytes:
    return LOGIC.replace('return "v1"', f'return "{version}"').encode()


class LateTransport:
    """Reaches one node in this process; while ``cut`` (or from the phase named ``cut_at``
    on), it keeps what it is sent and answers nothing, as a silent node does."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.cut = False
        self.cut_at: str | None = None
        self.held: list[tuple[str, dict[str, Any]]] = []
        self.text: str | None = None

    def members(self) -> list[str]:
        return [HERE]

    def call(
        self, command: str, body: dict[str, Any], nodes: list[str], timeout: float
    ) -> dict[str, dict[str, Any] | None]:
        if command == self.cut_at:
            self.cut, self.cut_at = True, None
        if HERE not in nodes:
            return {}
        if self.cut:
            self.held.append((command, copy.deepcopy(body)))
            return {HERE: None}
        return {HERE: self.deliver(command, body)}

    def deliver(self, command: str, body: dict[str, Any]) -> dict[str, Any]:
        return getattr(self.node, command)(body)  # type: ignore[no-any-return]

    def deliver_held(self, index: int) -> dict[str, Any]:
        command, body = self.held.pop(index)
        return self.deliver(command, body)

    def load(self) -> str | None:
        return self.text

    def save(self, text: str) -> None:
        self.text = text


class Setup:
    """A module ``logic`` imported from a folder, a node and a coordinator for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        ledger.reset()
        for name in ("logic",):
            sys.modules.pop(name, None)
        sys.path.insert(0, str(folder))
        (folder / "logic.py").write_bytes(source("v1"))
        import logic  # noqa: F401  (the module the node runs)

        self.node = Node(None)
        self.transport = LateTransport(self.node)
        self.cluster = Cluster(self.transport, timeout=1.0)

    def version(self) -> str:
        return str(sys.modules["logic"].version())

    def close(self) -> None:
        sys.modules.pop("logic", None)
        sys.path.remove(str(self.folder))
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, CommittedFinder)]
        ledger.reset()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    made = Setup(tmp_path)
    try:
        yield made
    finally:
        made.close()


def epoch_after(parent: str, version: str) -> str:
    return epoch_of(parent, {"logic": hashlib.sha256(source(version)).hexdigest()})


def rolled_back_round(setup: Setup) -> None:
    """v2 committed; then v4 prepared, its commit cut off: the cluster rolls back, and the
    commit and the rollback wait for the node."""
    assert setup.cluster.propose({"logic": source("v2")}).ok
    setup.transport.cut_at = "commit"
    rolled = setup.cluster.propose({"logic": source("v4")})
    assert rolled.outcome == "rolled back"
    assert [c for c, _ in setup.transport.held] == ["commit", "rollback"]
    setup.transport.cut = False


def test_late_rollback_never_undoes_the_next_commit_of_the_same_epoch(setup: Setup):
    rolled_back_round(setup)
    setup.transport.deliver_held(0)  # the commit, late: the node runs v4 for now
    assert setup.version() == "v4"
    setup.cluster.reconcile()
    assert setup.version() == "v2"
    again = setup.cluster.propose({"logic": source("v4")})  # the same epoch as the rolled one
    assert again.ok, again.describe()
    assert setup.version() == "v4"
    late = setup.transport.deliver_held(0)  # the first round's rollback
    assert (late["ok"], late.get("stale")) == (False, True)
    assert setup.version() == "v4"
    assert (
        ledger.epoch
        == setup.cluster.record().epoch
        == epoch_after(epoch_after(GENESIS, "v2"), "v4")
    )


def test_late_commit_of_a_rolled_back_round_never_applies_after_reconcile(setup: Setup):
    rolled_back_round(setup)
    setup.cluster.reconcile()  # the node is on the committed epoch: nothing to send
    setup.transport.deliver_held(1)  # the rollback first (another connection), then the commit
    late = setup.transport.deliver_held(0)
    assert (late["ok"], late.get("stale")) == (False, True)
    assert setup.version() == "v2"
    assert ledger.epoch == setup.cluster.record().epoch


def test_late_prepare_of_an_aborted_round_is_refused_once_the_abort_came(setup: Setup):
    setup.transport.cut = True
    refused = setup.cluster.propose({"logic": source("v2")})
    assert refused.outcome == "aborted"
    setup.transport.cut = False
    setup.transport.deliver_held(1)  # the abort, then the prepare
    late = setup.transport.deliver_held(0)
    assert (late["ok"], late.get("stale")) == (False, True)
    assert setup.cluster.propose({"logic": source("v3")}).ok
    assert setup.version() == "v3"


class LateMachine(RuleBasedStateMachine):
    """Rounds with the node reachable, cut off, or cut off at the commit; held phases
    delivered one by one in any order; reconciles. The node runs the code of the epoch it
    reports, and once it is reachable and reconciled, the cluster's committed epoch."""

    root: str = ""
    runs = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(LateMachine.root) / f"run{next(LateMachine.runs)}"
        self.folder.mkdir()
        self.setup = Setup(self.folder)
        self.versions = {GENESIS: "v1"}  # epoch -> the version its bytes answer

    def teardown(self) -> None:
        self.setup.close()

    def note(self, version: str) -> None:
        parent = self.setup.cluster.record().epoch
        self.versions[epoch_after(parent, version)] = version

    @rule(version=st.sampled_from(["v2", "v3", "v4"]))
    def propose(self, version: str) -> None:
        self.note(version)
        result = self.setup.cluster.propose({"logic": source(version)})
        if not self.setup.transport.cut:
            assert result.ok, result.describe()
            assert self.setup.version() == version

    @precondition(lambda self: not self.setup.transport.cut)
    @rule(version=st.sampled_from(["v2", "v3", "v4"]))
    def propose_cut_at_the_commit(self, version: str) -> None:
        self.note(version)
        self.setup.transport.cut_at = "commit"
        result = self.setup.cluster.propose({"logic": source(version)})
        assert result.ok or result.outcome in ("rolled back", "unchanged"), result.describe()

    @rule()
    def cut(self) -> None:
        self.setup.transport.cut = True

    @rule()
    def heal(self) -> None:
        self.setup.transport.cut = False

    @precondition(lambda self: self.setup.transport.held and not self.setup.transport.cut)
    @rule(data=st.data())
    def deliver_one_late(self, data: st.DataObject) -> None:
        held = self.setup.transport.held
        self.setup.transport.deliver_held(data.draw(st.integers(0, len(held) - 1)))

    @precondition(lambda self: not self.setup.transport.cut)
    @rule()
    def reconcile(self) -> None:
        self.setup.cluster.reconcile()
        record = self.setup.cluster.record()
        assert ledger.epoch == record.epoch
        assert self.setup.version() == self.versions[record.epoch]

    @invariant()
    def runs_the_code_of_its_epoch(self) -> None:
        assert self.setup.version() == self.versions[ledger.epoch]


def test_late_phases_state_machine(tmp_path: Path) -> None:
    LateMachine.root = str(tmp_path)
    LateMachine.TestCase.settings = settings(
        max_examples=60,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    LateMachine.TestCase().runTest()
