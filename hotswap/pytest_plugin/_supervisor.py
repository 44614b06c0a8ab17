"""The supervisor of ``pytest --hotswap``: owns the terminal, the keys and the file watcher, and
drives one warm worker (plus a fresh standby) through runs.

One thread decides: the main thread takes events from one queue (file changes, keys, worker
messages and exits) and acts on them, so no state is shared between threads except the queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hotswap.pytest_plugin._feed import ChangeFeed
from hotswap.pytest_plugin._process import WorkerProcess
from hotswap.pytest_plugin._selection import (
    ImportGraph,
    classify,
    environment,
    is_test_file,
    project_files,
    read_text,
    restart_reasons,
    set_test_patterns,
)
from hotswap.pytest_plugin._suite import EventLog, Suite
from hotswap.pytest_plugin._terminal import Cbreak, read_keys

__all__ = ("Options", "Supervisor")

# A change set settles this long after its last file event before a run starts.
_SETTLE = 0.02
# --hotswap-verify=idle: verify once nothing was saved for this long after a final run.
_IDLE = 1.0
# The longest the main thread waits at once: CPython can lose a SIGINT (Ctrl-C) that lands just
# before a wait without a timeout blocks; the next wait sees it.
_SLICE = 0.5

Event = tuple[str, Any, Any]


@dataclass
class Options:
    """What the supervisor needs from pytest's configuration."""

    root: str
    cwd: str
    worker_options: list[str]  # the command line without hotswap's options and positionals
    positionals: list[str]  # the paths and node ids the user gave
    first_only: list[str]  # options for the first run only (--lf)
    scope: list[str]  # folders/files holding the tests in scope (absolute)
    watch: list[str]  # what to watch (absolute)
    keep_cwd: bool
    verify: str = "idle"
    events: str | None = None


@dataclass
class _Run:
    id: int
    worker: WorkerProcess
    files: list[str] | None  # absolute test files; None: everything in scope
    changed: list[str]
    mode: str
    verify: bool = False
    superseded: bool = False
    started: float = field(default_factory=time.perf_counter)


class Supervisor:
    """One ``pytest --hotswap`` session."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.queue: queue.Queue[Event] = queue.Queue()
        self.log = EventLog(options.events)
        self.suite = Suite()
        self.graph = ImportGraph(options.root)
        self.output = sys.stdout.buffer
        self.worker: WorkerProcess | None = None
        self.standby: WorkerProcess | None = None
        self.run: _Run | None = None
        self.runs = 0
        self.changed: dict[str, None] = {}  # files changed, not settled yet
        self.due: float | None = None  # when they have settled
        self.settled: dict[str, None] = {}  # settled changes the next run applies
        self.wanted = False  # a run is due as soon as the current one ends
        self.restart_reason: str | None = None
        self.carry: list[str] | None = []  # files of a superseded run, to run again
        self.hashes: dict[str, str] = {}
        self.last_selection: tuple[list[str] | None, list[str]] | None = None
        self.idle_since: float | None = None
        self.quit = False
        self.status: int | None = None  # set when the session must end with this status
        self.deaths = 0  # workers that died in a row without finishing a run
        self.preload: list[str] | None = None
        self.environment = environment(self.options.root)
        # Each conftest's source as the worker loaded it: a change is judged against it.
        self.conftests = {
            path: read_text(path)
            for path in project_files(options.root)
            if os.path.basename(path) == "conftest.py"
        }

    # --- output -------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A line of the supervisor's own, after whatever the worker printed."""
        with contextlib.suppress(OSError, ValueError):
            self.output.write(text.encode(errors="replace") + b"\n")
            self.output.flush()

    # --- workers ------------------------------------------------------------------------------

    def _spawn(self) -> WorkerProcess:
        worker = WorkerProcess(
            self.options.root,
            self.options.worker_options,
            self.options.keep_cwd,
            self.queue,
            self.options.cwd,
            self.output,
        )
        if self.preload:
            worker.send(cmd="preload", modules=self.preload)
        return worker

    def _promote(self, reason: str) -> None:
        """Replace the warm worker with the standby (which has imported nothing of the
        project), and start a new standby."""
        self.log.write("restart", reason=reason)
        self.say(f"[hotswap] restarting the worker: {reason}")
        old, self.worker = self.worker, self.standby or self._spawn()
        self.standby = self._spawn()
        if old is not None:
            old.kill()
        self.hashes.clear()
        self.environment = environment(self.options.root)

    # --- scope and selection -----------------------------------------------------------------

    def _tests_in_scope(self) -> list[str]:
        """The test files the session's paths reach (the graph was just scanned: its files are
        the project's Python files)."""
        known = [p for p in self.graph.edges if is_test_file(p)]
        found: list[str] = []
        for entry in self.options.scope:
            if os.path.isfile(entry):
                found.append(entry)
            elif os.path.isdir(entry):
                prefix = entry.rstrip(os.sep) + os.sep
                inside = [p for p in known if p.startswith(prefix)]
                if not inside and not entry.startswith(self.options.root):
                    inside = [p for p in project_files(entry) if is_test_file(p)]
                found.extend(inside)
        return sorted(set(found))

    def _relative(self, path: str) -> str:
        return os.path.relpath(path, self.options.root).replace(os.sep, "/")

    def _positionals(self, files: list[str] | None) -> list[str] | None:
        """The user's paths and node ids that reach ``files``; None when none does."""
        if files is None or not self.options.positionals:
            return list(self.options.positionals)
        chosen = set(files)
        kept = []
        for argument in self.options.positionals:
            path = os.path.abspath(os.path.join(self.options.cwd, argument.split("::", 1)[0]))
            if os.path.isdir(path):
                if any(f.startswith(path.rstrip(os.sep) + os.sep) for f in chosen):
                    kept.append(argument)
            elif path in chosen:
                kept.append(argument)
        return kept or None

    # --- the loop -----------------------------------------------------------------------------

    def serve(self) -> int:
        """Run until ``q``, Ctrl-C or the end of the keys' stream with nothing to do."""
        feed = ChangeFeed(self.options.watch, self.queue)
        feed.start()  # armed before the first run: a save during it is seen
        self.log.write("watching", paths=feed.paths)
        keys = threading.Thread(
            target=read_keys, args=(self.queue,), name="hotswap-keys", daemon=True
        )
        keys.start()
        terminal = Cbreak()
        try:
            self.worker = self._spawn()
            self.standby = self._spawn()
            self._start(None, [], first=True)
            while not self.quit:
                self._step()
        except KeyboardInterrupt:
            self.say("[hotswap] interrupted")
        finally:
            feed.stop()
            running = None if self.run is None else self.run.worker
            for worker in (self.worker, self.standby, running):
                if worker is not None and worker.alive():
                    worker.kill()
            self.log.close()
            terminal.restore()
        if self.status is not None:
            return self.status
        counts = self.suite.counts()
        return 1 if counts["failed"] or counts["error"] else 0

    def _step(self) -> None:
        timeout = _SLICE
        now = time.monotonic()
        if self.due is not None:
            timeout = min(max(self.due - now, 0.0), _SLICE)
        elif self._verify_due() is not None:
            timeout = min(max(self._verify_due() - now, 0.0), _SLICE)  # type: ignore[operator]
        try:
            kind, subject, detail = self.queue.get(timeout=timeout)
        except queue.Empty:
            kind, subject, detail = ("tick", None, None)
        if kind == "file":
            self._file(subject)
        elif kind == "key":
            self._key(subject)
        elif kind == "msg":
            self._message(subject, detail)
        elif kind == "exit":
            self._exited(subject)
        self._maybe_start()

    def _key(self, key: str) -> None:
        if key == "q":
            self.quit = True
        elif key == "a":
            self._request(None, restart=None)
        elif key == "f":
            failing = sorted({self._abs(n.split("::", 1)[0]) for n in self.suite.failing()})
            if failing:
                self._request(failing, restart=None)
        elif key == "r":
            self._request(None, restart="asked for with the r key")
        elif key == "enter" and self.last_selection is not None:
            self._request(self.last_selection[0], restart=None)

    def _abs(self, relative: str) -> str:
        return os.path.join(self.options.root, *relative.split("/"))

    def _request(self, files: list[str] | None, restart: str | None) -> None:
        """Ask for a run of ``files`` (None: all) as soon as the current one ends."""
        if restart is not None:
            self.restart_reason = self.restart_reason or restart
        if files is None or self.carry is None:
            self.carry = None
        else:
            self.carry = sorted({*self.carry, *files})
        self.due = time.monotonic()
        self._supersede()

    def _supersede(self) -> None:
        if self.run is not None and not self.run.superseded:
            self.run.superseded = True
            if self.run.verify:
                self.run.worker.kill()  # a fresh replay of old code is worth nothing now
            else:
                self.run.worker.send(cmd="stop")

    def _file(self, path: str) -> None:
        path = os.path.abspath(path)
        if path == self.log.path:
            return
        kind = classify(path, self.options.root)
        if kind == "ignored":
            return
        try:
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            if path not in self.hashes and not path.endswith(".py"):
                return  # an editor's or tool's temporary file, already gone
            digest = ""
        if self.hashes.get(path) == digest:
            return  # saved without a change
        self.hashes[path] = digest
        self.changed[path] = None
        self.due = time.monotonic() + _SETTLE
        self.suite.verified = None
        self._supersede()

    def _maybe_start(self) -> None:
        now = time.monotonic()
        if self.due is not None and now >= self.due:
            # The change set has settled: it is reported now, even while a run goes on.
            self.due = None
            self.wanted = True
            if self.changed:
                self.log.write("change", files=list(self.changed))
                self.settled.update(self.changed)
                self.changed.clear()
        if self.run is not None or self.quit:
            return
        if self.wanted:
            self.wanted = False
            changed = list(self.settled)
            self.settled.clear()
            files = self._select(changed)
            if files is not None and not files and self.restart_reason is None:
                self.say(f"[hotswap] no test depends on {', '.join(map(self._relative, changed))}")
                return
            self._start(files, changed)
        elif self._verify_due() is not None and now >= self._verify_due():  # type: ignore[operator]
            self._verify()

    def _select(self, changed: list[str]) -> list[str] | None:
        """The test files the change set affects (None: all); notes a needed restart."""
        carried, self.carry = self.carry, []
        if environment(self.options.root) != self.environment:
            self.restart_reason = "installed packages or the checked-out branch changed"
        reasons = restart_reasons(changed, self.options.root, self.conftests)
        if reasons:
            self.restart_reason = self.restart_reason or "; ".join(reasons)
        if self.restart_reason is not None or carried is None:
            return None
        self.graph.scan()
        tests = self._tests_in_scope()
        return sorted({*self.graph.affected(changed, tests), *carried})

    def _start(self, files: list[str] | None, changed: list[str], *, first: bool = False) -> None:
        if self.restart_reason is not None:
            reason, self.restart_reason = self.restart_reason, None
            self._promote(reason)
            files = None
        worker = self.worker
        assert worker is not None
        positionals = self._positionals(files)
        if positionals is None:
            return
        self.runs += 1
        mode = "fresh" if worker.runs == 0 else "warm"
        self.run = _Run(self.runs, worker, files, changed, mode)
        self.suite.begin(None if files is None else [self._relative(f) for f in files])
        self.last_selection = (files, changed)
        self.idle_since = None
        worker.send(
            cmd="run",
            id=self.runs,
            changed=changed,
            files=files,
            args=positionals,
            extra=self.options.first_only if first else [],
        )

    # --- verification -------------------------------------------------------------------------

    def _verify_due(self) -> float | None:
        """When to verify the last final run; None while there is nothing to verify or no
        fresh standby is ready yet (its "ready" message comes through the queue)."""
        if self.options.verify == "off" or self.idle_since is None or self.run is not None:
            return None
        if self.suite.verified is not None or self.standby is None:
            return None
        if not self.standby.ready.is_set():
            return None
        return self.idle_since + (_IDLE if self.options.verify == "idle" else 0.0)

    def _verify(self) -> None:
        """Replay the last selection in the fresh standby and compare per test."""
        self.idle_since = None
        if self.last_selection is None or self.standby is None:
            return
        files, _ = self.last_selection
        positionals = self._positionals(files)
        if positionals is None:
            return
        worker, self.standby = self.standby, self._spawn()
        worker.muted = True
        self.runs += 1
        self.run = _Run(self.runs, worker, files, [], "fresh", verify=True)
        worker.send(cmd="run", id=self.runs, changed=[], files=files, args=positionals, extra=[])

    def _compare(self, run: _Run, outcomes: dict[str, str]) -> None:
        scope = None if run.files is None else {self._relative(f) for f in run.files}
        mismatches = []
        for nodeid in sorted(set(outcomes) | set(self.suite.outcomes)):
            if scope is not None and nodeid.split("::", 1)[0] not in scope:
                continue
            warm, fresh = self.suite.outcomes.get(nodeid), outcomes.get(nodeid)
            if warm is not None and warm != fresh:
                mismatches.append({"nodeid": nodeid, "warm": warm, "fresh": fresh})
        self.suite.verified = not mismatches
        self.log.write("verify", match=not mismatches, mismatches=mismatches)
        if mismatches:
            self.say("[hotswap] VERIFY MISMATCH: a fresh process disagrees with the warm one:")
            for item in mismatches:
                self.say(f"    {item['nodeid']}: warm {item['warm']}, fresh {item['fresh']}")
            self.say("[hotswap] the next run uses a fresh worker")
            self.restart_reason = "verification found a mismatch"
        else:
            self.say(self.suite.line())

    # --- worker messages ----------------------------------------------------------------------

    def _message(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        kind = message.get("msg")
        if kind == "reload":
            fields = {k: message.get(k) for k in ("module", "ok", "version", "error")}
            self.log.write("reload", **fields)
        elif kind == "done":
            self._done(worker, message)

    def _done(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        run = self.run
        if run is None or run.worker is not worker or message.get("id") != run.id:
            return
        self.run = None
        worker.runs += 1
        self.deaths = 0
        status = message.get("exitstatus")
        if status in (3, 4) and not run.verify and not message.get("conftest"):
            # pytest could not run at all (an internal or a usage error, reported above):
            # a save cannot fix the command line. A conftest.py that failed to import (the
            # same error a fresh run reports) is the project's: the next save may fix it.
            self.say(f"[hotswap] pytest stopped with exit status {status}; ending the session")
            self.status = status
            self.quit = True
            return
        if message.get("modules") and self.preload is None:
            self.preload = message["modules"]
            if self.standby is not None:
                self.standby.send(cmd="preload", modules=self.preload)
        outcomes: dict[str, str] = message.get("outcomes", {})
        if run.files is None and not run.verify:
            # A full run read the configuration as it is now (a restart may have changed
            # python_files or testpaths): the selection follows it.
            if message.get("patterns"):
                set_test_patterns(message["patterns"])
            if message.get("scope") and not self.options.positionals:
                self.options.scope = message["scope"]
        if run.verify:
            worker.kill()
            if not run.superseded:
                self._compare(run, outcomes)
            return
        final = not (run.superseded or self.changed or self.settled or self.wanted)
        complete = not message.get("stopped") and not run.superseded
        files = None if run.files is None else [self._relative(f) for f in run.files]
        self.suite.finish(files, message.get("selected", []), outcomes, complete=complete)
        if run.superseded:
            # what it did not finish runs again with the next change set
            if run.files is None or self.carry is None:
                self.carry = None
            else:
                self.carry = [*self.carry, *run.files]
        self.log.write(
            "run",
            id=run.id,
            mode=run.mode,
            worker_pid=worker.pid,
            selected=message.get("selected", []),
            outcomes=outcomes,
            final=final,
            changed=run.changed,
            files=files,
            suite=self.suite.counts(),
            duration=time.perf_counter() - run.started,
            prepare=message.get("prepare"),
            exitstatus=message.get("exitstatus"),
        )
        if final:
            self.say(self.suite.line())
            self.idle_since = time.monotonic()
        else:
            self.say("[hotswap] superseded by a newer save; running again")

    def _exited(self, worker: WorkerProcess) -> None:
        if worker in (self.worker, self.standby) or (
            self.run is not None and self.run.worker is worker and not self.run.verify
        ):
            self.deaths += 1
            if self.deaths >= 3:
                self.say("[hotswap] the worker keeps exiting (see its output above); giving up")
                self.status = 3  # pytest's "internal error"
                self.quit = True
                return
        if self.run is not None and self.run.worker is worker:
            run, self.run = self.run, None
            if run.verify:
                return
            self.say(f"[hotswap] the worker (pid {worker.pid}) exited during run {run.id}")
            self.restart_reason = "the worker exited"
            self.carry = None
            self.due = time.monotonic()
        elif worker is self.worker:
            self.restart_reason = "the worker exited"
        elif worker is self.standby:
            self.standby = None if self.quit else self._spawn()
