"""The app the fleet tests serve: WSGI (``app:wsgi``) and ASGI (``app:asgi``), both behind
hotswap's middleware, so every answer carries the worker's epoch in ``x-hotswap-epoch``."""

import json
import os

import logic

from hotswap.integrations.asgi import HotswapMiddleware as AsgiMiddleware
from hotswap.integrations.wsgi import HotswapMiddleware as WsgiMiddleware


def _body() -> bytes:
    answer = {"pid": os.getpid(), "version": logic.version(), "count": logic.hit()}
    return json.dumps(answer).encode()


def _wsgi(environ, start_response):
    body = _body()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]


async def _asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = _body()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


wsgi = WsgiMiddleware(_wsgi)
asgi = AsgiMiddleware(_asgi)
