"""Mapping between loaded modules and their source files."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from types import ModuleType

from hotswap._ops.events import location
from hotswap.exceptions import ModuleNotReloadableError

__all__ = (
    "OWN_DIR",
    "ModuleIndex",
    "Scope",
    "canonical",
    "copies_of",
    "decode_source",
    "excluded_roots",
    "import_root",
    "is_copy",
    "loaded_files",
    "module_name",
    "original_of",
    "own_root",
    "project_modules",
    "read_source",
    "real_file",
    "resolve",
    "run_from",
    "search_scope",
    "source_bytes",
    "source_file",
    "watched_scope",
)


def module_name(target: ModuleType | str) -> str:
    """The name of a module or module name, for messages, without looking it up."""
    if isinstance(target, ModuleType):
        return target.__name__
    return str(target)


def resolve(target: object) -> ModuleType:
    """The loaded module ``target`` names.

    Raises:
        ModuleNotReloadableError: no module of that name is loaded.
        TypeError: ``target`` is neither a module nor a string.
    """
    if isinstance(target, ModuleType):
        return target
    if not isinstance(target, str):
        message = f"expected a module or a module name, got {type(target).__name__}"
        raise TypeError(message)
    module = sys.modules.get(target)
    if module is None:
        message = f"{target}: no module of that name is loaded (import it first)"
        raise ModuleNotReloadableError(message, module=target)
    return module


def source_file(module: ModuleType) -> str:
    """The absolute path of the ``.py`` file ``module`` was loaded from.

    Raises:
        ModuleNotReloadableError: the module is built in, a C extension, frozen, or its source
            file is gone.
    """
    name = module.__name__
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec is not None else None
    candidate = origin if isinstance(origin, str) else getattr(module, "__file__", None)
    if isinstance(candidate, str) and candidate.endswith((".pyc", ".pyo")):
        try:
            candidate = importlib.util.source_from_cache(candidate)
        except ValueError:
            candidate = None
    if not isinstance(candidate, str) or not candidate.endswith(".py"):
        message = f"{name}: has no Python source file to reload (found {candidate!r})"
        raise ModuleNotReloadableError(message, module=name)
    path = os.path.abspath(candidate)
    if not os.path.isfile(path):
        message = f"{location(name, path)}: the source file no longer exists"
        raise ModuleNotReloadableError(message, module=name, filename=path)
    return path


def source_bytes(target: ModuleType | str) -> bytes | None:
    """The bytes of the source file of a module (or a module's name), or None when it cannot
    be found or read (what reads them next says why)."""
    try:
        with open(source_file(original_of(resolve(target))), "rb") as handle:
            return handle.read()
    except (ModuleNotReloadableError, OSError):
        return None


def read_source(module: str, path: str) -> tuple[str, bytes]:
    """The decoded text and the raw bytes of a source file (PEP 263 encodings honoured).

    Raises:
        ModuleNotReloadableError: the file cannot be read or decoded.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        message = f"{location(module, path)}: cannot read the source: {error}"
        raise ModuleNotReloadableError(message, module=module, filename=path) from error
    return decode_source(module, path, data), data


# The last bytes decoded and their text: a reload decodes the bytes it read once, though
# both of its paths (a whole-module rewrite, then the statement diff) are given them.
_decoded: tuple[bytes, str] | None = None


def decode_source(module: str, path: str, data: bytes) -> str:
    """Source bytes as text, honouring a PEP 263 coding line.

    Raises:
        ModuleNotReloadableError: the bytes do not decode.
    """
    global _decoded
    last = _decoded  # (one read: another thread may replace it meanwhile)
    if last is not None and last[0] is data:
        return last[1]
    text = _decode(module, path, data)
    _decoded = (data, text)
    return text


def _decode(module: str, path: str, data: bytes) -> str:
    try:
        text = importlib.util.decode_source(data)
    except (UnicodeDecodeError, SyntaxError, LookupError) as error:
        line = _undecodable_line(data, error)
        message = f"{location(module, path, line)}: cannot decode the source: {error}"
        raise ModuleNotReloadableError(message, module=module, filename=path, lineno=line) from (
            error
        )
    nul = text.find("\0")
    if nul >= 0:
        # What compile() refuses without a line: a binary file, or one written half way.
        line = text.count("\n", 0, nul) + 1
        message = f"{location(module, path, line)}: a NUL byte: binary content, not Python source"
        raise ModuleNotReloadableError(message, module=module, filename=path, lineno=line)
    return text


# A PEP 263 coding declaration (it may only sit on the first two lines).
# hotswap's own package folder (with a trailing separator): its files are never the user's.
OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=]")


def _undecodable_line(data: bytes, error: Exception) -> int:
    """The line of ``data`` where decoding failed: the first undecodable byte's, else the
    coding declaration's (an unknown encoding), else the first line that is not UTF-8."""
    if isinstance(error, UnicodeDecodeError):
        return data.count(b"\n", 0, error.start) + 1
    head = data.split(b"\n", 2)[:2]
    for number, text in enumerate(head, 1):
        if _CODING.match(text):
            return number
    for number, text in enumerate(head, 1):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


# --- the watch scope ----------------------------------------------------------------------------


def own_root() -> str:
    """hotswap's own package folder (resolved): never user code, however it is installed (an
    editable install puts it outside site-packages)."""
    return os.path.realpath(OWN_DIR.rstrip(os.sep))


def excluded_roots() -> tuple[str, ...]:
    """The standard library, installed packages and hotswap itself: never reloaded unless a
    path names them.

    The standard library is where ``os`` lives (lib-dynload is inside it); installed packages
    are the site-packages and dist-packages folders on sys.path. Read this way rather than from
    sysconfig, whose first call costs milliseconds of enable().
    """
    found = {os.path.realpath(os.path.dirname(os.__file__)), own_root()}
    for path in sys.path:
        if os.path.basename(path) in ("site-packages", "dist-packages"):
            found.add(os.path.realpath(path))
    return tuple(sorted(found))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Scope:
    """Which files the watcher may read and execute: those under the watched paths, never in
    the standard library or site-packages unless a watched path lies there, and never through
    a symlink that leads outside the watched paths.

    A watched path may not exist yet: it is planned as a recursive watch (a ``.py`` path as a
    file) and watched once it appears.
    """

    def __init__(self, paths: list[str], exclude: tuple[str, ...] = ()) -> None:
        self.roots = tuple(sorted({os.path.realpath(os.path.abspath(p)) for p in paths}))
        self.exclude = exclude
        self._heavy: dict[str, bool] = {}
        self.files = frozenset(
            r
            for r in self.roots
            if os.path.isfile(r) or (r.endswith(".py") and not os.path.isdir(r))
        )
        excluded = excluded_roots()
        # A watched path inside an excluded one names it: only what lies outside every
        # watched path stays excluded.
        self.excluded = tuple(
            e for e in excluded if not any(_under(root, e) for root in self.roots)
        )

    def _is_heavy(self, root: str) -> bool:
        """Whether ``root`` holds a heavy folder; decided once the root exists."""
        heavy = self._heavy.get(root)
        if heavy is None:
            if not os.path.isdir(root):
                return False  # not there yet: planned recursive, decided when it appears
            heavy = self._heavy[root] = _has_heavy_folder(root)
        return heavy

    def contains(self, path: str) -> bool:
        """Whether ``path`` (resolved: symlinks followed) may be reloaded by the watcher."""
        real = os.path.realpath(path)
        if any(fnmatch.fnmatch(real, pattern) for pattern in self.exclude):
            return False
        if real in self.files:
            return True
        if not any(_under(real, root) for root in self.roots if root not in self.files):
            return False
        return not any(_under(real, e) for e in self.excluded)

    def watches(self) -> list[tuple[str, bool]]:
        """The directories to watch, as (directory, recursive).

        A root is watched recursively, in one watch. A root that holds a heavy folder (a
        virtual environment, ``.git``, ``node_modules``) is watched on its own (its top-level
        files) plus, recursively, each subfolder that holds a loaded module, so the watcher
        never walks an environment's thousands of folders.
        """
        plan: dict[str, bool] = {}
        files: set[str] | None = None
        for root in self.roots:
            if root in self.files:
                plan.setdefault(os.path.dirname(root), False)
                continue
            if not self._is_heavy(root):
                plan[root] = True
                continue
            plan.setdefault(root, False)
            if files is None:
                files = loaded_files()
            for file in files:
                if not _under(file, root) or any(_under(file, e) for e in self.excluded):
                    continue
                relative = file[len(root) + 1 :]
                if os.sep in relative:
                    plan[os.path.join(root, relative.split(os.sep, 1)[0])] = True
        return sorted(plan.items())


_HEAVY = frozenset({"node_modules", "site-packages", "dist-packages", "venv", "env"})


def _has_heavy_folder(root: str) -> bool:
    """Whether ``root`` holds a folder a recursive watch should not walk."""
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.name.startswith(".") or entry.name in _HEAVY:
                    return True
                if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                    return True
    except OSError:
        return True
    return False


_real_dirs: dict[str, str] = {}


def real_file(path: str) -> str:
    """``path`` absolute, with the symlinks of its folder resolved (not of the file itself).

    Watched roots are resolved (``/var`` is ``/private/var`` on macOS; checkouts are often
    symlinked), so event paths are too; module files are indexed the same way, or every edit
    under a symlinked folder would miss. The file's own link is left alone: the event names
    the link, and :meth:`Scope.contains` judges where it leads. Folders are cached: a lookup
    costs a dict access, not a ``realpath`` walk per module.
    """
    folder, name = os.path.split(os.path.abspath(path))
    real = _real_dirs.get(folder)
    if real is None:
        real = _real_dirs[folder] = os.path.realpath(folder)
    return os.path.join(real, name)


def _file_of(module: object) -> str | None:
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    return real_file(file)


def loaded_files() -> set[str]:
    """The source files of every loaded module (folders resolved, see :func:`real_file`)."""
    files = set()
    for module in list(sys.modules.copy().values()):
        file = _file_of(module) if isinstance(module, ModuleType) else None
        if file is not None:
            files.add(file)
    return files


def _loaded_from(module: object, path: str) -> bool:
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    return isinstance(origin, str) and origin.endswith(".py") and real_file(origin) == path


def is_copy(name: str, module: object, path: str) -> bool:
    """Whether ``module`` only carries the file name ``path`` without having been loaded from
    it: a copy of another module's names built by a package (toolz's ``tlz.functoolz``), whose
    import never runs the file. ``__main__`` run as a script has no spec, and is no copy."""
    if name in ("__main__", "__mp_main__"):
        return False
    return not _loaded_from(module, path)


def run_from(path: str) -> list[ModuleType]:
    """The loaded user modules the import system ran from the file ``path``: one file may
    back several modules (a package whose ``__path__`` reaches another package's folder, as
    toolz's ``tlz.curried`` reaches ``toolz/curried``)."""
    real = real_file(path)
    return [m for _, m, file in _project.modules() if file == real and _loaded_from(m, real)]


def copies_of(module: ModuleType, path: str) -> list[ModuleType]:
    """The loaded user modules that are copies (:func:`is_copy`) of ``module``, whose source
    is ``path``: what a fresh import gives them follows ``module``'s names."""
    if not _loaded_from(module, path):
        return []
    return [
        other
        for name, other, file in _project.modules()
        if file == path and other is not module and is_copy(name, other, path)
    ]


def original_of(module: ModuleType) -> ModuleType:
    """The module loaded from the file ``module`` names, when ``module`` is a copy of it
    (:func:`is_copy`); else ``module`` itself."""
    path = _file_of(module)
    name = getattr(module, "__name__", "")
    if path is None or not is_copy(name, module, path):
        return module
    for _, other, file in _project.modules():
        if file == path and other is not module and _loaded_from(other, path):
            return other
    return module


class ModuleIndex:
    """Source file -> names of the loaded modules it backs (``__main__`` and ``pkg.mod`` may
    share one file). Rebuilt when a lookup misses: modules come and go, and ``runpy`` swaps
    ``__main__`` without changing how many there are. A miss costs a scan of ``sys.modules``
    (a few milliseconds for thousands of modules), and only events for files no indexed
    module backs miss."""

    def __init__(self) -> None:
        self._by_file: dict[str, list[str]] = {}

    def _rebuild(self) -> None:
        by_file: dict[str, list[str]] = {}
        # copy() first: it runs no Python code, so no other thread's import can change the
        # dict under it (building item tuples may run the collector, and a finalizer may
        # switch threads: "dictionary changed size during iteration" on the watcher's thread).
        modules = list(sys.modules.copy().items())
        for name, module in modules:
            file = _file_of(module) if isinstance(module, ModuleType) else None
            if file is not None:
                by_file.setdefault(file, []).append(name)
        self._by_file = by_file

    def _lookup(self, path: str) -> list[str]:
        return [n for n in self._by_file.get(path, ()) if _file_of(sys.modules.get(n)) == path]

    def modules_for(self, path: str) -> list[str]:
        """The loaded modules whose source is ``path``, each module object once, under its own
        ``__name__`` (``__mp_main__`` is ``__main__`` under a second name: one reload, not two);
        [] for a file never imported (a new file is ignored until something imports it)."""
        path = real_file(path)
        names = self._lookup(path)
        if not names:
            self._rebuild()
            names = self._lookup(path)
        chosen: dict[int, str] = {}
        if len(names) > 1 and any(_loaded_from(sys.modules.get(n), path) for n in names):
            # One file, several modules: a package built copies of a module (same __file__)
            # that its import never ran the file in. The module loaded from it is reloaded;
            # the copies follow its names (a fresh import copies them again).
            names = [n for n in names if not is_copy(n, sys.modules.get(n), path)]
        for name in names:
            module = sys.modules[name]
            own = getattr(module, "__name__", name)
            if sys.modules.get(own) is not module:
                own = name  # registered only under another name: reload it under that one
            chosen.setdefault(id(module), own)
        return list(chosen.values())

    def files_under(self, folder: str, *, recursive: bool) -> list[str]:
        """The indexed source files in ``folder`` (and its subfolders when ``recursive``)."""
        self._rebuild()
        prefix = folder.rstrip(os.sep) + os.sep
        return sorted(
            f
            for f in self._by_file
            if f.startswith(prefix) and (recursive or os.sep not in f[len(prefix) :])
        )

    def refresh(self) -> None:
        """Index the modules loaded now (done off the event path, ahead of the first event)."""
        _real_dirs.clear()
        self._rebuild()


def canonical(module: ModuleType) -> str:
    """The one name a module is reloaded under: ``__mp_main__`` is ``__main__`` (the same
    module object under a second name), and any alias is its ``__name__``."""
    name = module.__name__
    return name if sys.modules.get(name) is module else _alias_of(module)


def _alias_of(module: ModuleType) -> str:
    for name, candidate in list(sys.modules.copy().items()):
        if candidate is module:
            return name
    return module.__name__


def import_root(path: str) -> str:
    """The ``sys.path`` entry ``path`` is imported from (the longest that holds it), with a
    trailing separator; the file's folder when none does."""
    best = ""
    for entry in sys.path:
        folder = os.path.abspath(entry or os.curdir).rstrip(os.sep) + os.sep
        if path.startswith(folder) and len(folder) > len(best):
            best = folder
    return best or os.path.dirname(path).rstrip(os.sep) + os.sep


class _Project:
    """The loaded modules outside the standard library and site-packages (the user's code),
    re-listed when the loaded modules change (their number, or the last one imported: modules
    dropped and others imported leave the number as it was)."""

    def __init__(self) -> None:
        self._count: tuple[int, str, int] = (-1, "", 0)
        self._modules: list[tuple[str, ModuleType, str]] = []
        self._excluded: tuple[str, ...] | None = None
        self.judged: dict[str, bool] = {}  # file -> inside the watchers' scopes

    def modules(self) -> list[tuple[str, ModuleType, str]]:
        if self._excluded is None:
            self._excluded = tuple(r.rstrip(os.sep) + os.sep for r in excluded_roots())
        modules = sys.modules
        last = next(reversed(modules), "")
        count = (len(modules), last, id(modules.get(last)))
        if count != self._count:
            self._count = count
            found = []
            for name, module in list(sys.modules.copy().items()):
                # Not every value is a module (some libraries put objects there): getattr.
                file = _file_of(module)
                if file is None or file.startswith(self._excluded):
                    continue
                if getattr(module, "__name__", None) != name:  # an alias: under its own name
                    continue
                found.append((name, module, file))
            self._modules = found
            self.judged.clear()
        return self._modules


_project = _Project()


# The scopes of the running watchers: the importer search reads only modules they may reload.
_scopes: list[Callable[[str], bool]] = []


def watched_scope(contains: Callable[[str], bool] | None, *, remove: bool = False) -> None:
    """Register (or, with ``remove``, forget) a running watcher's :meth:`Scope.contains`.

    While a watcher runs, what it watches is the user's code: a module outside it (an
    editable install of a library that is not watched) is never read as a possible importer.
    """
    if contains is None:
        return
    if remove:
        if contains in _scopes:
            _scopes.remove(contains)
    elif contains not in _scopes:
        _scopes.append(contains)
    _project.judged.clear()


def search_scope() -> Callable[[str], bool] | None:
    """Whether a file may hold an importer: inside a running watcher's scope (None: no
    watcher runs, every module of the project may)."""
    scopes = tuple(_scopes)
    if not scopes:
        return None
    return lambda file: any(contains(file) for contains in scopes)


def project_modules() -> list[tuple[str, ModuleType, str]]:
    """The loaded user modules, as (name, module, file): outside the standard library,
    site-packages and hotswap itself, and inside the running watchers' scopes, if any."""
    modules = _project.modules()
    scope = search_scope()
    if scope is None:
        return modules
    judged = _project.judged
    found = []
    for entry in modules:
        file = entry[2]
        inside = judged.get(file)
        if inside is None:
            inside = judged[file] = scope(file)
        if inside:
            found.append(entry)
    return found
