"""A whole-module rewrite, applied by compiling the new text as it is (issue 26).

When every top-level statement of a module changed (:mod:`hotswap._plan.whole` tells it from
the text), running all of them is what the statement diff would decide, so the reload skips
the diff: it compiles the text with ``compile(text, path, "exec")`` and runs it in the live
module under a snapshot, with a mapping of its own as the code's locals, so every name the
code binds is reconciled *as it is bound* (a function keeps its identity and takes the new
code, a class is merged into the kept one), just as the statement path's hooks do: later
statements (``HANDLERS = [handler]``, ``OBJ = Model()``) see the kept objects. Names the old
source bound and the new one does not are removed. A failure restores the snapshot: the module
is exactly as it was. The statements are read only when something asks for them
(:class:`hotswap._plan.whole.LazySource`): the next statement diff, a rollback's report.

Whatever this path cannot decide from text and names goes the statement path
(:func:`attempt` returns None): see :func:`_eligible`.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import logging
import sys
import time
import types
from dataclasses import dataclass
from typing import Any, cast

from hotswap._config import settings as _config
from hotswap._engine import hooks as _hooks
from hotswap._engine import importers as _importers
from hotswap._engine import plaincode as _plain
from hotswap._engine.adapters import active_adapters
from hotswap._engine.baseline import MODULE_ATTRIBUTES, is_submodule, owned_function
from hotswap._engine.departed import forget_departed
from hotswap._engine.execute import running_line
from hotswap._engine.history import Record, Version
from hotswap._engine.history import records as _records
from hotswap._engine.outcome import finish
from hotswap._engine.pin import gate
from hotswap._engine.report import error_in
from hotswap._engine.snapshot import capture, refill
from hotswap._engine.update import Updater
from hotswap._ops import events as _events
from hotswap._ops.events import Changes, ReloadResult, location
from hotswap._plan import modules as _modules
from hotswap._plan import sources as _sources
from hotswap._plan import whole as _whole
from hotswap._plan.diff import ChangeSet
from hotswap.exceptions import ExecutionError, HotswapError, IncompatibleChangeError

__all__ = ("attempt", "forget", "prepare_ahead")

logger = logging.getLogger("hotswap._engine.transaction")

_CONTAINERS = (list, dict, set, bytearray)
# Values a rebinding needs nothing for: no identity to keep, no code to move.
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None), tuple, frozenset})
_MERGEABLE_METACLASSES = (type, abc.ABCMeta)
_MISSING = object()
# What :func:`_unrecorded` answers for a module whose import-time bytes are not kept.
_NEVER_SEEN = cast(Record, object())


@dataclass(frozen=True)
class _Known:
    """What this path knows of a version of a module: its source's digest, shape, and the
    names its statements bound (None: not known without reading its statements)."""

    digest: str | None
    shape: _whole.Shape | None
    binds: frozenset[str] | None


@dataclass
class _Rewrite:
    """A rewrite found eligible: what it runs, where, and what it replaces."""

    module: types.ModuleType
    record: Record
    path: str
    text: str
    data: bytes
    digest: str
    code: types.CodeType
    new: _whole.Shape | None  # (None: read after the commit)
    old: _Known
    # The code's plain bindings when they were read (a first reload of a never-seen
    # source): it then runs in the module dict itself, each function reconciled after.
    plain: _plain.Bindings | None = None


_known: dict[str, _Known] = {}  # module name -> its live version's
# digest -> the shape of a rewrite's text read ahead (None: a first reload of a source never
# seen, whose lines may be plain bindings).
_ahead: dict[str, _whole.Shape | None] = {}


def forget() -> None:
    """Forget everything known (for tests, with the records)."""
    _known.clear()
    _ahead.clear()


def prepare_ahead(name: str, text: str, data: bytes) -> bool:
    """Tell ahead of its reload, outside the reload lock, whether a huge file's new text
    rewrites the live version (then its statements need no reading). Whether it does.

    It is not compiled here: ``compile()`` of a huge text holds the interpreter for hundreds
    of milliseconds, and the saves the watcher applies meanwhile would wait that long."""
    record = _records.get(name)
    module = sys.modules.get(name)
    if not isinstance(module, types.ModuleType):
        return False
    try:
        path = _modules.source_file(module)
    except HotswapError:
        return False
    if record is None or record.namespace is not vars(module):
        record = _unrecorded(module, name, path, text)
        if record is None:
            return False
    new = None
    if record is _NEVER_SEEN:
        if not _whole.plain_lines(text):
            return False
    elif record.live is None or _whole.shares_much(record.live.source, text):
        return False
    else:
        new = _whole.shape(text)
        old = _old_of(name, record)
        if new is None or old is None or old.shape is None:
            return False
        if not _whole.rewrite_of(old.shape, new):
            return False
    while len(_ahead) >= 2:
        _ahead.pop(next(iter(_ahead)))
    _ahead[hashlib.sha256(data).hexdigest()] = new
    return True


def _old_of(name: str, record: Any) -> _Known | None:
    known = _known.get(name)
    digest = record.current.source_hash
    if known is not None and known.digest == digest and known.shape is not None:
        return known
    live = record.live
    if known is not None and known.digest == digest and live is not None:
        known = _Known(digest, _whole.shape(live.source), known.binds)  # (left unread)
        _known[name] = known
        return known
    if live is None:
        return None
    binds: frozenset[str] | None
    if not isinstance(live, _whole.LazySource) or live.is_read:
        found = {n for s in live.statements for n in s.info.binds}
        binds = None if "*" in found else frozenset(found)
    else:
        binds = _whole.binds_of(live.source)  # (a version this path left, rolled back to)
    known = _Known(digest, _whole.shape(live.source), binds)
    _known[name] = known
    return known


def attempt(
    target: types.ModuleType | str,
    given: bytes | None,
    policy: str,
    reason: str,
    pin_timeout: float | None,
) -> ReloadResult | None:
    """Apply a whole-module rewrite of one module by running its new text; None when the
    edit is not one or this path cannot decide it (the caller takes the statement path)."""
    start = time.perf_counter()
    found = _eligible(target, given, policy)
    if found is None:
        return None
    record, path, text, digest = found.record, found.path, found.text, found.digest
    name = record.name
    # Records of modules that left sys.modules would keep their snapshots alive for ever.
    forget_departed(_records, keep=(name,))
    if _records.get(name) is not record:  # its first reload: from now on hotswap's
        _records[name] = record
        _sources.take(path)
    _events.publish(_events.Planned(name, record.current.number, Changes(), ()))
    wait = _config.current().pin_timeout if pin_timeout is None else pin_timeout
    try:
        changes, bound, epoch = _run(found, policy, wait)
    except _Refused as refusal:
        result = ReloadResult(
            module=name,
            ok=False,
            version=record.current.number,
            error=refusal.error,
            rolled_back=refusal.rolled_back,
            duration=time.perf_counter() - start,
            reason=reason,
        )
        return finish(result, record)
    number = record.last_number + 1
    record.add(Version(number, digest, _whole.LazySource(text), None))
    _known[name] = _Known(digest, found.new, bound)  # (a shape not read: read when asked)
    result = ReloadResult(
        module=name,
        ok=True,
        version=number,
        changes=changes,
        duration=time.perf_counter() - start,
        kind="reload",
        reason=reason,
        epoch=epoch,
    )
    return finish(result, record)


def _eligible(target: types.ModuleType | str, given: bytes | None, policy: str) -> Any:
    """Everything the run needs, or None for the statement path: a module it cannot resolve,
    read or compile (the statement path reports why), ``__main__`` or a module whose
    top-level code a thread runs (their running statement must not run again), a canary of
    it, the audit or required signatures (they read statements), framework adapters (they
    follow statements), no live source known, an edit that is not a rewrite, importers that
    may take names from it (they follow the names its statements rebind), and a compatibility
    question the names cannot answer."""
    try:
        module = _modules.original_of(_modules.resolve(target))
        name = _modules.canonical(module)
        path = _modules.source_file(module)
    except HotswapError:
        return None
    settings = _config.current()
    if (
        name == "__main__"
        or settings.audit is not None
        or settings.require_signature is not None
        or _hooks.busy(name)
    ):
        return None
    try:
        if given is None:
            text, data = _modules.read_source(name, path)
        else:
            text, data = _modules.decode_source(name, path, given), given
    except HotswapError:
        return None
    if text.count("\n") < _whole.MIN_STATEMENTS:
        return None  # (too few lines for enough statements)
    digest = hashlib.sha256(data).hexdigest()
    record = _records.get(name)
    if record is None or record.namespace is not vars(module):
        record = _unrecorded(module, name, path, text)
        if record is None:
            return None
        if record is _NEVER_SEEN:
            return _never_seen(module, name, path, text, data, digest, policy)
    if record.live is None or digest == record.current.source_hash:
        return None
    if _whole.shares_much(record.live.source, text):
        return None  # (the common edit: one definition changed)
    old = _old_of(name, record)
    if old is None or old.shape is None or old.binds is None:
        return None
    new = _ahead.pop(digest, None) or _whole.shape(text)
    if new is None or not _whole.rewrite_of(old.shape, new):
        return None
    namespace = vars(module)
    if not _runs_alone(name, namespace, old.binds, policy):
        return None
    try:
        code = compile(text, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None  # the statement path reports it, with its line
    if policy != "off":
        public = {n for n in old.binds if not n.startswith("_")}
        if public - set(code.co_names):
            return None  # a public name removed: whether something still uses it is asked there
    return _Rewrite(module, record, path, text, data, digest, code, new, old)


def _runs_alone(name: str, namespace: dict[str, Any], binds: frozenset[str], policy: str) -> bool:
    """No adapter, running statement or importer follows the module's statements, and the
    policy's question is one names answer."""
    if active_adapters() or running_line(namespace) is not None or _hooked_classes(namespace, name):
        return False
    if _imported_from(name):
        return False
    return policy == "off" or _compatible_by_names(namespace, binds, name)


def _hooked_classes(namespace: dict[str, Any], name: str) -> bool:
    """Whether a class of the module has creation hooks (an ``__init_subclass__`` above it,
    a metaclass of its own): what they registered of the kept class, elsewhere, the statement
    path follows (:mod:`hotswap._engine.classhooks`)."""
    for value in list(namespace.values()):
        if not isinstance(value, type) or vars(value).get("__module__") != name:
            continue
        if type(value) not in _MERGEABLE_METACLASSES:
            return True
        if any("__init_subclass__" in vars(base) for base in value.__mro__[1:-1]):
            return True
    return False


def _never_seen(
    module: types.ModuleType,
    name: str,
    path: str,
    text: str,
    data: bytes,
    digest: str,
    policy: str,
) -> Any:
    """:func:`_eligible` for the first reload of a module whose source hotswap never saw: a
    module of plain bindings every one of which the live objects show changed runs whole,
    as the statement path would run it (:mod:`hotswap._engine.plaincode`); the functions and
    classes of the module it no longer defines are removed, as there."""
    namespace = vars(module)
    ahead = digest in _ahead
    _ahead.pop(digest, None)
    if not ahead and not _whole.plain_lines(text):
        return None
    try:
        code = compile(text, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    found = _plain.bindings(code)
    if found is None or len(found) < _whole.MIN_STATEMENTS:
        return None
    if not _plain.all_changed(found, namespace):
        return None
    defined = {
        key
        for key, value in list(namespace.items())
        if callable(value)
        and key not in MODULE_ATTRIBUTES
        and (
            (isinstance(value, type) and value.__module__ == name)
            or owned_function(value, namespace) is not None
        )
    }
    binds = found.names() | defined
    if not _runs_alone(name, namespace, binds, policy):
        return None
    if policy != "off" and defined - found.names():
        return None  # a function removed: the statement path asks whether it is still used
    record = Record(module, _config.current().history, None)
    old = _Known(None, None, binds)
    return _Rewrite(module, record, path, text, data, digest, code, None, old, found)


def _unrecorded(module: types.ModuleType, name: str, path: str, new: str) -> Record | None:
    """The record a first reload starts, from the bytes the module was imported from (kept
    by the import hook, or by the warm-up for a file imported before hotswap), without
    reading its statements: registered when the rewrite runs. :data:`_NEVER_SEEN` when they
    are not kept, None when the edit is no rewrite of them (``new``: the new text)."""
    data = _sources.peek(path)
    if data is None:
        return _NEVER_SEEN
    try:
        text = _modules.decode_source(name, path, data)
    except HotswapError:
        return None
    if _whole.shares_much(text, new):
        return None
    record = Record(module, _config.current().history, None)
    digest = hashlib.sha256(data).hexdigest()
    record.current.source_hash = digest
    record.current.source = record.origin = _whole.LazySource(text)
    known = _known.get(name)
    if known is None or known.digest != digest:  # (else read for a compile ahead already)
        _known[name] = _Known(digest, _whole.shape(text), _whole.binds_of(text))
    return record


def _imported_from(target: str) -> bool:
    """Whether a loaded module may take names from ``target`` (the statement path follows
    what the change rebinds into it): the importer search's candidates, each read as the
    statement path reads it (a module that cannot be read counts)."""
    for name in _importers.candidates(target, _importers.Texts([])):
        module = sys.modules.get(name)
        if not isinstance(module, types.ModuleType):
            continue
        try:
            path = _modules.source_file(module)
        except HotswapError:
            continue  # the statement path passes it by too
        record = _records.get(_modules.canonical(module))
        source = None
        if record is not None and record.namespace is vars(module):
            source = record.live
        if source is None:
            source = _importers.known_source(name, path)
        if source is None or _importers.imports_from(module, source, target):
            return True
    return False


def _compatible_by_names(namespace: dict[str, Any], binds: frozenset[str], name: str) -> bool:
    """Under ``strict`` and ``warn``: whether names alone answer the compatibility check. They
    do for a module whose public names are data; a public function or class may have changed
    its signature or members, which only its statements tell."""
    if any(p.startswith("_") and not p.startswith("__") for p in name.split(".")):
        return True  # a private module has no public names
    for key in binds:
        if key.startswith("_"):
            continue
        value = namespace.get(key)
        if callable(value) and not isinstance(value, types.ModuleType):
            return False
    return True


class _Refused(Exception):
    def __init__(self, error: HotswapError, *, rolled_back: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.rolled_back = rolled_back


class _Binder(dict):  # type: ignore[type-arg]
    """The locals of the rewrite's code: each name is reconciled as the code binds it, then
    set in the module (where the code's functions look their globals up). Empty itself, so
    every read falls through to the module."""

    def __init__(self, namespace: dict[str, Any], old: dict[str, Any], updater: Updater) -> None:
        super().__init__()
        self.namespace = namespace
        self.old = old
        self.updater = updater
        self.bound: dict[str, None] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        previous = self.old.get(key, _MISSING)
        if (
            previous is not _MISSING
            and previous is not value
            and type(value) not in _PLAIN
            and not (isinstance(value, type) and _replaced(previous))
        ):
            value = self.updater.reconcile(key, previous, value)
        self.namespace[key] = value
        self.bound[key] = None

    def __delitem__(self, key: str) -> None:
        del self.namespace[key]
        self.bound.pop(key, None)


def _replaced(value: object) -> bool:
    """A live class that takes no merge (an Enum, a custom metaclass): the new one replaces
    it, as the statement path decides (:func:`hotswap._engine.execute.live_facts`)."""
    if not isinstance(value, type):
        return False
    meta = type(value)
    if isinstance(value, enum.EnumMeta):
        return True
    return meta not in _MERGEABLE_METACLASSES and meta.__module__ not in ("abc", "typing")


def _run(found: _Rewrite, policy: str, wait: float) -> tuple[Changes, frozenset[str], str]:
    """Run the rewrite in the module as one transaction: the changes, the names the code
    bound and the epoch (it moves with the code, inside the gate); or :class:`_Refused` with
    everything restored."""
    module, record, path, old = found.module, found.record, found.path, found.old
    name = record.name
    namespace = vars(module)
    with gate.exclusive(wait, location(name, path)):
        snapshot = capture(namespace, name)
        record.current.state = snapshot
        before = snapshot.namespace
        contents = [(v, v.copy()) for v in before.values() if type(v) in _CONTAINERS]
        emptied: set[int] = set()
        updater = Updater(before, namespace, name, ChangeSet(), frozenset(), emptied=emptied)
        stage = _hooks.stages(name)
        committed = False
        try:
            with stage.active():
                if found.plain is None:
                    binder = _Binder(namespace, before, updater)
                    exec(found.code, namespace, binder)
                    bound, reconciled = binder.bound, frozenset(binder.bound)
                else:
                    # Constants, functions and imports only: nothing of the run can hold a
                    # function before it is reconciled, so that happens after it.
                    exec(found.code, namespace)
                    bound = dict.fromkeys(found.plain.names())
                    reconciled = frozenset(bound) - {n for n, _ in found.plain.functions}
                removed = _remove_unbound(module, before, old.binds, bound)
                if "__annotations__" not in bound:
                    namespace.pop("__annotations__", None)  # (none: a fresh import has none)
                if policy != "off":
                    _check_removed(name, path, removed)
                outcome = updater.run(reconciled)
            stage.commit()
            committed = True
            for clear in [*outcome.at_commit, *outcome.verified]:
                clear()
            epoch = _hooks.advance({name: (found.digest, found.data, record.current.source_hash)})
        except BaseException as error:
            if not committed:
                stage.discard()
            snapshot.restore(namespace, failed=True, emptied=emptied)
            for container, saved in contents:
                refill(container, saved)
            if isinstance(error, KeyboardInterrupt):
                raise
            if isinstance(error, HotswapError):
                raise _Refused(error, rolled_back=True) from error
            wrapped = error_in(ExecutionError, name, path, error, "while executing the new code")
            raise _Refused(wrapped, rolled_back=True) from error
    for callback in outcome.after_commit:
        try:
            callback()
        except Exception:
            logger.exception("hotswap: %s: cleanup after commit failed", name)
    added = tuple(n for n in bound if n not in before and n not in MODULE_ATTRIBUTES)
    replaced = tuple(outcome.replaced)
    same = set(outcome.unchanged) | {r.split(" ", 1)[0] for r in replaced}
    changed = tuple(
        n for n in bound if n in before and n not in MODULE_ATTRIBUTES and n not in same
    )
    changes = Changes(added, changed, tuple(sorted(removed)), replaced)
    return changes, frozenset(bound), epoch


def _remove_unbound(
    module: types.ModuleType,
    before: dict[str, Any],
    binds: frozenset[str] | None,
    bound: dict[str, None],
) -> list[str]:
    """Names the old source bound that the new one did not: gone, as after a fresh import
    (a name the program set itself, or bound to another object since, stays)."""
    namespace = vars(module)
    removed = []
    for key in binds or ():
        if key in bound or key not in namespace:
            continue
        if key == "__doc__":
            if namespace[key] is before.get(key):
                namespace[key] = None
            continue
        if key in MODULE_ATTRIBUTES and key != "__annotations__":
            continue
        value = namespace[key]
        if value is before.get(key) and not is_submodule(module.__name__, key, value):
            del namespace[key]
            removed.append(key)
    return removed


def _check_removed(name: str, path: str, removed: list[str]) -> None:
    """A public name the compiled code mentions but did not bind (the statement path was not
    asked: the code named it): refused under ``strict`` and ``warn`` alike, the cautious
    answer without the statements that say whether something still uses it."""
    public = [n for n in removed if not n.startswith("_")]
    if not public:
        return
    message = (
        f"{location(name, path, None)}: public name{'s' * (len(public) > 1)} "
        f"{', '.join(public)} removed by a whole-module rewrite; rejected"
    )
    raise IncompatibleChangeError(message, module=name, filename=path, findings=[])
