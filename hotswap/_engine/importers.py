"""Who may depend on a change: the sources of the user's modules, cached by file version, and
which of them import from a given module (DESIGN §5.2).

The search reads only the user's modules (inside the running watchers' scopes; never
hotswap's own, the standard library or site-packages), and parses only those whose source
can import the changed module: it names the module's last component, and a ``from`` import
of it or a module object bound to it says it takes names from it (or it reaches the module
through another module's alias of it: :mod:`hotswap._engine.aliases`). What a source
imports is read once per text (a regular expression over the text the module runs, no
parse); a parse is cached by the file and its content hash.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, AnyStr

from hotswap._engine import aliases as _aliases
from hotswap._engine.baseline import synthesize
from hotswap._engine.gil import collector_paused
from hotswap._engine.history import has_baseline, prepare, preparing, records
from hotswap._plan import modules as _modules
from hotswap._plan import sources as _sources
from hotswap._plan import statements as _statements
from hotswap.exceptions import HotswapError

if TYPE_CHECKING:
    from hotswap._engine.unit import Unit

__all__ = (
    "Texts",
    "absolute",
    "candidates",
    "imports_from",
    "known_source",
    "known_text",
    "prepared",
    "reset",
    "warm",
)


class Texts:
    """The sources of the user's modules, for the importer search and the removal check: the
    change set's new sources, the live ones hotswap knows, else the files (cached by stat)."""

    def __init__(self, units: list[Unit]) -> None:
        self.units = {u.name: u for u in units}

    def of(self, name: str, module: types.ModuleType, file: str) -> str | None:
        unit = self.units.get(name)
        if unit is not None:
            return unit.new.source
        return known_text(name, file)

    def running(self, name: str, module: types.ModuleType, file: str) -> str | bytes | None:
        """The source ``name`` runs, or will run after the change set, without reading the
        file when hotswap has it (the import-time bytes, the live version)."""
        unit = self.units.get(name)
        if unit is not None:
            return unit.new.source
        record = records.get(name)
        if record is not None and record.live is not None and record.namespace is vars(module):
            return record.live.source
        data = _sources.peek(file)
        if data is not None:
            return data
        return known_text(name, file)

    def all(self) -> Iterator[str]:
        """The sources of the modules beside the change set's: those below the same
        ``sys.path`` entry (the project a removed name's callers would be in)."""
        roots = tuple({_modules.import_root(u.path) for u in self.units.values()})
        for name, module, file in _modules.project_modules():
            if not file.startswith(roots):
                continue
            text = self.of(name, module, file)
            if text:
                yield text


_file_texts: dict[str, tuple[tuple[int, int], str]] = {}


def known_text(name: str, file: str) -> str | None:
    record = records.get(name)
    if record is not None and record.live is not None:
        return record.live.source
    try:
        stat = _stat_key(file)
        cached = _file_texts.get(file)
        if cached is not None and cached[0] == stat:
            return cached[1]
        text, _ = _modules.read_source(name, file)
    except (OSError, HotswapError):
        return None
    _file_texts[file] = (stat, text)
    return text


def _stat_key(file: str) -> tuple[int, int]:
    stat = os.stat(file)
    return (stat.st_mtime_ns, stat.st_size)


def known_source(name: str, file: str) -> _statements.ModuleSource | None:
    """The parsed source a module not reloaded yet runs (its imported bytes, else the file),
    parsed once per content: importer searches ask for it on every reload."""
    data = _sources.peek(file)
    text = None if data is None else data.decode("utf-8", "replace")
    text = text or known_text(name, file)
    if text is None:
        return None
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    cached = _parsed.get(file)
    if cached is not None and cached[0] == digest:
        return cached[1]
    try:
        source = _statements.parse_module(text)
    except SyntaxError:
        return None
    _parsed[file] = (digest, source)
    return source


_parsed: dict[str, tuple[bytes, _statements.ModuleSource]] = {}


def imports_from(module: types.ModuleType, source: _statements.ModuleSource, target: str) -> bool:
    """Whether ``module`` takes names from the module ``target``: a ``from`` import of it (or
    of it from its package), or a module-level name bound to it."""
    if _from_imports(module, source, target):
        return True
    namespace = vars(module)
    found = sys.modules.get(target)
    return _binds(namespace, target, found) or _aliases.reaches(namespace, source.source, found)


def follows(
    module: types.ModuleType, source: _statements.ModuleSource, target: str, before: int | None
) -> bool:
    """Whether a change of ``target`` may run statements of ``module`` again: a ``from``
    import of it, an alias that reaches it, or a statement ending before line ``before``
    (None: any) that reads an attribute of it while it runs (``RATE = shop.RATE * 2``). A
    module that only holds ``target`` reads it when its functions are called: nothing runs."""
    if _from_imports(module, source, target):
        return True
    namespace = vars(module)
    found = sys.modules.get(target)
    if _aliases.reaches(namespace, source.source, found):
        return True
    if not _binds(namespace, target, found):
        return False
    for stmt in source.statements:
        if before is not None and stmt.last >= before:
            break  # (the statement a thread runs, and those after it, never run again)
        for local, chain in stmt.info.attribute_reads:
            read = module_attribute(namespace, local, chain)
            if read is not None and read[0] == target:
                return True
    return False


def _from_imports(module: types.ModuleType, source: _statements.ModuleSource, target: str) -> bool:
    package = vars(module).get("__package__") or ""
    for stmt in source.statements:
        for level, relative, attribute, _ in stmt.info.from_imports:
            name = absolute(package, level, relative)
            if target in (name, f"{name}.{attribute}"):
                return True
    return False


# ``from <dots><module> import <names>`` anywhere in a text (a superset: docstrings count too,
# which only costs a parse). The names run to the closing parenthesis or the end of the line.
# The pattern begins with the literal word, so the search skips to each "from" at C speed (a
# leading ``\b`` made it try the whole pattern at every position: 0.13 s for 10 MB, in one
# call that holds the interpreter, against 4 ms); :func:`_matches` checks the word's start.
_FROM = r"from\b[\s\\]*(\.*)[\s\\]*([\w.]*?)[\s\\]*\bimport\b[\s\\]*(\([^)]*\)|[^\n;#]*)"
_FROM_TEXT = re.compile(_FROM)
_FROM_BYTES = re.compile(_FROM.encode())
_WORD_TEXT = re.compile(r"\w+")
_WORD_BYTES = re.compile(rb"\w+")

# file -> (the text it was read from, its from-imports as (level, module, names)).
_FromImports = tuple[tuple[int, str, tuple[str, ...]], ...]
_graph: dict[str, tuple[str | bytes, _FromImports]] = {}


def from_imports(file: str, text: str | bytes) -> _FromImports:
    """The ``from`` imports a source text may hold, read once per text object."""
    cached = _graph.get(file)
    if cached is not None and cached[0] is text:
        return cached[1]
    found: list[tuple[int, str, tuple[str, ...]]] = []
    if isinstance(text, bytes):
        for dots, module, names in _matches(_FROM_BYTES, _WORD_BYTES, text):
            words = tuple(w.decode("ascii", "replace") for w in _WORD_BYTES.findall(names))
            found.append((len(dots), module.decode("ascii", "replace"), words))
    else:
        for level, relative, listed in _matches(_FROM_TEXT, _WORD_TEXT, text):
            found.append((len(level), relative, tuple(_WORD_TEXT.findall(listed))))
    imports = tuple(found)
    _graph[file] = (text, imports)
    return imports


def _matches(
    pattern: re.Pattern[AnyStr], word: re.Pattern[AnyStr], text: AnyStr
) -> Iterator[tuple[AnyStr, AnyStr, AnyStr]]:
    """The groups of each match of ``pattern`` in ``text`` that begins a word: what
    ``findall`` gives for the pattern with ``\\b`` in front (a match inside a longer word,
    ``datafrom``, is passed by one character on, as that ``\\b`` would)."""
    at = 0
    while (match := pattern.search(text, at)) is not None:
        start = match.start()
        if start and word.match(text, start - 1):
            at = start + 1
            continue
        yield match.group(1), match.group(2), match.group(3)
        at = match.end()


def absolute(package: str, level: int, module: str) -> str:
    if not level:
        return module
    base = package.rsplit(".", level - 1)[0] if level > 1 else package
    return f"{base}.{module}" if module else base


def module_attribute(
    namespace: dict[str, object], local: str, chain: tuple[str, ...]
) -> tuple[str, str] | None:
    """``(module, attribute)`` that ``local.chain`` reads in a module whose namespace is
    ``namespace``, when ``local`` is bound to a module and the chain leads to an attribute of
    it (through submodules), else None."""
    value = namespace.get(local)
    if local not in namespace:
        # ``import toolz`` ... ``del toolz`` at the end (toolz.curried): the statements between
        # read the module the import bound, which a fresh import binds again.
        value = sys.modules.get(local)
    if not isinstance(value, types.ModuleType) or not chain:
        return None
    for position, attribute in enumerate(chain):
        inner = getattr(value, attribute, None)
        if isinstance(inner, types.ModuleType) and position < len(chain) - 1:
            value = inner
            continue
        return (_modules.canonical(value), attribute)
    return None


def _binds(namespace: dict[str, object], target: str, found: types.ModuleType | None) -> bool:
    """Whether a namespace holds the module ``target`` or a package above it."""
    if found is None:
        return False
    for value in list(namespace.values()):
        # ``import pkg.mod`` binds ``pkg``: its statements read ``pkg.mod.X``.
        if value is found or (
            isinstance(value, types.ModuleType) and target.startswith(f"{value.__name__}.")
        ):
            return True
    return False


def candidates(target: str, texts: Texts) -> list[str]:
    """The user's loaded modules that may import from ``target``, without parsing any: the
    source names the module's last component, and imports from it or binds it."""
    word = target.rpartition(".")[2]
    word_bytes = word.encode()
    found = sys.modules.get(target)
    chosen = []
    for name, module, file in _modules.project_modules():
        if name == target:
            continue
        text = texts.running(name, module, file)
        if text is None:
            continue
        named = word_bytes in text if isinstance(text, bytes) else word in text
        if not named:
            continue  # cannot import it without naming it
        namespace = vars(module)
        package = namespace.get("__package__") or ""
        takes = any(
            target == imported or any(target == f"{imported}.{n}" for n in names)
            for level, relative, names in from_imports(file, text)
            for imported in (absolute(package, level, relative),)
        )
        if takes or _binds(namespace, target, found):
            chosen.append(name)
    return chosen + _aliases.reachers(target, chosen, texts.running)


def prepared(file: str) -> bool:
    """Whether the parsed source of ``file`` is cached (the warm-up or a search did it)."""
    return file in _parsed


def warm(
    stop: Callable[[], bool],
    *,
    since: float | None = None,
    budget: float = 0.25,
    slice_: float = 0.002,
    quiet: float = 0.0,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """Prepare the importer search before the first save, in the background: list the user's
    modules, read what each imports, and parse the likely importers (those that import from
    another user module), until ``budget`` seconds of work are spent. Returns how many
    modules were parsed.

    It works in slices of ``slice_`` seconds with four times as long a pause after each, so a
    program starting meanwhile keeps most of the interpreter (its imports are not slowed by
    much); ``stop()`` is asked between modules, and what was not prepared is done by the
    reload that needs it. ``since`` (a ``time.time()``): files written after it are left to
    the reloads their saves bring. ``quiet`` (seconds): while the program imports modules, the
    warm-up waits until none came for that long, before it begins and after each slice (the
    program's start and its imports come first). ``sleep``: how it waits (the watcher's ends
    when it stops).
    """
    spent = 0.0
    began = time.perf_counter()
    loaded = len(sys.modules)

    def settle() -> bool:
        """Wait while the program imports; whether to go on."""
        nonlocal loaded
        while quiet and not stop():
            sleep(quiet)
            now = len(sys.modules)
            if now == loaded:
                return True
            loaded = now
        return not stop()

    def pause() -> bool:
        """Give the interpreter back after each slice; whether to go on."""
        nonlocal spent, began
        now = time.perf_counter()
        importing = quiet and len(sys.modules) != loaded  # (looked at between modules)
        if importing or now - began >= slice_:
            spent += now - began
            sleep(4 * slice_)
            if importing and not settle():
                return False
            began = time.perf_counter()
        return not stop() and spent < budget

    if not settle():
        return 0
    began = time.perf_counter()  # (the wait is no work)

    texts = Texts([])
    modules = _modules.project_modules()
    names = {name for name, _, _ in modules}
    # A huge file is never read as text nor scanned here: its decode and the search for its
    # imports are C calls that hold the interpreter from start to end (0.15 s for 10 MB when
    # the search's pattern began with ``\b``, 15 ms since), and the watcher's threads cannot
    # take the events of saves made meanwhile, however unrelated (issue 26's 10 MB row). It
    # is not parsed ahead either (see below).
    huge: set[str] = set()
    likely = []
    for name, module, file in modules:
        if not pause():
            return 0
        if _larger_than(file, _WARM_LARGEST):
            huge.add(file)
            continue
        text = texts.running(name, module, file)
        if text is None:
            continue
        package = vars(module).get("__package__") or ""
        imported = {
            absolute(package, level, relative) for level, relative, _ in from_imports(file, text)
        }
        if imported & names:
            likely.append((name, file))
    parsed = 0
    # Each module is parsed with the collector paused: beside the program's own threads
    # (pytest rewriting asserts builds syntax trees too), a tree is then built without a
    # thread switch, which CPython before 3.13 needs (see collector_paused). A huge file is
    # left to its reload: its parse would keep the collector paused for seconds.
    for name, module, file in modules:  # the baselines of the first reloads
        if not pause():
            return parsed
        if file in huge:
            _remember_huge(name, file, since)
            continue
        with collector_paused():
            parsed += _prepare_baseline(name, module, since)
    for name, file in likely:  # (no huge file among them)
        if not pause():
            break
        with collector_paused():
            if known_source(name, file) is not None:
                parsed += 1
    return parsed


# The largest source the warm-up parses (bytes); the watcher reads a larger one ahead, apart.
_WARM_LARGEST = 256 * 1024


def _larger_than(file: str, size: int) -> bool:
    try:
        return os.stat(file).st_size > size
    except OSError:
        return True


def _remember_huge(name: str, file: str, since: float | None) -> None:
    """A huge file is not parsed ahead (seconds), but its bytes are kept when it was written
    before the program started, so that it is what the module runs: a whole-module rewrite
    of it starts from them without reading a statement (:mod:`hotswap._engine.rewrite`)."""
    if records.get(name) is not None or since is None or _sources.peek(file) is not None:
        return
    try:
        with open(file, "rb") as handle:
            data = handle.read()
            written = os.fstat(handle.fileno()).st_mtime
    except OSError:
        return
    if written < since - 1.0:
        _sources.remember(file, data)


def _prepare_baseline(name: str, module: types.ModuleType, since: float | None) -> int:
    """Parse, ahead of its first reload, the source a module runs: the bytes it was imported
    from, or, for a module imported before hotswap, its file once the live objects confirm
    that the file is what runs (else the first reload works it out from the live objects, as
    it always did). Returns 1 when something was parsed."""
    file = getattr(module, "__file__", None)
    if records.get(name) is not None or not isinstance(file, str):
        return 0  # reloaded already (or being reloaded): its live version is known
    with preparing(file):  # a reload that comes meanwhile waits for this one's work
        return _prepare_file(name, module, file, since)


def _prepare_file(name: str, module: types.ModuleType, file: str, since: float | None) -> int:
    data = _sources.peek(file)
    recorded = data is not None
    if data is not None and has_baseline(data):
        return 0  # by an earlier warm-up (another enable() in this process)
    if data is None:
        try:
            with open(file, "rb") as handle:
                data = handle.read()
                written = os.fstat(handle.fileno()).st_mtime
        except OSError:
            return 0
        if since is None or written >= since - 1.0:
            return 0  # saved around or after the start: its own reload reads it
    try:
        parsed = _statements.parse_module(_modules.decode_source(name, file, data))
    except (SyntaxError, HotswapError):
        return 0
    if not recorded:
        baseline = synthesize(module, parsed, file, cache=False)
        if len(baseline.statements) != len(parsed.statements) or any(
            mine is not theirs
            for mine, theirs in zip(baseline.statements, parsed.statements, strict=True)
        ):
            return 1  # the live objects differ from the file: leave it to the reload
        _sources.remember(file, data)
    prepare(data, parsed)
    return 1


def reset() -> None:
    """Forget the cached sources (for tests)."""
    _file_texts.clear()
    _parsed.clear()
    _graph.clear()
