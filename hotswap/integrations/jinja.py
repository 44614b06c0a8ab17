"""The Jinja adapter: a saved template shows on the next render.

Registered under ``"jinja2"`` by :mod:`hotswap.integrations`; imported only once a program has
imported Jinja. An :class:`jinja2.Environment` keeps the templates it compiled; unless its
``auto_reload`` is on (Flask turns it on in debug mode only) it never looks at their files
again. When the watcher reports that a file that is not a Python module changed under the
watched paths, this adapter clears the template cache of the environments the program's own
modules (those under the watched paths) hold: an ``Environment`` bound at module level, a
Flask app's ``jinja_env``, a Starlette/FastAPI ``Jinja2Templates``'s ``env``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence

from jinja2 import Environment

from hotswap._seam import ModulePlan, ModuleUpdate

__all__ = ("JinjaAdapter",)

# Classes (by name, anywhere in the MRO) whose instances hold an environment, and where.
_HOLDERS = {"Flask": "jinja_env", "Jinja2Templates": "env"}


def _held(value: object) -> Environment | None:
    # type(), never isinstance() or getattr(): a lazy proxy (werkzeug's current_app, Django's
    # settings) would evaluate itself.
    kind = type(value)
    if issubclass(kind, Environment):
        return value  # type: ignore[return-value]
    for base in kind.__mro__:
        attribute = _HOLDERS.get(base.__name__)
        if attribute is not None:
            # Flask makes jinja_env on first use (a cached property in the instance dict).
            found = vars(value).get(attribute) if hasattr(value, "__dict__") else None
            return found if issubclass(type(found), Environment) else None
    return None


_real_paths: dict[str, str] = {}  # a module's file -> its real path (the roots are real paths)


def _real(file: str) -> str:
    # Cached: this runs on the watcher's event thread, once per module, for every saved file
    # that is not a module; resolving every path each time would cost a syscall per module.
    real = _real_paths.get(file)
    if real is None:
        real = _real_paths[file] = os.path.realpath(file)
    return real


def _environments(roots: Sequence[str]) -> Iterator[Environment]:
    """The environments held at module level by modules whose file is under ``roots``."""
    prefixes = tuple(os.path.join(root, "") for root in roots)
    seen: set[int] = set()
    for module in list(sys.modules.copy().values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not _real(file).startswith(prefixes):
            continue
        for value in list(vars(module).values()):
            environment = _held(value)
            if environment is not None and id(environment) not in seen:
                seen.add(id(environment))
                yield environment


class JinjaAdapter:
    """Clears the template caches of the program's Jinja environments when a file changes."""

    def prepare(self, plans: Sequence[ModulePlan]) -> None:
        """Nothing to do before a reload."""
        return None

    def sync(self, updates: Sequence[ModuleUpdate]) -> None:
        """Nothing to do after a reload."""
        return None

    def files_changed(self, paths: Sequence[str], roots: Sequence[str]) -> None:
        """Forget the compiled templates: the next render reads the files again."""
        for environment in _environments(roots):
            cache = environment.cache
            if cache is not None:
                cache.clear()
