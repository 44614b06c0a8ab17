"""The reload transaction: plan, snapshot, run, update, sync, migrate, commit, verify, or roll
back; the version history; the reload lock.

One change set (one module, or several saved together) is one transaction. Everything before
execution (read, parse, plan, compatibility check, compile) touches nothing live, so a rejection
there needs no rollback. From execution on, any exception restores every touched module's
snapshot (and undoes what framework adapters did), so a failure changes nothing observable.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import logging
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hotswap import (
    _audit,
    _config,
    _datafiles,
    _events,
    _importers,
    _modules,
    _planner,
    _proxy,
    _routing,
    _signing,
    _sources,
    _statements,
    _tracing,
)
from hotswap._adapters import ModulePlan, ModuleUpdate, StatementRun, active_adapters
from hotswap._baseline import live_symbols, synthesize
from hotswap._checks import check_compatibility
from hotswap._events import Changes, ModuleStatus, ReloadResult, describe, location
from hotswap._execute import Executed, compile_plan, live_facts, relocate, run_plan, running_line
from hotswap._gil import Lowered
from hotswap._history import Record as _Record
from hotswap._history import Version
from hotswap._history import record_for as _record_for
from hotswap._history import records as _records
from hotswap._pin import gate
from hotswap._report import changes_of, dependents_of, error_in, skipped_of
from hotswap._snapshot import ModuleState, capture
from hotswap._update import Updater
from hotswap.exceptions import (
    CanaryError,
    ExecutionError,
    HotswapError,
    MigrationError,
    ReentrantReloadError,
    SourceSyntaxError,
    VerificationError,
    VersionNotFoundError,
)

__all__ = (
    "metrics",
    "module_statuses",
    "plan_alone",
    "reload",
    "reload_data",
    "reload_many",
    "report",
    "rollback",
)

logger = logging.getLogger(__name__)

_lock = threading.RLock()
_local = threading.local()  # .active: the module this thread is reloading, if any
metrics = _events.Metrics()


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


class _Failure(Exception):
    """Carries a failed attempt's error out of the steps below."""

    def __init__(self, error: BaseException, *, rolled_back: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.rolled_back = rolled_back


@contextmanager
def _attempt(name: str) -> Iterator[None]:
    """One attempt (a reload or a rollback) at a time, and never one from inside another: a
    reload started by module code or a hook would wait for itself."""
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


def report(result: ReloadResult, *, why: str | None = None) -> ReloadResult:
    """Record, log and announce a result made outside a reload (a canary's abort)."""
    return _finish(result, _records.get(result.module), why)


def _finish(result: ReloadResult, record: _Record | None, why: str | None = None) -> ReloadResult:
    if record is not None:
        record.last_result = result
    if result.kind != "canary":  # a canary's start or abort is not a reload attempt
        metrics.record(result)
    # The fields of the result ride on the log record, for structured log formatters.
    extra = _events.log_extra(result)
    if result.ok:
        logger.info("hotswap: %s", describe(result), extra=extra)
    else:
        logger.warning("hotswap: %s", describe(result), extra=extra)
    _events.emit(result, reason=why)
    return result


@dataclass
class _Unit:
    """One module of a change set: a changed file (a root) or an importer that follows."""

    module: types.ModuleType
    record: _Record
    path: str
    new: _statements.ModuleSource
    old: _statements.ModuleSource | None  # None: the live source is unknown
    root: bool
    data: bytes | None = None
    digest: str | None = None
    origin: str = ""  # the root whose change reached this importer
    plan: _planner.Plan = field(default_factory=_planner.Plan)
    warnings: tuple[str, ...] = ()
    code: types.CodeType | None = None
    snapshot: ModuleState | None = None
    executed: Executed | None = None
    force: bool = False
    fresh: bool = False  # an importer whose record is registered only if it runs
    rerun: frozenset[int] = frozenset()  # statements that read a changed data file
    names: set[str] = field(default_factory=set)  # the names the caller gave for it

    @property
    def name(self) -> str:
        return self.record.name


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
    is executed, not what the file holds a moment later. ``definitions_only`` is accepted for
    callers of the earlier API: ``__main__``'s running statement is now found, not assumed.
    """
    del definitions_only
    return reload_many([(target, data)], policy=policy, force=force)[0]


def reload_data(path: str, readers: dict[str, set[int]]) -> list[ReloadResult]:
    """A data file changed: run again the statements that read it at import (module name ->
    their first lines), and their dependents, as one transaction; one result per module."""
    start = time.perf_counter()
    units: list[_Unit] = []
    entries: list[tuple[types.ModuleType | str, bytes | None]] = [(n, None) for n in readers]
    try:
        with _attempt(next(iter(readers), "?")):
            for name, lines in readers.items():
                module = _resolve_entry(name)
                unit = _importer(name, name, "", follow=False)
                if unit is None:
                    continue
                unit.root, unit.rerun, unit.names = True, frozenset(lines), {name}
                units.append(unit)
                _datafiles.forget(name, lines)  # the statements record again as they run
                del module
            roots = list(units)
            _plan_all(units, _config.current().policy, False)
            if any(u.plan for u in units):
                _run(units)
            return _results(entries, roots, units, start)
    except _Failure as failure:
        return _failed(entries, units, failure, start)
    except HotswapError as error:
        return _failed(entries, units, _Failure(error), start)


def reload_many(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    *,
    policy: str | None = None,
    force: bool = False,
    reason: str = "",
) -> list[ReloadResult]:
    """Reload a change set: several modules, planned and checked together, committed or rolled
    back as one transaction (DESIGN §5.3); one result per entry, in the order given.

    Each entry is (module or module name, the bytes to apply or None to read the file);
    ``reason`` is carried by the results (a canary's promotion says why).
    """
    names = [_modules.module_name(t) for t, _ in entries]
    with _tracing.span("hotswap.reload", module=", ".join(names)) as span:
        results = _reload_many(entries, names, policy, force, reason)
        span.result(results[0])
    return results


def _reload_many(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    names: list[str],
    policy: str | None,
    force: bool,
    reason: str = "",
) -> list[ReloadResult]:
    start = time.perf_counter()
    units: list[_Unit] = []
    try:
        with _attempt(names[0] if names else "?"):
            chosen = _config.current().policy if policy is None else policy
            if chosen not in _config.POLICIES:
                message = f"policy must be one of {', '.join(_config.POLICIES)}, not {chosen!r}"
                raise ValueError(message)
            with _tracing.span("hotswap.plan", module=", ".join(names)):
                units = _read(entries, force)
                roots = list(units)
                _plan_all(units, chosen, force)
            for unit in roots:
                _events.publish(_planned(unit))
            if any(u.plan for u in units):
                _run(units)
            return _results(entries, roots, units, start, reason)
    except _Failure as failure:
        return _failed(entries, units, failure, start, reason)
    except HotswapError as error:  # pinned sections did not leave: nothing ran
        return _failed(entries, units, _Failure(error), start, reason)


def _resolve_entry(target: types.ModuleType | str) -> types.ModuleType:
    try:
        return _modules.resolve(target)
    except HotswapError as error:
        raise _Failure(error) from error


def _read(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]], force: bool
) -> list[_Unit]:
    """Resolve, read and parse every entry (aliases of one module count once)."""
    units: dict[int, _Unit] = {}
    for target, given in entries:
        module = _resolve_entry(target)
        if id(module) in units:
            units[id(module)].names.add(_modules.module_name(target))
            continue
        name = _modules.canonical(module)
        if _routing.busy(name):
            raise _Failure(_canary_running(name))
        try:
            path = _modules.source_file(module)
            if given is None:
                text, data = _modules.read_source(name, path)
            else:
                text, data = _modules.decode_source(name, path, given), given
        except HotswapError as error:
            raise _Failure(error) from error
        record = _record_for(module)
        digest = hashlib.sha256(data).hexdigest()
        if record.current.source_hash == digest and not force and record.live is not None:
            new = record.live
        else:
            try:
                # Signed changes: the exact bytes about to apply must carry a valid signature.
                _signing.verify(path, data, module=name)
            except HotswapError as error:
                raise _Failure(error) from error
            try:
                new = _statements.parse_module(text, record.live)
            except SyntaxError as error:
                raise _Failure(_syntax_error(name, path, error)) from error
        unit = _Unit(module, record, path, new, record.live, True, data, digest, force=force)
        unit.origin = name
        unit.names = {name, module.__name__, target if isinstance(target, str) else name}
        units[id(module)] = unit
    return list(units.values())


def _canary_running(name: str) -> CanaryError:
    message = f"{name}: a canary of it runs; promote() or abort() it first"
    return CanaryError(message, module=name)


def plan_alone(
    target: types.ModuleType | str, data: bytes | None = None, policy: str | None = None
) -> tuple[_Unit, _statements.ModuleSource]:
    """Plan a module's file as a reload would (read, signature, parse, compatibility, audit,
    compile) without running anything and without its importers: what a canary tries.
    Returns the unit and the source its live code runs.

    Raises:
        HotswapError: what a reload would report (a syntax error, an incompatible change...).
    """
    try:
        with _attempt(_modules.module_name(target)):
            chosen = _config.current().policy if policy is None else policy
            units = _read([(target, data)], False)
            _plan_all(units, chosen, False, follow=False)
            unit = units[0]
            assert unit.old is not None
            return unit, unit.old
    except _Failure as failure:
        if isinstance(failure.error, HotswapError):
            raise failure.error from failure.error.__cause__
        raise


def _syntax_error(name: str, path: str, error: SyntaxError) -> SourceSyntaxError:
    error.filename = error.filename if error.filename not in (None, "<unknown>") else path
    where = location(name, error.filename, error.lineno)
    if error.offset:
        where = where[:-1] + f":{error.offset})"
    return SourceSyntaxError(f"{where}: {error.msg}", module=name, error=error)


def _keep(namespace: dict[str, Any]) -> frozenset[str]:
    keep = namespace.get("__hotswap_keep__", ())
    if isinstance(keep, str):
        keep = (keep,)
    try:
        return frozenset(str(k) for k in keep)
    except TypeError:
        return frozenset()


def _facts(unit: _Unit) -> _planner.Live:
    namespace = vars(unit.module)
    line = running_line(namespace)
    if line is not None and unit.record.origin is not None and unit.old is not None:
        line = _live_line(unit.record.origin, unit.old, line)
    facts = live_facts(unit.module, line, _keep(namespace), is_main=unit.name == "__main__")
    return dataclasses.replace(facts, rerun=unit.rerun) if unit.rerun else facts


def _live_line(
    origin: _statements.ModuleSource, live: _statements.ModuleSource, line: int
) -> int | None:
    """Map a line of the source the top-level code ran from to the live source's lines."""
    if origin is live:
        return line
    index = next((i for i, s in enumerate(origin.statements) if s.last >= line), None)
    if index is None:
        return None
    pairs = _planner.align(origin.statements, live.statements)
    for position, counterpart in enumerate(pairs):
        if counterpart is not None and counterpart >= index:
            return live.statements[position].first
    return live.statements[-1].last + 1 if live.statements else None


def _upstream(unit: _Unit, planned: Sequence[_Unit]) -> _planner.Upstream:
    namespace = vars(unit.module)
    package = namespace.get("__package__") or ""
    rebound = {u.name: frozenset(u.plan.rebound) for u in planned if u.plan.rebound}
    dirty = {u.name: frozenset(u.plan.dirty) for u in planned if u.plan.dirty}

    def resolve(level: int, module: str) -> str:
        if not level:
            return module
        base = package.rsplit(".", level - 1)[0] if level > 1 else package
        return f"{base}.{module}" if module else base

    def target(local: str, chain: tuple[str, ...]) -> tuple[str, str] | None:
        value = namespace.get(local)
        if not isinstance(value, types.ModuleType) or not chain:
            return None
        for position, attribute in enumerate(chain):
            inner = getattr(value, attribute, None)
            if isinstance(inner, types.ModuleType) and position < len(chain) - 1:
                value = inner
                continue
            return (_modules.canonical(value), attribute)
        return None

    return _planner.Upstream(rebound, dirty, resolve, target)


def _plan_all(units: list[_Unit], policy: str, force: bool, *, follow: bool = True) -> None:
    """Check and plan the change set, then follow it into importers (DESIGN §5.2)."""
    texts = _importers.Texts(units)
    units[:] = _importers.in_import_order(units)
    for unit in units:
        if unit.old is None:
            unit.old = synthesize(unit.module, unit.new, unit.path)
            old_symbols = live_symbols(unit.module)
        else:
            old_symbols = unit.old.symbols
        if unit.new is not unit.old:
            try:
                unit.warnings = check_compatibility(
                    unit.name, unit.path, old_symbols, unit.new.symbols, policy, texts.all
                )
            except HotswapError as error:
                raise _Failure(error) from error
    planned: list[_Unit] = []
    queue = list(units)
    seen = {u.name for u in units}
    while queue:
        unit = queue.pop(0)
        unit.plan = _planner.plan(
            unit.old, unit.new, _facts(unit), _upstream(unit, planned), force=unit.force
        )
        planned.append(unit)
        if not follow or not (unit.plan.rebound or unit.plan.dirty) or unit.name == "__main__":
            continue  # (nothing imports from the running script by that name)
        for name in _modules.importer_candidates(unit.name, texts.of):
            if name in seen:
                continue
            importer = _importer(name, unit.origin, unit.name)
            if importer is None:
                continue
            seen.add(name)
            units.append(importer)
            queue.append(importer)
    for unit in units:
        if unit.root and unit.plan.direct:
            _audit_unit(unit)
        if unit.plan.run:
            try:
                unit.code = compile_plan(unit.new, unit.plan, unit.path)
            except SyntaxError as error:
                raise _Failure(_syntax_error(unit.name, unit.path, error)) from error


def _audit_unit(unit: _Unit) -> None:
    """The audit policy: the changed and new statements may not use denied names (the
    module's imports and aliases say what their names stand for)."""
    if _config.current().audit is None:
        return
    statements = unit.new.statements
    changed = [_statements.parse_statement(statements[i]) for i in sorted(unit.plan.direct)]
    context = [
        _statements.parse_statement(s)
        for i, s in enumerate(statements)
        if i not in unit.plan.direct and _audit.may_alias(s.text)
    ]
    try:
        _audit.check(unit.name, unit.path, changed, ast.Module([*context, *changed], []))
    except HotswapError as error:
        raise _Failure(error) from error


def _planned(unit: _Unit) -> _events.Planned:
    names = sorted({n for i in unit.plan.direct for n in unit.new.statements[i].info.binds} - {"*"})
    changes = Changes(changed=tuple(names))
    return _events.Planned(unit.name, unit.record.current.number, changes, unit.warnings)


def _importer(name: str, origin: str, target: str, *, follow: bool = True) -> _Unit | None:
    """A module that may depend on a change, with the source its live code runs."""
    module = sys.modules.get(name)
    if not isinstance(module, types.ModuleType):
        return None
    try:
        path = _modules.source_file(module)
    except HotswapError:
        return None
    record = _records.get(_modules.canonical(module))
    fresh = record is None or record.namespace is not vars(module)
    source = None if fresh or record is None else record.live
    if source is None:
        source = _importers.known_source(name, path)
        if source is None:
            return None
    if follow and not _importers.imports_from(module, source, target):
        return None
    if record is None or fresh:
        # Registered only if statements of it run (status lists reloaded modules only). What
        # the file holds is the best knowledge of what this module runs.
        record = _Record(module, _config.current().history, None)
        record.current.source = record.origin = source
    unit = _Unit(module, record, path, source, source, False)
    unit.fresh = fresh
    unit.origin = origin
    return unit


def _run(units: list[_Unit]) -> None:
    """Execute the plans of a change set as one transaction; roll everything back on failure."""
    settings = _config.current()
    touched = [u for u in units if u.plan]
    for unit in touched:
        # An importer (or a data file's reader) under canary: its functions dispatch between
        # two versions, and running its statements now would mix them.
        if _routing.busy(unit.name):
            raise _Failure(_canary_running(unit.name))
    where = location(touched[0].name, touched[0].path) if touched else "hotswap"
    undo: list[Callable[[], object]] = []
    stages: list[_proxy.Stage] = []
    committed = False
    with gate.exclusive(settings.pin_timeout, where):
        for unit in touched:
            unit.snapshot = capture(vars(unit.module), unit.name)
            unit.record.current.state = unit.snapshot
        # A snapshot restores bindings and definitions; the contents of a kept plain
        # container that a running statement fills (``L.append(5)``) are kept aside too.
        contents = [c for u in touched for c in _containers(u)]
        current: _Unit | None = None
        try:
            with _tracing.span("hotswap.execute", module=", ".join(u.name for u in touched)):
                adapters = active_adapters()
                if adapters:
                    plans = [_module_plan(u) for u in touched]
                    undo += [step for a in adapters if (step := a.prepare(plans)) is not None]
                for unit in touched:
                    current = unit
                    assert unit.snapshot is not None
                    stage = _proxy.Stage(unit.name)
                    stages.append(stage)
                    updater = Updater(
                        unit.snapshot.namespace,
                        vars(unit.module),
                        unit.name,
                        _changeset(unit),
                        _keep(vars(unit.module)),
                    )
                    with stage.active():
                        unit.executed = run_plan(
                            unit.module, unit.code, unit.snapshot.namespace, updater, unit.plan
                        )
                        _follow_surprises(unit, updater)
                current = None
                if adapters:
                    updates = [_module_update(u) for u in touched]
                    undo += [step for a in adapters if (step := a.sync(updates)) is not None]
                for unit in touched:
                    current = unit
                    assert unit.snapshot is not None
                    _call_hook(
                        unit, "__hotswap_migrate__", MigrationError, dict(unit.snapshot.namespace)
                    )
            current = None
            with _tracing.span("hotswap.commit", module=", ".join(u.name for u in touched)):
                for stage in stages:
                    stage.commit()
                committed = True
                for unit in touched:
                    current = unit
                    _call_hook(unit, "__hotswap_verify__", VerificationError)
        except BaseException as error:
            if not committed:
                for stage in stages:
                    stage.discard()
            for unit in touched:
                if unit.snapshot is not None:
                    unit.snapshot.restore(vars(unit.module))
            for container, saved in contents:
                _refill(container, saved)
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    logger.exception("hotswap: undoing a framework adapter's step failed")
            if isinstance(error, KeyboardInterrupt):
                raise
            culprit = current or _culprit(touched, error)
            if not isinstance(error, ExecutionError):
                error = error_in(
                    ExecutionError,
                    culprit.name,
                    culprit.path,
                    error,
                    "while executing the new code",
                )
            raise _Failure(error, rolled_back=True) from error
    _commit(touched)


_CONTAINERS = (list, dict, set, bytearray)


def _containers(unit: _Unit) -> list[tuple[Any, Any]]:
    namespace = vars(unit.module)
    names = {n for i, _ in unit.plan.run for n in unit.new.statements[i].info.mutates}
    found = []
    for name in names:
        value = namespace.get(name)
        if type(value) in _CONTAINERS:
            found.append((value, value.copy()))  # type: ignore[union-attr]
    return found


def _refill(container: Any, saved: Any) -> None:
    if isinstance(container, dict | set):
        container.clear()
        container.update(saved)
    else:
        container[:] = saved


def _follow_surprises(unit: _Unit, updater: Updater) -> None:
    """A class the plan expected to merge was replaced (its ``__slots__`` changed, say): run
    the statements that use it too, as the plan would have, had it known."""
    assert unit.snapshot is not None
    assert unit.executed is not None
    old = unit.snapshot.namespace
    namespace = vars(unit.module)
    for _ in range(3):
        surprise = {
            n
            for n in unit.plan.replaced | {r.split(" ", 1)[0] for r in unit.executed.replaced}
            if n in old and namespace.get(n) is not old[n]
        } - unit.plan.rebound
        if not surprise:
            return
        facts = dataclasses.replace(_facts(unit), rebound=frozenset(unit.plan.rebound | surprise))
        more = _planner.plan(unit.old, unit.new, facts, force=unit.force)
        ran = {i for i, _ in unit.plan.run}
        extra = _planner.Plan(run=[(i, m) for i, m in more.run if i not in ran])
        unit.plan.rebound |= surprise
        unit.plan.replaced |= surprise
        if not extra.run:
            return
        code = compile_plan(unit.new, extra, unit.path)
        done = run_plan(unit.module, code, old, updater, extra)
        unit.plan.run = sorted([*unit.plan.run, *extra.run])
        unit.executed.updated.update(done.updated)
        unit.executed.after_commit += done.after_commit
        unit.executed.replaced += done.replaced


def _culprit(units: list[_Unit], error: BaseException) -> _Unit:
    """The unit whose file the traceback of ``error`` names last."""
    tb = error.__traceback__
    found = units[0]
    paths = {u.path: u for u in units}
    while tb is not None:
        unit = paths.get(tb.tb_frame.f_code.co_filename)
        if unit is not None:
            found = unit
        tb = tb.tb_next
    return found


def _changeset(unit: _Unit) -> Any:
    from hotswap._diff import ChangeSet

    names: set[str] = set()
    lines: dict[str, int] = {}
    for index, _ in unit.plan.run:
        stmt = unit.new.statements[index]
        for name in stmt.info.binds:
            names.add(name)
            lines[name] = stmt.first
    return ChangeSet(changed=tuple(sorted(names)), lines=lines)


def _call_hook(unit: _Unit, hook: str, kind: type[ExecutionError], *args: object) -> None:
    """Call a module hook the new source defines; what it raises becomes ``kind``."""
    namespace = vars(unit.module)
    if not any(hook in s.info.binds for s in unit.new.statements):
        return
    function = namespace.get(hook)
    if function is None or (unit.root is False and hook == "__hotswap_migrate__"):
        return
    try:
        function(*args)
    except KeyboardInterrupt:
        raise  # the user asked to stop: rolled back, then re-raised
    except BaseException as error:
        raise error_in(kind, unit.name, unit.path, error, f"in {hook}") from error


def _module_plan(unit: _Unit) -> ModulePlan:
    namespace = vars(unit.module)
    runs = []
    rebinding: dict[str, object] = {}
    inplace: dict[str, object] = {}
    for index, mode in unit.plan.run:
        stmt = unit.new.statements[index]
        runs.append(StatementRun(stmt.lines, stmt.info.binds, mode == _planner.INPLACE))
        target = inplace if mode == _planner.INPLACE else rebinding
        for name in stmt.info.binds:
            if name in namespace:
                target[name] = namespace[name]
    removing = {n: namespace[n] for n in unit.plan.removed if n in namespace}
    return ModulePlan(unit.module, tuple(runs), rebinding, inplace, removing)


def _module_update(unit: _Unit) -> ModuleUpdate:
    namespace = vars(unit.module)
    assert unit.snapshot is not None
    assert unit.executed is not None
    old = unit.snapshot.namespace
    runs = tuple(
        StatementRun(
            unit.new.statements[i].lines,
            unit.new.statements[i].info.binds,
            mode == _planner.INPLACE,
        )
        for i, mode in unit.plan.run
    )
    rebound = {k: (old[k], v) for k, v in namespace.items() if k in old and old[k] is not v}
    removed = {k: v for k, v in old.items() if k not in namespace}
    added = {k: v for k, v in namespace.items() if k not in old}
    replaced = {
        k: pair
        for k, pair in rebound.items()
        if isinstance(pair[0], type) and k in unit.plan.replaced
    }
    return ModuleUpdate(
        unit.module, runs, dict(unit.executed.updated), replaced, rebound, removed, added
    )


def _commit(touched: list[_Unit]) -> None:
    """After the switch: new versions, cleanups, line numbers, disposal of old objects."""
    for unit in touched:
        assert unit.snapshot is not None
        assert unit.executed is not None
        record = unit.record
        if unit.fresh:
            _records[unit.name] = record
            _sources.take(unit.path)
        number = record.last_number + 1
        record.add(Version(number, unit.digest or record.current.source_hash, unit.new, None))
        for callback in unit.executed.after_commit:
            try:
                callback()
            except Exception:
                logger.exception("hotswap: %s: cleanup after commit failed", unit.name)
        _dispose(unit)
    for unit in touched:
        if unit.old is not None and unit.old is not unit.new:
            _relocate(unit)


def _relocate(unit: _Unit) -> None:
    assert unit.old is not None
    namespace = vars(unit.module)
    pairs = _planner.align(unit.old.statements, unit.new.statements)
    ran = {i for i, _ in unit.plan.run}
    for index, counterpart in enumerate(pairs):
        if counterpart is None or index in ran:
            continue
        stmt = unit.new.statements[index]
        delta = stmt.first - unit.old.statements[counterpart].first
        if delta and stmt.info.name is not None and unit.old.source != "":
            try:
                relocate(namespace, stmt.info.name, delta)
            except Exception:  # a definition the program reshaped: its lines stay
                logger.debug("hotswap: %s: could not move %s", unit.name, stmt.info.name)


def _dispose(unit: _Unit) -> None:
    namespace = vars(unit.module)
    hook = namespace.get("__hotswap_dispose__")
    if not callable(hook):
        return
    assert unit.snapshot is not None
    old = unit.snapshot.namespace
    gone = {k: v for k, v in old.items() if namespace.get(k, _GONE) is not v}
    if not gone:
        return
    try:
        hook(gone)
    except Exception:
        logger.exception("hotswap: %s: __hotswap_dispose__ raised", unit.name)


_GONE = object()


def _results(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    roots: list[_Unit],
    units: list[_Unit],
    start: float,
    reason: str = "",
) -> list[ReloadResult]:
    duration = time.perf_counter() - start
    results: list[ReloadResult] = []
    finished: dict[int, ReloadResult] = {}
    for unit in (_root_of(target, roots) for target, _ in entries):
        module = unit.module
        if id(module) in finished:
            results.append(finished[id(module)])
            continue
        record = unit.record
        applied = unit.executed is not None
        if not applied and unit.digest is not None and unit.digest != record.current.source_hash:
            # Only comments or layout changed (or what changed cannot run yet): the live code
            # is this source's, with no new version.
            record.current.source_hash = unit.digest
            record.current.source = unit.new
        kind = "reset" if unit.force and applied else "reload" if applied else "unchanged"
        result = ReloadResult(
            module=unit.name,
            ok=True,
            version=record.current.number,
            changes=changes_of(unit) if applied else Changes(),
            duration=duration,
            warnings=unit.warnings,
            kind=kind,
            dependents=dependents_of(unit.name, [u for u in units if not u.root]),
            skipped=skipped_of(unit),
            reason=reason,
        )
        finished[id(module)] = _finish(result, record)
        results.append(finished[id(module)])
    for unit in units:
        if not unit.root and unit.executed is not None:
            unit.record.last_result = ReloadResult(
                module=unit.name,
                ok=True,
                version=unit.record.current.number,
                changes=changes_of(unit),
                duration=duration,
                kind="reload",
            )
    return results


def _root_of(target: types.ModuleType | str, roots: list[_Unit]) -> _Unit:
    """The unit of an entry, as resolved when the change set was read (``sys.modules`` may
    have changed since: a script run by runpy leaves ``__main__`` when it ends)."""
    for unit in roots:
        if target is unit.module or target in unit.names:
            return unit
    raise LookupError(target)


def _failed(
    entries: Sequence[tuple[types.ModuleType | str, bytes | None]],
    units: list[_Unit],
    failure: _Failure,
    start: float,
    reason: str = "",
) -> list[ReloadResult]:
    duration = time.perf_counter() - start
    results = []
    for target, _ in entries:
        name = _modules.module_name(target)
        unit = next((u for u in units if u.root and (target is u.module or name in u.names)), None)
        module = sys.modules.get(name)
        if unit is None and isinstance(module, types.ModuleType):
            name = _modules.canonical(module)  # __mp_main__ reports as __main__
        record = unit.record if unit is not None else _records.get(name)
        version = record.current.number if record is not None else (1 if name in sys.modules else 0)
        result = ReloadResult(
            module=unit.name if unit is not None else name,
            ok=False,
            version=version,
            error=failure.error,
            rolled_back=failure.rolled_back,
            duration=duration,
            reason=reason,
        )
        results.append(_finish(result, record))
    return results


def rollback(
    target: types.ModuleType | str,
    to: int | None = None,
    *,
    reason: str = "",
    why: str | None = None,
) -> ReloadResult:
    """Restore a kept version of a module (the previous one when ``to`` is None); ``reason``
    and ``why`` (one word for the :class:`RolledBack` event) say who decided it."""
    start = time.perf_counter()
    name = _modules.module_name(target)
    record: _Record | None = None

    def done(**fields: Any) -> ReloadResult:
        version = record.current.number if record is not None else 0
        fields.setdefault("version", version)
        fields.setdefault("duration", time.perf_counter() - start)
        result = ReloadResult(module=name, kind="rollback", reason=reason, **fields)
        return _finish(result, record, why)

    try:
        with _attempt(name):
            module = _resolve_entry(target)
            name = _modules.canonical(module)
            record = _records.get(name)
            if _routing.busy(name):
                raise _Failure(_canary_running(name))
            if record is None or record.namespace is not vars(module):
                message = f"{name}: no reload history to roll back to (it was never reloaded)"
                record = None
                raise _Failure(VersionNotFoundError(message, module=name))
            current = record.current.number
            kept = [v for v in record.history if v.number != current]
            if to is None:
                earlier = [v for v in kept if v.number < current]
                chosen = earlier[-1] if earlier else None
            else:
                chosen = next((v for v in kept if v.number == to), None)
                if to == current:
                    return done(ok=True)
            if chosen is None:
                numbers = ", ".join(str(v.number) for v in record.history)
                wanted = "an earlier version" if to is None else f"version {to}"
                message = f"{name}: {wanted} is not kept (history: {numbers}; live: {current})"
                raise _Failure(VersionNotFoundError(message, module=name))
            namespace = vars(module)
            keep = _keep(namespace)
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
            if before.source is not None and chosen.source is not None:
                from hotswap._diff import diff

                delta = diff(before.source.symbols, chosen.source.symbols)
                changes = Changes(delta.added, delta.changed, delta.removed)
            return done(ok=True, changes=changes)
    except _Failure as failure:
        return done(ok=False, error=failure.error, rolled_back=failure.rolled_back)


def reset() -> None:
    """Forget all records (for tests)."""
    with _lock:
        _records.clear()
        _importers.reset()
