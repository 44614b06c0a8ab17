"""WSGI middleware: every request sees one version of the code; an optional status path.

Example:
    >>> from hotswap.integrations.wsgi import HotswapMiddleware
    >>> def app(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"hello"]
    >>> app = HotswapMiddleware(app, status_path="/_hotswap")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hotswap import pinned
from hotswap._seam import Pin
from hotswap._seam import routing as _routing
from hotswap.integrations._status import ALLOWED, status_body

__all__ = ("HotswapMiddleware",)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class HotswapMiddleware:
    """Runs each request inside :func:`hotswap.pinned`, until its response is closed.

    A reload waits for the requests in flight to finish (up to its ``pin_timeout``), and a
    request that arrives while a reload runs waits for it: no request is refused, and none
    runs part old code, part new. The pin lasts until the server closes the response, because
    a streamed response runs application code while it is iterated.

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

    While a canary runs or a committed version is watched, each request is one unit, from
    the call to the response's close: assigned to one version of every module under canary,
    and counted (a 5xx status or an exception is an error).
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
            return self._status(environ, start_response)
        unit = None
        answered = [0]
        if not _routing.idle():
            forced = _routing.forced_by(environ.get("HTTP_X_HOTSWAP_CANARY"))
            unit = _routing.begin(_routing.key_of(self.canary_key, environ), forced)
            if unit is not None:
                start_response = _watching(start_response, answered)
        pin = pinned()
        pin.__enter__()
        try:
            response = self.app(environ, start_response)
        except BaseException:
            pin.__exit__(None, None, None)
            if unit is not None:
                _routing.end(unit, False)
            raise
        return _Pinned(response, pin, unit, answered)

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


def _watching(start_response: StartResponse, answered: list[int]) -> StartResponse:
    def start(status: str, headers: Any, *rest: Any) -> Any:
        code = status.split(" ", 1)[0]
        answered[0] = int(code) if code.isdigit() else 0
        return start_response(status, headers, *rest)

    return start


class _Pinned:
    """A response iterable that leaves the pinned section (and ends its unit, while a canary
    runs) when the server closes it."""

    __slots__ = ("_answered", "_failed", "_pin", "_response", "_unit")

    def __init__(
        self,
        response: Iterable[bytes],
        pin: Pin,
        unit: _routing.Unit | None = None,
        answered: list[int] | None = None,
    ) -> None:
        self._response = response
        self._pin: Pin | None = pin
        self._unit = unit
        self._answered = answered or [0]
        self._failed = False

    def __iter__(self) -> Iterator[bytes]:
        if self._unit is None:
            return iter(self._response)
        return self._iterate()

    def _iterate(self) -> Iterator[bytes]:
        try:
            yield from self._response
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self._response, "close", None)
            if close is not None:
                close()
        finally:
            pin, self._pin = self._pin, None
            if pin is not None:
                pin.__exit__(None, None, None)
            unit, self._unit = self._unit, None
            if unit is not None:
                _routing.end(unit, not self._failed and self._answered[0] < 500)
