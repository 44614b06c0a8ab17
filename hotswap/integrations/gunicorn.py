"""gunicorn without ``hotswap run``: its arbiter watches, its workers join one fleet.

``gunicorn -c python:hotswap.integrations.gunicorn -w 3 main:app`` (or, from a config file of
your own, ``from hotswap.integrations.gunicorn import on_starting, on_exit``). The arbiter
becomes the fleet's coordinator and starts the watcher (paths: ``[tool.hotswap] paths``, else
the current folder); every worker it forks, respawned ones included, joins the fleet and runs
its committed release from its first request (docs/fleets.md). ``--preload`` works too: the
arbiter then applies each release to its own copy as well.

Example:
    >>> from hotswap.integrations import gunicorn as config
    >>> sorted(n for n in vars(config) if n in ("on_starting", "on_exit"))
    ['on_exit', 'on_starting']
"""

from __future__ import annotations

import os
from typing import Any

import hotswap
from hotswap import _seam

__all__ = ("on_exit", "on_starting")


def on_starting(server: Any) -> None:
    """gunicorn's hook, in the arbiter before it forks the first worker: coordinate, watch."""
    _seam.coordinate()
    paths = hotswap.configure().paths
    # Status lines (the fleet's results among them) go to stderr, beside gunicorn's log.
    hotswap.enable(list(paths) or [os.getcwd()], verbose=True)


def on_exit(server: Any) -> None:
    """gunicorn's hook, in the arbiter as it exits: stop watching and coordinating."""
    hotswap.disable()
    _seam.end_fleet()
