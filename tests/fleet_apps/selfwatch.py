"""The fleet app with a watcher of its own in every worker: each gunicorn worker imports this
module after the fork and calls ``hotswap.enable()`` itself (no ``hotswap run``, no fleet):
independent per-worker watchers, the benchmark's comparison row."""

import os

import hotswap

hotswap.enable(paths=[os.path.dirname(os.path.abspath(__file__))])

from app import asgi, wsgi  # noqa: E402  (after the watcher: the app's modules are watched)

__all__ = ("asgi", "wsgi")
