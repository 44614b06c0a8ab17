"""The app the fleet canary tests serve (``admin:wsgi``): the version, with admin paths that
start, promote and abort a canary from whichever worker the request reaches, and hotswap's
status at ``/_hotswap``. A request's sticky key is its ``x-user`` header."""

import json
import os

import logic

import hotswap
from hotswap.integrations.wsgi import HotswapMiddleware


def _admin(path):
    if path == "/canary":
        hotswap.canary("logic", weight=0.5, min_calls=1000)
        return {"started": True}
    run = hotswap.status().canaries.get("logic")
    if run is None:
        return {"error": "no canary"}
    result = run.promote() if path == "/promote" else run.abort()
    return {"ok": result.ok, "reason": result.reason}


def _app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        answer = {"pid": os.getpid(), "version": logic.version(), "count": logic.hit()}
    else:
        try:
            answer = {"pid": os.getpid(), **_admin(path)}
        except hotswap.HotswapError as error:
            answer = {"pid": os.getpid(), "error": str(error)}
    body = json.dumps(answer).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]


wsgi = HotswapMiddleware(
    _app, status_path="/_hotswap", canary_key=lambda environ: environ.get("HTTP_X_USER")
)
