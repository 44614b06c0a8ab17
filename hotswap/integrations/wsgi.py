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

from hotswap._api import pinned
from hotswap._pin import Pin
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
    """

    def __init__(self, app: WSGIApp, status_path: str | None = None) -> None:
        self.app = app
        self.status_path = status_path

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.status_path is not None and environ.get("PATH_INFO") == self.status_path:
            return self._status(environ, start_response)
        pin = pinned()
        pin.__enter__()
        try:
            response = self.app(environ, start_response)
        except BaseException:
            pin.__exit__(None, None, None)
            raise
        return _Pinned(response, pin)

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


class _Pinned:
    """A response iterable that leaves the pinned section when the server closes it."""

    __slots__ = ("_pin", "_response")

    def __init__(self, response: Iterable[bytes], pin: Pin) -> None:
        self._response = response
        self._pin: Pin | None = pin

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response)

    def close(self) -> None:
        try:
            close = getattr(self._response, "close", None)
            if close is not None:
                close()
        finally:
            pin, self._pin = self._pin, None
            if pin is not None:
                pin.__exit__(None, None, None)
