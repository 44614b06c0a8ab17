"""The terminal side of the supervisor: keys from the original stdin."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
from typing import Any

__all__ = ("Cbreak", "read_keys")


def read_keys(events: queue.Queue[tuple[str, Any, Any]]) -> None:
    """Put each key read from stdin (a terminal or a pipe) on ``events`` as ``("key", key,
    None)``: ``"enter"`` for a line end, else the lower-cased character. Returns at the end of
    input: the session keeps watching without keys."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return
    while True:
        try:
            data = os.read(fd, 1024)
        except OSError:
            return
        if not data:
            return
        for char in data.decode(errors="replace"):
            if char in "\r\n":
                events.put(("key", "enter", None))
            elif not char.isspace():
                events.put(("key", char.lower(), None))


class Cbreak:
    """Keys without Enter on a terminal: cbreak mode while the session runs (POSIX only;
    elsewhere, and on a pipe, keys arrive line by line)."""

    def __init__(self) -> None:
        self._saved: Any = None
        try:
            import termios
            import tty

            fd = sys.stdin.fileno()
            if os.isatty(fd):
                self._saved = (fd, termios.tcgetattr(fd))
                tty.setcbreak(fd)
        except (ImportError, AttributeError, ValueError, OSError):
            self._saved = None

    def restore(self) -> None:
        if self._saved is not None:
            import termios

            fd, mode = self._saved
            with contextlib.suppress(OSError):
                termios.tcsetattr(fd, termios.TCSADRAIN, mode)
            self._saved = None
