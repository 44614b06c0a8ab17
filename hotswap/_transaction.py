"""The reload transaction: plan, snapshot, execute, update, migrate, commit, verify, or roll back;
the version history; the reload lock.

One reload runs at a time (``_lock``). Everything before execution (read, parse, diff,
compatibility check, compile) touches nothing live, so a rejection there needs no rollback.
From execution on, any exception restores the snapshot taken just before, exactly.
"""

from __future__ import annotations

import ast
import dis
import hashlib
import logging
import sys
import threading
import time
import traceback
import types
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hotswap import _audit, _config, _diff, _events, _modules, _proxy, _signing, _symbols, _tracing
from hotswap._baseline import MODULE_ATTRIBUTES, is_submodule, live_symbols
from hotswap._events import Changes, ModuleStatus, ReloadResult, describe, location
from hotswap._gil import Lowered
from hotswap._pin import gate
from hotswap._snapshot import ModuleState, capture
from hotswap._update import Outcome, Updater
from hotswap.exceptions import (
    ExecutionError,
    HotswapError,
    HotswapWarning,
    IncompatibleChangeError,
    MigrationError,
    ReentrantReloadError,
    SourceSyntaxError,
    VerificationError,
    VersionNotFoundError,
)

__all__ = ("metrics", "module_statuses", "reload", "reload_many", "rollback")

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_local = threading.local()  # .active: the module this thread is reloading, if any
metrics = _events.Metrics()


@dataclass
class Version:
    """One version of a module, as kept in its history."""

    number: int
    source_hash: str | None
    symbols: _symbols.Symbols | None
    # Filled by the snapshot taken before the next reload or rollback (the state the version
    # had when it was left), so each reload captures the module once, not twice.
    state: ModuleState | None
    created: float = field(default_factory=time.time)


class _Record:
    """hotswap's knowledge of one module: its live version and the versions kept."""

    def __init__(self, module: types.ModuleType, size: int) -> None:
        self.name = module.__name__
        self.namespace = vars(module)
        # The imported module is version 1; its source was never seen, so its symbols come
        # from the live objects on demand.
        self.current = Version(1, None, None, capture(self.namespace, self.name))
        self.history: deque[Version] = deque([self.current], maxlen=size)
        self.last_number = 1
        self.last_result: ReloadResult | None = None

    def add(self, version: Version) -> None:
        self.history.append(version)
        self.last_number = max(self.last_number, version.number)
        self.current = version


_records: dict[str, _Record] = {}


def _record_for(module: types.ModuleType) -> _Record:
    record = _records.get(module.__name__)
    # A module imported afresh under the same name is another module: start again.
    if record is None or record.namespace is not vars(module):
        record = _Record(module, _config.current().history)
        _records[module.__name__] = record
    return record


def module_statuses() -> dict[str, ModuleStatus]:
    """Status of every module hotswap has reloaded, by name."""
    with _lock:
        return {
            name: ModuleStatus(
                name=name,
                version=r.current.number,
                source_hash=r.current.source_hash,
                last_result=r.last_result,
                history=tuple(v.number for v in r.history),
            )
            for name, r in _records.items()
        }


@dataclass(frozen=True)
class _Plan:
    """What the checks decided, before anything runs."""

    code: types.CodeType
    symbols: _symbols.Symbols
    changes: _diff.ChangeSet
    warnings: tuple[str, ...]
    star_import: bool  # ``from x import *`` binds names the AST cannot list


class _Failure(Exception):
    """Carries a failed result out of the steps below."""

    def __init__(self, error: BaseException, *, rolled_back: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.rolled_back = rolled_back


@contextmanager
def _attempt(target: types.ModuleType | str) -> Iterator[None]:
    """One attempt (a reload or a rollback) at a time, and never one from inside another: a
    reload started by module code or a hook would wait for itself."""
    name = _modules.module_name(target)
    if getattr(_local, "active", None) is not None:
        message = (
            f"{name}: reload started while {_local.active} is being reloaded "
            "(from module code or a hook); start it after that reload returns"
        )
        raise _Failure(ReentrantReloadError(message, module=name))
    with _lock, _priority():
        _local.active = name
        try:
            yield
        finally:
            _local.active = None


# While a reload runs, its thread asks for the GIL at every file read, lock and wait; with the
# default 5 ms switch interval, CPU-bound threads make each of those asks wait up to 5 ms per
# thread (eight busy threads: a 1.5 ms reload took 120 ms, tests/test_pin.py's stress test).
# A short interval for the few milliseconds of the reload gives the GIL back promptly.
_RELOAD_SWITCH_INTERVAL = 0.0002


@contextmanager
def _priority() -> Iterator[None]:
    lowered = Lowered(_RELOAD_SWITCH_INTERVAL)
    try:
        yield
    finally:
        lowered.restore()  # unless the reloaded code set an interval of its own


def _finish(
    name: str,
    start: float,
    record: _Record | None,
    *,
    ok: bool,
    changes: Changes | None = None,
    failure: _Failure | None = None,
    warnings_: tuple[str, ...] = (),
    kind: str = "reload",
) -> ReloadResult:
    if record is not None:
        version = record.current.number
    else:  # failed before hotswap knew the module: a loaded one is at its imported version
        version = 1 if name in sys.modules else 0
    result = ReloadResult(
        module=name,
        ok=ok,
        version=version,
        changes=changes or Changes(),
        error=None if failure is None else failure.error,
        rolled_back=False if failure is None else failure.rolled_back,
        duration=time.perf_counter() - start,
        warnings=warnings_,
        kind=kind,
    )
    if record is not None:
        record.last_result = result
    metrics.record(result)
    # HOOK(issue16) structured logging: the fields of the result ride on the record.
    extra = _events.log_extra(result)
    if ok:
        logger.info("hotswap: %s", describe(result), extra=extra)
    else:
        logger.warning("hotswap: %s", describe(result), extra=extra)
    _events.emit(result)
    return result


def _error_line(error: BaseException, filename: str) -> int | None:
    """The deepest line of ``filename`` in the traceback: where the new code failed."""
    if isinstance(error, SyntaxError) and error.filename == filename:
        return error.lineno
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == filename
    ]
    return lines[-1] if lines else None


def _wrap(
    kind: type[ExecutionError], name: str, path: str, error: BaseException, what: str
) -> ExecutionError:
    line = _error_line(error, path)
    detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    message = f"{location(name, path, line)}: {detail} {what}; rolled back"
    wrapped = kind(message, module=name, filename=path, lineno=line)
    wrapped.__cause__ = error
    return wrapped


def _plan(
    record: _Record,
    module: types.ModuleType,
    path: str,
    source: str,
    policy: str,
    definitions_only: bool,
) -> _Plan:
    """Parse, diff, check and compile: everything that decides before anything runs."""
    name = record.name
    try:
        tree = None
        if definitions_only:
            tree = ast.parse(source, path)
            kinds = (
                ast.FunctionDef,
                ast.AsyncFunctionDef,
                ast.ClassDef,
                ast.Import,
                ast.ImportFrom,
            )
            tree.body = [stmt for stmt in tree.body if isinstance(stmt, kinds)]
            code = compile(tree, path, "exec", dont_inherit=True)
        else:
            # Compiled from the text: the AST is built only for the statements that changed.
            code = compile(source, path, "exec", dont_inherit=True)
        old_symbols = record.current.symbols
        new_symbols = _symbols.module_symbols(source, code, old_symbols, tree=tree)
        if old_symbols is None:
            old_symbols = live_symbols(module)
        changes = _diff.diff(old_symbols, new_symbols)
        findings = [] if policy == "off" else _diff.check(old_symbols, new_symbols)
        breaking = [f for f in findings if f.public or f.reloadable]
        warned: tuple[str, ...] = ()
        if breaking:
            lines = [f.format(location(name, path, f.lineno)) for f in breaking]
            if policy == "strict":
                count = f"{len(breaking)} incompatible change{'s' * (len(breaking) > 1)}"
                message = f"{location(name, path, breaking[0].lineno)}: {count} rejected:\n  "
                message += "\n  ".join(lines)
                raise _Failure(
                    IncompatibleChangeError(message, module=name, filename=path, findings=breaking)
                )
            warned = tuple(lines)
            try:
                for line in lines:
                    warnings.warn(line, HotswapWarning, stacklevel=4)
            except HotswapWarning as escalated:
                # The program turned HotswapWarning into an error: it asked for a rejection.
                raise _Failure(
                    IncompatibleChangeError(
                        f"{escalated} (HotswapWarning is an error here)",
                        module=name,
                        filename=path,
                        findings=breaking,
                    )
                ) from escalated
            for line in lines:
                logger.warning("hotswap: applying a change that may break callers: %s", line)
        # HOOK(issue16) audit: the new and changed statements may not use denied names.
        _audit.check_source(name, path, source, record.current.symbols)
        # ``from x import *`` binds names no source lists (IMPORT_STAR names no name).
        star = "import *" in source and _has_star_import(code)
    except SyntaxError as error:
        where = location(name, error.filename or path, error.lineno)
        if error.offset:
            where = where[:-1] + f":{error.offset})"
        message = f"{where}: {error.msg}"
        raise _Failure(SourceSyntaxError(message, module=name, error=error)) from error
    except ValueError as error:  # null bytes in the source
        message = f"{location(name, path)}: {error}"
        raise _Failure(HotswapError(message, module=name, filename=path)) from error
    return _Plan(code, new_symbols, changes, warned, star)


def _planned(name: str, version: int, plan: _Plan) -> _events.Planned:
    found = plan.changes
    changes = Changes(found.added, found.changed, found.removed)
    return _events.Planned(name, version, changes, plan.warnings)


def _has_star_import(code: types.CodeType) -> bool:
    return any(i.opname == "IMPORT_STAR" for i in dis.get_instructions(code))


def _keep_names(namespace: dict[str, Any]) -> frozenset[str]:
    keep = namespace.get("__hotswap_keep__", ())
    if isinstance(keep, str):
        keep = (keep,)
    try:
        return frozenset(str(k) for k in keep)
    except TypeError:
        return frozenset()


def _remove_stale(
    name: str,
    namespace: dict[str, Any],
    old: dict[str, Any],
    new_symbols: _symbols.Symbols,
    keep: frozenset[str],
    has_star_import: bool,
) -> None:
    """Delete names the new source no longer defines (importlib.reload leaves them behind)."""
    for key, value in old.items():
        if key in MODULE_ATTRIBUTES or key in keep or key in new_symbols:
            continue
        if is_submodule(name, key, value):
            continue
        # Rebound while the new code ran (a ``globals()[...] =``, ``import *``): the new code
        # defines it after all.
        if namespace.get(key) is not value or has_star_import:
            continue
        del namespace[key]


def _apply(
    record: _Record,
    module: types.ModuleType,
    path: str,
    plan: _Plan,
    source_hash: str,
    definitions_only: bool,
) -> Changes:
    """Execute, update in place, migrate, commit and verify; roll back on any exception."""
    name = record.name
    namespace = vars(module)
    settings = _config.current()
    with gate.exclusive(settings.pin_timeout, location(name, path)):
        snapshot = capture(namespace, name)
        record.current.state = snapshot
        stage = _proxy.Stage(name)
        after_commit: list[Callable[[], object]] = []
        committed = False
        try:
            # HOOK(issue16) traces: the "hotswap.execute" span, from the run to migrate.
            with _tracing.span("hotswap.execute", module=name):
                with stage.active():
                    exec(plan.code, namespace)
                keep = _keep_names(namespace)
                outcome = Updater(snapshot.namespace, namespace, name, plan.changes, keep).run()
                after_commit = outcome.after_commit
                if not definitions_only:
                    _remove_stale(
                        name, namespace, snapshot.namespace, plan.symbols, keep, plan.star_import
                    )
                _call_hook(
                    plan,
                    namespace,
                    "__hotswap_migrate__",
                    MigrationError,
                    path,
                    name,
                    dict(snapshot.namespace),
                )
            # HOOK(issue16) traces: the "hotswap.commit" span, the switch and the health check.
            with _tracing.span("hotswap.commit", module=name):
                stage.commit()
                committed = True
                _call_hook(plan, namespace, "__hotswap_verify__", VerificationError, path, name)
        except BaseException as error:
            if not committed:
                stage.discard()
            snapshot.restore(namespace)
            if isinstance(error, KeyboardInterrupt):
                raise
            if not isinstance(error, ExecutionError):
                error = _wrap(ExecutionError, name, path, error, "while executing the new code")
            raise _Failure(error, rolled_back=True) from error
    number = record.last_number + 1
    record.add(Version(number, source_hash, plan.symbols, None))
    for callback in after_commit:
        try:
            callback()
        except Exception:
            logger.exception("hotswap: %s: cleanup after commit failed", name)
    return _changes(plan.changes, outcome)


def _call_hook(
    plan: _Plan,
    namespace: dict[str, Any],
    hook: str,
    kind: type[ExecutionError],
    path: str,
    name: str,
    *args: object,
) -> None:
    """Call a module hook if the new source defines one; what it raises becomes ``kind``."""
    function = namespace.get(hook) if hook in plan.symbols else None
    if function is None:
        return
    try:
        function(*args)
    except KeyboardInterrupt:
        raise  # the user asked to stop: rolled back, then re-raised
    except BaseException as error:
        raise _wrap(kind, name, path, error, f"in {hook}") from error


def _changes(changes: _diff.ChangeSet, outcome: Outcome) -> Changes:
    found = set(outcome.changed)
    unknown_changed = [n for n in changes.unknown if n in found]
    changed = sorted(
        {*changes.changed, *unknown_changed}, key=lambda n: (changes.lines.get(n, 0), n)
    )
    return Changes(
        added=changes.added,
        changed=tuple(changed),
        removed=changes.removed,
        replaced=tuple(outcome.replaced),
    )


def reload(
    target: types.ModuleType | str,
    *,
    policy: str | None = None,
    force: bool = False,
    definitions_only: bool = False,
    data: bytes | None = None,
) -> ReloadResult:
    """Reload one module through the transaction; never raises for a failed reload.

    ``data`` is the source the caller already read and checked (the watcher), so exactly that
    is executed, not what the file holds a moment later.
    """
    # HOOK(issue16) traces: the "hotswap.reload" span around the attempt, told its result.
    with _tracing.span("hotswap.reload", module=_modules.module_name(target)) as span:
        result = _reload(target, policy, force, definitions_only, data)
        span.result(result)
    return result


def _reload(
    target: types.ModuleType | str,
    policy: str | None,
    force: bool,
    definitions_only: bool,
    data: bytes | None,
) -> ReloadResult:
    start = time.perf_counter()
    name = _modules.module_name(target)
    # A running program's top-level statements (its main loop) must never run again.
    definitions_only = definitions_only or name == "__main__"
    record: _Record | None = None
    try:
        with _attempt(target):
            module = _modules.resolve(target)
            path = _modules.source_file(module)
            if data is None:
                source, data = _modules.read_source(name, path)
            else:
                source = _modules.decode_source(name, path, data)
            digest = hashlib.sha256(data).hexdigest()
            record = _record_for(module)
            if record.current.source_hash == digest and not force:
                return _finish(name, start, record, ok=True, kind="unchanged")
            settings = _config.current()
            chosen = settings.policy if policy is None else policy
            if chosen not in _config.POLICIES:
                message = f"policy must be one of {', '.join(_config.POLICIES)}, not {chosen!r}"
                raise ValueError(message)
            # HOOK(issue16) signing: the exact bytes about to apply must carry a valid signature.
            _signing.verify(path, data, settings, module=name)
            # HOOK(issue16) traces: the "hotswap.plan" span (parse, diff, checks, audit).
            with _tracing.span("hotswap.plan", module=name):
                plan = _plan(record, module, path, source, chosen, definitions_only)
            # HOOK(issue16) events: the plan passed every check; its code runs next.
            _events.publish(_planned(name, record.current.number, plan))
            applied = _apply(record, module, path, plan, digest, definitions_only)
            kind = "reset" if force else "reload"
            return _finish(
                name, start, record, ok=True, changes=applied, warnings_=plan.warnings, kind=kind
            )
    except _Failure as failure:
        return _finish(name, start, record, ok=False, failure=failure)
    except HotswapError as error:
        return _finish(name, start, record, ok=False, failure=_Failure(error))


def reload_many(
    entries: list[tuple[str, bytes | None]], *, policy: str | None = None
) -> list[ReloadResult]:
    """Reload a change set: several modules, planned and checked together, committed or rolled
    back as one transaction (DESIGN §5.3); one result per module, in the order given.

    Each entry is (module name, the bytes to apply or None to read the file).
    """
    return [reload(name, policy=policy, data=data) for name, data in entries]


def rollback(target: types.ModuleType | str, to: int | None = None) -> ReloadResult:
    """Restore a kept version of a module (the previous one when ``to`` is None)."""
    start = time.perf_counter()
    name = _modules.module_name(target)
    record: _Record | None = None
    try:
        with _attempt(target):
            module = _modules.resolve(target)
            record = _records.get(name)
            if record is None or record.namespace is not vars(module):
                message = f"{name}: no reload history to roll back to (it was never reloaded)"
                raise _Failure(VersionNotFoundError(message, module=name))
            current = record.current.number
            kept = [v for v in record.history if v.number != current]
            if to is None:
                earlier = [v for v in kept if v.number < current]
                chosen = earlier[-1] if earlier else None
            else:
                chosen = next((v for v in kept if v.number == to), None)
                if to == current:
                    return _finish(name, start, record, ok=True, kind="rollback")
            if chosen is None:
                numbers = ", ".join(str(v.number) for v in record.history)
                wanted = "an earlier version" if to is None else f"version {to}"
                message = f"{name}: {wanted} is not kept (history: {numbers}; live: {current})"
                raise _Failure(VersionNotFoundError(message, module=name))
            namespace = vars(module)
            keep = _keep_names(namespace)
            kept_values = {k: namespace[k] for k in keep if k in namespace}
            path = getattr(module, "__file__", None)
            with gate.exclusive(_config.current().pin_timeout, location(name, path)):
                before = record.current
                before.state = capture(namespace, name)
                assert chosen.state is not None  # only the live version lacks one
                chosen.state.restore(namespace)
                # Kept names keep their current objects across rollbacks too.
                namespace.update(kept_values)
                record.current = chosen
            changes = Changes()
            if before.symbols is not None and chosen.symbols is not None:
                delta = _diff.diff(before.symbols, chosen.symbols)
                changes = Changes(delta.added, delta.changed, delta.removed)
            return _finish(name, start, record, ok=True, changes=changes, kind="rollback")
    except _Failure as failure:
        return _finish(name, start, record, ok=False, failure=failure, kind="rollback")
    except HotswapError as error:
        return _finish(name, start, record, ok=False, failure=_Failure(error), kind="rollback")


def reset() -> None:
    """Forget all records (for tests)."""
    with _lock:
        _records.clear()
