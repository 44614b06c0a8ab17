"""ASGI middleware: every HTTP request sees one version of the code; an optional status path.

Examples:
    >>> from hotswap.integrations.asgi import HotswapMiddleware
    >>> async def app(scope, receive, send): ...
    >>> app = HotswapMiddleware(app, status_path="/_hotswap")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hotswap import _seam, pinned
from hotswap._seam import routing as _routing
from hotswap.integrations._status import ALLOWED, status_body

__all__ = ("HotswapMiddleware",)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HotswapMiddleware:
    """Runs each HTTP request inside :func:`hotswap.pinned`.

    A reload waits for the requests in flight to finish (up to its ``pin_timeout``), and a
    request that arrives while a reload runs waits for it: no request is refused, and none
    runs part old code, part new. The wait happens in a worker thread, so the event loop keeps
    serving the requests the reload is waiting for.

    Every HTTP response carries an ``x-hotswap-epoch`` header: the first 12 characters of
    the epoch of the code that served it (:attr:`hotswap.Status.epoch`); in a fleet, every
    worker's answers say which release it runs.

    Lifespan and websocket scopes pass through unpinned: the lifespan lasts as long as the
    server, and a websocket as long as its connection, so pinning them would hold every reload
    off until its ``pin_timeout`` and make it fail.

    Usable as ``app.add_middleware(HotswapMiddleware)`` (Starlette, FastAPI) or
    ``HotswapMiddleware(app)`` around any ASGI application.

    Args:
        app: the ASGI application to wrap.
        status_path: a path (``"/_hotswap"``) that answers ``GET`` with
            ``json.dumps(hotswap.status().to_dict())``: per module version, source hash and
            last result, and whether the watcher runs. None (the default) leaves every path to
            the application.
        canary_key: ``canary_key(scope) -> str | None``: while a canary runs, requests with
            the same key run the same version (a user id, a session cookie); None (or a key
            of None) assigns each request at random by the canary's weight. A request header
            ``x-hotswap-canary: 1`` (or ``0``) forces the candidate (or the live version).

    While a canary runs (:func:`hotswap.canary`) or a committed version is watched
    (``configure(auto_rollback=...)``), each request is one unit: assigned to one version of
    every module under canary for its whole life, and counted, a 5xx answer or an exception
    as an error. Otherwise the middleware checks one flag and only pins.
    """

    def __init__(
        self,
        app: ASGIApp,
        status_path: str | None = None,
        canary_key: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.status_path = status_path
        self.canary_key = canary_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.status_path is not None and scope.get("path") == self.status_path:
            await self._status(scope, _stamped(send))
            return
        if not _routing.idle():
            await self._routed(scope, receive, send)
            return
        async with pinned():
            # Read inside the pin: the epoch of the code this request runs.
            await self.app(scope, receive, _stamped(send))

    async def _routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        forced = None
        for name, value in scope.get("headers", ()):
            if name == b"x-hotswap-canary":
                forced = _routing.forced_by(value)
        unit = _routing.begin(_routing.key_of(self.canary_key, scope), forced)
        answered = [0]

        async def watching(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered[0] = int(message.get("status", 200))
            await send(message)

        ok = False
        try:
            async with pinned():
                await self.app(scope, receive, _stamped(watching))
            ok = answered[0] < 500
        finally:
            if unit is not None:
                _routing.end(unit, ok)

    async def _status(self, scope: Scope, send: Send) -> None:
        method = scope.get("method", "GET")
        if method in ALLOWED:
            code, body = 200, status_body()
            headers = [(b"content-type", b"application/json")]
        else:
            code, body = 405, b"Method Not Allowed"
            headers = [
                (b"content-type", b"text/plain"),
                (b"allow", b", ".join(m.encode() for m in ALLOWED)),
            ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def _stamped(send: Send) -> Send:
    """``send`` that adds the ``x-hotswap-epoch`` header to the response's start."""
    epoch = _seam.short(_seam.epoch()).encode()

    async def stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), (b"x-hotswap-epoch", epoch)]
        await send(message)

    return stamped
