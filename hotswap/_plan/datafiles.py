"""Data files read by module-level code: which top-level statement of which module opened
which file under the watched paths (``RATES = json.load(open("rates.json"))``).

Recording is done by an audit hook (:func:`sys.addaudithook`), installed on the first
:func:`track` and never removed (Python cannot remove one). While nothing is tracked it returns
after one comparison; while paths are tracked, after two, unless module code under them began
running in this thread (its ``exec`` event arms the thread; the first opening that finds no
such code on the stack disarms it). An opening for reading is recorded when the
code that opens is running under the top-level code of a module whose file lies under the
tracked paths and runs because its module is being imported or because hotswap runs it (the
statements a reload runs; not a script's main loop, under which every opening happens), the file
opened lies under them too, and it is not the import system reading source or bytecode, nor
hotswap itself (a :func:`hotswap.live_config` made at module level watches its own file). The
record names the module and the first and last line of the *top-level statement* that was
running, so a change of the file can re-run exactly that statement and its dependents.

The reload engine uses :func:`readers` for a changed file, :func:`forget` before it runs a
module's statements again (they record afresh as they run: a reload's statements are module
code too), and :func:`relocate` after a committed reload moved kept statements to other lines.
"""

from __future__ import annotations

import ast
import bisect
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hotswap._ops import forks as _forks
from hotswap._plan.modules import OWN_DIR as _OWN_DIR

__all__ = (
    "Reader",
    "forget",
    "readers",
    "recorded",
    "relocate",
    "reset",
    "restore",
    "track",
    "tracking",
    "untrack",
)


@dataclass(frozen=True, order=True)
class Reader:
    """A top-level statement that read a data file while it ran.

    Attributes:
        module: the module's name (``__main__`` for the script).
        line: the statement's first line (its first decorator's, for a decorated definition).
        end_line: its last line.
    """

    module: str
    line: int
    end_line: int


# The roots tracked now (real paths); empty while tracking is off: the hook's fast exit.
_roots: tuple[str, ...] = ()
_installed = False
_lock = _forks.guarded(threading.Lock(), "data files")
# data file (real path) -> its readers, in the order they first read it
_readers: dict[str, dict[Reader, None]] = {}
# code filename -> whether it lies under the roots (cleared when the roots change)
_under_roots: dict[str, bool] = {}
# source filename -> ((size, mtime_ns), sorted statement starts, their ends)
_spans: dict[str, tuple[tuple[int, int], list[int], list[int]]] = {}

# Per thread: whether module code under the roots may be running (set by its "exec" event).
_armed = threading.local()

_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".so", ".pth")
_WRITING = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_MAX_DEPTH = 200  # frames walked per opening at most; deeper stacks are not attributed


def track(roots: Iterable[str | os.PathLike[str]]) -> None:
    """Record data files under ``roots`` read by module-level code under ``roots`` from now on
    (replaces the roots tracked before; records made so far are kept)."""
    global _roots, _installed
    resolved = tuple(sorted({os.path.realpath(os.fspath(r)) for r in roots}))
    with _lock:
        _under_roots.clear()
        _roots = resolved
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


def untrack() -> None:
    """Stop recording (the hook stays installed and returns at once); records are kept."""
    global _roots
    with _lock:
        _roots = ()
        _under_roots.clear()


def tracking() -> tuple[str, ...]:
    """The roots tracked now (empty: off)."""
    return _roots


def readers(path: str | os.PathLike[str]) -> tuple[Reader, ...]:
    """The statements that read the data file ``path``, in the order they first read it."""
    if not _readers:  # the watcher asks for every non-Python file event: no syscall then
        return ()
    real = os.path.realpath(os.fspath(path))
    with _lock:
        return tuple(_readers.get(real, ()))


def recorded() -> dict[str, tuple[Reader, ...]]:
    """Every data file recorded (real paths) and its readers."""
    with _lock:
        return {path: tuple(found) for path, found in _readers.items()}


def forget(module: str, lines: Iterable[int] | None = None) -> None:
    """Drop the records of ``module`` (only those of the statements starting at ``lines``, when
    given): call it before running those statements again, or when the module goes away."""
    starts = None if lines is None else set(lines)
    with _lock:
        for path in list(_readers):
            found = _readers[path]
            for reader in [r for r in found if r.module == module]:
                if starts is None or reader.line in starts:
                    del found[reader]
            if not found:
                del _readers[path]


def restore(modules: Iterable[str], records: Mapping[str, Iterable[Reader]]) -> None:
    """Put the records of ``modules`` back as they were in ``records`` (taken by
    :func:`recorded`): their statements were forgotten to run again, and did not (a failed or
    refused reload), so they still read what they read before."""
    names = set(modules)
    for name in names:
        forget(name)
    with _lock:
        for path, found in records.items():
            for reader in found:
                if reader.module in names:
                    _readers.setdefault(path, {})[reader] = None


def relocate(module: str, moves: Mapping[int, tuple[int, int]]) -> None:
    """Follow ``module``'s kept statements to their lines in its new source.

    Args:
        module: the module a reload changed.
        moves: old first line -> (new first line, new last line), for each kept statement that
            moved; records of other statements are left as they are.
    """

    def moved(reader: Reader) -> Reader:
        if reader.module == module and reader.line in moves:
            return Reader(module, *moves[reader.line])
        return reader

    with _lock:
        for path, found in list(_readers.items()):
            _readers[path] = {moved(r): None for r in found}  # first-read order kept


def reset() -> None:
    """Stop recording and forget every record (for tests)."""
    untrack()
    with _lock:
        _readers.clear()
        _spans.clear()


def _hook(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audited event of the program (an import brings four: two openings, a
    # compile, an exec): the common cases return before anything costs (no context manager,
    # no call; with them, about 12 µs an import, 15% of a small module's import).
    if not _roots:
        return
    # An audit hook that raises would fail the program's open(): recording is best effort.
    if event == "open":
        if not getattr(_armed, "on", False):
            return
        path = args[0] if args else None
        if path.__class__ is str and path.endswith(_CODE_SUFFIXES):
            return  # the import system reading a module's source or bytecode: not data
        try:
            if _record(args) is False:
                _armed.on = False  # that module code is done: back to the one-comparison path
        except Exception:  # best effort, see above
            pass
    elif event == "exec":
        # Module code under the roots starts running in this thread (an import executes it,
        # so does a reload): arm the walk for this thread's openings until one finds none.
        code = args[0] if args else None
        if getattr(code, "co_name", None) != "<module>":
            return
        try:
            filename = code.co_filename  # type: ignore[union-attr]
            known = _under_roots.get(filename)
            if known if known is not None else _code_under_roots(filename):
                _armed.on = True
        except Exception:  # best effort, see above
            pass


def _under(path: str) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in _roots)


def _code_under_roots(filename: str) -> bool:
    known = _under_roots.get(filename)
    if known is None:
        known = os.path.isabs(filename) and (_under(filename) or _under(os.path.realpath(filename)))
        _under_roots[filename] = known
    return known


def _record(args: tuple[Any, ...]) -> bool | None:
    """Record an opening; False when no module code being loaded is on the stack (None: not
    looked, the opening is not a data read)."""
    path, mode, flags = (*args, None, None, None)[:3]
    if path is None or isinstance(path, int):
        return None  # a file descriptor: nothing names the file
    if isinstance(mode, str):
        if any(c in mode for c in "wax+"):
            return None
    elif isinstance(flags, int) and flags & _WRITING:
        return None
    name = os.fsdecode(os.fspath(path))
    if name.endswith(_CODE_SUFFIXES):
        return None
    frame = sys._getframe(2)  # past this function and the hook
    depth = 0
    while frame is not None and depth < _MAX_DEPTH:
        code = frame.f_code
        filename = code.co_filename
        if filename.startswith(("<frozen importlib", _OWN_DIR)):
            return None  # the import system reading a module, or hotswap reading its files
        if code.co_name == "<module>" and _code_under_roots(filename) and _loading(frame):
            module = frame.f_globals.get("__name__")
            if isinstance(module, str):
                _add(name, module, filename, frame.f_lineno)
            return True
        frame = frame.f_back  # type: ignore[assignment]
        depth += 1
    return False


def _loading(frame: Any) -> bool:
    """Whether module code runs because its module is being imported, or because hotswap runs
    it (a reload's statements).

    Module code also runs for good: a script's main loop (``__main__``, run by runpy) sits
    under every opening the program makes; those are not reads at import.
    """
    spec = frame.f_globals.get("__spec__")
    if getattr(spec, "_initializing", False):  # set by importlib while the module executes
        return True
    caller = frame.f_back
    while caller is not None and caller.f_code.co_filename.startswith("<frozen importlib"):
        caller = caller.f_back
    return caller is not None and caller.f_code.co_filename.startswith(_OWN_DIR)


def _add(name: str, module: str, filename: str, lineno: int) -> None:
    real = os.path.realpath(os.path.abspath(name))
    if not _under(real) or "__pycache__" in real:
        return
    first, last = _statement(filename, lineno)
    reader = Reader(module, first, last)
    with _lock:
        _readers.setdefault(real, {})[reader] = None


def _statement(filename: str, lineno: int) -> tuple[int, int]:
    """The first and last line of the top-level statement of ``filename`` holding ``lineno``."""
    try:
        stat = os.stat(filename)
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = _spans.get(filename)
        if cached is None or cached[0] != stamp:
            with open(filename, "rb") as handle:  # recursion is harmless: it is a .py file
                tree = ast.parse(handle.read(), filename)
            starts: list[int] = []
            ends: list[int] = []
            for node in tree.body:
                decorators = getattr(node, "decorator_list", None) or ()
                starts.append(min([node.lineno, *(d.lineno for d in decorators)]))
                ends.append(node.end_lineno or node.lineno)
            cached = (stamp, starts, ends)
            _spans[filename] = cached
        _, starts, ends = cached
        index = bisect.bisect_right(starts, lineno) - 1
        if index >= 0 and starts[index] <= lineno <= ends[index]:
            return starts[index], ends[index]
    except (OSError, SyntaxError, ValueError):
        pass  # the line alone still says where
    return lineno, lineno
