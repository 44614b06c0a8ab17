"""WSGI middleware: every request sees one version of the code; an optional status path.

Examples:
    >>> from hotswap.integrations.wsgi import HotswapMiddleware
    >>> def app(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"hello"]
    >>> app = HotswapMiddleware(app, status_path="/_hotswap")
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hotswap import _seam, pinned
from hotswap._seam import Pin
from hotswap._seam import routing as _routing
from hotswap.integrations._status import ALLOWED, status_body

__all__ = ("HotswapMiddleware",)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class HotswapMiddleware:
    """Runs each request inside :func:`hotswap.pinned`, until its body has been produced.

    A reload waits for the requests in flight to finish (up to its ``pin_timeout``), and a
    request that arrives while a reload runs waits for it: no request is refused, and none
    runs part old code, part new. The pin lasts until the response iterable is exhausted or
    closed, whichever comes first, because a streamed response runs application code while it
    is iterated; a response that is read to its end but never closed (Flask's test client)
    holds nothing afterwards.

    Each request runs in a copy of the calling thread's context, so its pin and canary
    assignment never leak into that thread's later calls.

    Usable as ``app.wsgi_app = HotswapMiddleware(app.wsgi_app)`` (Flask) or around any WSGI
    application.

    Args:
        app: the WSGI application to wrap.
        status_path: a path (``"/_hotswap"``) that answers ``GET`` with
            ``json.dumps(hotswap.status().to_dict())``: per module version, source hash and
            last result, and whether the watcher runs. None (the default) leaves every path to
            the application.
        canary_key: ``canary_key(environ) -> str | None``: while a canary runs, requests with
            the same key run the same version; None assigns at random by weight. A request
            header ``X-Hotswap-Canary: 1`` (or ``0``) forces the candidate (or the live
            version).

    Every response carries an ``X-Hotswap-Epoch`` header: the first 12 characters of the
    epoch of the code that served it (:attr:`hotswap.Status.epoch`).

    While a canary runs or a committed version is watched, each request is one unit, from
    the call until its body has been produced (or it is closed): assigned to one version of
    every module under canary, and counted (a 5xx status or an exception is an error).
    """

    def __init__(
        self,
        app: WSGIApp,
        status_path: str | None = None,
        canary_key: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> None:
        self.app = app
        self.status_path = status_path
        self.canary_key = canary_key

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.status_path is not None and environ.get("PATH_INFO") == self.status_path:
            return self._status(environ, _stamping(start_response, _seam.short(_seam.epoch())))
        # The request's own context: its pin depth and canary assignment live there, and the
        # body is produced in it too, so nothing stays set in the caller's context.
        context = contextvars.copy_context()
        return context.run(self._begin, context, environ, start_response)

    def _begin(
        self, context: contextvars.Context, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        unit = None
        answered = [0]
        if not _routing.idle():
            forced = _routing.forced_by(environ.get("HTTP_X_HOTSWAP_CANARY"))
            unit = _routing.begin(_routing.key_of(self.canary_key, environ), forced)
            if unit is not None:
                start_response = _watching(start_response, answered)
        pin = pinned()
        pin.__enter__()
        # Read inside the pin: the epoch of the code this request runs.
        start_response = _stamping(start_response, _seam.short(_seam.epoch()))
        try:
            response = self.app(environ, start_response)
        except BaseException:
            pin.__exit__(None, None, None)
            if unit is not None:
                _routing.end(unit, False)
            raise
        return _Pinned(response, context, pin, unit, answered)

    def _status(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ALLOWED:
            body = b"Method Not Allowed"
            start_response(
                "405 Method Not Allowed",
                [
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))),
                    ("Allow", ", ".join(ALLOWED)),
                ],
            )
            return [body]
        body = status_body()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [b""] if method == "HEAD" else [body]


def _stamping(start_response: StartResponse, epoch: str) -> StartResponse:
    """``start_response`` that adds the ``X-Hotswap-Epoch`` header."""

    def start(status: str, headers: Any, *rest: Any) -> Any:
        return start_response(status, [*headers, ("X-Hotswap-Epoch", epoch)], *rest)

    return start


def _watching(start_response: StartResponse, answered: list[int]) -> StartResponse:
    def start(status: str, headers: Any, *rest: Any) -> Any:
        code = status.split(" ", 1)[0]
        answered[0] = int(code) if code.isdigit() else 0
        return start_response(status, headers, *rest)

    return start


class _Pinned:
    """A response iterable that leaves the pinned section (and ends its unit, while a canary
    runs) once its body has been produced or the server closes it, whichever comes first.

    The body is produced in the request's context (a streamed body runs application code).
    """

    __slots__ = ("_answered", "_context", "_failed", "_lock", "_pin", "_response", "_unit")

    def __init__(
        self,
        response: Iterable[bytes],
        context: contextvars.Context,
        pin: Pin,
        unit: _routing.Unit | None = None,
        answered: list[int] | None = None,
    ) -> None:
        self._response = response
        self._context = context
        self._pin: Pin | None = pin
        self._unit = unit
        self._answered = answered or [0]
        self._failed = False
        # A server may close the response from another thread than the one iterating it.
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        return self._iterate()

    def _iterate(self) -> Iterator[bytes]:
        run = self._context.run
        try:
            iterator = run(iter, self._response)
            while True:
                try:
                    chunk = run(next, iterator)
                except StopIteration:
                    break
                yield chunk
        except GeneratorExit:
            raise  # abandoned: close() ends the request
        except BaseException:
            self._failed = True
            self._finish()
            raise
        self._finish()

    def close(self) -> None:
        try:
            close = getattr(self._response, "close", None)
            if close is not None:
                self._context.run(close)
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            pin, self._pin = self._pin, None
            unit, self._unit = self._unit, None
        if pin is not None:
            self._context.run(pin.__exit__, None, None, None)
        if unit is not None:
            ok = not self._failed and self._answered[0] < 500
            self._context.run(_routing.end, unit, ok)
