"""Releases and epochs: the code a process runs, named by its content.

A *release* is the exact bytes of one or more modules, by module name, on top of a parent
epoch. Its *epoch* is a sha256 over the parent epoch and the release's sorted (module name,
sha256 of its bytes) pairs, so two processes that committed the same releases in the same
order report the same epoch, whatever their local version numbers say. Before any release a
process is at :data:`GENESIS`: the code as it was imported at start.

:data:`ledger` keeps this process's committed *overlay* (module name -> the bytes committed
since start) and its epoch. Every commit of the engine tells it what went live (a hook it
registers, see :func:`install`); a fleet worker applies a coordinator's release under
:meth:`Ledger.applying`, so that its epoch is the release's even when it runs only some of
the release's modules; a fleet rollback puts a saved :class:`State` back.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hotswap._engine import hooks

__all__ = (
    "GENESIS",
    "Ledger",
    "Release",
    "State",
    "epoch_of",
    "install",
    "ledger",
    "short",
    "welcome_body",
)

GENESIS = hashlib.sha256(b"hotswap:genesis").hexdigest()
"""The epoch of a process before any release: the code it imported at start."""

# Earlier states remembered so that going back to one (a rollback) gives its epoch back.
_CHAIN = 64


def short(epoch: str) -> str:
    """The 12 characters logs, headers and messages show of an epoch."""
    return epoch[:12]


def digest(data: bytes) -> str:
    """sha256 of a module's bytes, as the epoch and the engine's ``source_hash`` use it."""
    return hashlib.sha256(data).hexdigest()


def epoch_of(parent: str, hashes: Mapping[str, str]) -> str:
    """The epoch of a release: sha256 over ``parent`` and the sorted (name, hash) pairs."""
    h = hashlib.sha256(parent.encode())
    for name in sorted(hashes):
        h.update(b"\0" + name.encode() + b"\0" + hashes[name].encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Release:
    """Exact bytes per module name, on top of ``parent``.

    Attributes:
        parent: the epoch it applies to.
        modules: module name -> the bytes to run.
        epoch: its own epoch (:func:`epoch_of`).
        paths: module name -> the file the bytes were read from (for messages).
    """

    parent: str
    modules: Mapping[str, bytes]
    epoch: str = ""
    paths: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls, parent: str, modules: Mapping[str, bytes], paths: Mapping[str, str] | None = None
    ) -> Release:
        """The release of ``modules`` on ``parent``, its epoch computed."""
        hashes = {name: digest(data) for name, data in modules.items()}
        return cls(parent, dict(modules), epoch_of(parent, hashes), dict(paths or {}))

    @property
    def hashes(self) -> dict[str, str]:
        """Module name -> sha256 of its bytes."""
        return {name: digest(data) for name, data in self.modules.items()}


@dataclass(frozen=True)
class State:
    """A process's epoch and committed overlay at one moment.

    Attributes:
        epoch: the epoch.
        overlay: module name -> bytes committed since start (None where only the hash is
            known: a local rollback to a version whose bytes were not kept).
        hashes: module name -> sha256 of those bytes.
    """

    epoch: str
    overlay: Mapping[str, bytes | None]
    hashes: Mapping[str, str]

    def shippable(self) -> dict[str, bytes]:
        """The overlay's known bytes (what a joining worker receives)."""
        return {name: data for name, data in self.overlay.items() if data is not None}


class Ledger:
    """This process's epoch and committed overlay; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = State(GENESIS, {}, {})
        self._chain: deque[State] = deque(maxlen=_CHAIN)
        # name -> the bytes a module of the genesis epoch runs, learnt from the workers: so a
        # worker started after a rejected save imports these, not the file on disk.
        self._genesis: dict[str, bytes] = {}
        # name -> sha256 of what the module ran before its first release (what a rollback to
        # genesis compares with).
        self._base: dict[str, str] = {}
        self._local = threading.local()  # .release: the release this thread applies

    @property
    def epoch(self) -> str:
        """The epoch now."""
        return self._state.epoch

    def state(self) -> State:
        """The epoch and overlay now (an immutable snapshot)."""
        return self._state

    def bytes_of(self, name: str) -> bytes | None:
        """The bytes module ``name`` must run: committed by a release, or those of the genesis
        epoch once known; None when neither is known (the file on disk is then imported)."""
        data = self._state.overlay.get(name)
        return self._genesis.get(name) if data is None else data

    def genesis_of(self, name: str) -> bytes | None:
        """The bytes module ``name`` runs at genesis, once known (:meth:`pin`)."""
        return self._genesis.get(name)

    def pin(self, name: str, data: bytes) -> None:
        """``data`` is what module ``name`` runs at genesis (no release changed it): imports
        from now on run it, whatever the file holds. The epoch does not change."""
        with self._lock:
            self._genesis.setdefault(name, data)

    def shipment(self) -> tuple[str, dict[str, bytes]]:
        """The epoch, and the bytes every module must run (what a joining worker receives)."""
        with self._lock:
            return self._state.epoch, {**self._genesis, **self._state.shippable()}

    @contextmanager
    def applying(self, release: Release) -> Iterator[None]:
        """Commits made by this thread inside are ``release``'s: the epoch becomes its epoch
        and the overlay takes all its modules, loaded here or not."""
        self._local.release = release
        try:
            yield
        finally:
            self._local.release = None

    def advance(self, committed: Mapping[str, tuple[str, bytes | None, str | None]]) -> str:
        """What a commit made live (name -> (hash, bytes, hash before)); the epoch after it.

        Going back to the content of an earlier state (a rollback) gives its epoch back."""
        release: Release | None = getattr(self._local, "release", None)
        with self._lock:
            if release is not None:
                self._adopt_locked(release.epoch, release.modules, release.hashes)
                return release.epoch
            now = self._state
            for name, (_, _, before) in committed.items():
                if name not in now.hashes and before is not None:
                    self._base.setdefault(name, before)
            new = {n: h for n, (h, _, _) in committed.items() if self._seen(now).get(n) != h}
            if not new:
                return now.epoch
            hashes = {**now.hashes, **new}
            overlay = {**now.overlay, **{n: committed[n][1] for n in new}}
            wanted = {**self._base, **hashes}
            epoch = next(
                (s.epoch for s in reversed(self._chain) if self._seen(s) == wanted),
                None,
            )
            if epoch is None:
                epoch = epoch_of(now.epoch, new)
            self._chain.append(now)
            self._state = State(epoch, overlay, hashes)
            return epoch

    def _seen(self, state: State) -> dict[str, str]:
        """What every module known runs in ``state``, releases over the modules' first code."""
        return {**self._base, **state.hashes}

    def adopt(self, epoch: str, modules: Mapping[str, bytes]) -> None:
        """Take a fleet's state as this process's (a worker that joined, or rolled back)."""
        with self._lock:
            hashes = {name: digest(data) for name, data in modules.items()}
            self._adopt_locked(epoch, modules, hashes, merge=False)

    def restore(self, state: State) -> None:
        """Put a saved state back (a fleet rollback to the parent epoch)."""
        with self._lock:
            self._chain.append(self._state)
            self._state = state

    def _adopt_locked(
        self,
        epoch: str,
        modules: Mapping[str, bytes],
        hashes: Mapping[str, str],
        *,
        merge: bool = True,
    ) -> None:
        if epoch == self._state.epoch and all(
            self._state.hashes.get(name) == h for name, h in hashes.items()
        ):
            return
        base = self._state if merge else State(GENESIS, {}, {})
        self._chain.append(self._state)
        self._state = State(epoch, {**base.overlay, **modules}, {**base.hashes, **dict(hashes)})

    def reset(self) -> None:
        """Back to genesis (tests)."""
        with self._lock:
            self._state = State(GENESIS, {}, {})
            self._chain.clear()
            self._genesis.clear()
            self._base.clear()


ledger = Ledger()


def _after_fork_in_child() -> None:
    ledger._lock = threading.Lock()  # another thread may have held it: it did not come along


def install() -> None:
    """Make every commit of the engine advance this process's epoch (idempotent)."""
    hooks.on_epoch(ledger.advance, lambda: ledger.epoch)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def welcome_body(state: State) -> dict[str, Any]:
    """What a worker joining a fleet at ``state`` is sent: the epoch and the overlay to run."""
    epoch, overlay = ledger.shipment()
    if epoch != state.epoch:  # the parent's state, within a round
        overlay = {**overlay, **state.shippable()}
    return {"epoch": state.epoch, "overlay": overlay}
