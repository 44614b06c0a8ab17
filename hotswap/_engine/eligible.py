"""Which saves are whole-module rewrites, and what running one needs (issue 26).

:func:`eligible` answers for :mod:`hotswap._engine.rewrite`: a :class:`Rewrite` (the compiled
new text, the record, what the old version bound), or None when the save is no rewrite or the
whole-module path cannot decide it (then the statement path applies it). What is known of a
module's live version for this (its text's shape, the names it bound) is kept by module, and a
huge file's text is told a rewrite ahead of its reload (:func:`prepare_ahead`).
"""

from __future__ import annotations

import abc
import hashlib
import sys
import types
from dataclasses import dataclass
from typing import Any, cast

from hotswap._config import settings as _config
from hotswap._engine import adapters as _adapters
from hotswap._engine import hooks as _hooks
from hotswap._engine import importers as _importers
from hotswap._engine import plaincode as _plain
from hotswap._engine.baseline import MODULE_ATTRIBUTES, owned_function
from hotswap._engine.execute import running_line
from hotswap._engine.history import Record
from hotswap._engine.history import records as _records
from hotswap._plan import modules as _modules
from hotswap._plan import sources as _sources
from hotswap._plan import whole as _whole
from hotswap.exceptions import HotswapError

__all__ = (
    "MERGEABLE_METACLASSES",
    "Known",
    "Rewrite",
    "eligible",
    "forget",
    "may_be_removed",
    "prepare_ahead",
    "remember",
)

MERGEABLE_METACLASSES = (type, abc.ABCMeta)
# What :func:`_unrecorded` answers for a module whose import-time bytes are not kept.
_NEVER_SEEN = cast(Record, object())


@dataclass
class Known:
    """What this path knows of a version of a module: its source's digest, shape, and the
    names its statements bound (None: not known without reading its statements; or not read
    yet, from ``text``, until :meth:`names` asks: a rewrite under ``policy="off"`` needs them
    only when a name is left unbound, and reading them costs a tenth of a second for 10 MB)."""

    digest: str | None
    shape: _whole.Shape | None
    binds: frozenset[str] | None
    text: str | None = None

    def names(self) -> frozenset[str] | None:
        if self.binds is None and self.text is not None:
            self.binds, self.text = _whole.binds_of(self.text), None
        return self.binds


@dataclass
class Rewrite:
    """A rewrite found eligible: what it runs, where, and what it replaces."""

    module: types.ModuleType
    record: Record
    path: str
    text: str
    data: bytes
    digest: str
    code: types.CodeType
    new: _whole.Shape | None  # (None: read after the commit)
    old: Known
    # The code's plain bindings when they were read (a first reload of a never-seen
    # source): it then runs in the module dict itself, each function reconciled after.
    plain: _plain.Bindings | None = None


_known: dict[str, Known] = {}  # module name -> its live version's
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


def _old_of(name: str, record: Any) -> Known | None:
    known = _known.get(name)
    digest = record.current.source_hash
    if known is not None and known.digest == digest and known.shape is not None:
        return known
    live = record.live
    if known is not None and known.digest == digest and live is not None:
        known = Known(digest, _whole.shape(live.source), known.binds)  # (left unread)
        _known[name] = known
        return known
    if live is None:
        return None
    binds: frozenset[str] | None
    text = None
    if not isinstance(live, _whole.LazySource) or live.is_read:
        found = {n for s in live.statements for n in s.info.binds}
        binds = None if "*" in found else frozenset(found)
    else:
        binds, text = None, live.source  # (a version this path left, rolled back to)
    known = Known(digest, _whole.shape(live.source), binds, text)
    _known[name] = known
    return known


def eligible(target: types.ModuleType | str, given: bytes | None, policy: str) -> Any:
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
    if old is None or old.shape is None:
        return None
    if policy != "off" and old.names() is None:
        return None  # (under "off" its names are read only if the run leaves one unbound)
    new = _ahead.pop(digest, None) or _whole.shape(text)
    if new is None or not _whole.rewrite_of(old.shape, new):
        return None
    namespace = vars(module)
    if not _runs_alone(name, namespace, old.binds or frozenset(), policy):
        return None
    try:
        code = compile(text, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None  # the statement path reports it, with its line
    if policy != "off":
        public = {n for n in old.names() or () if not n.startswith("_")}
        if public - set(code.co_names):
            return None  # a public name removed: whether something still uses it is asked there
    elif _leaves_unbound(namespace, code) and old.names() is None:
        # Only the old statements tell whether the old text bound that name: the statement
        # path decides before anything runs (a run undone after would have done its effects
        # outside the module twice).
        return None
    return Rewrite(module, record, path, text, data, digest, code, new, old)


def may_be_removed(key: str, value: object) -> bool:
    """Whether the module's name ``key`` is one a rewrite removes when the new text no longer
    binds it and the old one did: not a module attribute the import system sets, except the
    annotations and a docstring."""
    return (
        key not in MODULE_ATTRIBUTES
        or key == "__annotations__"
        or (key == "__doc__" and value is not None)
    )


def _leaves_unbound(namespace: dict[str, Any], code: types.CodeType) -> bool:
    """Whether running ``code`` surely leaves a name of the module unbound that a rewrite may
    remove: one the code never names."""
    named = set(code.co_names)
    return any(
        key not in named and may_be_removed(key, value) for key, value in list(namespace.items())
    )


def _runs_alone(name: str, namespace: dict[str, Any], binds: frozenset[str], policy: str) -> bool:
    """No adapter, running statement or importer follows the module's statements, and the
    policy's question is one names answer. An adapter follows a module that holds objects of
    its framework (an app, a router, URL patterns); a module of plain functions and data
    does not concern it, whatever the program imported besides."""
    if running_line(namespace) is not None or _hooked_classes(namespace, name):
        return False
    if _holds_framework_objects(namespace, _adapters.active_triggers()):
        return False
    if _imported_from(name):
        return False
    return policy == "off" or _compatible_by_names(namespace, binds, name)


def _holds_framework_objects(namespace: dict[str, Any], frameworks: frozenset[str]) -> bool:
    """Whether the module binds a module, a class or an instance of one of ``frameworks``
    (top-level package names), or of a subclass of one of their classes (FastAPI's app is a
    Starlette one)."""
    if not frameworks:
        return False
    for value in list(namespace.values()):
        owners: list[object]
        if isinstance(value, types.ModuleType):
            owners = [value.__name__]
        else:
            kind = value if isinstance(value, type) else type(value)
            owners = [getattr(k, "__module__", None) for k in getattr(kind, "__mro__", (kind,))]
        for owner in owners:
            if isinstance(owner, str) and owner.partition(".")[0] in frameworks:
                return True
    return False


def _hooked_classes(namespace: dict[str, Any], name: str) -> bool:
    """Whether a class of the module has creation hooks (an ``__init_subclass__`` above it,
    a metaclass of its own): what they registered of the kept class, elsewhere, the statement
    path follows (:mod:`hotswap._engine.classhooks`)."""
    for value in list(namespace.values()):
        if not isinstance(value, type) or vars(value).get("__module__") != name:
            continue
        if type(value) not in MERGEABLE_METACLASSES:
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
    """:func:`eligible` for the first reload of a module whose source hotswap never saw: a
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
    old = Known(None, None, binds)
    return Rewrite(module, record, path, text, data, digest, code, None, old, found)


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
        _known[name] = Known(digest, _whole.shape(text), None, text)
    return record


def _imported_from(target: str) -> bool:
    """Whether a loaded module may run statements again for a change of ``target`` (the
    statement path follows what the change rebinds into it): the importer search's
    candidates, each read as the statement path reads it (a module that cannot be read
    counts). One that only holds the module (``import huge`` in a script that calls
    ``hotswap.reload("huge")``) does not count."""
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
        if source is None:
            return True
        if _importers.follows(module, source, target, running_line(vars(module))):
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


def remember(name: str, digest: str, shape: _whole.Shape | None, bound: frozenset[str]) -> None:
    """What the version a rewrite just made is: its digest, its text's shape (None: read
    when asked) and the names it bound."""
    _known[name] = Known(digest, shape, bound)
