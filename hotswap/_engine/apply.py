"""Running a planned change set as one transaction: snapshot, execute, framework adapters,
migrate, commit, verify; or restore every touched module and undo the adapters' steps.

Everything before this (read, parse, plan, check, compile) touched nothing live.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from hotswap._config import settings as _config
from hotswap._engine import classhooks as _classhooks
from hotswap._engine import hooks as _hooks
from hotswap._engine import registered as _registered
from hotswap._engine.adapters import ModulePlan, ModuleUpdate, StatementRun, active_adapters
from hotswap._engine.execute import compile_plan, relocate, run_plan
from hotswap._engine.history import Version
from hotswap._engine.history import records as _records
from hotswap._engine.pin import gate
from hotswap._engine.report import error_in
from hotswap._engine.snapshot import capture, refill
from hotswap._engine.unit import Failure as _Failure
from hotswap._engine.unit import Unit as _Unit
from hotswap._engine.unit import canary_running as _canary_running
from hotswap._engine.unit import facts as _facts
from hotswap._engine.unit import keep as _keep
from hotswap._engine.update import Updater
from hotswap._ops import tracing as _tracing
from hotswap._ops.events import location
from hotswap._plan import modules as _modules
from hotswap._plan import planner as _planner
from hotswap._plan import sources as _sources
from hotswap._plan.statements import CLASS, parse_statement
from hotswap.exceptions import ExecutionError, HotswapError, MigrationError, VerificationError

__all__ = ("run",)

logger = logging.getLogger("hotswap._engine.transaction")


def run(units: list[_Unit], pin_timeout: float | None = None) -> None:
    """Execute the plans of a change set as one transaction; roll everything back on failure.

    ``pin_timeout`` overrides the setting: how long to wait for pinned sections to leave."""
    wait = _config.current().pin_timeout if pin_timeout is None else pin_timeout
    touched = [u for u in units if u.plan]
    for unit in touched:
        # An importer (or a data file's reader) under canary: its functions dispatch between
        # two versions, and running its statements now would mix them.
        if _hooks.busy(unit.name):
            raise _Failure(_canary_running(unit.name))
    where = location(touched[0].name, touched[0].path) if touched else "hotswap"
    undo: list[Callable[[], object]] = []
    stages: list[_hooks.Stage] = []
    committed = False
    with gate.exclusive(wait, where):
        # A snapshot restores bindings and definitions; the contents of a kept plain
        # container that a running statement fills (``L.append(5)``) are kept aside too,
        # for a failure now and for a rollback to this version later.
        contents: list[tuple[Any, Any]] = []
        hooked: dict[str, list[Any]] = {}
        for unit in touched:
            filled = tuple(_containers(unit))
            contents += filled
            contents += _external(unit)
            hooked[unit.name] = _hook_registries(unit)
            contents += [(c, c.copy()) for c in hooked[unit.name]]
            unit.snapshot = dataclasses.replace(
                capture(vars(unit.module), unit.name), contents=filled
            )
            unit.record.current.state = unit.snapshot
        eager = _called_before_commit(touched)
        verify_calls = _called_by_verify(touched)
        emptied: set[int] = set()  # the cache wrappers the transaction emptied
        current: _Unit | None = None
        try:
            with _tracing.span("hotswap.execute", module=", ".join(u.name for u in touched)):
                adapters = active_adapters()
                if adapters:
                    plans = [_module_plan(u) for u in touched]
                    undo += _adapter_steps(adapters, "prepare", plans)
                for unit in touched:
                    current = unit
                    assert unit.snapshot is not None
                    stage = _hooks.stages(unit.name)
                    stages.append(stage)
                    updater = Updater(
                        unit.snapshot.namespace,
                        vars(unit.module),
                        unit.name,
                        _changeset(unit),
                        _keep(vars(unit.module)),
                        eager=eager,
                        verify_calls=verify_calls,
                        emptied=emptied,
                        registries=hooked[unit.name],
                    )
                    if unit.old is not None and unit.old is not unit.new:
                        # Before the new statements run, so an error raised in an unchanged
                        # definition that moved names the line it stands at now (the
                        # snapshot puts the old lines back on a rollback).
                        _relocate(unit)
                    with stage.active():
                        unit.executed = run_plan(
                            unit.module,
                            unit.code,
                            unit.snapshot.namespace,
                            updater,
                            unit.plan,
                            unit.new,
                            unit.path,
                        )
                        _follow_surprises(unit, updater)
                        _purge_registered(unit)
                        _purge_hooked(unit, hooked[unit.name])
                        _registered.drop_star_removed(
                            vars(unit.module),
                            unit.new.statements,
                            [i for i, _ in unit.plan.run],
                            {u.name: u.snapshot.namespace for u in touched if u.snapshot},
                        )
                current = None
                if adapters:
                    updates = [_module_update(u) for u in touched]
                    undo += _adapter_steps(adapters, "sync", updates)
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
                    assert unit.executed is not None
                    for clear in unit.executed.at_commit:
                        clear()  # caches of changed functions: from the commit on, new results
                for unit in touched:
                    current = unit
                    _call_hook(unit, "__hotswap_verify__", VerificationError)
                current = None
                for unit in touched:
                    assert unit.executed is not None
                    for clear in unit.executed.verified:
                        clear()  # the other caches of changed functions, now that it holds
            current = None
            # The epoch moves with the code, inside the gate: a section pinned from now on
            # runs the new code and reads the new epoch (the middleware's header).
            _hooks.advance(
                {
                    u.name: (u.digest, u.data, u.before)
                    for u in units
                    if u.root and u.digest is not None and u.digest != u.before
                }
            )
        except BaseException as error:
            if not committed:
                for stage in stages:
                    stage.discard()
            for unit in touched:
                if unit.snapshot is not None:
                    # Caches no call went through stay whole, unless the transaction
                    # emptied one (at once, or at commit): what it held cannot come back.
                    unit.snapshot.restore(vars(unit.module), failed=True, emptied=emptied)
            for container, saved in contents:
                refill(container, saved)
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    logger.exception("hotswap: undoing a framework adapter's step failed")
            if isinstance(error, KeyboardInterrupt):
                raise
            culprit = current or _culprit(touched, error)
            if not isinstance(error, ExecutionError | _Veto):
                error = error_in(
                    ExecutionError,
                    culprit.name,
                    culprit.path,
                    error,
                    "while executing the new code",
                )
            if isinstance(error, _Veto):
                # An adapter's refusal is a whole sentence naming module and file already.
                error = error.error
            raise _Failure(error, rolled_back=True) from error
    _commit(touched)


class _Veto(Exception):
    """A framework adapter refused the transaction with a message of its own."""

    def __init__(self, error: HotswapError) -> None:
        super().__init__(str(error))
        self.error = error


def _adapter_steps(adapters: list[Any], step: str, items: list[Any]) -> list[Callable[[], object]]:
    """Call each adapter's ``prepare`` or ``sync``; the undo callables they return."""
    undo: list[Callable[[], object]] = []
    for adapter in adapters:
        try:
            done = getattr(adapter, step)(items)
        except HotswapError as error:
            raise _Veto(error) from error
        if done is not None:
            undo.append(done)
    return undo


_CONTAINERS = (list, dict, set, bytearray)


def _called_before_commit(units: list[_Unit]) -> frozenset[str]:
    """The names code the transaction runs before commit may call: what the statements that
    run call (directly, by attribute, as decorators), and on through the bodies of the
    functions and classes the new sources define. ``__hotswap_migrate__`` does not count: it
    moves state, and a failing one must leave the caches whole (a cached function it calls
    answers from the cache until commit)."""
    start: set[str] = set()
    for unit in units:
        statements = unit.new.statements
        for index, mode in unit.plan.run:
            info = statements[index].info
            if mode == _planner.INPLACE:
                continue
            start |= info.called | info.header_reads  # a base's construction runs too
            start.update(chain[-1] for _, chain in info.called_attributes if chain)
    return _reached(units, start)


def _called_by_verify(units: list[_Unit]) -> frozenset[str]:
    """The names the new sources' ``__hotswap_verify__`` may call (see _called_before_commit)."""
    hooks = {"__hotswap_verify__"}
    defined = any(hooks & s.info.binds for u in units for s in u.new.statements)
    return _reached(units, hooks) if defined else frozenset()


def _reached(units: list[_Unit], start: set[str]) -> frozenset[str]:
    """``start`` and every name the bodies of the named functions and classes load, to a fixed
    point. Names are matched bare across the set (``obj.square(...)`` reaches any ``square``)
    and through ``from ... import name as local``: an over-approximation, which only empties
    a cache sooner than needed."""
    if not start:
        return frozenset()  # (a def updated in place runs nothing that calls)
    bodies: dict[str, set[str]] = {}
    for unit in units:
        for stmt in unit.new.statements:
            info = stmt.info
            if info.name is not None:
                bodies.setdefault(info.name, set()).update(info.body_calls)
            for _, _, name, local in info.from_imports:
                bodies.setdefault(local, set()).add(name)
    reached: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(bodies.get(name, ()))
    return frozenset(reached)


def _containers(unit: _Unit) -> list[tuple[Any, Any]]:
    namespace = vars(unit.module)
    names = {n for i, _ in unit.plan.run for n in unit.new.statements[i].info.mutates}
    names |= unit.plan.writes  # filled through a function of the module (``@register``)
    found = []
    for name in names:
        value = namespace.get(name)
        if type(value) in _CONTAINERS:
            found.append((value, value.copy()))  # type: ignore[union-attr]
    return found


def _external(unit: _Unit) -> list[tuple[Any, Any]]:
    """Containers of other modules the statements register objects in (``sys.meta_path``),
    kept aside for a failure of this transaction only: a rollback to this version later must
    not take out what other code registered there since."""
    statements = [unit.new.statements[i] for i, _ in unit.plan.run]
    found = _registered.external_containers(vars(unit.module), statements)
    return [(container, container.copy()) for container in found]


def _purge_registered(unit: _Unit) -> None:
    """The objects that statements which ran again registered outside the module in an
    earlier version, and that the reload left behind, are taken out (a fresh import never
    made them)."""
    assert unit.snapshot is not None
    namespace = vars(unit.module)
    statements = [unit.new.statements[i] for i, _ in unit.plan.run]
    containers = list(_registered.external_containers(namespace, statements))
    if not containers:
        return  # the common case: no walk over the module's names
    stale = _registered.left_behind(unit.snapshot.namespace, namespace, unit.name)
    for container in containers if stale else ():
        _registered.purge(container, stale)


def _hook_registries(unit: _Unit) -> list[Any]:
    """The registries that creating the classes this plan runs may fill (an
    ``__init_subclass__`` of a base, a class decorator), and those its removed classes'
    hooks filled, seen before anything runs."""
    statements = unit.new.statements
    running = [statements[i] for i, mode in unit.plan.run if statements[i].info.kind == CLASS]
    if not running and not unit.plan.removed:
        return []
    return _classhooks.hook_registries(vars(unit.module), running, unit.plan.removed)


def _purge_hooked(unit: _Unit, registries: list[Any]) -> None:
    """A class the reload left behind (replaced, or gone from the source) leaves the
    registries its creation hooks filled: a fresh import never made it."""
    if not registries:
        return
    assert unit.snapshot is not None
    stale = _classhooks.left_behind_classes(unit.snapshot.namespace, vars(unit.module), unit.name)
    for container in registries if stale else ():
        _classhooks.purge_classes(container, stale)


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
        done = run_plan(unit.module, code, old, updater, extra, unit.new, unit.path)
        unit.plan.run = sorted([*unit.plan.run, *extra.run])
        unit.executed.updated.update(done.updated)
        unit.executed.after_commit += done.after_commit
        unit.executed.at_commit += done.at_commit
        unit.executed.verified += done.verified
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
    from hotswap._plan.diff import ChangeSet

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
        digest = unit.digest or record.current.source_hash
        record.add(Version(number, digest, unit.new, None, running_from=unit.plan.running_from))
        for callback in unit.executed.after_commit:
            try:
                callback()
            except Exception:
                logger.exception("hotswap: %s: cleanup after commit failed", unit.name)
        _undo_removed(unit)
        copies = _modules.copies_of(unit.module, _modules.real_file(unit.path))
        _registered.follow_copies(copies, unit.snapshot.namespace, vars(unit.module))
        _dispose(unit)


def _undo_removed(unit: _Unit) -> None:
    """Removed statements that only acted: what they registered is taken back where that is
    known (``atexit.register(f)``, ``sys.meta_path.append(F())``); the rest stays reported
    in ``skipped``. After the commit: nothing to put back if a later step fails."""
    if not unit.plan.effects_removed or unit.old is None or unit.snapshot is None:
        return
    by_line = {stmt.first: stmt for stmt in unit.old.statements}
    remaining = _registered.registrations(unit.new.statements)
    left = []
    for line in unit.plan.effects_removed:
        stmt = by_line.get(line)
        try:
            undone = stmt is not None and _registered.undo_removed(
                parse_statement(stmt),
                unit.snapshot.namespace,
                vars(unit.module),
                unit.name,
                remaining,
            )
        except Exception:
            logger.exception("hotswap: %s: undoing removed line %s failed", unit.name, line)
            undone = False
        if not undone:
            left.append(line)
    unit.plan.effects_removed[:] = left


def _relocate(unit: _Unit) -> None:
    assert unit.old is not None
    namespace = vars(unit.module)
    pairs = unit.plan.aligned
    if pairs is None:
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
