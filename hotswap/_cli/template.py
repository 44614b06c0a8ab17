"""The warm template of ``hotswap run``: which modules the program imports that are not its
own, importing them once, and whether the process may then be forked.

The program's own files are read (their import statements), never imported: the template must
hold no code the user edits, or every run forked from it would start with stale code.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import Iterator

from hotswap._plan.modules import Scope

__all__ = ("dependencies", "fork_unsafe_reason", "warm_up")

logger = logging.getLogger(__name__)

_MAX_FILES = 2000  # the program's own files read to find its imports


def _imports(path: str) -> Iterator[tuple[str, int]]:
    """(module name, relative level) of the import statements a file runs when it is
    imported: not those in function bodies, which a program often keeps lazy on purpose."""
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(), path)
    except (OSError, SyntaxError, ValueError):
        return
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


def _local_file(name: str, scope: Scope) -> tuple[str | None, bool]:
    """(the file of module ``name`` when it is the program's own, whether it is the
    program's own). Finding a top-level module imports nothing; a submodule is looked up on
    disk, so the program's packages are never imported here."""
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None, False
    if spec is None:
        return None, False
    origin = spec.origin if isinstance(spec.origin, str) else None
    folders = list(spec.submodule_search_locations or [])
    anchor = origin or (folders[0] if folders else None)
    if anchor is None or not scope.contains(anchor):
        return None, False
    if not rest:
        return origin, True
    folder = folders[0] if folders else os.path.dirname(anchor)
    candidate = os.path.join(folder, *rest)
    for file in (candidate + ".py", os.path.join(candidate, "__init__.py")):
        if os.path.isfile(file):
            return file, True
    return None, True


def dependencies(entry: str | None, scope: Scope) -> list[str]:
    """The modules outside ``scope`` that the program imports: from its entry file and,
    transitively, its own modules (read, never imported)."""
    found: list[str] = []
    seen_files: set[str] = set()
    queue: list[str] = [entry] if entry else []
    while queue and len(seen_files) < _MAX_FILES:
        path = queue.pop()
        if path in seen_files:
            continue
        seen_files.add(path)
        package = os.path.dirname(path)
        for name, level in _imports(path):
            if level:  # relative: the program's own package
                base = package
                for _ in range(level - 1):
                    base = os.path.dirname(base)
                target = os.path.join(base, *name.split(".")) if name else base
                for file in (target + ".py", os.path.join(target, "__init__.py")):
                    if os.path.isfile(file):
                        queue.append(file)
                continue
            if not name or name == "__main__":
                continue
            local, own = _local_file(name, scope)
            if own:
                if local is not None:
                    queue.append(local)
            elif name not in found:
                found.append(name)
    return found


def _thread_count() -> int:
    """Threads of this process, those started by C code included where the OS tells."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def fork_unsafe_reason() -> str | None:
    """Why this process must not be forked, or None."""
    if not hasattr(os, "fork"):
        return "this platform has no fork()"
    count = _thread_count()
    if count > 1:
        names = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        shown = f" ({', '.join(names)})" if names else ""
        return f"{count - 1} thread(s) started at import{shown}"
    return None


def warm_up(names: list[str]) -> list[str]:
    """Import ``names`` (what fails is left to the program); the ones imported."""
    imported = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the program will meet it, with its own traceback
            logger.debug("hotswap: template: %s did not import", name, exc_info=True)
        else:
            imported.append(name)
    return imported
