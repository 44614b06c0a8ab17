"""The restart fallback of ``hotswap run``: a warm template process that forks the program.

Some changes cannot be applied in place: a rebuilt C extension, new dependencies
(``pyproject.toml``, ``requirements*.txt``), a file the user named with ``--restart-on``, or a
reload the user wants restarted when it fails (``restart_on_failure``). For those the program
restarts, fast: this process (the *supervisor*) imported the program's third-party
dependencies once and never runs the program itself; each run is a ``fork()`` of it, so a
restart costs a fork and the program's own imports, not the interpreter's start and every
dependency's import again.

``fork()`` copies one thread. A template where a dependency started threads at import (or a
platform without ``fork``) would hand the program a broken copy: there each run is a plain
new interpreter instead, and hotswap says why. A change to the dependencies makes the template
itself stale: then the supervisor starts again from scratch (``exec``).

What the template imports is decided in ``hotswap._cli.template``; which files restart the
program, in ``hotswap._cli.triggers``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType

from hotswap._cli import runner as _runner
from hotswap._cli.template import dependencies, fork_unsafe_reason, warm_up
from hotswap._cli.triggers import Triggers
from hotswap._config import settings as _config
from hotswap._ops.console import NOTICE
from hotswap._plan.modules import Scope

__all__ = ("ChildExit", "Supervisor", "control_writer")

logger = logging.getLogger(__name__)

_TICK = 0.1  # how often the supervisor looks at the run and the trigger files
_STOP_GRACE = 5.0  # seconds a run has to exit after SIGTERM before SIGKILL
_PASSED_ON = {signal.SIGINT, signal.SIGTERM}  # what the supervisor passes on to the run


# --- one run of the program ---------------------------------------------------------------------


def _status(waited: int) -> int:
    return os.waitstatus_to_exitcode(waited)  # -N: killed by signal N, as Popen says


def _end_like(code: int) -> int:
    """The supervisor's exit status for a run that ended with ``code``: a run killed by a
    signal kills the supervisor with the same signal, so whoever started ``hotswap run`` sees
    what it would see of ``python app.py``."""
    if code >= 0:
        return code
    signum = -code
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return 128 + signum  # the signal could not end this process


def _has_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (AttributeError, OSError, ValueError):  # no stdin, or a replaced one
        return False


class ChildExit(BaseException):
    """Raised in a forked run when the program is done, to leave the supervisor's frames and
    end as any Python process ends (non-daemon threads joined, ``atexit`` handlers run).

    A BaseException, so that no ``except Exception`` on the way catches it.
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Child:
    """One run of the program, forked from the template or started afresh; it asks for a
    restart by writing a line on the control pipe."""

    def __init__(
        self, pid: int | None, process: subprocess.Popen[bytes] | None, read: int | None
    ) -> None:
        self.pid = pid if process is None else process.pid
        self.process = process
        self.read = read
        self._buffer = b""
        self.code: int | None = None

    def poll(self) -> int | None:
        if self.code is not None:
            return self.code
        if self.process is not None:
            self.code = self.process.poll()
        else:
            assert self.pid is not None
            pid, waited = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = _status(waited)
        return self.code

    def request(self, timeout: float) -> str | None:
        """A restart the program asked for within ``timeout`` seconds, else None."""
        if self.read is None:  # no control pipe (no descriptor passing on this platform)
            time.sleep(timeout)
            return None
        try:
            ready, _, _ = select.select([self.read], [], [], timeout)
        except InterruptedError:
            return None
        if not ready:
            return None
        chunk = os.read(self.read, 4096)
        if not chunk:  # the program exited: no more requests; do not spin on the pipe
            time.sleep(timeout)
            return None
        self._buffer += chunk
        if b"\n" not in self._buffer:
            return None
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; reaped."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        else:
            assert self.pid is not None
            with contextlib.suppress(ProcessLookupError):
                if self.poll() is None:
                    os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + _STOP_GRACE
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                while self.poll() is None:
                    time.sleep(0.01)
        self.close()

    def close(self) -> None:
        """Close the control pipe."""
        if self.read is not None:
            os.close(self.read)
            self.read = None


def _send(fd: int, reason: str) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, reason.replace("\n", " ").encode() + b"\n")


def control_writer(fd: int) -> _runner.RestartRequest:
    """How a program run by a supervisor asks it for a restart."""
    return lambda reason: _send(fd, reason)


class Supervisor:
    """Runs the program again and again: forked from this warm process, or afresh where
    forking is unsafe, until it exits on its own.

    Args:
        target: what to run.
        restart_on: ``--restart-on`` globs.
        command: the command line that runs the program in a new interpreter, given the
            control pipe's descriptor (None where descriptors cannot be passed), for the runs
            that cannot be forked.
    """

    def __init__(
        self,
        target: _runner.Target,
        restart_on: list[str],
        command: Callable[[int | None], list[str]],
    ) -> None:
        self.target = target
        self.command = command
        self.triggers = Triggers([*target.watch, os.getcwd()], restart_on)
        self.unsafe: str | None = None
        self.child: _Child | None = None
        self.terminated = False
        self.interrupted = False

    def warm(self) -> None:
        """Import the program's third-party dependencies; decide how runs start."""
        started = time.perf_counter()
        names = dependencies(self.target.entry_file(), Scope(self.target.watch))
        # hotswap's own imports in a run are warmed too: the watcher (watchdog; starting it is
        # the run's) and what reads pyproject.toml.
        own = ["hotswap._watch.watcher", "tomllib"]
        imported = warm_up([*names, *own])
        self.unsafe = fork_unsafe_reason()
        took = (time.perf_counter() - started) * 1000
        logger.debug(
            "hotswap: template warmed in %.0f ms: %s", took, ", ".join(imported) or "nothing"
        )
        if self.unsafe is not None:
            logger.log(
                NOTICE,
                "hotswap: restarts start a new interpreter, not a fork: %s",
                self.unsafe,
            )

    def _spawn(self) -> _Child:
        sys.stdout.flush()
        sys.stderr.flush()
        if self.unsafe is not None and os.name != "posix":
            # No descriptor passing: the run cannot ask for a restart (restart_on_failure),
            # the files that trigger one still work.
            self.child = _Child(None, subprocess.Popen(self.command(None)), None)
            return self.child
        read, write = os.pipe()
        if self.unsafe is not None:
            process = subprocess.Popen(self.command(write), pass_fds=(write,))
            os.close(write)
            self.child = _Child(None, process, read)
            return self.child
        # SIGINT and SIGTERM wait while the run is forked: the run sets its own handlers
        # before it takes them, and the supervisor knows the run's pid before it passes them on.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _PASSED_ON)
        pid = os.fork()
        if pid == 0:  # the program's process: it never runs the supervisor's loop
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
                os.close(read)
                _config.reset()  # read pyproject.toml and the environment as they are now
                code = _runner.run(self.target, control_writer(write))
            except SystemExit as stop:
                code = _runner.exit_code(stop)
            except KeyboardInterrupt:  # interrupted before the program took over
                code = 128 + signal.SIGINT
            except BaseException:
                traceback.print_exc()
            raise ChildExit(code)
        try:
            os.close(write)
            child = self.child = _Child(pid, None, read)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return child

    def _interrupt(self, signum: int, _frame: FrameType | None) -> None:
        child = self.child
        if child is None or child.pid is None:  # between two runs: no run starts after it
            self.interrupted = True
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.terminated = True  # no run starts after this one
        child = self.child
        if child is not None and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signum)

    def run(self) -> int:
        """Run the program until it exits on its own; its exit status."""
        # Ctrl-C typed in a terminal reaches the whole process group: the program handles it
        # and the supervisor waits for its exit status (passing it on would interrupt the
        # program twice). Without a terminal, a SIGINT comes from a process that knows only
        # this pid (a test, an IDE's stop button): it is passed on. SIGTERM always is.
        if _has_terminal():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, self._interrupt)
        signal.signal(signal.SIGTERM, self._forward)
        how = "a new interpreter" if self.unsafe is not None else "a fork of the warm template"
        while True:
            child = self._spawn()
            if self.interrupted:  # a SIGINT came before the run had a pid: it is the run's
                self.interrupted = False
                self._interrupt(signal.SIGINT, None)
            reason: str | None = None
            stale = False
            while reason is None:
                code = child.poll()
                if code is not None:
                    child.close()
                    return _end_like(code)
                reason = child.request(_TICK)
                if reason is None:
                    found = self.triggers.changed()
                    if found is not None:
                        reason, stale = found
            label = self.target.label
            self.child = None  # from here a SIGINT ends the supervisor: no run starts after it
            if self.terminated:
                child.stop()
                return _end_like(-signal.SIGTERM)
            if stale:
                logger.log(NOTICE, "hotswap: %s: restarting %s from scratch", reason, label)
            else:
                logger.log(NOTICE, "hotswap: %s: restarting %s in %s", reason, label, how)
            child.stop()
            ended = self._ended()
            if ended is not None:
                return ended
            if stale:
                self._exec()

    def _ended(self) -> int | None:
        """The command's status when a signal came while a run was stopping, else None."""
        if self.terminated:
            return _end_like(-signal.SIGTERM)
        if self.interrupted:  # the status of an interrupted run
            return 128 + signal.SIGINT
        return None

    def _exec(self) -> None:
        """Start the whole command again: new dependencies need a new template."""
        sys.stdout.flush()
        sys.stderr.flush()
        argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
        os.execv(sys.executable, [sys.executable, *argv[1:]])
