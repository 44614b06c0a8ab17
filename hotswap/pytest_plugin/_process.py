"""A worker process as the supervisor sees it: start, commands in, output and messages out."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from hotswap.pytest_plugin._worker import MARK

__all__ = ("WorkerProcess",)


class WorkerProcess:
    """One ``hotswap.pytest_plugin._worker`` process.

    Its output is copied to the supervisor's stdout unless :attr:`muted`; its messages are put
    on the supervisor's queue as ``("msg", self, message)``, and its end as ``("exit", self,
    None)``.

    Attributes:
        pid: the process id.
        ready: set once the worker has started and said so.
        runs: how many runs it has done (0: it is fresh).
        muted: its output is dropped (a verification run).
    """

    def __init__(
        self,
        root: str,
        options: Sequence[str],
        keep_cwd: bool,
        events: queue.Queue[tuple[str, WorkerProcess, Any]],
        cwd: str,
        output: IO[bytes],
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "hotswap.pytest_plugin._worker",
            root,
            "cwd" if keep_cwd else "nocwd",
            "--",
            *options,
        ]
        self._events = events
        self._output = output
        self.ready = threading.Event()
        self.runs = 0
        self.muted = False
        self.modules: list[str] | None = None
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            bufsize=0,
            # Ctrl-C is the supervisor's to handle: a worker in the terminal's process group
            # would die mid-run and print a traceback. A worker whose supervisor is gone exits
            # when its command pipe closes.
            start_new_session=os.name == "posix",
        )
        self.pid = self._process.pid
        self._pump = threading.Thread(target=self._read, name="hotswap-pump", daemon=True)
        self._pump.start()

    def send(self, **command: Any) -> None:
        """Send one command; a worker that is gone is reported through its exit event."""
        stdin = self._process.stdin
        assert stdin is not None
        with contextlib.suppress(OSError, ValueError):
            stdin.write(json.dumps(command).encode() + b"\n")
            stdin.flush()

    def _emit(self, data: bytes) -> None:
        if data and not self.muted:
            with contextlib.suppress(OSError, ValueError):
                self._output.write(data)
                self._output.flush()

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        pending = b""
        while True:
            chunk = stdout.read1(65536) if hasattr(stdout, "read1") else stdout.read(65536)
            if not chunk:
                break
            pending += chunk
            while True:
                at = pending.find(MARK)
                if at < 0:
                    # keep a tail that may be the start of a mark cut in two
                    keep = max(
                        (n for n in range(1, len(MARK)) if pending.endswith(MARK[:n])), default=0
                    )
                    self._emit(pending[: len(pending) - keep])
                    pending = pending[len(pending) - keep :]
                    break
                end = pending.find(b"\n", at)
                if end < 0:
                    self._emit(pending[:at])
                    pending = pending[at:]
                    break
                self._emit(pending[:at])
                message = json.loads(pending[at + len(MARK) : end])
                pending = pending[end + 1 :]
                if message.get("msg") == "ready":
                    self.ready.set()
                self._events.put(("msg", self, message))
        self._emit(pending)
        self._process.wait()
        self._events.put(("exit", self, None))

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._process.poll() is None

    def kill(self) -> None:
        """End the worker now (a run in progress is abandoned)."""
        self.muted = True
        with contextlib.suppress(OSError):
            self._process.kill()
        self._process.wait()
        if self._pump is not threading.current_thread():
            self._pump.join(5.0)

    def __repr__(self) -> str:
        return f"<worker pid={self.pid} runs={self.runs}>"
