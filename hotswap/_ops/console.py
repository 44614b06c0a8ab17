"""What ``hotswap run`` shows: one status line per reload, restart and crash, on stderr.

The library logs each reload attempt on the ``hotswap`` logger and attaches no handler; the
command line attaches this one, and so does ``enable(verbose=True)`` (until ``disable()``) for
a program started with plain ``python``. Lines are coloured when the stream is a terminal, unless
``NO_COLOR`` is set (https://no-color.org): green for code that went live, red for a failure,
cyan for what the command itself did (a restart, a rerun), dim for a save that changed nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ("NOTICE", "attached", "setup", "show", "use_colour")

# The command's own notices (restarts, reruns): shown unless -q, coloured apart from reloads.
NOTICE = logging.INFO + 5
logging.addLevelName(NOTICE, "NOTICE")

_RESET = "\033[0m"
_COLOURS = {"live": "\033[32m", "fail": "\033[31m", "notice": "\033[36m", "dim": "\033[2m"}


def use_colour(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether to colour what is written to ``stream``: a terminal, and ``NO_COLOR`` unset or
    empty."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Formatter(logging.Formatter):
    def __init__(self, colour: bool, verbose: bool) -> None:
        shape = "%(asctime)s %(message)s" if verbose else "%(message)s"
        super().__init__(shape, datefmt="%H:%M:%S")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.colour:
            return text
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            tone = "fail"
        elif record.levelno == NOTICE:
            tone = "notice"
        elif ": unchanged" in message:
            tone = "dim"
        elif record.levelno == logging.INFO:
            tone = "live"
        else:
            return text
        return f"{_COLOURS[tone]}{text}{_RESET}"


def attached() -> bool:
    """Whether the status lines are shown already (``hotswap run`` set them up)."""
    return any(getattr(h, "_hotswap_console", False) for h in logging.getLogger("hotswap").handlers)


def show() -> Callable[[], None]:
    """Show the status lines on stderr as ``hotswap run`` does, for ``enable(verbose=True)``;
    returns the function that puts the ``hotswap`` logger back as it was."""
    logger = logging.getLogger("hotswap")
    level, propagate = logger.level, logger.propagate
    handler = setup(0)

    def hide() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate

    return hide


def setup(verbosity: int = 0, stream: TextIO | None = None) -> logging.Handler:
    """Show hotswap's log on ``stream`` (stderr): ``verbosity`` -1 (``-q``) shows failures
    only, 0 reloads, restarts and failures, 1 (``-v``) adds details and times.

    Returns the handler, attached to the ``hotswap`` logger (which no longer propagates).
    """
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Formatter(use_colour(out), verbosity > 0))
    logger = logging.getLogger("hotswap")
    for old in list(logger.handlers):
        if getattr(old, "_hotswap_console", False):
            logger.removeHandler(old)
    handler._hotswap_console = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    if verbosity < 0:
        logger.setLevel(logging.WARNING)
    else:
        logger.setLevel(logging.DEBUG if verbosity else logging.INFO)
    logger.propagate = False
    return handler
