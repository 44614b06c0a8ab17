"""The process bench_replay.py drives: a long-lived program holding a package (or a fresh one).

Run by bench_replay.py with the interpreter of the tool under test (hotswap's, or a scratch
environment with jurigged or IPython): ``python _replay_child.py TOOL POLICY FOLDER PACKAGES FD``.
Commands arrive as JSON lines on standard input; each answer is one JSON line written to the
file descriptor FD (standard output and error belong to the package's tests). It imports only
the standard library, pytest (for the ``test`` command) and the tool it was started for.

Commands: ``import`` (every module of the packages, sorted), ``step`` (apply the files the
parent has just written: per changed module in dependency order, or through the watcher),
``snapshot`` (a description of every module-level name, see :func:`describe`), ``deleted``
(the modules whose file is gone), ``test`` (the release's own tests, in this process),
``quit``.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import hashlib
import importlib
import inspect
import io
import json
import os
import re
import sys
import threading
import time
import types
from typing import Any

SKIPPED_KEYS = frozenset(
    {
        "__builtins__",
        "__loader__",
        "__spec__",
        "__file__",
        "__cached__",
        "__path__",
        "__warningregistry__",
    }
)
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
PACKAGE_FOLDER = ""  # set by main(): the folder of the package under test
SIMPLE = (type(None), bool, int, float, complex, str, bytes)


# --- what a module holds ------------------------------------------------------------------------


def identity(obj: Any) -> str:
    """Whether ``obj`` is what its ``__module__`` and ``__qualname__`` name today: a fresh
    import gives "current"; a stale copy an importer kept gives "stale"."""
    module = sys.modules.get(getattr(obj, "__module__", None) or "")
    qualname = getattr(obj, "__qualname__", "")
    if module is None or "<" in qualname:
        return "unbound"
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return "unbound"
    return "current" if found is obj else "stale"


def code(co: types.CodeType) -> tuple[Any, ...]:
    """A code object without its line numbers: instructions, names, constants (recursively).

    Instructions are compared by name and argument, jump targets left out, ``LOAD_METHOD``
    read as ``LOAD_ATTR`` and ``PUSH_NULL`` left out: CPython 3.11 compiles ``name.attr()``
    either way depending on whether ``name`` was bound by an import statement, which a compile
    of part of a module does not always see; both behave the same.
    """
    consts = tuple(code(c) if isinstance(c, types.CodeType) else _short(c) for c in co.co_consts)
    steps = []
    for instruction in dis.get_instructions(co):
        if instruction.opname == "PUSH_NULL":  # comes with LOAD_ATTR where LOAD_METHOD is not
            continue
        name = "LOAD_ATTR" if instruction.opname == "LOAD_METHOD" else instruction.opname
        if instruction.opcode in dis.hasjrel or instruction.opcode in dis.hasjabs:
            steps.append(name)
        elif name == "LOAD_GLOBAL":
            steps.append(f"{name} {instruction.argval}")
        elif isinstance(instruction.argval, types.CodeType):  # its repr holds an address
            steps.append(f"{name} {instruction.argval.co_name}")
        else:
            steps.append(f"{name} {instruction.argrepr}")
    digest = hashlib.sha1("\n".join(steps).encode()).hexdigest()[:12]
    return (co.co_name, digest, co.co_names, co.co_varnames, co.co_freevars, consts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else hashlib.sha1(text.encode()).hexdigest()[:12]


def _signature(fn: Any) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "-"


def describe(value: Any, depth: int = 0) -> Any:
    """What a fresh import and a reloaded process can be compared on, as JSON-able data."""
    if isinstance(value, SIMPLE):
        return _short(value)
    if depth > 3:
        return ("deep", type(value).__name__)
    if isinstance(value, types.ModuleType):
        return ("module", value.__name__)
    if isinstance(value, types.FunctionType):
        extra = {k: describe(v, depth + 1) for k, v in sorted(vars(value).items())}
        return (
            "function",
            value.__module__,
            value.__qualname__,
            identity(value),
            code(value.__code__),
            _signature(value),
            inspect.isgeneratorfunction(value),
            inspect.iscoroutinefunction(value),
            describe(value.__defaults__, depth + 1),
            describe(value.__kwdefaults__, depth + 1),
            extra,
        )
    if isinstance(value, type):
        members = {
            key: describe(item, depth + 1)
            for key, item in sorted(vars(value).items())
            if key not in ("__dict__", "__weakref__", "__abstractmethods__", "_abc_impl")
        }
        mro = [f"{c.__module__}.{c.__qualname__}:{identity(c)}" for c in value.__mro__]
        meta = f"{type(value).__module__}.{type(value).__qualname__}"
        return ("class", value.__module__, value.__qualname__, identity(value), mro, meta, members)
    if isinstance(value, staticmethod | classmethod):
        return (type(value).__name__, describe(value.__func__, depth + 1))
    if isinstance(value, property):
        parts = (value.fget, value.fset, value.fdel)
        return ("property", [describe(p, depth + 1) for p in parts])
    if isinstance(value, functools.partial):
        return ("partial", describe(value.func, depth + 1), describe(value.args, depth + 1))
    if isinstance(value, list | tuple) and len(value) <= 300:
        return (type(value).__name__, [describe(v, depth + 1) for v in value])
    if isinstance(value, set | frozenset) and len(value) <= 300:
        return (type(value).__name__, sorted(json.dumps(describe(v, depth + 1)) for v in value))
    if isinstance(value, dict) and len(value) <= 300:
        items = [(_short(k), describe(v, depth + 1)) for k, v in value.items()]
        return ("dict", sorted(items, key=lambda item: str(item[0])))
    kind = type(value)
    wrapped = getattr(value, "__wrapped__", None)
    inner = describe(wrapped, depth + 1) if wrapped is not None and depth < 3 else None
    return ("instance", f"{kind.__module__}.{kind.__qualname__}", identity(kind), inner)


def snapshot(packages: list[str]) -> dict[str, str]:
    """Every module-level name of the packages' modules -> its description, as JSON text."""
    found: dict[str, str] = {}
    for name, module in sorted(sys.modules.items()):
        if not any(name == p or name.startswith(p + ".") for p in packages):
            continue
        if module is None or ".tests" in name or name.endswith(".tests"):
            continue
        for key, value in sorted(vars(module).items()):
            if key in SKIPPED_KEYS or key.startswith("__hotswap"):
                continue
            try:
                # Addresses in reprs (``<object object at 0x...>`` defaults) differ anyway.
                text = ADDRESS.sub("", json.dumps(describe(value), default=str))
            except Exception as error:  # a value whose introspection fails: say so, go on
                text = f"<describe failed: {type(error).__name__}>"
            found[f"{name}:{key}"] = text
    return found


def deleted(packages: list[str]) -> list[str]:
    """The packages' loaded modules whose source file no longer exists (a release deleted
    it; a copy such as ``tlz._version`` carries the deleted file's name too)."""
    found = []
    for name, module in sorted(sys.modules.items()):
        if any(name == p or name.startswith(p + ".") for p in packages):
            file = getattr(module, "__file__", None)
            if isinstance(file, str) and not os.path.exists(file):
                found.append(name)
    return found


def package_modules(folder: str, packages: list[str]) -> list[str]:
    """The importable modules of the packages under ``folder``, tests left out."""
    names = []
    for package in packages:
        root = os.path.join(folder, package)
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d not in ("tests", "__pycache__"))
            relative = os.path.relpath(directory, folder).replace(os.sep, ".")
            for file in sorted(files):
                if file == "__init__.py":
                    names.append(relative)
                elif file.endswith(".py"):
                    names.append(f"{relative}.{file[:-3]}")
    return names


# --- the tools ----------------------------------------------------------------------------------


class Tool:
    """Applies a step the way one tool would, and says what happened per module."""

    def __init__(self, tool: str, policy: str, folder: str) -> None:
        self.tool, self.policy, self.folder = tool, policy, folder
        self.reports: list[Any] = []
        self.lock = threading.Condition()
        if tool.startswith("hotswap"):
            # Imported before the package, as a program that enables it at start does: hotswap
            # then keeps the source each module was imported from (imported later, it could
            # only take the file as it is at the first reload for the imported version).
            import hotswap  # noqa: F401
        if tool == "jurigged":
            import jurigged

            self.errors: list[str] = []
            prefix = folder + os.sep
            self.watcher = jurigged.watch(
                pattern=lambda filename: filename.startswith(prefix),
                logger=self._jurigged_log,
                autostart=False,
            )

    def _jurigged_log(self, event: object) -> None:
        if isinstance(event, BaseException):
            self.errors.append(f"{type(event).__name__}: {event}"[:200])

    def started(self) -> None:
        """Called once the package is imported."""
        if self.tool == "autoreload":
            from IPython.extensions.autoreload import ModuleReloader

            self.reloader = ModuleReloader()
            self.reloader.enabled = True
            self.reloader.check_all = True
            self.reloader.check()  # records the modification times
        elif self.tool == "hotswap-watcher":
            import hotswap

            hotswap.enable([self.folder], policy=self.policy, on_reload=self._report)

    def _report(self, result: Any) -> None:
        with self.lock:
            self.reports.append(result)
            self.lock.notify_all()

    def step(
        self, order: list[str], paths: dict[str, str], added: list[str]
    ) -> list[dict[str, str]]:
        """Apply the new files; ``order`` is the changed modules, dependencies first, and
        ``added`` those whose file is new in this release."""
        live = [name for name in order if name in sys.modules]
        if self.tool == "hotswap":
            import hotswap

            return [_hotswap(hotswap.reload(name, policy=self.policy)) for name in live]
        if self.tool == "hotswap-watcher":
            # A module whose file this release adds has nothing to reload: the watcher may
            # already have run a changed module that imports it (cachetools 8.0.0's new
            # _decorator), and its first import is no reload.
            return self._wait_watcher([name for name in live if name not in added])
        if self.tool == "jurigged":
            out = []
            for name in live:
                del self.errors[:]
                self.watcher.refresh(paths[name])
                error = "; ".join(self.errors)
                out.append(
                    {"module": name, "outcome": "failed" if error else "applied", "reason": error}
                )
            return out
        if self.tool == "autoreload":
            stream = io.StringIO()
            with contextlib.redirect_stderr(stream), contextlib.redirect_stdout(stream):
                self.reloader.check()
            text = stream.getvalue()
            out = []
            for name in live:
                failed = f"[autoreload of {name} failed" in text
                reason = ""
                if failed:
                    tail = text.split(f"[autoreload of {name} failed", 1)[1]
                    reason = tail.strip().splitlines()[-1][:200] if tail.strip() else "failed"
                out.append(
                    {"module": name, "outcome": "failed" if failed else "applied", "reason": reason}
                )
            return out
        return []

    def _wait_watcher(self, live: list[str]) -> list[dict[str, str]]:
        """Wait until every changed module that is imported has a report, then for a quiet
        second (a checkout may take several change sets); 60 s at most."""
        deadline = time.monotonic() + 60
        with self.lock:
            while time.monotonic() < deadline:
                seen = {r.module for r in self.reports}
                if set(live) <= seen:
                    count = len(self.reports)
                    self.lock.wait(1.0)
                    if len(self.reports) == count:
                        break
                else:
                    self.lock.wait(0.2)
            reports, self.reports = self.reports, []
        last: dict[str, Any] = {}
        for report in reports:
            last[report.module] = report
        out = [_hotswap(r) for r in last.values()]
        missing = [n for n in live if n not in last]
        out += [{"module": n, "outcome": "failed", "reason": "no report"} for n in missing]
        return out


def _hotswap(result: Any) -> dict[str, str]:
    if result.ok:
        outcome = "unchanged" if result.kind == "unchanged" else "applied"
        return {"module": result.module, "outcome": outcome, "reason": ""}
    error = result.error
    refused = type(error).__name__ in ("IncompatibleChangeError", "AuditError")
    cause = error.__cause__ if error is not None else None
    reason = f"{type(error).__name__}: {error}"
    if cause is not None:
        reason += f" <- {type(cause).__name__}: {cause}"
    return {
        "module": result.module,
        "outcome": "refused" if refused else "failed",
        "reason": reason[:4000],  # a refusal lists every change it names
    }


# --- tests --------------------------------------------------------------------------------------


def run_tests(tests: str, rootdir: str, marks: str | None = None) -> dict[str, str]:
    """The release's tests in this process: node id -> outcome (``marks``: the release's
    own ``-m`` expression)."""
    import pytest

    # The test modules of an earlier step: their copies sit beside this one's, under the same
    # names (``tests.test_more``), and pytest would refuse to import this step's as a mismatch.
    work = os.path.dirname(rootdir) + os.sep
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if (path.startswith(work) and not path.startswith(PACKAGE_FOLDER)) or name == "conftest":
            del sys.modules[name]
    outcomes: dict[str, str] = {}

    class Collect:
        def pytest_runtest_logreport(self, report: Any) -> None:
            if report.when == "call" or report.outcome != "passed":
                outcomes[report.nodeid] = report.outcome

        def pytest_collectreport(self, report: Any) -> None:
            if report.outcome == "failed":
                outcomes[report.nodeid or "<collection>"] = "error"

    args = [
        tests,
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        rootdir,
        "-o",
        "addopts=",
        "-W",
        "ignore",
        "--assert=plain",
        "--continue-on-collection-errors",
        *(["-m", marks] if marks else []),
    ]
    # What a test may leave set for the whole process (boltons' ``fix_print_exception()``
    # installs its own ``sys.excepthook`` for good): the next step's tests start from what the
    # program had, as the fresh run's do, not from what the last run's tests left.
    hooks = (sys.excepthook, sys.displayhook, sys.stdout, sys.stderr, os.getcwd())
    environment = dict(os.environ)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                pytest.main(args, plugins=[Collect()])
            except Exception:
                # A conftest.py this pytest no longer loads (boltons' used the ``path``
                # argument pytest 9 removed): run the tests without it, and say so.
                outcomes.clear()
                pytest.main([*args, "--noconftest"], plugins=[Collect()])
                outcomes["<session>"] = "ran with --noconftest"
    finally:
        sys.excepthook, sys.displayhook, sys.stdout, sys.stderr, cwd = hooks
        os.chdir(cwd)
        if dict(os.environ) != environment:
            os.environ.clear()
            os.environ.update(environment)
    return outcomes


def main() -> None:
    tool, policy, folder, packages, fd = sys.argv[1:6]
    names = packages.split(",")
    global PACKAGE_FOLDER
    PACKAGE_FOLDER = os.path.join(folder, "")
    answers = os.fdopen(int(fd), "w")
    sys.path.insert(0, folder)
    runner = Tool(tool, policy, folder)
    # Commands come on standard input; the package's tests get an empty one (a test of a
    # prompt that reads file descriptor 0 itself would otherwise wait on the commands).
    commands = os.fdopen(os.dup(0))
    empty = os.open(os.devnull, os.O_RDONLY)
    os.dup2(empty, 0)
    os.close(empty)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the process's standard input, for good
    for line in commands:
        command = json.loads(line)
        op = command["op"]
        answer: Any = None
        if op == "import":
            failed = {}
            for name in command.get("modules") or package_modules(folder, names):
                try:
                    importlib.import_module(name)
                except Exception as error:  # optional dependencies the package may lack
                    failed[name] = f"{type(error).__name__}: {error}"[:200]
            runner.started()
            answer = {"failed": failed}
        elif op == "step":
            start = time.perf_counter()
            results = runner.step(command["order"], command["paths"], command.get("added", []))
            answer = {"results": results, "seconds": time.perf_counter() - start}
        elif op == "snapshot":
            answer = snapshot(names)
        elif op == "deleted":
            answer = deleted(names)
        elif op == "test":
            answer = run_tests(command["tests"], command["rootdir"], command.get("marks"))
        elif op == "quit":
            answers.write("null\n")
            answers.flush()
            os._exit(0)
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
