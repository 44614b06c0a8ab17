"""Names an interactive namespace imported from modules, kept following those modules.

An interactive shell is an importer like any module (DESIGN §5.2): after ``from m import x``
the shell's ``x`` must be ``m.x`` again once a reload rebinds ``m.x`` (a changed constant, a
replaced Enum), and after ``from m import *`` a name ``m`` gains is bound too. Functions and
classes updated in place keep their identity and need nothing. A name the user bound to
something else since is the user's: it is never touched again.
"""

from __future__ import annotations

import ast
import sys
import types
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

__all__ = ("ImportedNames", "import_statements")

_MISSING = object()


def import_statements(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that bind names in the namespace the code runs in: those at the
    top level and inside ``if``/``try``/``with``/loops, not those in function or class
    bodies."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))


@dataclass
class _Binding:
    module: str
    attribute: str | None  # None: the name is bound to the module itself
    value: object


def _public(module: types.ModuleType) -> list[str]:
    exported = getattr(module, "__all__", None)
    if isinstance(exported, list | tuple):
        return [str(n) for n in exported]
    return [n for n in vars(module) if not n.startswith("_")]


class ImportedNames:
    """The shell's names that came from an import, and how to bring them up to date."""

    def __init__(self) -> None:
        self._bindings: dict[str, _Binding] = {}
        self._star: set[str] = set()  # modules the shell did ``from m import *`` of

    def __len__(self) -> int:
        return len(self._bindings)

    def record(self, tree: ast.AST, namespace: MutableMapping[str, object]) -> None:
        """Note the names ``tree``'s imports bound in ``namespace`` (after it ran). A name is
        followed only if it holds the module's object now (the import did run)."""
        for node in import_statements(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname is not None:
                        self._track(alias.asname, alias.name, None, namespace)
                    else:
                        top = alias.name.split(".", 1)[0]
                        self._track(top, top, None, namespace)
                continue
            if node.level or node.module is None:
                continue  # a relative import has no package to be relative to in a shell
            for alias in node.names:
                if alias.name == "*":
                    self._star.add(node.module)
                    module = sys.modules.get(node.module)
                    if module is not None:
                        for name in _public(module):
                            self._track(name, node.module, name, namespace)
                else:
                    self._track(alias.asname or alias.name, node.module, alias.name, namespace)

    def _track(
        self,
        name: str,
        module_name: str,
        attribute: str | None,
        namespace: MutableMapping[str, object],
    ) -> None:
        value = namespace.get(name, _MISSING)
        if value is not _MISSING and value is self._current(module_name, attribute):
            self._bindings[name] = _Binding(module_name, attribute, value)

    @staticmethod
    def _current(module_name: str, attribute: str | None) -> object:
        module = sys.modules.get(module_name)
        if module is None:
            return _MISSING
        if attribute is None:
            return module
        value = getattr(module, attribute, _MISSING)
        if value is _MISSING:  # ``from pkg import sub`` binds a submodule
            value = sys.modules.get(f"{module_name}.{attribute}", _MISSING)
        return value

    def sync(self, namespace: MutableMapping[str, object]) -> list[str]:
        """Bring the followed names up to date; returns the names rebound, added or removed.

        A name whose value the user replaced is forgotten. A name its module no longer
        defines is removed from the namespace, as from any importer; a name a star-imported
        module gained is added unless the namespace already has it.
        """
        touched: list[str] = []
        for name, binding in list(self._bindings.items()):
            if namespace.get(name, _MISSING) is not binding.value:
                del self._bindings[name]  # the user's now
                continue
            current = self._current(binding.module, binding.attribute)
            if current is binding.value:
                continue
            if current is _MISSING:
                if sys.modules.get(binding.module) is None:
                    continue  # the module is gone from sys.modules: nothing to follow
                del namespace[name]
                del self._bindings[name]
            else:
                namespace[name] = current
                binding.value = current
            touched.append(name)
        for module_name in sorted(self._star):
            module = sys.modules.get(module_name)
            if module is None:
                continue
            for name in _public(module):
                if name in self._bindings or name in namespace:
                    continue
                value = getattr(module, name, _MISSING)
                if value is _MISSING:
                    continue
                namespace[name] = value
                self._bindings[name] = _Binding(module_name, name, value)
                touched.append(name)
        return touched

    def clear(self) -> None:
        """Stop following every name."""
        self._bindings.clear()
        self._star.clear()
