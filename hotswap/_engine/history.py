"""hotswap's knowledge of each module it reloaded: the live version, the source its live code
came from, and the bounded history of versions kept for rollback."""

from __future__ import annotations

import hashlib
import threading
import time
import types
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hotswap._config import settings as _config
from hotswap._engine.departed import forget_departed
from hotswap._engine.snapshot import ModuleState
from hotswap._ops.events import ModuleStatus, ReloadResult
from hotswap._plan import modules as _modules
from hotswap._plan import sources as _sources
from hotswap._plan import statements as _statements
from hotswap.exceptions import HotswapError

__all__ = (
    "Record",
    "Version",
    "forget_next",
    "has_baseline",
    "is_prepared",
    "left_by_rollback",
    "module_statuses",
    "prepare",
    "prepare_next",
    "preparing",
    "ran_again",
    "record_for",
    "records",
    "share_source",
    "take_next",
)


@dataclass
class Version:
    """One version of a module, as kept in its history."""

    number: int
    source_hash: str | None
    source: _statements.ModuleSource | None
    # Filled by the snapshot taken before the next change (the state the version had when it
    # was left), so each reload captures the module once, not twice.
    state: ModuleState | None
    created: float = field(default_factory=time.time)
    # The line of ``source`` from which no statement may run: a thread runs the module's
    # top-level code (the main loop) from a source that saves since may have changed, so the
    # plan that made this version records where that statement is in this version's source.
    running_from: int | None = None


class Record:
    """hotswap's knowledge of one module: its live version, the source its live code came
    from, and the versions kept."""

    def __init__(self, module: types.ModuleType, size: int, source: bytes | None) -> None:
        self.name = _modules.canonical(module)
        self.namespace = vars(module)
        live: _statements.ModuleSource | None = None
        digest = None
        if source is not None:
            try:
                digest = hashlib.sha256(source).hexdigest()
                live = _prepared.pop(digest, None)
                if live is None:
                    live = _statements.parse_module(_modules.decode_source(self.name, "", source))
            except (SyntaxError, ValueError, HotswapError):
                live = None
        self.current = Version(1, digest, live, None)
        # The source the module's top-level code was executed from: a thread still running
        # it (a main loop) reports lines of this text.
        self.origin = live
        self.history: deque[Version] = deque([self.current], maxlen=size)
        self.last_number = 1
        self.last_result: ReloadResult | None = None
        # The SHA-256 of the source a rollback moved away from, until the next version: the
        # file still holding those bytes is not a new save (a rollback sticks until one).
        self.left: str | None = None

    @property
    def live(self) -> _statements.ModuleSource | None:
        return self.current.source

    def add(self, version: Version) -> None:
        self.left = None
        self.history.append(version)
        self.last_number = max(self.last_number, version.number)
        self.current = version


records: dict[str, Record] = {}


def module_statuses() -> dict[str, ModuleStatus]:
    """Status of every module hotswap has reloaded, by name.

    Never waits for a reload: a pinned request asking while a reload waits for the pinned
    sections to leave would hold that reload up until ``pin_timeout`` (and fail it). Each
    record is read as it is before or after its reload's commit (the copies are atomic)."""
    statuses = {}
    for name, record in records.copy().items():
        current = record.current
        statuses[name] = ModuleStatus(
            name=name,
            version=current.number,
            source_hash=current.source_hash,
            last_result=record.last_result,
            history=tuple(v.number for v in record.history.copy()),
        )
    return statuses


def left_by_rollback(name: str) -> str | None:
    """The SHA-256 of the source a rollback of module ``name`` moved away from, while no
    version followed it: a file still holding those bytes was not saved since the rollback."""
    record = records.get(name)
    return record.left if record is not None else None


# Import-time sources parsed ahead of a module's first reload (by the watcher's warm-up), by
# the SHA-256 of their bytes; each is handed over once, to the record made at that reload.
_prepared: dict[str, _statements.ModuleSource] = {}


# Files whose baseline the warm-up is working out now -> set once it is done: the first reload
# of such a module waits for it rather than doing the same work beside it (each would then
# take twice as long, sharing the interpreter).
_preparing: dict[str, threading.Event] = {}
# The longest a reload waits for it (seconds): a 256 KiB module (the warm-up's largest) takes
# about a second to parse on a loaded machine.
_PREPARING_WAIT = 5.0


@contextmanager
def preparing(file: str) -> Iterator[None]:
    """Say that the baseline of ``file`` is being prepared (see :func:`prepare`) until the
    block ends."""
    done = threading.Event()
    _preparing[file] = done
    try:
        yield
    finally:
        if _preparing.get(file) is done:
            del _preparing[file]
        done.set()


def has_baseline(source: bytes) -> bool:
    """Whether a parse of ``source`` waits for its module's first reload (:func:`prepare`)."""
    return hashlib.sha256(source).hexdigest() in _prepared


def prepare(source: bytes, parsed: _statements.ModuleSource) -> None:
    """Keep ``parsed`` (the parse of ``source``) for the first reload of the module that runs
    ``source``: its record then starts from it instead of parsing again."""
    if len(_prepared) > 4096:  # modules that never got a reload: forget the oldest
        _prepared.pop(next(iter(_prepared)))
    _prepared[hashlib.sha256(source).hexdigest()] = parsed


# New versions read ahead of their reload (huge files, see hotswap._engine.ahead), by the
# SHA-256 of their bytes; each is taken once, by the reload that applies those bytes. Few:
# one per huge file saved and not applied yet.
_next: dict[str, _statements.ModuleSource] = {}


def prepare_next(source: bytes, parsed: _statements.ModuleSource) -> None:
    """Keep ``parsed`` (the parse of ``source``, with its syntax trees) for the reload that
    applies ``source``."""
    while len(_next) >= 4:  # (with their syntax trees: tens of MB each) forget the oldest
        _next.pop(next(iter(_next)))
    _next[hashlib.sha256(source).hexdigest()] = parsed


def take_next(digest: str) -> _statements.ModuleSource | None:
    """The parse prepared for the bytes of SHA-256 ``digest``, once; None if there is none."""
    return _next.pop(digest, None)


def forget_next() -> None:
    """Drop the parses read ahead (for tests)."""
    _next.clear()


def is_prepared(source: bytes) -> bool:
    """Whether a parse of ``source`` waits for its reload."""
    return hashlib.sha256(source).hexdigest() in _next


def ran_again(module: types.ModuleType) -> bool:
    """Whether the import system ran the file of ``module``, which hotswap keeps a record of,
    again since that record started (the program's own ``importlib.reload``): the loader
    recorded the source it read once more, so the record's live source is not what runs."""
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and _sources.peek(file) is not None


def record_for(module: types.ModuleType) -> Record:
    name = _modules.canonical(module)
    # Records of modules that left sys.modules would keep all their snapshots alive forever.
    forget_departed(records, keep=(name,))
    record = records.get(name)
    # A module imported afresh under the same name is another module, and one the import
    # system ran again (the program's own importlib.reload) runs another source: start again.
    if record is None or record.namespace is not vars(module) or ran_again(module):
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            under_way = _preparing.get(file)
            if under_way is not None:  # the warm-up is at it: its work is this reload's
                under_way.wait(_PREPARING_WAIT)
        source = _sources.take(file) if isinstance(file, str) else None
        record = Record(module, _config.current().history, source)
        records[name] = record
        if source is not None and isinstance(file, str):
            share_source(module, file, source)
    return record


def share_source(module: types.ModuleType, file: str, source: bytes) -> None:
    """The recorded source is handed over once: the other modules run from the same file
    (imported under another name) start their records from it too, or their first reload
    would diff the new text against itself and leave what it removed."""
    for other in _modules.run_from(file):
        name = _modules.canonical(other)
        if other is not module and name not in records:
            records[name] = Record(other, _config.current().history, source)
