"""The Flask adapter: views, rules, blueprints and app factories follow a reload.

Registered under ``"flask"`` by :mod:`hotswap.integrations`; imported only once a program has
imported Flask. The transaction tells it what is about to run (:meth:`FlaskAdapter.prepare`)
and what ran (:meth:`FlaskAdapter.sync`):

- a view whose body changed is updated in place by the core; Flask calls it by reference, so
  nothing is needed here;
- a view whose ``def`` runs again (a new or changed ``@app.route`` line) registers again: its
  old rules and endpoint go first, and Flask's setup-finished guards (which refuse ``route()``
  after the first request, or on a blueprint already registered) are lifted for the
  transaction;
- a removed view takes its rules with it (404 afterwards);
- a route added to a blueprint that an app already registered is added to that app;
- an app object bound again (``app = create_app()`` ran again) is never served in place of the
  old one: its routing is copied into the served app, which keeps its ``config`` and
  ``extensions``, and the module name is bound back to the served app.

Every step returns an undo that restores the routing exactly when the transaction rolls back.
"""

from __future__ import annotations

import logging
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from flask import Flask
from flask.sansio.blueprints import Blueprint
from werkzeug.routing import Map, Rule

from hotswap._seam import ModulePlan, ModuleUpdate

__all__ = ("FlaskAdapter",)

logger = logging.getLogger(__name__)

# The per-app registries of functions that a rerun decorator appends to (a dict of lists, keyed
# by blueprint name or None), and the app-level lists that ``app = create_app()`` carries over.
_FUNCTION_LISTS = (
    "before_request_funcs",
    "after_request_funcs",
    "teardown_request_funcs",
    "template_context_processors",
    "url_value_preprocessors",
    "url_default_functions",
)
_APP_LISTS = ("teardown_appcontext_funcs", "shell_context_processors")


def _is_app(value: object) -> TypeGuard[Flask]:
    # type(), not isinstance(): a lazy proxy (werkzeug's current_app) would evaluate itself
    # when asked for its __class__.
    return issubclass(type(value), Flask)


def _set_rules(url_map: Map, rules: Iterable[Rule]) -> None:
    """Make ``rules`` the map's rules, in place (the app and its adapters keep the same Map)."""
    fresh = [rule.empty() for rule in rules]  # a rule binds to one map once
    url_map._rules_by_endpoint = {}
    url_map._matcher = type(url_map._matcher)(url_map.merge_slashes)
    for rule in fresh:
        url_map.add(rule)


def _copy_routing(app: Flask) -> dict[str, Any]:
    """A copy of everything that routes a request, deep enough to restore it exactly."""
    state: dict[str, Any] = {
        "rules": list(app.url_map.iter_rules()),
        "view_functions": dict(app.view_functions),
        "error_handler_spec": {
            key: {code: dict(handlers) for code, handlers in codes.items()}
            for key, codes in app.error_handler_spec.items()
        },
        "blueprints": dict(app.blueprints),
        "first_request": app._got_first_request,
    }
    for name in _FUNCTION_LISTS:
        state[name] = {key: list(value) for key, value in getattr(app, name).items()}
    for name in _APP_LISTS:
        state[name] = list(getattr(app, name))
    return state


def _restore_routing(app: Flask, state: Mapping[str, Any]) -> None:
    _set_rules(app.url_map, state["rules"])
    for name in ("view_functions", "error_handler_spec", "blueprints", *_FUNCTION_LISTS):
        target = getattr(app, name)
        target.clear()
        target.update(state[name])
    for name in _APP_LISTS:
        getattr(app, name)[:] = state[name]
    app._got_first_request = state["first_request"]


class _Probe:
    """Stands in for an app while a blueprint's recorded setup runs: keeps the rules it adds."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, str]] = []

    def add_url_rule(self, rule: str, endpoint: str | None = None, *args: Any, **kw: Any) -> None:
        self.rules.append((rule, endpoint or ""))


def _registered_prefix(app: Flask, blueprint: Blueprint, count: int) -> str | None:
    """The ``url_prefix`` ``app.register_blueprint(blueprint, url_prefix=...)`` was given.

    Flask does not keep registration options. A rule the blueprint recorded earlier is played
    against a probe, without a prefix, and compared with the rule the app holds for it.
    """
    for record in blueprint.deferred_functions[:count]:
        probe = _Probe()
        state = blueprint.make_setup_state(probe, {}, first_registration=False)  # type: ignore[arg-type]
        state.url_prefix = None
        try:
            record(state)
        except Exception:  # another kind of setup (a template filter...): it adds no rule
            continue
        for relative, endpoint in probe.rules:
            try:
                served = next(iter(app.url_map.iter_rules(endpoint))).rule
            except (KeyError, StopIteration):
                continue
            if not relative:
                return served
            tail = "/" + relative.lstrip("/")
            if served.endswith(tail):
                return served[: len(served) - len(tail)]
    return None


def _view_matches(function: object, module: str, names: Mapping[str, object]) -> bool:
    """Whether a registered view is the current object of one of ``names`` (or wraps it)."""
    for name, current in names.items():
        if function is current:
            return True
        if (
            callable(current)
            and getattr(function, "__module__", None) == module
            and getattr(function, "__name__", None) == name
        ):
            return True  # registered under a decorator that wraps it (functools.wraps)
    return False


class FlaskAdapter:
    """Keeps every known Flask app's routing in line with the modules a transaction reloads.

    Apps are found in the namespaces of the modules being reloaded and, once, in every loaded
    module; they are remembered weakly, so an app that is dropped is not kept alive.
    """

    def __init__(self) -> None:
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()
        # Between prepare and sync: each blueprint's guard and deferred count, each app's guard.
        self._pending: dict[int, tuple[Blueprint, bool, int]] = {}
        self._first: dict[Flask, bool] = {}
        self._prefixes: dict[tuple[int, int], str | None] = {}
        for module in list(sys.modules.copy().values()):
            self._collect(getattr(module, "__dict__", {}).values())

    def _collect(self, values: Iterable[object]) -> None:
        for value in values:
            if _is_app(value):
                self._apps.add(value)

    def views(self, module: types.ModuleType) -> frozenset[str]:
        """The module's names bound to a registered view function.

        Only Flask calls such a function; when the new source drops it, its rule goes with it
        (:meth:`prepare`), so the removal breaks no caller (DESIGN §6).
        """
        self._collect(vars(module).values())
        registered = {id(f) for app in self._apps for f in app.view_functions.values()}
        return frozenset(n for n, v in vars(module).items() if id(v) in registered)

    def _blueprints(self, plans: Sequence[ModulePlan]) -> list[Blueprint]:
        found: dict[int, Blueprint] = {}
        for app in self._apps:
            for blueprint in app.blueprints.values():
                found[id(blueprint)] = blueprint
        for plan in plans:
            for value in vars(plan.module).values():
                if issubclass(type(value), Blueprint):
                    found[id(value)] = value
        return list(found.values())

    def prepare(self, plans: Sequence[ModulePlan]) -> Callable[[], None] | None:
        """Unregister what the run registers again, and lift Flask's setup guards."""
        for plan in plans:
            self._collect(vars(plan.module).values())
        apps = list(self._apps)
        if not apps:
            return None
        saved = {app: _copy_routing(app) for app in apps}
        self._first = {app: app._got_first_request for app in apps}
        blueprints = self._blueprints(plans)
        self._pending = {
            id(bp): (bp, bp._got_registered_once, len(bp.deferred_functions)) for bp in blueprints
        }
        # Read before the old rules go: they are what tells a registration's url_prefix.
        self._prefixes = {
            (id(app), id(bp)): _registered_prefix(app, bp, len(bp.deferred_functions))
            for bp in blueprints
            for app in apps
            if app.blueprints.get(bp.name) is bp
        }
        for app in apps:
            app._got_first_request = False  # route() refuses after the first request otherwise
            self._unregister(app, plans)
        for blueprint in blueprints:
            blueprint._got_registered_once = False

        def undo() -> None:
            for app, state in saved.items():
                _restore_routing(app, state)
            for blueprint, registered, deferred in self._pending.values():
                blueprint._got_registered_once = registered
                del blueprint.deferred_functions[deferred:]
            self._pending = {}
            self._first = {}

        return undo

    def _unregister(self, app: Flask, plans: Sequence[ModulePlan]) -> None:
        gone: set[str] = set()
        dropped: list[object] = []
        for plan in plans:
            names = {**plan.rebinding, **plan.removing}
            module = plan.module.__name__
            for endpoint, function in list(app.view_functions.items()):
                if _view_matches(function, module, names):
                    gone.add(endpoint)
            dropped.extend(value for value in names.values() if callable(value))
        for endpoint in gone:
            del app.view_functions[endpoint]
        if gone:
            _set_rules(app.url_map, [r for r in app.url_map.iter_rules() if r.endpoint not in gone])
        # A hook function defined again would be appended a second time.
        lists = [f for name in _FUNCTION_LISTS for f in getattr(app, name).values()]
        lists += [getattr(app, name) for name in _APP_LISTS]
        for functions in lists:
            functions[:] = [f for f in functions if not any(f is d for d in dropped)]
        if gone:
            logger.debug("hotswap: flask: %s: endpoints %s unregistered", app.name, sorted(gone))

    def sync(self, updates: Sequence[ModuleUpdate]) -> Callable[[], None] | None:
        """Carry rebound apps' routing into the served apps; apply new blueprint routes."""
        pending, self._pending = self._pending, {}
        first, self._first = self._first, {}
        prefixes, self._prefixes = self._prefixes, {}
        undos: list[Callable[[], None]] = []
        for update in updates:
            for name, (old, new) in update.rebound.items():
                if _is_app(old) and _is_app(new) and old is not new:
                    undos.append(self._adopt(old, new, update, name))
        for blueprint, registered, deferred in pending.values():
            for app in list(self._apps):
                if app.blueprints.get(blueprint.name) is blueprint:
                    prefix = prefixes.get((id(app), id(blueprint)))
                    options = {} if prefix is None else {"url_prefix": prefix}
                    state = blueprint.make_setup_state(app, options, first_registration=False)
                    for record in blueprint.deferred_functions[deferred:]:
                        record(state)
            blueprint._got_registered_once = registered
        for app, answered in first.items():
            app._got_first_request = answered
        if not undos:
            return None

        def undo() -> None:
            for step in reversed(undos):
                step()

        return undo

    def _adopt(self, old: Flask, new: Flask, update: ModuleUpdate, name: str) -> Callable[[], None]:
        """Give the served app ``old`` the routing of ``new`` and bind ``name`` back to it."""
        saved = _copy_routing(old)
        fresh = _copy_routing(new)
        fresh["first_request"] = True
        _restore_routing(old, fresh)
        update.module.__dict__[name] = old
        self._apps.discard(new)
        logger.info(
            "hotswap: flask: %s: %s.%s was created again; its routes now serve on the running app",
            update.module.__name__,
            update.module.__name__,
            name,
        )

        def undo() -> None:
            _restore_routing(old, saved)

        return undo
