"""The Django adapter: URL changes answer; a model change that needs a migration is refused.

Registered under ``"django"`` by :mod:`hotswap.integrations`; imported only once a program has
imported Django. What it does in a transaction:

- :meth:`DjangoAdapter.prepare`: a model class about to be defined again is taken out of the
  app registry first, so Django registers the new class cleanly (it warns, or refuses a
  "conflicting model", when a model name is registered twice);
- :meth:`DjangoAdapter.sync`: when a model of a reloaded module changed, the models as they
  now are are compared with the project's migrations, as ``makemigrations --check`` does; a
  change that needs a migration (a new field, a changed column) is refused, and the
  transaction rolls back, with the operations it would need: the database schema does not
  follow code, so such a change needs ``makemigrations``, ``migrate`` and a restart. Then the
  URL resolver caches are cleared, so changed ``urlpatterns`` and views answer on the next
  request: the root resolver's, and those of the resolvers that ``include()`` built (each
  keeps its URLconf's patterns and reverse lookups until told).

Undo puts the app registry back and clears the URL caches again.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from django.apps import apps  # type: ignore[import-untyped]
from django.db import models  # type: ignore[import-untyped]
from django.urls import URLResolver, clear_url_caches  # type: ignore[import-untyped]

from hotswap._seam import ModulePlan, ModuleUpdate, location
from hotswap.exceptions import HotswapError

__all__ = ("DjangoAdapter",)

logger = logging.getLogger(__name__)


def _is_model(value: object) -> bool:
    # type(), not isinstance(): a lazy object (settings) would evaluate itself.
    if not (issubclass(type(value), type) and issubclass(value, models.Model)):  # type: ignore[arg-type]
        return False
    meta: Any = getattr(value, "_meta", None)
    return meta is not None and not meta.abstract and meta.app_label in apps.all_models


def _pending_operations(labels: Iterable[str]) -> dict[str, list[str]]:
    """label -> the operations ``makemigrations`` would write for it now."""
    from django.db.migrations.autodetector import MigrationAutodetector  # type: ignore[import-untyped]
    from django.db.migrations.loader import MigrationLoader  # type: ignore[import-untyped]
    from django.db.migrations.state import ProjectState  # type: ignore[import-untyped]

    loader = MigrationLoader(None, ignore_no_migrations=True)
    detector = MigrationAutodetector(loader.project_state(), ProjectState.from_apps(apps))
    changes = detector.changes(graph=loader.graph, trim_to_apps=set(labels))
    return {
        label: [op.describe() for migration in migrations for op in migration.operations]
        for label, migrations in changes.items()
    }


# What a URLResolver computes once from its URLconf: its patterns (a cached property) and the
# reverse lookups built from them, with their initial values.
_RESOLVER_CACHES: tuple[tuple[str, Callable[[], object]], ...] = (
    ("_reverse_dict", dict),
    ("_namespace_dict", dict),
    ("_app_dict", dict),
    ("_callback_strs", set),
)


def _clear_included_resolvers() -> None:
    """Make every resolver under the root URLconf read its URLconf's patterns again.

    ``clear_url_caches()`` drops the root resolver only; the resolvers that ``include()``
    put into the root's ``urlpatterns`` live on in that list and keep the patterns they read
    first, so a pattern added to an included URLconf would never answer.
    """
    from django.conf import settings  # type: ignore[import-untyped]

    root = getattr(settings, "ROOT_URLCONF", None) if settings.configured else None
    module = sys.modules.get(root) if isinstance(root, str) else None
    if module is None:
        return  # not imported yet: the first request reads it as it is
    stack: list[object] = list(getattr(module, "urlpatterns", ()))
    seen: set[int] = set()
    while stack:
        entry = stack.pop()
        if not isinstance(entry, URLResolver) or id(entry) in seen:
            continue
        seen.add(id(entry))
        entry.__dict__.pop("url_patterns", None)
        for name, initial in _RESOLVER_CACHES:
            if name in entry.__dict__:
                setattr(entry, name, initial())
        if "_populated" in entry.__dict__:
            entry._populated = False
        try:
            stack.extend(entry.url_patterns)
        except Exception:  # an URLconf without patterns: the next request reports it
            logger.debug("hotswap: %r: no url patterns", entry, exc_info=True)


class DjangoAdapter:
    """Keeps Django's URL resolver and app registry in line with a transaction, and its
    template loaders with the template files."""

    def files_changed(self, paths: Sequence[str], roots: Sequence[str]) -> None:
        """Reset Django's template loaders when a file under a template directory changed.

        Django's cached loader keeps every template it compiled; its own autoreloader resets
        it on a template save, but ``runserver --noreload`` (how hotswap serves) turns that
        off.
        """
        from django.template import autoreload  # type: ignore[import-untyped]

        try:
            directories = [Path(d).resolve() for d in autoreload.get_template_directories()]
        except Exception:  # settings not configured, apps not ready: nothing cached yet
            logger.debug("hotswap: no Django template directories", exc_info=True)
            return
        for path in paths:
            resolved = Path(path).resolve()
            if any(resolved.is_relative_to(directory) for directory in directories):
                autoreload.reset_loaders()
                return

    def __init__(self) -> None:
        self._registry: list[tuple[str, str, type[Any]]] = []

    def prepare(self, plans: Sequence[ModulePlan]) -> Callable[[], None] | None:
        """Take the models that the run defines again out of the app registry."""
        taken: list[tuple[str, str, type[Any]]] = []
        for plan in plans:
            for value in plan.rebinding.values():
                if _is_model(value):
                    meta = value._meta  # type: ignore[attr-defined]
                    registered = apps.all_models[meta.app_label].pop(meta.model_name, None)
                    if registered is not None:
                        taken.append((meta.app_label, meta.model_name, registered))
        self._registry = taken
        if not taken:
            return None
        apps.clear_cache()

        def undo() -> None:
            for label, name, model in taken:
                apps.all_models[label][name] = model
            apps.clear_cache()

        return undo

    def sync(self, updates: Sequence[ModuleUpdate]) -> Callable[[], None] | None:
        """Refuse a model change that needs a migration; clear the URL resolver caches."""
        self._registry = []
        touched: dict[str, ModuleUpdate] = {}
        for update in updates:
            values: list[object] = [*update.updated.values(), *update.added.values()]
            values += [new for _, new in update.rebound.values()]
            values += [new for _, new in update.replaced.values()]
            for value in values:
                if _is_model(value):
                    touched.setdefault(value._meta.app_label, update)  # type: ignore[attr-defined]
        if touched:
            apps.clear_cache()
            pending = _pending_operations(touched)
            if pending:
                label, operations = next(iter(pending.items()))
                module = touched[label].module
                where = location(module.__name__, getattr(module, "__file__", None))
                message = (
                    f"{where}: the models of app {label!r} changed in a way the database "
                    f"does not follow ({'; '.join(operations)}): not applied. Run "
                    "makemigrations and migrate, then restart the server."
                )
                raise HotswapError(
                    message, module=module.__name__, filename=getattr(module, "__file__", None)
                )
        clear_url_caches()
        _clear_included_resolvers()

        def undo() -> None:
            clear_url_caches()  # the restored urlpatterns are read on the next request
            _clear_included_resolvers()

        return undo
