"""ASGI middleware: every HTTP request sees one version of the code; an optional status path.

Example:
    >>> from hotswap.integrations.asgi import HotswapMiddleware
    >>> async def app(scope, receive, send): ...
    >>> app = HotswapMiddleware(app, status_path="/_hotswap")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hotswap._api import pinned
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
    """

    def __init__(self, app: ASGIApp, status_path: str | None = None) -> None:
        self.app = app
        self.status_path = status_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.status_path is not None and scope.get("path") == self.status_path:
            await self._status(scope, send)
            return
        async with pinned():
            await self.app(scope, receive, send)

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
