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
(:func:`attempt` returns None): see :mod:`hotswap._engine.eligible`.
"""

from __future__ import annotations

import enum
import logging
import time
import types
from typing import Any

from hotswap._config import settings as _config
from hotswap._engine import eligible as _eligible
from hotswap._engine import hooks as _hooks
from hotswap._engine.baseline import MODULE_ATTRIBUTES, is_submodule
from hotswap._engine.departed import forget_departed
from hotswap._engine.history import Version, share_source
from hotswap._engine.history import records as _records
from hotswap._engine.outcome import finish
from hotswap._engine.pin import gate
from hotswap._engine.report import error_in
from hotswap._engine.snapshot import capture, refill
from hotswap._engine.update import Updater
from hotswap._ops import events as _events
from hotswap._ops.events import Changes, ReloadResult, location
from hotswap._plan import sources as _sources
from hotswap._plan import whole as _whole
from hotswap._plan.diff import ChangeSet
from hotswap.exceptions import ExecutionError, HotswapError, IncompatibleChangeError

__all__ = ("attempt", "forget")

logger = logging.getLogger("hotswap._engine.transaction")

_CONTAINERS = (list, dict, set, bytearray)
# Values a rebinding needs nothing for: no identity to keep, no code to move.
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None), tuple, frozenset})
_MISSING = object()


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
    found = _eligible.eligible(target, given, policy)
    if found is None:
        return None
    record, path, text, digest = found.record, found.path, found.text, found.digest
    name = record.name
    # Records of modules that left sys.modules would keep their snapshots alive for ever.
    forget_departed(_records, keep=(name,))
    if _records.get(name) is not record:  # its first reload: from now on hotswap's
        _records[name] = record
        source = _sources.take(path)
        if source is not None:  # the other modules run from the file start from it too
            share_source(found.module, path, source)
    _events.publish(_events.Planned(name, record.current.number, Changes(), ()))
    wait = _config.current().pin_timeout if pin_timeout is None else pin_timeout
    try:
        changes, bound, epoch = _run(found, policy, wait)
    except _Unread:
        return None  # (restored: the statement path reads both versions)
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
    _eligible.remember(name, digest, found.new, bound)  # (a shape unread: read when asked)
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


class _Unread(Exception):
    """The run left a name unbound, and the old text's statements are not of a form that
    tells whether it bound that name: the statement path decides."""


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
    return meta not in _eligible.MERGEABLE_METACLASSES and meta.__module__ not in ("abc", "typing")


def _run(found: _eligible.Rewrite, policy: str, wait: float) -> tuple[Changes, frozenset[str], str]:
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
                removed = _remove_unbound(module, before, old, bound)
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
            if isinstance(error, KeyboardInterrupt | _Unread):
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
    old: _eligible.Known,
    bound: dict[str, None],
) -> list[str]:
    """Names the old source bound that the new one did not: gone, as after a fresh import
    (a name the program set itself, or bound to another object since, stays). The old
    source's names are read only when the run left a name unbound; :class:`_Unread` when
    they cannot be read from its text."""
    namespace = vars(module)
    left = [
        key
        for key, value in namespace.items()
        if key not in bound and _eligible.may_be_removed(key, value)
    ]
    if not left:
        return []
    binds = old.names()
    if binds is None:
        raise _Unread
    removed = []
    for key in left:
        if key not in binds:
            continue
        if key == "__doc__":
            if namespace[key] is before.get(key):
                namespace[key] = None
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


def forget() -> None:
    """Forget what is known of live versions (for tests, with the records)."""
    _eligible.forget()
