"""Fixtures: real modules written to a temporary folder, imported, edited and reloaded."""

from __future__ import annotations

import importlib
import logging
import os
import queue
import subprocess
import sys
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
from hotswap import _config, _transaction


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
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if file.startswith(str(root)):
                del sys.modules[name]
        _transaction.reset()
        _config.reset()


@pytest.fixture
def reloading(project: Project, bytecode: bool) -> Project:
    """:func:`project`, run once with bytecode writing off and once with it on."""
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
    """The watcher's log records, DEBUG included, as they come."""
    handler = LogWaiter()
    logger = logging.getLogger("hotswap._watcher")
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
    from hotswap import _datafiles

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
    """A ``hotswap`` command running in a subprocess; its output (stdout and stderr merged,
    in order) is read line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None) -> None:
        merged = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        merged.pop("NO_COLOR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hotswap", *args],
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
def hotswap_program() -> Iterator[Callable[..., Program]]:
    """Start ``python -m hotswap ARGS`` in a folder: ``hotswap_program(args, cwd, env)``;
    every one started is stopped afterwards."""
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
