"""Running the program of ``hotswap run`` in this process: its entry, the watcher, and
``--keep-alive``.

With ``--keep-alive``, an exception escaping the entry (the script's top level, or the ``-m``
module run as ``__main__``) does not end the process: its traceback is printed, the process and
everything it imported stay, and the entry runs again after a save, the first one that applies
cleanly. The watcher keeps running meanwhile (a fix to an imported module goes live as usual);
files that are not loaded modules (the script itself, a module whose import failed) are
polled. Nothing reads stdin.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import runpy
import sys
import threading
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field

import hotswap
from hotswap import _api
from hotswap._ops.console import NOTICE
from hotswap._ops.events import ReloadResult, describe
from hotswap._plan import sources as _sources
from hotswap._plan.modules import OWN_DIR, Scope, loaded_files
from hotswap.exceptions import SourceSyntaxError

__all__ = ("RestartRequest", "Target", "exit_code", "print_crash", "run")

logger = logging.getLogger(__name__)

RestartRequest = Callable[[str], None]

# How often files that are not loaded modules are looked at while a crashed program waits.
_POLL = 0.1


@dataclass
class Target:
    """What ``hotswap run`` runs.

    Attributes:
        script: the script's absolute path, or None with ``module``.
        module: the module run as with ``python -m``, or None.
        args: the program's arguments (``sys.argv[1:]``).
        watch: the paths to watch.
        policy: the reload policy, or None for the configured one.
        keep_alive: rerun the entry after a crash, once a save applies.
    """

    script: str | None
    module: str | None
    args: list[str] = field(default_factory=list)
    watch: list[str] = field(default_factory=list)
    policy: str | None = None
    keep_alive: bool = False

    @property
    def label(self) -> str:
        """How messages name the program."""
        if self.module is not None:
            return f"-m {self.module}"
        return os.path.basename(self.script or "")

    def prepare(self) -> None:
        """``sys.argv`` and ``sys.path`` as ``python script.py`` or ``python -m`` set them."""
        if self.module is not None:
            sys.argv = [self.module, *self.args]
            sys.path.insert(0, os.getcwd())
        else:
            assert self.script is not None
            sys.argv = [self.script, *self.args]
            sys.path.insert(0, os.path.dirname(self.script))

    def entry_file(self) -> str | None:
        """The file the entry runs, when it can be told (found without importing)."""
        if self.script is not None:
            return self.script
        return module_file(self.module or "")


def module_file(name: str) -> str | None:
    """The source file of module ``name``, found without importing it or its packages (a
    supervisor must not import the program's own code)."""
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        origin = spec.origin
        return origin if isinstance(origin, str) and origin.endswith(".py") else None
    for folder in spec.submodule_search_locations or ():
        candidate = os.path.join(folder, *rest)
        for file in (os.path.join(candidate, "__main__.py"), candidate + ".py"):
            if os.path.isfile(file):
                return file
    return None


def _run_entry(target: Target) -> None:
    if target.module is not None:
        runpy.run_module(target.module, run_name="__main__", alter_sys=True)
    else:
        assert target.script is not None
        # The bytes the script runs from are the live source its first reload diffs with.
        with open(target.script, "rb") as handle:
            _sources.remember(target.script, handle.read())
        runpy.run_path(target.script, run_name="__main__")


def exit_code(error: SystemExit) -> int:
    """The process exit status ``SystemExit`` asks for, printing a message as Python does."""
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


_OWN = (
    OWN_DIR,
    os.path.abspath(runpy.__file__),
    "<frozen runpy>",
)


def _user_traceback(error: BaseException) -> types.TracebackType | None:
    """The traceback from the program's first frame: hotswap's and runpy's frames are noise."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN):
        tb = tb.tb_next
    return tb


def print_crash(error: BaseException) -> None:
    """Print the traceback of an exception that escaped the entry, as Python would."""
    shown = error.with_traceback(_user_traceback(error))
    traceback.print_exception(type(shown), shown, shown.__traceback__, file=sys.stderr)
    sys.stderr.flush()


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


class _Runner:
    def __init__(self, target: Target, request_restart: RestartRequest | None) -> None:
        self.target = target
        self.request_restart = request_restart
        self.applied = 0  # reloads that went live: a crashed program waits for the next one
        self.changed = threading.Condition()
        self.scope = Scope(target.watch)

    def on_reload(self, result: ReloadResult) -> None:
        if result.ok and result.kind != "unchanged":
            with self.changed:
                self.applied += 1
                self.changed.notify_all()
            return
        if result.ok or self.request_restart is None:
            return
        if isinstance(result.error, SourceSyntaxError):
            return  # a fresh start would fail on the same line: wait for the fix instead
        if hotswap.configure().restart_on_failure:
            self.request_restart(f"restart_on_failure: {describe(result)}")

    def run(self) -> int:
        target = self.target
        if target.module is not None:
            # Finding the spec imports the module's parent packages, as running it would:
            # their folders are then watched from the start.
            try:
                found = importlib.util.find_spec(target.module)
            except (ImportError, ValueError):
                found = None
            if found is None:
                print(f"hotswap run: no module named {target.module!r}", file=sys.stderr)
                return 2
        if self.request_restart is None and hotswap.configure().restart_on_failure:
            logger.log(NOTICE, "hotswap: restart_on_failure is ignored: this run cannot restart")
        watch: list[str | os.PathLike[str]] = list(target.watch)
        # This process watches for every process it forks or spawns: they join its fleet
        # (gunicorn's and uvicorn's workers, multiprocessing pools; docs/fleets.md).
        _api.coordinate()
        hotswap.enable(watch, policy=target.policy, on_reload=self.on_reload)
        try:
            while True:
                try:
                    _run_entry(target)
                    return 0
                except SystemExit as stop:
                    return exit_code(stop)
                except KeyboardInterrupt:
                    return 130
                except Exception as error:
                    print_crash(error)
                    if not target.keep_alive:
                        return 1
                    self.wait_for_fix(error)
        except KeyboardInterrupt:  # while waiting for a fix
            return 130
        finally:
            hotswap.disable()
            _api.end_fleet()

    def _files_of(self, error: BaseException) -> set[str]:
        """Files that may hold the fix and that the watcher may not follow: the entry, and
        the program's files the traceback passes through."""
        files = {f for f in (self.target.entry_file(),) if f is not None}
        if isinstance(error, SyntaxError) and error.filename:
            files.add(os.path.abspath(error.filename))
        for frame in traceback.extract_tb(error.__traceback__):
            path = os.path.abspath(frame.filename)
            if os.path.isfile(path) and self.scope.contains(path):
                files.add(path)
        # A loaded module's fix counts once the watcher applied it, not when its file changed:
        # a save it rejects is no fix.
        return files - loaded_files()

    def wait_for_fix(self, error: BaseException) -> None:
        files = self._files_of(error)
        before = {path: _digest(path) for path in files}
        with self.changed:
            mark = self.applied
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        logger.log(
            NOTICE,
            "hotswap: %s crashed (%s); waiting for a save to run it again (Ctrl-C stops)",
            self.target.label,
            detail,
        )
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.applied != mark, timeout=_POLL)
                if self.applied != mark:
                    why = "a reload went live"
                    break
            edited = [p for p in files if _digest(p) != before[p]]
            if edited:
                why = f"{os.path.relpath(edited[0])} changed"
                break
        logger.log(NOTICE, "hotswap: %s: running %s again", why, self.target.label)


def run(target: Target, request_restart: RestartRequest | None = None) -> int:
    """Run the program's entry in this process with the watcher on; its exit status.

    Args:
        target: what to run (``sys.argv``/``sys.path`` already prepared).
        request_restart: asks the supervising process for a restart (None: no supervisor).
    """
    return _Runner(target, request_restart).run()
