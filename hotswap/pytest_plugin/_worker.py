"""The warm worker: a process that holds the imports and runs pytest again and again.

Started by the supervisor as ``python -m hotswap.pytest_plugin._worker ROOT cwd|nocwd --
OPTIONS``. Its
stdin carries commands from the supervisor (one JSON object a line); its stdout carries pytest's
report and, on lines marked with :data:`MARK`, messages back. Both are duplicated before pytest
runs, because pytest's fd capture swaps file descriptors 0-2 while it runs.

Before each run the worker makes its process equal the disk (module docstring of
:mod:`hotswap.pytest_plugin`): mutated module state is reset, changed source modules are
reloaded with policy ``"off"``, a module whose reload failed is dropped with its importers (so
pytest's collection imports it and reports the error a fresh run gives), test modules and
conftests are dropped (pytest collects and rewrites them again), ``functools`` caches of project
functions are cleared.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import queue
import sys
import threading
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import hotswap
from hotswap.pytest_plugin._selection import ImportGraph, is_test_file, set_test_patterns

__all__ = ("MARK", "Worker", "main")

# Marks a message line on the worker's stdout; pytest's own output never holds these bytes.
MARK = b"\x1e\x1fhotswap:"
# Containers larger than this are fingerprinted by length only (cost stays bounded).
_SHALLOW_LIMIT = 100_000


def _fingerprint(value: object) -> object:
    """Identity of a global plus, for builtin containers, the identity of their items: a test
    that rebinds the global or grows the container changes it."""
    kind = type(value)
    if kind is list or kind is dict or kind is set or kind is bytearray:
        assert isinstance(value, list | dict | set | bytearray)
        if len(value) > _SHALLOW_LIMIT:
            return (id(value), len(value))
        if isinstance(value, dict):
            return (id(value), tuple((id(k), id(v)) for k, v in value.items()))
        if isinstance(value, bytearray):
            return (id(value), bytes(value))
        if isinstance(value, set):
            return (id(value), frozenset(map(id, value)))
        return (id(value), tuple(map(id, value)))
    return id(value)


def _state(module: types.ModuleType) -> dict[str, object]:
    """A module's globals, fingerprinted; for its own classes, their attributes too (a test
    that sets ``Config.value = 3`` changes the class, not the global)."""
    found: dict[str, object] = {}
    for name, value in list(vars(module).items()):
        if (name.startswith("__") and name.endswith("__")) or isinstance(value, types.ModuleType):
            continue  # a package gains its submodules as attributes when they are imported
        if isinstance(value, type) and value.__module__ == module.__name__:
            members = tuple(
                (key, _fingerprint(member))
                for key, member in list(vars(value).items())
                if key not in ("__dict__", "__weakref__", "__doc__")
            )
            found[name] = (id(value), members)
        else:
            found[name] = _fingerprint(value)
    return found


def _clear_caches(module: types.ModuleType) -> None:
    """Empty the functools caches of a module's functions and of its classes' methods."""
    for value in list(vars(module).values()):
        owners: list[Any] = [value]
        if isinstance(value, type) and value.__module__ == module.__name__:
            owners.extend(vars(value).values())
        for owner in owners:
            target = getattr(owner, "__func__", owner)  # staticmethod/classmethod
            clear = getattr(target, "cache_clear", None)
            if callable(clear) and getattr(target, "__module__", None) == module.__name__:
                clear()


class _Run:
    """pytest plugin for one run: restricts collection to the selected test files, records
    outcomes, and stops early when the supervisor says a newer save superseded the run."""

    def __init__(self, worker: Worker, files: set[str] | None) -> None:
        self.worker = worker
        self.files = files
        self.selected: list[str] = []
        self.outcomes: dict[str, str] = {}
        self.patterns: list[str] = []
        self.scope: list[str] = []
        self.conftest: str | None = None  # an initial conftest.py that failed to import

    @pytest.hookimpl(wrapper=True)
    def pytest_load_initial_conftests(self) -> Any:
        try:
            return (yield)
        except Exception as error:
            # pytest reports it (ImportError while loading conftest ...) and exits with 4, as
            # a fresh run does; unlike a usage error, a save can fix it: the session goes on.
            path = getattr(error, "path", None)
            if type(error).__name__ == "ConftestImportFailure" and path is not None:
                self.conftest = os.path.relpath(str(path), self.worker.root)
            raise

    def pytest_ignore_collect(self, collection_path: Any) -> bool | None:
        path = str(collection_path)
        if self.files is not None and is_test_file(path) and path not in self.files:
            return True
        return None

    def pytest_configure(self, config: pytest.Config) -> None:
        # Which files are test modules (dropped before each run, filtered by selection).
        self.patterns = list(config.getini("python_files"))
        set_test_patterns(self.patterns)
        # Where the tests are when no path was given: testpaths, else the working directory.
        self.scope = [
            os.path.abspath(os.path.join(config.invocation_params.dir, a.split("::", 1)[0]))
            for a in config.args
        ]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.outcomes[report.nodeid] = "error"

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = [item.nodeid for item in session.items]
        self.worker.remember_state()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        if report.when == "call" or report.skipped:
            self.outcomes[nodeid] = report.outcome if not report.skipped else "skipped"
        elif report.failed:
            self.outcomes[nodeid] = "error"  # setup or teardown

    def pytest_runtest_logfinish(self) -> None:
        if self.worker.stop.is_set():
            self.worker.session_stopped = True
            session = self.worker.session
            if session is not None:
                session.shouldstop = "hotswap: superseded by a newer save"

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.worker.session = session


class Worker:
    """The warm process's state between runs."""

    def __init__(self, root: str, options: Sequence[str], control: int, out: int) -> None:
        self.root = os.path.abspath(root)
        self.options = list(options)
        self.out = out
        self.commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stop = threading.Event()
        self.session: pytest.Session | None = None
        self.session_stopped = False
        self.graph = ImportGraph(self.root)
        self.states: dict[str, dict[str, object]] = {}  # clean state, at collection's end
        self.imported_during_run: set[str] = set()
        self.runs = 0
        threading.Thread(
            target=self._read, args=(control,), name="hotswap-commands", daemon=True
        ).start()

    # --- the channel ------------------------------------------------------------------------

    def _read(self, control: int) -> None:
        with os.fdopen(control, "rb") as stream:
            for line in stream:
                command = json.loads(line)
                if command.get("cmd") == "stop":
                    self.stop.set()  # read while a run is under way: it must not queue
                else:
                    self.commands.put(command)
        self.commands.put(None)  # the supervisor is gone

    def send(self, message: dict[str, Any]) -> None:
        """Send a message to the supervisor, after whatever pytest printed."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(self.out, MARK + json.dumps(message).encode() + b"\n")

    # --- what is loaded ---------------------------------------------------------------------

    def _project_modules(self) -> dict[str, list[str]]:
        """File -> names of the loaded modules backed by a project file."""
        found: dict[str, list[str]] = {}
        prefix = self.root + os.sep
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and file.endswith(".py"):
                path = os.path.abspath(file)
                if path.startswith(prefix) and os.sep + "site-packages" + os.sep not in path:
                    found.setdefault(path, []).append(name)
        return found

    def remember_state(self) -> None:
        """Fingerprint the project's source modules as they are before tests run."""
        self.states = {
            name: _state(sys.modules[name])
            for path, names in self._project_modules().items()
            if not _is_test_or_conftest(path)
            for name in names
            if name in sys.modules
        }

    def _drop(self, names: Sequence[str]) -> None:
        for name in names:
            sys.modules.pop(name, None)
            parent, _, child = name.rpartition(".")
            if parent and parent in sys.modules:
                # the next import sets it again; a stale attribute would hide a missing module
                vars(sys.modules[parent]).pop(child, None)
            self.states.pop(name, None)

    # --- before a run -----------------------------------------------------------------------

    def prepare(self, changed: Sequence[str]) -> None:
        """Make the loaded project equal the files on disk."""
        loaded = self._project_modules()
        broken: list[str] = []
        applied: list[hotswap.ReloadResult] = []
        applied_paths: list[str] = []
        done: set[str] = set()

        def settle(path: str, result: hotswap.ReloadResult) -> None:
            self._report(result)
            done.add(result.module)
            if not result.ok:
                broken.append(path)
            elif result.kind != "unchanged":
                applied.append(result)
                applied_paths.append(path)

        for path, names in loaded.items():
            if _is_test_or_conftest(path) or not os.path.exists(path):
                continue
            for name in names:
                module = sys.modules.get(name)
                before = self.states.get(name)
                if module is None:
                    continue
                if before is None and name not in self.imported_during_run:
                    continue
                if before is not None and _state(module) == before:
                    continue
                # A module first imported while tests ran has no clean state on record: it
                # may hold what they did to it, so it is reset like a mutated one.
                # A test rebound or grew this module's state: run it again from the top (this
                # also applies the file's current source).
                settle(path, hotswap.reload(module, policy="off", force=True))
        sources = [p for p in changed if p.endswith(".py") and not _is_test_or_conftest(p)]
        if len(sources) > 1:
            # A change set goes in import order: a module's new code may use what the new
            # code of a module it imports defines.
            self.graph.scan()
            sources = self.graph.ordered(sources)
        for path in sources:
            for name in loaded.get(path, ()):
                if name not in sys.modules or name in done:
                    continue
                if not os.path.exists(path):
                    broken.append(path)
                    continue
                settle(path, hotswap.reload(name, policy="off"))
        if applied:
            broken += self._follow_importers(applied, applied_paths, loaded, done)
        if broken:
            # Never run tests on old code: forget the module and everything importing it, so
            # collection imports the file as it is and reports what a fresh run reports.
            self.graph.scan()
            doomed = self.graph.importers(broken)
            self._drop([n for p in doomed for n in loaded.get(p, ())])
        for path, names in loaded.items():
            if _is_test_or_conftest(path):
                self._drop(names)
                if path in changed:
                    _forget_rewritten(path)
        importlib.invalidate_caches()
        for path, names in self._project_modules().items():
            for name in names:
                module = sys.modules.get(name)
                if module is not None and not _is_test_or_conftest(path):
                    _clear_caches(module)

    def _follow_importers(
        self,
        applied: Sequence[hotswap.ReloadResult],
        paths: Sequence[str],
        loaded: dict[str, list[str]],
        done: set[str],
    ) -> list[str]:
        """Run again, whole, every loaded project module whose top-level code took names from
        a changed one by value and that the reload did not already bring up to date (its
        ``dependents``): ``from config import RATE`` must see the new value, as after a fresh
        import. Modules that only read through a module object at call time need nothing.
        Dependencies go first. Returns the files whose run failed (an importer of a
        name that is gone fails as its fresh import would)."""
        self.graph.scan()
        reported = {d.module for result in applied for d in result.dependents} | done
        importers = self.graph.value_importers(paths)
        failed = []
        for path in self.graph.ordered(importers):
            if _is_test_or_conftest(path):
                continue  # dropped and imported again anyway
            for name in loaded.get(path, ()):
                if name in sys.modules and name not in reported:
                    result = hotswap.reload(name, policy="off", force=True)
                    self._report(result)
                    if not result.ok:
                        failed.append(path)
        return failed

    def _report(self, result: hotswap.ReloadResult) -> None:
        self.send(
            {
                "msg": "reload",
                "module": result.module,
                "ok": result.ok,
                "version": result.version,
                "kind": result.kind,
                "error": None if result.error is None else str(result.error),
            }
        )

    # --- a run ------------------------------------------------------------------------------

    def run(self, command: dict[str, Any]) -> None:
        """Prepare, run pytest over the selection, report the outcomes."""
        start = time.perf_counter()
        self.stop.clear()
        self.session_stopped = False
        self.prepare(command.get("changed", []))
        prepared = time.perf_counter() - start
        files = command.get("files")
        plugin = _Run(self, None if files is None else set(files))
        args = [*self.options, *command.get("extra", []), *command.get("args", [])]
        sys.stdout.flush()
        status = pytest.main(args, plugins=[plugin])
        self.imported_during_run = {
            name
            for path, names in self._project_modules().items()
            if not _is_test_or_conftest(path)
            for name in names
            if name not in self.states
        }
        self.session = None
        self.runs += 1
        if self.runs == 1:
            # What the first run imported lives as long as the worker: move it out of the
            # collector's sight, so each later run's gc.collect() (pytest calls it at the end
            # of every session) walks only the objects made since, not the whole import.
            gc.freeze()
        self.send(
            {
                "msg": "done",
                "id": command["id"],
                "selected": plugin.selected,
                "outcomes": plugin.outcomes
                if plugin.conftest is None
                else {plugin.conftest.replace(os.sep, "/"): "error"},
                "exitstatus": int(status),
                "conftest": plugin.conftest,
                "stopped": self.session_stopped,
                "duration": time.perf_counter() - start,
                "prepare": prepared,
                "modules": self._third_party() if self.runs == 1 else None,
                "patterns": plugin.patterns,
                "scope": plugin.scope,
            }
        )

    def _third_party(self) -> list[str]:
        """Modules loaded from outside the project: what a standby worker may import ahead."""
        prefix = self.root + os.sep
        names = []
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if not isinstance(file, str) or name == "__main__" or name.startswith("_pytest."):
                continue
            path = os.path.abspath(file)
            if not path.startswith(prefix) or os.sep + "site-packages" + os.sep in path:
                names.append(name)
        return sorted(names)

    def serve(self) -> int:
        """Answer commands until told to quit or the supervisor goes away."""
        self.send({"msg": "ready", "pid": os.getpid()})
        while True:
            command = self.commands.get()
            if command is None or command.get("cmd") == "quit":
                return 0
            if command.get("cmd") == "preload":
                _preload(command.get("modules", []))
            elif command.get("cmd") == "run":
                self.run(command)


def _is_test_or_conftest(path: str) -> bool:
    return is_test_file(path) or os.path.basename(path) == "conftest.py"


def _forget_rewritten(path: str) -> None:
    """Delete pytest's rewritten bytecode of a test file: pytest checks it by whole-second
    modification time and size, so an edit within the second that keeps the size would run
    the old assertions."""
    from _pytest.assertion.rewrite import PYC_TAIL, get_cache_dir

    source = Path(path)
    cached = get_cache_dir(source) / (source.name[:-3] + PYC_TAIL)
    with contextlib.suppress(OSError):
        cached.unlink()


def _preload(names: Sequence[str]) -> None:
    """Import what the warm worker had imported from outside the project (installed packages,
    the standard library), so a restart only pays for the project's own imports."""
    for name in names:
        if name in sys.modules:
            continue
        # a module that fails here fails in the run too, where pytest reports it
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the worker process."""
    args = list(sys.argv[1:] if argv is None else argv)
    root, keep_cwd, options = args[0], args[1] == "cwd", args[3:]  # ROOT cwd|nocwd -- OPTIONS
    if not keep_cwd and sys.path and sys.path[0] in ("", os.getcwd()):
        # `python -m` put the working directory first; the `pytest` script does not, and
        # imports must resolve as they do for the command the user ran.
        del sys.path[0]
    control = os.dup(0)
    out = os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the tests read an empty stdin, as under plain pytest's capture
    os.close(null)
    return Worker(root, options, control, out).serve()


if __name__ == "__main__":
    raise SystemExit(main())
