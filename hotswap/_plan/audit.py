"""The audit policy: before a change runs, its new and changed statements are scanned for uses
of denied names (``os.system``, ``subprocess.*``, ``eval``...).

A pure AST scan, like ``_diff``: no live object is touched and nothing is imported. A name is
followed through the module's imports (``import subprocess as sp``, ``from os import system``,
relative imports, ``import *``), through plain re-bindings (``run = sp.run``) and through the
usual dynamic spellings (``getattr(__import__("os"), "system")``, ``importlib.import_module``,
``sys.modules["os"]``, ``vars(os)["system"]``, ``builtins.eval``); a ``getattr`` whose name is
not a constant, on a module with denied members, is denied too.

It guards against accidents and casual misuse, not against a determined author: Python code
can always build a name the scan cannot see (that is what signed changes are for).
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterable, Iterator, Sequence

from hotswap._config import settings as _config
from hotswap._config.settings import AuditPolicy
from hotswap._ops.events import display_path
from hotswap._plan import symbols as _symbols
from hotswap.exceptions import AuditError

__all__ = ("check", "check_source", "denied", "may_alias")

_BUILTIN_PREFIXES = ("builtins.", "__builtins__.")
_IMPORTERS = ("__import__", "importlib.import_module", "importlib.__import__")


def denied(name: str, policy: AuditPolicy) -> str | None:
    """The deny pattern ``name`` falls under, or None when it is allowed.

    ``name`` and each dotted prefix of it are looked at, longest first, so ``os.system.x`` is
    denied by ``os.system``, and an ``allow`` entry overrides a shorter ``deny`` one
    (``allow = ["subprocess.run"]`` with ``deny = ["subprocess.*"]``).
    """
    for prefix in _prefixes(name):
        if any(fnmatch.fnmatchcase(prefix, p) for p in policy.allow):
            return None
        for pattern in policy.deny:
            if fnmatch.fnmatchcase(prefix, pattern):
                return pattern
    return None


def _prefixes(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        yield ".".join(parts[:end])


def check(
    module: str,
    path: str,
    statements: Sequence[ast.stmt],
    source: str | ast.Module,
    *,
    policy: AuditPolicy | None = None,
) -> None:
    """Raise :class:`~hotswap.AuditError` when ``statements`` use a denied name.

    Args:
        module: the module's name.
        path: its file, for the message.
        statements: the new and changed top-level statements, from the new source's tree.
        source: the whole new source (or its tree), whose imports say what names stand for.
        policy: the policy; default: the configured one, and nothing is checked when the
            audit is off.
    """
    if policy is None:
        policy = _config.current().audit
        if policy is None:
            return
    tree = source if isinstance(source, ast.Module) else ast.parse(source, path)
    aliases = _Aliases(module, path)
    aliases.collect(ast.walk(tree))
    for stmt in statements:
        aliases.collect(ast.walk(stmt))
    found: list[tuple[int, str, str]] = []
    for stmt in statements:
        scan = _Scan(aliases, policy)
        scan.visit(stmt)
        found.extend(scan.found)
    if not found:
        return
    found.sort()
    where = display_path(path)
    lines = [f"{where}:{n}: {what} {name} is denied by the audit policy" for n, what, name in found]
    message = lines[0]
    if len(lines) > 1:
        message += "\n  " + "\n  ".join(lines[1:])
    raise AuditError(message, module=module, filename=path, names=found)


def check_source(module: str, path: str, source: str, previous: _symbols.Symbols | None) -> None:
    """:func:`check` the statements of ``source`` that the module's last version did not have.

    ``previous`` is that version's symbol table; its statement cache tells which statement
    texts were already live. Without it (the module was never reloaded, so its live source was
    never seen) every statement is scanned. Only the new statements and the unchanged ones that
    may bind an alias (imports, plain assignments) are parsed, so the cost follows the change.
    """
    policy = _config.current().audit
    if policy is None:
        return
    known = {text for _, text in previous.cache} if previous is not None else set()
    chunks = _symbols.split_statements(source) if known else None
    if chunks is not None:
        try:
            fresh, context = _split(chunks, known)
        except SyntaxError:
            pass  # a piece the line scan split wrongly: the whole module below
        else:
            check(module, path, fresh, ast.Module([*context, *fresh], []), policy=policy)
            return
    tree = ast.parse(source, path)
    check(module, path, tree.body, tree, policy=policy)


# An unchanged statement that may bind an alias: an import, or ``name = dotted.name``.
_MAY_ALIAS = re.compile(r"(?:.*\bimport\b|[A-Za-z_]\w*\s*=\s*[A-Za-z_][\w.]*\s*$)", re.DOTALL)


def may_alias(text: str) -> bool:
    """Whether an unchanged statement's text may bind an alias a changed one uses: an import,
    or ``name = dotted.name``."""
    return _MAY_ALIAS.match(text) is not None


def _split(chunks: list[tuple[int, str]], known: set[str]) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """The new statements, and the unchanged ones that may bind an alias, parsed."""
    fresh: list[ast.stmt] = []
    context: list[ast.stmt] = []
    for first, text in chunks:
        is_new = text not in known
        if not is_new and not _MAY_ALIAS.match(text):
            continue
        tree = ast.parse(text)
        ast.increment_lineno(tree, first - 1)
        (fresh if is_new else context).extend(tree.body)
    return fresh, context


def _first_line(stmt: ast.stmt) -> int:
    decorators = getattr(stmt, "decorator_list", None)
    return decorators[0].lineno if decorators else stmt.lineno


class _Aliases:
    """Local name -> the dotted names it may stand for, from every import in the module."""

    def __init__(self, module: str, path: str) -> None:
        self.names: dict[str, set[str]] = {}
        self.star: set[str] = set()  # modules imported with ``from m import *``
        is_package = path.endswith("__init__.py")
        self.package = module if is_package else module.rpartition(".")[0]

    def collect(self, nodes: Iterable[ast.AST]) -> None:
        assignments: list[ast.Assign] = []
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname is None:
                        top = alias.name.split(".")[0]
                        self.names.setdefault(top, set()).add(top)
                    else:
                        self.names.setdefault(alias.asname, set()).add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = self._absolute(node)
                for alias in node.names:
                    if alias.name == "*":
                        self.star.add(base)
                        continue
                    bound = alias.asname or alias.name
                    self.names.setdefault(bound, set()).add(f"{base}.{alias.name}".lstrip("."))
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                assignments.append(node)
        # ``run = sp.run``: what the right-hand side stands for, once the imports are known.
        for node in assignments:
            target = node.targets[0]
            if isinstance(target, ast.Name) and isinstance(node.value, ast.Name | ast.Attribute):
                targets = set(self.resolve(node.value))
                if targets - {target.id}:
                    self.names.setdefault(target.id, set()).update(targets)

    def _absolute(self, node: ast.ImportFrom) -> str:
        base = node.module or ""
        if not node.level:
            return base
        parts = self.package.split(".") if self.package else []
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        return ".".join([*parts, base] if base else parts)

    def resolve(self, node: ast.expr) -> tuple[str, ...]:
        """The dotted names an expression may stand for (none when it cannot be told)."""
        found = tuple(_normal(n) for n in self._resolve(node))
        return tuple(dict.fromkeys(found))

    def _resolve(self, node: ast.expr) -> tuple[str, ...]:
        if isinstance(node, ast.Name):
            if node.id in self.names:
                return tuple(self.names[node.id])
            return (node.id, *(f"{m}.{node.id}" for m in self.star))
        if isinstance(node, ast.Attribute):
            return tuple(f"{base}.{node.attr}" for base in self._resolve(node.value))
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            key = _constant(node.slice)
            if key is None:
                return ()
            found: list[str] = []
            for base in self._resolve(node.value):
                if base == "sys.modules":
                    found.append(key)
                elif base.endswith(".__dict__"):
                    found.append(f"{base[: -len('.__dict__')]}.{key}")
                elif base in ("__builtins__", "globals()", "builtins.__dict__"):
                    found.extend(self.names.get(key, {key}))
            return tuple(found)
        return ()

    def _call(self, node: ast.Call) -> tuple[str, ...]:
        functions = [_normal(f) for f in self._resolve(node.func)]
        first = _constant(node.args[0]) if node.args else None
        if any(f in _IMPORTERS for f in functions) and first is not None:
            # __import__("a.b") gives ``a``, unless it is asked for names from ``a.b``.
            fromlist = len(node.args) > 3 or any(k.arg == "fromlist" for k in node.keywords)
            plain = "__import__" in functions and not fromlist
            return (first.split(".")[0] if plain else first,)
        if "getattr" in functions and len(node.args) >= 2:
            name = _constant(node.args[1])
            bases = self._resolve(node.args[0])
            if name is None:
                return tuple(f"{base}.<dynamic>" for base in bases)
            return tuple(f"{base}.{name}" for base in bases)
        if "vars" in functions and len(node.args) == 1:
            return tuple(f"{base}.__dict__" for base in self._resolve(node.args[0]))
        if "globals" in functions and not node.args:
            return ("globals()",)
        return ()


def _constant(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _normal(name: str) -> str:
    for prefix in _BUILTIN_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


class _Scan(ast.NodeVisitor):
    """Finds the denied names one statement uses: ``(line, "call to" | "use of", name)``."""

    def __init__(self, aliases: _Aliases, policy: AuditPolicy) -> None:
        self.aliases = aliases
        self.policy = policy
        self.found: list[tuple[int, str, str]] = []

    def _check(self, node: ast.expr, what: str) -> bool:
        """Report ``node`` if it stands for a denied name; whether it was reported."""
        for name in self.aliases.resolve(node):
            if name.endswith(".<dynamic>"):
                module = name[: -len(".<dynamic>")]
                if self._has_denied_members(module):
                    self.found.append((node.lineno, "dynamic attribute of", module))
                    return True
                continue
            if denied(name, self.policy) is not None:
                self.found.append((node.lineno, what, name))
                return True
        return False

    def _has_denied_members(self, module: str) -> bool:
        if module in ("builtins", "__builtins__"):
            return any("." not in p for p in self.policy.deny)
        return any(p.startswith(f"{module}.") for p in self.policy.deny)

    def visit_Call(self, node: ast.Call) -> None:
        # What the call returns may itself be denied (``getattr(os, "system")``); else what it
        # calls (``os.system(...)``). Either way its arguments may use other denied names.
        if not self._check(node, "use of") and not self._check(node.func, "call to"):
            self.visit(node.func)
        for child in (*node.args, *(k.value for k in node.keywords)):
            self.visit(child)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load) and self._check(node, "use of"):
            return
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, ast.Load) and self._check(node, "use of"):
            return
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._check(node, "use of")
