"""What the importer search reads: the user's modules that can import the changed one, inside
the watched paths, never hotswap's own modules; each parsed once per content (issue 26)."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import hotswap
from hotswap._engine import importers as _importers
from hotswap._plan import modules as _modules
from hotswap._plan import sources as _sources
from hotswap._plan import statements as _statements

OWN = os.path.dirname(os.path.realpath(hotswap.__file__))


class Spy:
    """Records every file the importer search reads and every source text it parses."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: list[str] = []
        self.parsed: list[str] = []
        known_text, peek, parse = _importers.known_text, _sources.peek, _statements.parse_module

        def spy_text(name: str, file: str) -> str | None:
            self.read.append(os.path.realpath(file))
            return known_text(name, file)

        def spy_peek(path: str) -> bytes | None:
            self.read.append(os.path.realpath(path))
            return peek(path)

        def spy_parse(text: str, *args: object, **kwargs: object) -> _statements.ModuleSource:
            self.parsed.append(text)
            return parse(text, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(_importers, "known_text", spy_text)
        monkeypatch.setattr(_sources, "peek", spy_peek)
        monkeypatch.setattr(_statements, "parse_module", spy_parse)

    def clear(self) -> None:
        self.read.clear()
        self.parsed.clear()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    return Spy(monkeypatch)


def test_importer_search_never_reads_hotswaps_own_modules(reloading, spy):
    # "plan" and "records" are words all over hotswap's sources: a text search over every
    # module outside site-packages took them for possible importers (an editable install).
    reloading.load("plan", "RATE = 1\n")
    user = reloading.load("records", "from plan import RATE\n")
    spy.clear()
    result = reloading.reload("plan", "RATE = 2\n")
    assert result.ok, result.error
    assert [d.module for d in result.dependents] == ["records"]
    assert user.RATE == 2
    assert spy.read, "the spy saw nothing: it watches the wrong functions"
    assert not [f for f in spy.read if f.startswith(OWN + os.sep)]


def test_hotswap_package_is_never_user_code():
    assert OWN in _modules.excluded_roots()
    assert not _modules.Scope([os.path.dirname(OWN)]).contains(os.path.join(OWN, "_api.py"))
    assert not [f for _, _, f in _modules.project_modules() if f.startswith(OWN + os.sep)]


def test_importer_search_never_reads_modules_outside_the_watched_paths(
    project, watch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy
):
    # A library installed in editable mode: on sys.path, outside site-packages, not watched.
    library = tmp_path / "library"
    library.mkdir()
    (library / "vendored.py").write_text("from settings import RATE  # vendored\n")
    monkeypatch.syspath_prepend(str(library))
    settings = project.load("settings", "RATE = 1\n")
    user = project.load("user", "from settings import RATE\n")
    import vendored  # type: ignore[import-not-found]

    try:
        seen = watch([str(project.root)])
        spy.clear()
        project.path("settings").write_text("RATE = 2\n")
        seen.wait_count(1)
        result = seen.results[0]
        assert result.ok, result.error
        assert settings.RATE == user.RATE == 2
        assert [d.module for d in result.dependents] == ["user"]
        assert vendored.RATE == 1  # a library is not followed
        assert str(library / "vendored.py") not in spy.read
        assert not [t for t in spy.parsed if "# vendored" in t]
    finally:
        sys.modules.pop("vendored", None)


def test_importer_search_parses_only_modules_that_can_import_the_changed_one(reloading, spy):
    reloading.load("tariff", "RATE = 1\n")
    reloading.load("mentions", "# tariff is named here, never imported\nTARIFF = 'tariff'\n")
    reloading.load("unrelated", "VALUE = 3\n")
    user = reloading.load("buyer", "from tariff import RATE\n")
    spy.clear()
    result = reloading.reload("tariff", "RATE = 2\n")
    assert result.ok, result.error
    assert user.RATE == 2
    assert "from tariff import RATE\n" in spy.parsed
    assert not [t for t in spy.parsed if t.startswith(("# tariff is named", "VALUE = 3"))]


# What the search for ``from`` imports found when its pattern began with ``\b`` (it tried the
# whole pattern at every position of a text: 0.13 s for 10 MB, holding the interpreter).
_FROM_BEFORE = r"\bfrom\b[\s\\]*(\.*)[\s\\]*([\w.]*?)[\s\\]*\bimport\b[\s\\]*(\([^)]*\)|[^\n;#]*)"
_FROM_TEXTS = (
    "from a import b\nfrom .pkg.mod import (x,\n    y)  # c\nfrom .. import z; from q import r\n",
    "datafrom a import b\n_from c import d\nfromage = 1\nx.from_ = 2\nfrom e import f\n",
    's = \'from g import h\'\n"""Docs: datafrom i import j, from k import l"""\n',
    "from \\\n    m import n\nfromfrom o import p\nfrom\tq\timport r as s\nfrom",
    "éfrom a import b\nfrom ü import v\n1from w import x\nfrom y import (\nfrom z import t)\n",
)


@pytest.mark.parametrize("text", _FROM_TEXTS)
def test_importer_search_reads_from_imports_as_a_word_boundary_search_did(text):
    expected = tuple(
        (len(dots), module, tuple(re.findall(r"\w+", names)))
        for dots, module, names in re.findall(_FROM_BEFORE, text)
    )
    assert _importers.from_imports("text.py", text) == expected
    data = text.encode()  # (bytes: the import-time source; \w is ASCII there)
    expected_bytes = tuple(
        (
            len(dots),
            module.decode("ascii", "replace"),
            tuple(w.decode("ascii", "replace") for w in re.findall(rb"\w+", names)),
        )
        for dots, module, names in re.findall(_FROM_BEFORE.encode(), data)
    )
    assert _importers.from_imports("bytes.py", data) == expected_bytes


def test_importer_parse_is_cached_by_content(reloading, spy):
    # ``import fee`` binds the module: a possible importer, whose statements read fee.RATE
    # only inside a function, so none of them runs and it is searched again at every reload.
    reloading.load("fee", "RATE = 1\n")
    reader = reloading.load("reader", "import fee\n\ndef rate():\n    return fee.RATE\n")
    assert reloading.reload("fee", "RATE = 2\n").ok
    assert reader.rate() == 2
    path = reloading.path("reader")
    stamp = path.stat().st_mtime_ns + 5_000_000_000
    os.utime(path, ns=(stamp, stamp))  # touched, same content
    spy.clear()
    result = reloading.reload("fee", "RATE = 3\n")
    assert result.ok, result.error
    assert reader.rate() == 3
    assert not [t for t in spy.parsed if t.startswith("import fee")]


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_enable_prepares_the_importers_before_the_first_save(project, watch, spy):
    # Imported before the watcher starts, as a program's modules are before enable().
    constants = project.load("constants", "RATE = 1\n")
    user = project.load("shop", "from constants import RATE\n\nPRICE = RATE * 10\n")
    path = os.path.realpath(project.path("shop"))
    seen = watch([str(project.root)])
    _wait_until(lambda: _importers.prepared(path))
    spy.clear()
    project.path("constants").write_text("RATE = 2\n")
    seen.wait_count(1)
    result = seen.results[0]
    assert result.ok, result.error
    assert constants.RATE == user.RATE == 2
    assert user.PRICE == 20
    assert [d.module for d in result.dependents] == ["shop"]
    assert not [t for t in spy.parsed if t.startswith("from constants")]


def _age(path: Path) -> None:
    """Date a file an hour back: written before the program started, as a project's are."""
    stamp = time.time() - 3600
    os.utime(path, (stamp, stamp))


def test_enable_prepares_the_baseline_of_modules_imported_before(
    project, watch, monkeypatch: pytest.MonkeyPatch
):
    module = project.load(
        "early", "EVENTS = []\nEVENTS.append('import')\n\ndef rate():\n    return 1\n"
    )
    path = project.path("early")
    _sources.take(str(path))  # as if imported before hotswap: no import-time bytes
    _age(path)
    seen = watch([str(project.root)])
    _wait_until(lambda: _sources.peek(str(path)) is not None)
    synthesized: list[str] = []
    synthesize = _importers.synthesize

    def spy(target, new, file):  # type: ignore[no-untyped-def]
        synthesized.append(target.__name__)
        return synthesize(target, new, file)

    monkeypatch.setattr(_transaction_module(), "synthesize", spy)
    path.write_text("EVENTS = []\nEVENTS.append('import')\n\ndef rate():\n    return 2\n")
    seen.wait_count(1)
    result = seen.results[0]
    assert result.ok, result.error
    assert result.changes.changed == ("rate",)
    assert module.rate() == 2
    assert module.EVENTS == ["import"]  # the unchanged statements did not run again
    assert synthesized == []  # the baseline was ready: not worked out on the save


def test_enable_prepares_the_baseline_of_methods_properties_and_module_calls(project, watch):
    # The live objects confirm the file: a function calling an imported module's function
    # (compiled alone, without the module's imports, CPython 3.11+ makes other bytecode for
    # it; an import inside ``try:`` too) and a class with a property and a static method.
    # Before, neither was confirmed, and the first save of such a module parsed and worked it
    # out from the live objects.
    source = (
        "import functools\nimport math\n\n"
        "try:\n    import json\nexcept ImportError:\n    json = None\n\n"
        "def hypot(a, b):\n    return math.hypot(a, b)\n\n"
        "def dump(x):\n    return json.dumps(x)\n\n"
        "@functools.lru_cache\ndef cached(a):\n    return math.floor(a)\n\n"
        "@functools.total_ordering\nclass Ordered:\n"
        "    def __lt__(self, other):\n        return True\n\n"
        "class Box:\n"
        "    @property\n    def size(self):\n        return math.floor(2.5)\n\n"
        "    @size.setter\n    def size(self, value):\n        pass\n\n"
        "    @staticmethod\n    def unit():\n        return math.sqrt(1)\n"
    )
    module = project.load("shapes", source)
    path = project.path("shapes")
    _sources.take(str(path))  # as if imported before hotswap: no import-time bytes
    _age(path)
    seen = watch([str(project.root)])
    _wait_until(lambda: _sources.peek(str(path)) is not None)
    path.write_text(source.replace("math.sqrt(1)", "math.sqrt(4)"))
    seen.wait_count(1)
    result = seen.results[0]
    assert result.ok, result.error
    assert result.changes.changed == ("Box.unit",)
    assert module.Box.unit() == 2
    assert module.hypot(3, 4) == 5
    assert module.cached(2.5) == 2


def test_warm_up_leaves_a_huge_file_to_its_reload(project, parses):
    # Its parse would keep the collector paused (and the warm-up thread busy) for seconds;
    # its bytes are kept, unread (a whole-module rewrite of it starts from them).
    small = project.load("small_one", "def rate():\n    return 1\n")
    big_source = "".join(f"NAME_{i} = {i}\n" for i in range(30_000)) + "def rate():\n    return 1\n"
    big = project.load("big_one", big_source)
    for module in (small, big):
        _sources.take(module.__file__)  # as if imported before hotswap
        _age(Path(module.__file__))
    parsed = parses.start()
    _importers.warm(lambda: False, since=time.time(), budget=60.0)
    parses.stop()
    assert _sources.peek(small.__file__) is not None
    assert _sources.peek(big.__file__) == big_source.encode()
    assert big_source not in parsed
    result = project.reload("big_one", big_source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert big.rate() == 2


@pytest.mark.parametrize("kept", [False, True], ids=["imported before", "bytes kept"])
def test_warm_up_never_reads_a_huge_file_as_text(project, monkeypatch, kept):
    # Decoding a huge file and searching it for imports are single C calls that hold the
    # interpreter (~0.15 s for 10 MB): begun as saves landed, they kept the watcher's threads
    # from taking those saves' events, however unrelated (issue 26's 10 MB row: the other
    # module's save went live after 110-155 ms instead of 17-42). Its imports serve nothing
    # here: the warm-up parses no huge file.
    big_source = "".join(f"NAME_{i} = {i}\n" for i in range(30_000)) + "def rate():\n    return 1\n"
    big = project.load("big_two", big_source)
    user = project.load("user_two", "from big_two import rate\n")
    for module in (big, user):
        if not kept:
            _sources.take(module.__file__)  # as if imported before hotswap
        _age(Path(module.__file__))
    scanned: list[str] = []
    texts: list[str] = []
    from_imports, known_text = _importers.from_imports, _importers.known_text

    def spy_scan(file: str, text: str | bytes) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
        scanned.append(os.path.realpath(file))
        return from_imports(file, text)

    def spy_text(name: str, file: str) -> str | None:
        texts.append(os.path.realpath(file))
        return known_text(name, file)

    monkeypatch.setattr(_importers, "from_imports", spy_scan)
    monkeypatch.setattr(_importers, "known_text", spy_text)
    _importers.warm(lambda: False, since=time.time(), budget=60.0)
    assert os.path.realpath(user.__file__) in scanned, "the spy saw nothing"
    assert os.path.realpath(big.__file__) not in scanned + texts
    assert _sources.peek(big.__file__) == big_source.encode()  # still kept for its rewrite


def test_enable_never_takes_a_file_edited_since_import_for_what_runs(project, watch):
    module = project.load("edited", "def rate():\n    return 1\n")
    path = project.path("edited")
    _sources.take(str(path))  # as if imported before hotswap: no import-time bytes
    path.write_text("def rate():\n    return 5\n")  # edited after the import, not reloaded
    _age(path)
    other = project.load("sibling", "VALUE = 1\n")
    _sources.take(str(project.path("sibling")))
    _age(project.path("sibling"))
    seen = watch([str(project.root)])
    _wait_until(lambda: _sources.peek(str(project.path("sibling"))) is not None)
    assert _sources.peek(str(path)) is None  # the live objects disagree with the file
    path.write_text("def rate():\n    return 5\n\nEXTRA = 1\n")
    seen.wait_count(1)
    assert seen.results[0].ok, seen.results[0].error
    assert module.rate() == 5  # the edit made before enable() applies too
    assert module.EXTRA == 1
    assert other.VALUE == 1


def _transaction_module():  # type: ignore[no-untyped-def]
    from hotswap._engine import transaction

    return transaction


def test_enable_leaves_the_warm_up_to_the_watchers_thread(reloading, watch, monkeypatch):
    # enable() starts only what the watches need: the warm-up thread is started by the
    # watcher's worker (each thread started costs the caller a hand-over of the interpreter),
    # and a module imported before still gets its baseline prepared.
    module = reloading.load("warmed_late", "def rate():\n    return 1\n")
    path = reloading.path("warmed_late")
    _sources.take(str(path))  # as if imported before hotswap: no import-time bytes
    _age(path)
    started: list[tuple[str, str]] = []
    start = threading.Thread.start

    def spy(thread: threading.Thread) -> None:
        started.append((threading.current_thread().name, thread.name))
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", spy)
    seen = watch([str(reloading.root)])
    caller = threading.current_thread().name
    assert (caller, "hotswap-warm") not in started
    _wait_until(lambda: _sources.peek(str(path)) is not None)
    assert ("hotswap-worker", "hotswap-warm") in started
    path.write_text("def rate():\n    return 2\n")
    seen.wait_count(1)
    assert seen.results[0].ok, seen.results[0].error
    assert module.rate() == 2


def test_first_reload_during_the_warm_up_of_its_module_waits_for_it(reloading, monkeypatch):
    # A save that comes while the warm-up works out the module's baseline takes the warm-up's
    # work (both at it at once took twice as long each): same result as a save after it,
    # and the reload does not work the baseline out again.
    source = "EVENTS = []\nEVENTS.append('import')\n\ndef rate():\n    return 1\n"
    module = reloading.load("midway", source)
    path = reloading.path("midway")
    _sources.take(str(path))  # as if imported before hotswap: no import-time bytes
    _age(path)
    parse, inside, go = _statements.parse_module, threading.Event(), threading.Event()

    def held(text: str, *args: object, **kwargs: object) -> _statements.ModuleSource:
        if threading.current_thread().name == "warm":
            inside.set()  # the warm-up read the file: it parses once the save came
            assert go.wait(10)
        return parse(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_statements, "parse_module", held)
    synthesized: list[str] = []
    synthesize = _importers.synthesize

    def spy(target, new, file):  # type: ignore[no-untyped-def]
        if threading.current_thread().name != "warm":
            synthesized.append(target.__name__)
        return synthesize(target, new, file)

    monkeypatch.setattr(_transaction_module(), "synthesize", spy)
    since = time.time()
    warm = threading.Thread(
        target=_importers._prepare_baseline, args=("midway", module, since), name="warm"
    )
    warm.start()
    assert inside.wait(10)
    preparing = _history_module()._preparing
    waiting = threading.Event()

    class Watched:  # the warm-up's "done" event, telling when the reload waits for it
        def __init__(self, done: threading.Event) -> None:
            self.done = done

        def wait(self, timeout: float | None = None) -> bool:
            waiting.set()
            return self.done.wait(timeout)

    monkeypatch.setitem(preparing, module.__file__, Watched(preparing[module.__file__]))
    path.write_text(source.replace("return 1", "return 2"))
    results: list[hotswap.ReloadResult] = []
    reload = threading.Thread(target=lambda: results.append(hotswap.reload("midway")))
    reload.start()
    assert waiting.wait(10), "the reload did not wait for the warm-up's work"
    go.set()
    reload.join(30)
    warm.join(30)
    assert results, "the reload did not end"
    assert results[0].ok, results[0].error
    assert results[0].changes.changed == ("rate",)
    assert module.rate() == 2
    assert module.EVENTS == ["import"]  # the unchanged statements did not run again
    assert synthesized == []  # the warm-up's baseline was taken, not worked out again


def _history_module():  # type: ignore[no-untyped-def]
    from hotswap._engine import history

    return history


def test_warm_up_waits_for_imports_to_pause_without_spending_its_budget(project, monkeypatch):
    # The warm-up starts once the program's imports paused; that wait is no work (counted as
    # work, a pause as long as the budget left nothing prepared).
    module = project.load("after_quiet", "def rate():\n    return 1\n")
    _sources.take(module.__file__)  # as if imported before hotswap
    _age(Path(module.__file__))
    only = [("after_quiet", module, module.__file__)]
    monkeypatch.setattr(_modules, "project_modules", lambda: only)
    assert _importers.warm(lambda: False, since=time.time(), budget=0.1, quiet=0.12) == 1
    assert _sources.peek(module.__file__) is not None


def test_warm_up_waiting_for_imports_to_pause_ends_when_stopped(project):
    # The watcher's warm-up waits through its stop event: disable() does not wait out the pause.
    stopped = threading.Event()
    thread = threading.Thread(
        target=_importers.warm,
        args=(stopped.is_set,),
        kwargs={"since": time.time(), "quiet": 3600.0, "sleep": stopped.wait},
    )
    thread.start()
    stopped.set()
    thread.join(30)
    assert not thread.is_alive()
