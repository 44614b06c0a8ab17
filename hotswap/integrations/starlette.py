"""The Starlette adapter (FastAPI included): routes, dependencies, models, handlers follow.

Registered under ``"starlette"`` by :mod:`hotswap.integrations` (FastAPI imports Starlette);
imported only once a program has imported Starlette. The transaction tells it what is about to
run (:meth:`StarletteAdapter.prepare`) and what ran (:meth:`StarletteAdapter.sync`):

- an endpoint (or a ``Depends`` function) updated in place keeps its identity, but FastAPI
  read its signature when the route was built: each FastAPI route that calls it is built
  again from the same endpoint object (parameters, body and response models, dependencies),
  so a new query parameter or model field is validated on the next request;
- an endpoint whose ``def`` runs again (a new or changed ``@app.get(...)`` line) registers
  again: its old routes go first, in every router that holds them (no duplicate routes, no
  "Duplicate Operation ID");
- a removed endpoint takes its routes with it (404 afterwards);
- a route added to a router that an app included by copy (FastAPI before 0.120 copied routes
  at ``include_router`` time) is copied into that app, under the same prefix;
- an app bound again (``app = create_app()``) is never served in place of the old one: its
  routes and exception handlers are moved into the served app, whose ``state``, lifespan and
  middleware stay, and the module name is bound back to the served app;
- the OpenAPI schema is built again on its next request.

Every step returns an undo that restores the routes exactly when the transaction rolls back.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeGuard

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Router

from hotswap._seam import ModulePlan, ModuleUpdate

__all__ = ("StarletteAdapter",)

logger = logging.getLogger(__name__)

_NOT_ARGUMENTS = frozenset({"self", "path", "endpoint"})


def _is_app(value: object) -> TypeGuard[Starlette]:
    # type(), not isinstance(): a lazy proxy (Django's settings) would evaluate itself when
    # asked for its __class__.
    return issubclass(type(value), Starlette)


def _is_router(value: object) -> TypeGuard[Router]:
    return issubclass(type(value), Router)


def _api_route_class() -> type[Any] | None:
    # FastAPI is optional here: a plain Starlette program never imports it.
    module = sys.modules.get("fastapi.routing")
    return getattr(module, "APIRoute", None) if module is not None else None


def _calls(route: Any) -> Iterator[object]:
    """The endpoint of a FastAPI route and every dependency it calls, however deep."""
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is not None:
            yield dependant.call
        stack.extend(dependant.dependencies)


def _return_annotation(endpoint: object) -> object:
    try:
        from fastapi.dependencies.utils import get_typed_return_annotation

        return get_typed_return_annotation(endpoint)  # type: ignore[arg-type]
    except Exception:  # an annotation that no longer resolves: the route says what it is
        return None


def _rebuilt(route: Any, inferred: bool, path: str | None = None, **overrides: Any) -> Any:
    """A new route of the same class from the same endpoint and options (and ``path``)."""
    from fastapi.datastructures import Default

    kwargs = _options(route)
    if inferred:
        kwargs["response_model"] = Default(None)  # read from the (new) return annotation again
    kwargs.update(overrides)
    return type(route)(route.path if path is None else path, route.endpoint, **kwargs)


def _matches(endpoint: object, module: str, names: Mapping[str, object]) -> bool:
    """Whether a route's endpoint is the current object of one of ``names`` (or wraps it)."""
    for name, current in names.items():
        if endpoint is current:
            return True
        if (
            callable(current)
            and getattr(endpoint, "__module__", None) == module
            and getattr(endpoint, "__name__", None) == name
        ):
            return True
    return False


def _changed(router: Router) -> None:
    # FastAPI 0.120+ caches what an included router contributes, keyed by this counter.
    mark = getattr(router, "_mark_routes_changed", None)
    if mark is not None:
        mark()


class StarletteAdapter:
    """Keeps every known Starlette/FastAPI app's routes in line with a transaction.

    Apps are found in the namespaces of the modules being reloaded and, once, in every loaded
    module; routers through the apps (included and mounted) and in those namespaces. Both are
    remembered weakly.
    """

    def __init__(self) -> None:
        self._apps: weakref.WeakSet[Starlette] = weakref.WeakSet()
        # Routers compare by their routes (unhashable): kept by id, weakly.
        self._routers: weakref.WeakValueDictionary[int, Router] = weakref.WeakValueDictionary()
        # Between prepare and sync: per router its routes; per app its handlers; the return
        # annotation each in-place endpoint had; the prefixes of routers included by copy.
        self._routes: dict[int, tuple[Router, list[BaseRoute]]] = {}
        self._handlers: dict[Starlette, dict[Any, Any]] = {}
        self._returns: dict[int, object] = {}
        self._copies: list[tuple[Router, Router, str]] = []
        for module in list(sys.modules.copy().values()):
            self._collect(getattr(module, "__dict__", {}).values())

    def _collect(self, values: Iterable[object]) -> None:
        for value in values:
            if _is_app(value):
                self._apps.add(value)
            elif _is_router(value):
                self._routers[id(value)] = value

    def views(self, module: types.ModuleType) -> frozenset[str]:
        """The module's names bound to the endpoint of a route.

        Only the framework calls such a function; when the new source drops it, its routes go
        with it (:meth:`prepare`), so the removal breaks no caller (DESIGN §6).
        """
        self._collect(vars(module).values())
        endpoints = {
            id(endpoint)
            for router in self._all_routers()
            for route in router.routes
            if (endpoint := getattr(route, "endpoint", None)) is not None
        }
        return frozenset(n for n, v in vars(module).items() if v is not None and id(v) in endpoints)

    def _all_routers(self) -> list[Router]:
        found: dict[int, Router] = {}
        pending: list[Router] = [app.router for app in self._apps]
        pending.extend(self._routers.values())
        while pending:
            router = pending.pop()
            if id(router) in found:
                continue
            found[id(router)] = router
            for route in router.routes:
                inner = getattr(route, "original_router", None)  # FastAPI 0.120+ include
                if isinstance(route, Mount) and isinstance(route.app, Router):
                    inner = route.app
                if isinstance(inner, Router):
                    pending.append(inner)
        return list(found.values())

    def prepare(self, plans: Sequence[ModulePlan]) -> Callable[[], None] | None:
        """Drop the routes the run registers again or removes; remember what sync needs."""
        for plan in plans:
            self._collect(vars(plan.module).values())
        routers = self._all_routers()
        if not routers:
            return None
        self._routes = {id(router): (router, list(router.routes)) for router in routers}
        self._handlers = {app: dict(app.exception_handlers) for app in self._apps}
        self._returns = {
            id(obj): _return_annotation(obj)
            for plan in plans
            for obj in plan.inplace.values()
            if callable(obj)
        }
        self._copies = self._included_by_copy(routers)
        for plan in plans:
            names = {**plan.rebinding, **plan.removing}
            module = plan.module.__name__
            for router in routers:
                kept = [
                    route
                    for route in router.routes
                    if not _matches(getattr(route, "endpoint", None), module, names)
                ]
                if len(kept) != len(router.routes):
                    router.routes[:] = kept
                    _changed(router)
            for app in self._apps:
                for key, handler in list(app.exception_handlers.items()):
                    if _matches(handler, module, names):
                        del app.exception_handlers[key]
        saved_routes, saved_handlers = self._routes, self._handlers

        def undo() -> None:
            self._restore(saved_routes, saved_handlers)

        return undo

    def _restore(
        self,
        routes: Mapping[int, tuple[Router, list[BaseRoute]]],
        handlers: Mapping[Starlette, dict[Any, Any]],
    ) -> None:
        for router, kept in routes.values():
            if router.routes != kept:
                router.routes[:] = kept
                _changed(router)
        for app, kept_handlers in handlers.items():
            if app.exception_handlers != kept_handlers:
                app.exception_handlers.clear()
                app.exception_handlers.update(kept_handlers)
                app.middleware_stack = None
            if hasattr(app, "openapi_schema"):
                app.openapi_schema = None

    def _included_by_copy(self, routers: Sequence[Router]) -> list[tuple[Router, Router, str]]:
        """(router, app router, prefix) for each router whose routes an app holds as copies."""
        found: list[tuple[Router, Router, str]] = []
        for parent in (app.router for app in self._apps):
            held = {
                id(endpoint): route
                for route in parent.routes
                if (endpoint := getattr(route, "endpoint", None)) is not None
            }
            for router in routers:
                if router is parent:
                    continue
                for route in router.routes:
                    copy = held.get(id(getattr(route, "endpoint", None)))
                    if copy is None or copy is route:
                        continue
                    path, copied = getattr(route, "path", None), getattr(copy, "path", None)
                    if isinstance(path, str) and isinstance(copied, str) and copied.endswith(path):
                        found.append((router, parent, copied[: len(copied) - len(path)]))
                    break  # one route tells the prefix of the whole router
        return found

    def sync(self, updates: Sequence[ModuleUpdate]) -> Callable[[], None] | None:
        """Rebuild routes of in-place endpoints, adopt rebound apps, copy new included routes."""
        before_routes, self._routes = self._routes, {}
        before_handlers, self._handlers = self._handlers, {}
        returns, self._returns = self._returns, {}
        copies, self._copies = self._copies, []
        for update in updates:
            self._collect(update.added.values())
            for name, (old, new) in update.rebound.items():
                if _is_app(old) and _is_app(new) and old is not new:
                    self._adopt(old, new, update, name)
        updated = {id(obj): obj for update in updates for obj in update.updated.values()}
        routers = self._all_routers()
        # Routers created by this run are new: nothing of theirs needs undoing.
        snapshot = {
            id(router): before_routes.get(id(router), (router, list(router.routes)))
            for router in routers
        }
        # A class bound anew (a replaced pydantic model): routes whose functions read their
        # annotations from that module's globals (``from __future__ import annotations``)
        # resolve them again; without it the def statements that read the class ran again.
        renewed = {
            id(vars(update.module))
            for update in updates
            if any(isinstance(new, type) for _, new in update.rebound.values())
        }
        if updated or renewed:
            self._rebuild(routers, updated, returns, renewed)
        for router, parent, prefix in copies:
            before = before_routes.get(id(router), (router, []))[1]
            self._copy_new_routes(router, parent, prefix, before)
        for app in self._apps:
            handlers = before_handlers.get(app)
            if handlers is not None and handlers != app.exception_handlers:
                app.middleware_stack = None  # Starlette copied the handlers when it built it
            if hasattr(app, "openapi_schema"):
                app.openapi_schema = None
        handlers_snapshot = {
            app: before_handlers.get(app, dict(app.exception_handlers)) for app in self._apps
        }

        def undo() -> None:
            self._restore(snapshot, handlers_snapshot)

        return undo

    def _rebuild(
        self,
        routers: Sequence[Router],
        updated: Mapping[int, object],
        returns: Mapping[int, Any],
        renewed: set[int],
    ) -> None:
        api_route = _api_route_class()
        if api_route is None:
            return  # plain Starlette routes call their endpoint by reference
        for router in routers:
            changed = False
            for index, route in enumerate(router.routes):
                if not isinstance(route, api_route):
                    continue
                if not any(
                    id(call) in updated or id(getattr(call, "__globals__", None)) in renewed
                    for call in _calls(route)
                ):
                    continue
                old_return = returns.get(id(route.endpoint), route.response_model)
                inferred = route.response_model is old_return or (
                    route.response_model is None and old_return is None
                )
                router.routes[index] = _rebuilt(route, inferred)
                changed = True
            if changed:
                _changed(router)

    def _copy_new_routes(
        self, router: Router, parent: Router, prefix: str, before: Sequence[BaseRoute]
    ) -> None:
        new = [route for route in router.routes if route not in before]
        if not new:
            return
        api_route = _api_route_class()
        for route in new:
            if api_route is not None and isinstance(route, api_route):
                parent.routes.append(_rebuilt(route, False, path=prefix + route.path))
        _changed(parent)

    def _adopt(self, old: Starlette, new: Starlette, update: ModuleUpdate, name: str) -> None:
        """Give the served app ``old`` the routes and handlers of ``new``; bind ``name`` back."""
        routes = list(new.router.routes)
        api_route = _api_route_class()
        if api_route is not None:
            # Dependency overrides are looked up on the app each route was built for.
            routes = [
                _rebuilt(r, False, dependency_overrides_provider=old)
                if isinstance(r, api_route) and r.dependency_overrides_provider is new
                else r
                for r in routes
            ]
        old.router.routes[:] = routes
        _changed(old.router)
        if old.exception_handlers != new.exception_handlers:
            old.exception_handlers.clear()
            old.exception_handlers.update(new.exception_handlers)
            old.middleware_stack = None
        update.module.__dict__[name] = old
        self._apps.discard(new)
        logger.info(
            "hotswap: starlette: %s.%s was created again; its routes now serve on the running app",
            update.module.__name__,
            name,
        )


def _options(route: Any) -> dict[str, Any]:
    """The keyword options a FastAPI route was built with, to build a copy elsewhere."""
    options: dict[str, Any] = {}
    for name, parameter in inspect.signature(type(route).__init__).parameters.items():
        if name in _NOT_ARGUMENTS or parameter.kind in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        ):
            continue
        if hasattr(route, name):
            options[name] = getattr(route, name)
    return options
