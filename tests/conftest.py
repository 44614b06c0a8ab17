"""Fixtures: real modules written to a temporary folder, imported, edited and reloaded."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import queue
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import hotswap
from hotswap._config import settings as _config
from hotswap._engine import transaction as _transaction
from hotswap._release import canary as _canary
from hotswap._release import health as _health


class Project:
    """A folder on ``sys.path`` holding the modules of one test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tick = 0

    def path(self, name: str) -> Path:
        parts = name.split(".")
        package = self.root.joinpath(*parts)
        if package.is_dir():
            return package / "__init__.py"
        return self.root.joinpath(*parts[:-1], parts[-1] + ".py")

    def write(self, name: str, source: str) -> Path:
        """Write a module's source (dedented); packages get an ``__init__.py`` as needed."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = path.parent
        while folder != self.root:
            (folder / "__init__.py").touch(exist_ok=True)
            folder = folder.parent
        path.write_text(textwrap.dedent(source))
        # Step the modification time forward so a fresh import never mistakes a cached .pyc
        # for current (tests that want that trap set the time themselves).
        self._tick += 2
        stamp = 1_700_000_000 + self._tick
        os.utime(path, (stamp, stamp))
        return path

    def load(self, name: str, source: str) -> ModuleType:
        """Write a module and import it."""
        self.write(name, source)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    def reload(self, name: str, source: str, **kwargs: object) -> hotswap.ReloadResult:
        """Write a new version of a module and reload it through hotswap."""
        self.write(name, source)
        return hotswap.reload(name, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["pyc-off", "pyc-on"])
def bytecode(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Runs a test with bytecode writing off and on: PYTHONDONTWRITEBYTECODE hides stale-.pyc
    bugs, so the reload path is tested both ways."""
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = request.param == "pyc-off"
    try:
        yield not sys.dont_write_bytecode
    finally:
        sys.dont_write_bytecode = saved


# A free-threaded build (3.13t, 3.14t): the GIL is off unless something turned it back on.
FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.fixture(params=["gil", "no-gil"])
def threads_build(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a thread stress test once per build, named for what it proves: "gil" on builds
    with a GIL, "no-gil" on free-threaded builds, where the GIL must really be off before and
    after the threads ran (an extension module that does not declare free-threading support
    turns it back on when imported, and the test would prove nothing)."""
    if request.param == "no-gil":
        if not FREE_THREADED_BUILD:
            pytest.skip("a build with a GIL: the no-GIL run is a free-threaded build's (3.14t)")
        assert not sys._is_gil_enabled()
        yield request.param
        assert not sys._is_gil_enabled()
    else:
        if FREE_THREADED_BUILD:
            pytest.skip("a free-threaded build: its run of this test is the no-gil one")
        yield request.param


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A fresh folder on sys.path; its modules are forgotten afterwards, as are hotswap's
    records and settings."""
    root = tmp_path / "src"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(tmp_path)
    _config.reset()
    _transaction.reset()
    try:
        yield Project(root)
    finally:
        for run in _canary.running().values():  # a test that left a canary running
            run.abort()
        _health.reset()
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            # ``__main__`` stays whatever its ``__file__`` (a test may point it into the
            # project while monkeypatch, torn down after this, has not put it back yet):
            # without it, a later ``multiprocessing`` spawn raised KeyError: '__main__'.
            if file.startswith(str(root)) and name != "__main__":
                del sys.modules[name]
        _transaction.reset()
        _config.reset()


@pytest.fixture
def reloading(project: Project, bytecode: bool) -> Project:
    """:func:`project`, run once with bytecode writing off and once with it on."""
    return project


@pytest.fixture
def writing_bytecode(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """:func:`project` with bytecode writing on (CPython's default), for tests of what the
    import's bytecode cache tells."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    return project


# --- the watcher --------------------------------------------------------------------------------

WATCH_TIMEOUT = 10.0  # generous: the machine may be loaded; never a bound on what is asserted


class Collector:
    """Receives on_reload results; tests wait on conditions over them, never on sleeps."""

    def __init__(self) -> None:
        self.results: list[hotswap.ReloadResult] = []
        self._cond = threading.Condition()

    def __call__(self, result: hotswap.ReloadResult) -> None:
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[hotswap.ReloadResult]], bool]) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.results), WATCH_TIMEOUT), self.results

    def wait_count(self, count: int) -> None:
        self.wait_for(lambda results: len(results) >= count)


@pytest.fixture
def watch(project: Project) -> Iterator[Callable[..., Collector]]:
    """Start the watcher on the project folder (or the given paths); always stopped
    afterwards."""

    def start(paths: list[str] | None = None, **kwargs: object) -> Collector:
        collector = Collector()
        chosen = [str(project.root)] if paths is None else paths
        hotswap.enable(chosen, on_reload=collector, **kwargs)  # type: ignore[arg-type]
        return collector

    try:
        yield start
    finally:
        hotswap.disable()


class ChangeSets:
    """Records the modules of each change set the watcher hands to the transaction, in the
    order given."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sets: list[list[str]] = []
        real = _transaction.reload_many

        def record(
            entries: list[tuple[str, bytes | None]], *, policy: str | None = None
        ) -> list[hotswap.ReloadResult]:
            self.sets.append([name for name, _ in entries])
            return real(entries, policy=policy)

        monkeypatch.setattr(_transaction, "reload_many", record)


@pytest.fixture
def change_sets(monkeypatch: pytest.MonkeyPatch) -> ChangeSets:
    """:class:`ChangeSets` for the test's watcher."""
    return ChangeSets(monkeypatch)


class LogWaiter(logging.Handler):
    """Lets a test wait until the watcher logged a message containing some text (at DEBUG it
    logs every event it receives: a test can wait until the watcher saw a write)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.messages.append(record.getMessage())
            self._cond.notify_all()

    def wait_for(self, *parts: str) -> None:
        def seen() -> bool:
            return any(all(p in m for p in parts) for m in self.messages)

        with self._cond:
            assert self._cond.wait_for(seen, WATCH_TIMEOUT), (parts, self.messages[-20:])

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()


@pytest.fixture
def watcher_log() -> Iterator[LogWaiter]:
    """The watcher's log records (``hotswap._watch``), DEBUG included, as they come."""
    handler = LogWaiter()
    logger = logging.getLogger("hotswap._watch")
    saved = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


class Events:
    """Every event hotswap publishes, as a subscriber sees them; tests wait on conditions."""

    def __init__(self) -> None:
        self.seen: list[hotswap.Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: hotswap.Event) -> None:
        with self._cond:
            self.seen.append(event)
            self._cond.notify_all()

    def of(self, kind: type[Any]) -> list[Any]:
        with self._cond:
            return [e for e in self.seen if isinstance(e, kind)]

    def wait_for(self, predicate: Callable[[Events], bool], timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self), timeout), self.seen


@pytest.fixture
def events() -> Iterator[Events]:
    """A subscriber to every event (``hotswap.subscribe``), unsubscribed afterwards."""
    recorder = Events()
    unsubscribe = hotswap.subscribe(recorder)
    try:
        yield recorder
    finally:
        unsubscribe()


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def _write_key_pair(folder: Path, name: str) -> KeyPair:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = folder / f"{name}.key"
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public)


@pytest.fixture
def release_key(tmp_path: Path) -> KeyPair:
    """A fresh Ed25519 key pair in PEM files (``keys/release.key``, ``keys/release.pub``)."""
    folder = tmp_path / "keys"
    folder.mkdir(exist_ok=True)
    return _write_key_pair(folder, "release")


@pytest.fixture
def other_key(tmp_path: Path) -> KeyPair:
    """A second key pair, one the program does not accept."""
    folder = tmp_path / "keys"
    folder.mkdir(exist_ok=True)
    return _write_key_pair(folder, "other")


@pytest.fixture
def spans() -> Iterator[Any]:
    """Reload spans through the OpenTelemetry SDK into an in-memory exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hotswap.integrations import otel

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(provider)
    try:
        yield exporter
    finally:
        otel.uninstrument()
        provider.shutdown()


@pytest.fixture
def metrics() -> Iterator[Any]:
    """hotswap's Prometheus metrics in a registry of their own, removed afterwards."""
    from prometheus_client import CollectorRegistry

    from hotswap.integrations import prometheus

    exporter = prometheus.register(CollectorRegistry())
    try:
        yield exporter
    finally:
        exporter.unregister()


class ConfigFiles:
    """Configuration files of one test, written whole (as an editor's plain save does)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text))
        return path

    def replace(self, name: str, text: str) -> Path:
        """Save atomically: write a temporary file in the same folder, rename it into place."""
        temp = self.root / f".{name}.tmp"
        temp.write_text(textwrap.dedent(text))
        os.replace(temp, self.root / name)
        return self.root / name


@pytest.fixture
def configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConfigFiles:
    """A folder for configuration files (the working directory, so messages name them
    relatively); no ``APP_*`` variable leaks in from the environment."""
    folder = tmp_path / "conf"
    folder.mkdir()
    monkeypatch.chdir(folder)
    for name in list(os.environ):
        if name.startswith("APP_"):
            monkeypatch.delenv(name)
    _config.reset()
    return ConfigFiles(folder)


@pytest.fixture
def datafiles() -> Iterator[None]:
    """Data-file records start empty and are dropped afterwards."""
    from hotswap._plan import datafiles as _datafiles

    _datafiles.reset()
    try:
        yield
    finally:
        hotswap.disable()
        _datafiles.reset()


@pytest.fixture
def shell(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real IPython ``InteractiveShell`` with ``%load_ext hotswap`` run, over ``project``;
    its history stays in memory (no saving thread), and it is cleared afterwards."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    InteractiveShell.clear_instance()
    instance = InteractiveShell.instance(config=config)
    try:
        result = instance.run_cell("%load_ext hotswap")
        assert result.success, result
        yield instance
    finally:
        instance.run_cell("%unload_ext hotswap")
        hotswap.disable()
        InteractiveShell.clear_instance()


class Program:
    """A command (``python ARGS``) running in a subprocess; its output (stdout and stderr
    merged, in order) is read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None) -> None:
        merged = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        merged.pop("NO_COLOR", None)
        self.process = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=merged,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, text: str, timeout: float = 60) -> str:
        """Wait for the next line containing ``text``; the lines before it are kept in
        ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
                ended = False
            else:
                ended = line is None
            if line is None:
                output = "\n".join(self.seen)
                why = "exited" if ended else f"no line within {timeout} s"
                pytest.fail(f"expected a line with {text!r}; {why}; output:\n{output}")
            self.seen.append(line)
            if text in line:
                return line

    def wait(self, timeout: float = 60) -> int:
        """Wait for the command to exit; its status (the rest of the output is read)."""
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        while not self.lines.empty():
            line = self.lines.get()
            if line is not None:
                self.seen.append(line)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._reader.join(30)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def python_program() -> Iterator[Callable[..., Program]]:
    """Start ``python ARGS`` in a folder: ``python_program(args, cwd, env)``; every one
    started is stopped afterwards."""
    started: list[Program] = []

    def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Program:
        program = Program(args, cwd, env)
        started.append(program)
        return program

    try:
        yield start
    finally:
        for program in started:
            program.stop()


@pytest.fixture
def hotswap_program(python_program: Callable[..., Program]) -> Callable[..., Program]:
    """Start ``python -m hotswap ARGS`` in a folder: ``hotswap_program(args, cwd, env)``;
    every one started is stopped afterwards."""

    def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Program:
        return python_program(["-m", "hotswap", *args], cwd, env)

    return start


# --- pytest --hotswap sessions (tests/test_pytest_*.py) ----------------------------------------

# Written where the fresh runs can import it: records each test's outcome as the plugin does.
_FRESH_REPORTER = """
import json, os

OUTCOMES = {}

def pytest_collectreport(report):
    if report.failed:
        OUTCOMES[report.nodeid] = "error"

def pytest_runtest_logreport(report):
    if report.when == "call" or report.skipped:
        OUTCOMES[report.nodeid] = "skipped" if report.skipped else report.outcome
    elif report.failed:
        OUTCOMES[report.nodeid] = "error"

def pytest_sessionfinish(session):
    with open(os.environ["HOTSWAP_FRESH_REPORT"], "w") as handle:
        json.dump(OUTCOMES, handle)
"""

# Every wait on a session is bounded by this (seconds): generous for a loaded 2-core machine.
SESSION_TIMEOUT = 90.0


class HotswapSession:
    """A real ``pytest --hotswap`` process over a pytester project, driven by writing files
    and reading its events file."""

    def __init__(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, scratch: Path
    ) -> None:
        self.pytester = pytester
        self.root = pytester.path
        self.scratch = scratch  # outside the project: nothing here is watched
        self.events_path = scratch / "events.jsonl"
        self.output_path = scratch / "session.out"
        reporter = scratch / "reporter"
        reporter.mkdir()
        (reporter / "hotswap_fresh_reporter.py").write_text(_FRESH_REPORTER)
        monkeypatch.setenv("PYTHONPATH", str(reporter))
        monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "")
        monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
        self._tick = 0
        self._seen_runs = 0
        self.process: Any = None

    # --- the project ------------------------------------------------------------------------

    def write(self, relpath: str, source: str) -> Path:
        """Write a file (dedented) with a modification time moved forward, so no cached
        bytecode is taken for current, in the session or in the fresh run."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        self._tick += 2
        stamp = 1_700_000_000 + self._tick
        os.utime(path, (stamp, stamp))
        return path

    # --- the session ------------------------------------------------------------------------

    def start(self, *args: str, verify: str = "off", terminal: bool = False) -> None:
        """Start the session; its stdin is a pipe, or with ``terminal`` a pseudo-terminal."""
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--hotswap",
            f"--hotswap-verify={verify}",
            f"--hotswap-events={self.events_path}",
            "-p",
            "no:cacheprovider" if "--lf" not in args else "cacheprovider",
            *args,
        ]
        self._output = open(self.output_path, "wb")  # noqa: SIM115 - closed in stop()
        self._terminal: int | None = None
        stdin: Any = subprocess.PIPE
        if terminal:
            import pty

            self._terminal, stdin = pty.openpty()
        self.process = self.pytester.popen(
            command, stdout=self._output, stderr=subprocess.STDOUT, stdin=stdin
        )
        if terminal:
            os.close(stdin)  # the session holds its own copy

    def key(self, keys: str) -> None:
        if self._terminal is not None:
            os.write(self._terminal, keys.encode())
            return
        self.process.stdin.write(keys.encode())
        self.process.stdin.flush()

    def stop(self) -> int:
        """Quit with the q key; returns the exit status."""
        if self.process is None:
            return 0
        try:
            if self.process.poll() is None:
                self.key("q\n")
            status = int(self.process.wait(SESSION_TIMEOUT))
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            with contextlib.suppress(OSError, AttributeError):
                self.process.stdin.close()
            if self._terminal is not None:
                os.close(self._terminal)
                self._terminal = None
            self._output.close()
            self.process = None
        return status

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        lines = self.events_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(self, predicate: Any, what: str) -> list[dict[str, Any]]:
        """Wait until ``predicate(events)`` holds; fail naming ``what`` after the timeout."""
        deadline = time.monotonic() + SESSION_TIMEOUT
        while True:
            events = self.events()
            if predicate(events):
                return events
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"the session ended while waiting for {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {SESSION_TIMEOUT} s:\n{self.output()}")
            self._pause()

    def _pause(self) -> None:
        # Waiting on the events file, a condition another process fulfils: a short poll.
        threading.Event().wait(0.02)

    def runs(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event"] == "run"]

    def next_run(self, *changed: str) -> dict[str, Any]:
        """Wait for the final run that includes the changes of ``changed`` (relative paths;
        none: the next final run), and return it."""
        wanted = {str(self.root / c) for c in changed}
        start = self._seen_runs

        def done(events: list[dict[str, Any]]) -> bool:
            runs = [e for e in events if e["event"] == "run"][start:]
            seen: set[str] = set()
            for run in runs:
                seen.update(run.get("changed", []))
                if run["final"] and wanted <= seen:
                    return True
            return False

        self.wait_for(done, f"a final run after changing {sorted(changed)}")
        runs = self.runs()
        for index in range(start, len(runs)):
            if runs[index]["final"]:
                seen = {p for r in runs[start : index + 1] for p in r.get("changed", [])}
                if wanted <= seen:
                    self._seen_runs = index + 1
                    return runs[index]
        raise AssertionError("unreachable")

    def suite(self) -> dict[str, str | None]:
        """The latest outcome of every test, merged from the run events: a run that covers a
        test file replaces what was known of it; None marks a test pending (selected, not
        reached: after -x, or a collection error that interrupted the run)."""
        outcomes: dict[str, str | None] = {}
        for run in self.runs()[: self._seen_runs]:
            if run["final"]:
                covered = run["files"]
                for nodeid in list(outcomes):
                    if covered is None or nodeid.split("::", 1)[0] in covered:
                        del outcomes[nodeid]
            for nodeid in run["selected"]:
                outcomes.setdefault(nodeid, None)
            outcomes.update(run["outcomes"])
        return outcomes

    def fresh(self, *args: str) -> dict[str, str]:
        """Each test's outcome in a fresh ``pytest`` of the same files."""
        report = self.scratch / "fresh.json"
        os.environ["HOTSWAP_FRESH_REPORT"] = str(report)
        try:
            self.pytester.runpytest_subprocess(
                "-p",
                "hotswap_fresh_reporter",
                "-p",
                "no:cacheprovider",
                "--continue-on-collection-errors",
                *args,
            )
        finally:
            del os.environ["HOTSWAP_FRESH_REPORT"]
        result: dict[str, str] = json.loads(report.read_text())
        return result

    def assert_matches_fresh(self, *args: str) -> dict[str, str]:
        """The suite's known outcomes equal a fresh run's (which continues past collection
        errors); a pending test is one the fresh run has too, with any outcome."""
        fresh = self.fresh(*args)
        suite = self.suite()
        pending = {n for n, outcome in suite.items() if outcome is None}
        assert pending <= set(fresh), self.output()
        known = {n: o for n, o in fresh.items() if n not in pending}
        assert {n: o for n, o in suite.items() if o is not None} == known, self.output()
        return fresh


@pytest.fixture
def hotswap_session(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HotswapSession]:
    """A ``pytest --hotswap`` session over a pytester project (start it with ``.start()``);
    quit and reaped after the test."""
    scratch = tmp_path_factory.mktemp("hotswap-session")
    session = HotswapSession(pytester, monkeypatch, scratch)
    try:
        yield session
    finally:
        session.stop()


class ParseSpy:
    """Records the sources hotswap's statement parser parses from :meth:`start` to :meth:`stop`
    (the end of the test at the latest)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from hotswap._plan import statements

        self._monkeypatch, self._statements = monkeypatch, statements
        self._parse = statements.parse_module
        self.parsed: list[str] = []

    def start(self) -> list[str]:
        parse, parsed = self._parse, self.parsed

        def spy(source: str, *args: Any, **kwargs: Any) -> Any:
            parsed.append(source)
            return parse(source, *args, **kwargs)

        self._monkeypatch.setattr(self._statements, "parse_module", spy)
        return parsed

    def stop(self) -> None:
        self._monkeypatch.setattr(self._statements, "parse_module", self._parse)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> ParseSpy:
    """A spy on the statement parser, started when the test says."""
    return ParseSpy(monkeypatch)
