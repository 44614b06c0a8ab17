"""Which tests a change affects: a static import graph of the project's Python files.

No project code is imported: each file is parsed and its ``import`` statements resolved against
the project's own files. A test file is affected when a changed file is the test file itself, a
conftest above it, or in the import closure of either. The graph is conservative where
resolution is ambiguous (``from pkg import name`` counts ``pkg/name.py`` *and* ``pkg``), so a
test may run needlessly but is never dropped.
"""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = (
    "ImportGraph",
    "ValueImports",
    "classify",
    "conftest_is_structural",
    "environment",
    "is_test_file",
    "module_name_for",
    "project_files",
    "read_text",
    "restart_reasons",
    "set_test_patterns",
    "structural_change",
)

# Folders never scanned or watched: environments, caches, version control.
SKIP_DIRS = frozenset(
    {"__pycache__", "node_modules", "site-packages", "venv", "env", "build", "dist"}
)
# Files whose change means pytest itself would be configured differently.
CONFIG_FILES = frozenset({"pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"})
# Conftest hooks that act before collection: a warm worker cannot apply a change to them.
_STRUCTURAL_HOOKS = frozenset(
    {
        "pytest_addoption",
        "pytest_addhooks",
        "pytest_configure",
        "pytest_unconfigure",
        "pytest_sessionstart",
        "pytest_load_initial_conftests",
        "pytest_cmdline_main",
        "pytest_cmdline_parse",
        "pytest_cmdline_preparse",
        "pytest_plugin_registered",
        "pytest_plugins",
    }
)


# pytest's ``python_files`` in force in this process (set from the configuration).
_test_patterns: tuple[str, ...] = ("test_*.py", "*_test.py")


def set_test_patterns(patterns: Iterable[str]) -> None:
    """Use the configuration's ``python_files`` patterns from now on."""
    global _test_patterns
    _test_patterns = tuple(patterns) or _test_patterns


def is_test_file(path: str) -> bool:
    """Whether pytest collects ``path`` as a test module (its ``python_files`` patterns, matched
    as pytest does: against the file name, or against the path for a pattern with a folder)."""
    if not path.endswith(".py") or os.path.basename(path) == "conftest.py":
        return False
    for pattern in _test_patterns:
        if os.sep in pattern or "/" in pattern:
            native = pattern.replace("/", os.sep)
            full = native if os.path.isabs(native) else f"*{os.sep}{native}"
            if fnmatch.fnmatch(path, full):
                return True
        elif fnmatch.fnmatch(os.path.basename(path), pattern):
            return True
    return False


def _skipped_dir(name: str) -> bool:
    return name.startswith(".") or name in SKIP_DIRS or name.endswith(".egg-info")


def project_files(root: str) -> list[str]:
    """Every file under ``root`` worth watching (environments and caches left out)."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not _skipped_dir(d) and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg"))
        )
        found.extend(os.path.join(folder, f) for f in sorted(files))
    return found


def module_name_for(path: str) -> str:
    """The dotted name pytest's ``prepend`` import mode gives a file: its package chain."""
    folder, base = os.path.split(os.path.abspath(path))
    parts = [] if base == "__init__.py" else [base[:-3]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.insert(0, package)
    return ".".join(parts)


def classify(path: str, root: str) -> str:
    """What kind of change a file is: ``"test"``, ``"conftest"``, ``"source"``, ``"config"``,
    ``"extension"`` (a C extension), ``"ignored"`` (bytecode, caches) or ``"data"``."""
    base = os.path.basename(path)
    relative = os.path.relpath(path, root)
    if any(_skipped_dir(part) for part in relative.split(os.sep)[:-1]):
        return "ignored"
    if base.endswith((".pyc", ".pyo", ".swp", ".swx", "~")) or base.startswith(".#"):
        return "ignored"
    if base in CONFIG_FILES:
        return "config"
    if base == "conftest.py":
        return "conftest"
    if base.endswith(".py"):
        return "test" if is_test_file(path) else "source"
    if base.endswith((".so", ".pyd", ".dylib")):
        return "extension"
    if base.endswith(_NOT_DATA) or not _holds_python(os.path.dirname(path)):
        return "ignored"
    return "data"


# Files next to code that no import reads: documentation, logs, lock files.
_NOT_DATA = (".md", ".rst", ".log", ".lock", ".tmp", ".bak", ".orig")


def _holds_python(folder: str) -> bool:
    """Whether a folder holds Python files: a data file beside code may be read at import."""
    try:
        with os.scandir(folder) as entries:
            return any(e.name.endswith(".py") for e in entries)
    except OSError:
        return False


def _structural_nodes(source: str) -> list[ast.stmt] | None:
    """The statements of a conftest that act before collection or outside the module: hooks
    such as ``pytest_addoption``, ``pytest_plugins``, and statements with side effects at
    import (``sys.path.insert``, ``os.environ[...] = ...``); None for a syntax error."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    found: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name in _STRUCTURAL_HOOKS:
                found.append(node)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            if "pytest_plugins" in names or len(names) != len(targets):
                found.append(node)  # subscript or attribute targets mutate something outside
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        found.append(node)
    return found


def conftest_is_structural(source: str) -> bool:
    """Whether a conftest does more than define fixtures and hooks that run per test (see
    :func:`structural_change`)."""
    return bool(_structural_nodes(source))


def structural_change(old: str | None, new: str) -> bool:
    """Whether a conftest's change touches what a warm worker cannot apply: a hook that acts
    before collection (``pytest_addoption``...), ``pytest_plugins``, or a statement with side
    effects at import, added, changed or removed. Fixtures and per-test hooks are applied
    warm. A syntax error is not structural: pytest reports it, warm or not. ``old`` is None
    when the previous source is unknown: then any structural part counts."""
    after = _structural_nodes(new)
    if after is None:
        return False
    before = None if old is None else _structural_nodes(old)
    if before is None:
        return bool(after)
    return [ast.dump(n) for n in before] != [ast.dump(n) for n in after]


def read_text(path: str) -> str:
    """A file's text ('' when it is gone)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def restart_reasons(changed: Iterable[str], root: str, conftests: dict[str, str]) -> list[str]:
    """Why a change set needs a fresh worker, one reason per file that does ([] if none).

    ``conftests`` maps each conftest to the source the worker loaded; it is updated.
    """
    reasons = []
    for path in changed:
        kind = classify(path, root)
        shown = os.path.relpath(path, root).replace(os.sep, "/")
        if kind == "config":
            reasons.append(f"the pytest configuration changed ({shown})")
        elif kind == "extension":
            reasons.append(f"a C extension changed ({shown})")
        elif kind == "data":
            reasons.append(f"a data file changed ({shown})")
        elif kind == "conftest":
            source = read_text(path)
            if structural_change(conftests.get(path), source):
                reasons.append(
                    f"{shown} changed a hook that runs before collection or a statement with "
                    "side effects"
                )
            conftests[path] = source
    return reasons


def environment(root: str) -> tuple[object, ...]:
    """A stamp of what a warm worker cannot follow: the installed packages (their folders'
    modification times) and the checked-out branch (``.git/HEAD``)."""
    found: list[object] = []
    for path in sys.path:
        if os.path.basename(path) in ("site-packages", "dist-packages"):
            with contextlib.suppress(OSError):
                found.append(os.stat(path).st_mtime_ns)
    with contextlib.suppress(OSError), open(os.path.join(root, ".git", "HEAD")) as head:
        found.append(head.read())
    return tuple(found)


def _from_module(node: ast.ImportFrom, package: str) -> str:
    """The absolute module an ``from ... import`` statement imports from."""
    if not node.level:
        return node.module or ""
    base_parts = package.split(".") if package else []
    keep = len(base_parts) - (node.level - 1)
    base = ".".join(base_parts[: max(keep, 0)])
    return f"{base}.{node.module}" if node.module and base else node.module or base


# A module's value imports: (module, module.name, read) for each ``from module import name``
# (read: top-level code reads the bound name), and (None, dotted, True) for each
# ``import dotted`` whose bound name top-level code reads.
ValueImports = set[tuple[str | None, str, bool]]


def _value_imports(tree: ast.Module, name: str, is_package: bool) -> ValueImports:
    """What a module's own top-level code takes from other modules while it runs: names
    taken by ``from m import x`` (their value is copied), and modules whose attributes
    top-level statements read (``X = config.RATE * 2``). Function bodies are left out: they
    read at call time, through objects that reloads update in place."""
    package = name if is_package else name.rpartition(".")[0]
    bound: dict[str, set[str]] = {}
    froms: list[tuple[str, str, str]] = []
    loads: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            arguments = node.args
            # decorators and defaults run when the def does; the body does not
            run_now: list[ast.AST] = [*arguments.defaults]
            run_now += [d for d in arguments.kw_defaults if d is not None]
            if not isinstance(node, ast.Lambda):
                run_now += node.decorator_list
            for child in run_now:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound.setdefault(alias.asname, set()).add(alias.name)
                else:
                    parts = alias.name.split(".")
                    prefixes = {".".join(parts[:end]) for end in range(1, len(parts) + 1)}
                    bound.setdefault(parts[0], set()).update(prefixes)
            return
        if isinstance(node, ast.ImportFrom):
            module = _from_module(node, package)
            for alias in node.names:
                dotted = f"{module}.{alias.name}" if module else alias.name
                froms.append((module, dotted, alias.asname or alias.name))
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loads.add(node.id)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in tree.body:
        visit(statement)
    taken: ValueImports = {(module, dotted, local in loads) for module, dotted, local in froms}
    for local, names in bound.items():
        if local in loads:
            taken.update((None, dotted, True) for dotted in names)
    return taken


def _imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """The dotted names a module may import (candidates; resolved against the project)."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(node, package)
            if module:
                found.add(module)
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if module else alias.name)
    return found


@dataclass
class ImportGraph:
    """Project file -> the project files it imports, parsed from source.

    Attributes:
        root: the project's root folder.
        files: dotted name -> file, for every Python file of the project.
        edges: file -> the project files it imports (parents of dotted names included, since
            importing ``a.b`` runs ``a/__init__.py``).
        value_edges: file -> the project files whose names its top-level code takes by value
            (see :meth:`value_importers`).
    """

    root: str
    files: dict[str, str] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    value_edges: dict[str, set[str]] = field(default_factory=dict)
    _trees: dict[str, tuple[float, int, set[str], ValueImports]] = field(default_factory=dict)

    def scan(self, paths: Iterable[str] | None = None) -> None:
        """(Re)read the project's Python files; unchanged files (same mtime and size) are
        not parsed again."""
        all_files = [p for p in (paths or project_files(self.root)) if p.endswith(".py")]
        self.files = {}
        for path in all_files:
            self.files.setdefault(module_name_for(path), path)
            # src layouts and rootdir-relative names reach the same file under another name
            relative = os.path.relpath(path, self.root)[:-3].replace(os.sep, ".")
            self.files.setdefault(relative.removesuffix(".__init__"), path)
        self.edges = {}
        self.value_edges = {}
        for path in all_files:
            names, values = self._parse(path)
            self.edges[path] = self._resolve(path, names)
            self.value_edges[path] = self._resolve_values(path, values)

    def _parse(self, path: str) -> tuple[set[str], ValueImports]:
        try:
            stat = os.stat(path)
        except OSError:
            return set(), set()
        cached = self._trees.get(path)
        if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
            return cached[2], cached[3]
        names: set[str] = set()  # a broken file imports nothing we can see
        values: ValueImports = set()
        try:
            with open(path, "rb") as handle:
                tree = ast.parse(handle.read(), path)
        except (OSError, SyntaxError, ValueError):
            pass
        else:
            name = module_name_for(path)
            is_package = os.path.basename(path) == "__init__.py"
            names = _imports(tree, name, is_package)
            values = _value_imports(tree, name, is_package)
        self._trees[path] = (stat.st_mtime, stat.st_size, names, values)
        return names, values

    def _resolve_values(self, path: str, values: ValueImports) -> set[str]:
        found: set[str] = set()
        for module, dotted, read in values:
            target = self.files.get(dotted)
            if target is not None:
                if not read:
                    continue  # a submodule bound to a name that top-level code never reads
            elif module is not None:
                target = self.files.get(module)  # a name taken from a module: its value
            if target is not None and target != path:
                found.add(target)
        return found

    def value_importers(self, changed: Iterable[str]) -> set[str]:
        """Every project file whose top-level code takes names, by value, from a changed file,
        directly or through files that do the same (changed ones left out): what must run
        again so that ``from config import RATE`` sees the new ``RATE``."""
        reverse: dict[str, set[str]] = {}
        for source, targets in self.value_edges.items():
            for target in targets:
                reverse.setdefault(target, set()).add(source)
        start = {os.path.abspath(p) for p in changed}
        seen: set[str] = set()
        stack = list(start)
        while stack:
            path = stack.pop()
            for importer in reverse.get(path, ()):
                if importer not in seen and importer not in start:
                    seen.add(importer)
                    stack.append(importer)
        return seen

    def _resolve(self, path: str, names: set[str]) -> set[str]:
        found: set[str] = set()
        for dotted in names:
            parts = dotted.split(".")
            for end in range(1, len(parts) + 1):
                target = self.files.get(".".join(parts[:end]))
                if target is not None and target != path:
                    found.add(target)
        return found

    def closure(self, start: Iterable[str]) -> set[str]:
        """Every project file reachable by imports from ``start`` (``start`` included)."""
        seen: set[str] = set()
        stack = list(start)
        while stack:
            path = stack.pop()
            if path in seen:
                continue
            seen.add(path)
            stack.extend(self.edges.get(path, ()))
        return seen

    def conftests_above(self, path: str) -> list[str]:
        """The conftest files pytest loads for ``path``: in its folder and every folder up to
        the root."""
        found = []
        folder = os.path.dirname(os.path.abspath(path))
        root = os.path.abspath(self.root)
        while True:
            candidate = os.path.join(folder, "conftest.py")
            if os.path.isfile(candidate):
                found.append(candidate)
            if folder == root or os.path.dirname(folder) == folder:
                return found
            folder = os.path.dirname(folder)

    def affected(self, changed: Iterable[str], tests: Iterable[str]) -> list[str]:
        """The test files among ``tests`` whose own closure, or their conftests' closure,
        holds a changed file."""
        changed_set = {os.path.abspath(p) for p in changed}
        hit = []
        for test in tests:
            if self.closure([test, *self.conftests_above(test)]) & changed_set:
                hit.append(test)
        return hit

    def importers(self, changed: Iterable[str]) -> set[str]:
        """Every project file that imports a changed file, directly or not (changed ones
        included)."""
        reverse: dict[str, set[str]] = {}
        for source, targets in self.edges.items():
            for target in targets:
                reverse.setdefault(target, set()).add(source)
        seen: set[str] = set()
        stack = [os.path.abspath(p) for p in changed]
        while stack:
            path = stack.pop()
            if path in seen:
                continue
            seen.add(path)
            stack.extend(reverse.get(path, ()))
        return seen

    def ordered(self, paths: Iterable[str]) -> list[str]:
        """``paths`` with each file after the files it imports (cycles broken arbitrarily)."""
        wanted = set(paths)
        done: set[str] = set()
        order: list[str] = []

        def visit(path: str, trail: set[str]) -> None:
            if path in done or path in trail:
                return
            trail.add(path)
            for target in sorted(self.edges.get(path, ())):
                if target in wanted:
                    visit(target, trail)
            done.add(path)
            order.append(path)

        for path in sorted(wanted):
            visit(path, set())
        return order
