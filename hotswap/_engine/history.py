"""hotswap's knowledge of each module it reloaded: the live version, the source its live code
came from, and the bounded history of versions kept for rollback."""

from __future__ import annotations

import hashlib
import time
import types
from collections import deque
from dataclasses import dataclass, field

from hotswap._config import settings as _config
from hotswap._engine.departed import forget_departed
from hotswap._engine.snapshot import ModuleState
from hotswap._ops.events import ReloadResult
from hotswap._plan import modules as _modules
from hotswap._plan import sources as _sources
from hotswap._plan import statements as _statements
from hotswap.exceptions import HotswapError

__all__ = ("Record", "Version", "record_for", "records")


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
                live = _statements.parse_module(_modules.decode_source(self.name, "", source))
                digest = hashlib.sha256(source).hexdigest()
            except (SyntaxError, ValueError, HotswapError):
                live = None
        self.current = Version(1, digest, live, None)
        # The source the module's top-level code was executed from: a thread still running
        # it (a main loop) reports lines of this text.
        self.origin = live
        self.history: deque[Version] = deque([self.current], maxlen=size)
        self.last_number = 1
        self.last_result: ReloadResult | None = None

    @property
    def live(self) -> _statements.ModuleSource | None:
        return self.current.source

    def add(self, version: Version) -> None:
        self.history.append(version)
        self.last_number = max(self.last_number, version.number)
        self.current = version


records: dict[str, Record] = {}


def record_for(module: types.ModuleType) -> Record:
    name = _modules.canonical(module)
    # Records of modules that left sys.modules would keep all their snapshots alive forever.
    forget_departed(records, keep=(name,))
    record = records.get(name)
    # A module imported afresh under the same name is another module: start again.
    if record is None or record.namespace is not vars(module):
        file = getattr(module, "__file__", None)
        source = _sources.take(file) if isinstance(file, str) else None
        record = Record(module, _config.current().history, source)
        records[name] = record
    return record
