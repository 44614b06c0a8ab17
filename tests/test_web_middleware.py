"""The ASGI and WSGI middleware: pinned requests, the status path, pass-through scopes."""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings

import anyio
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("flask")

from fastapi import FastAPI, WebSocket

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 and warns when its test client runs on httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient
from flask import Flask, Response, stream_with_context

import hotswap
from hotswap._engine.pin import gate
from hotswap.integrations.asgi import HotswapMiddleware as AsgiMiddleware
from hotswap.integrations.wsgi import HotswapMiddleware as WsgiMiddleware

SERVICE = "def answer():\n    return 'v1'\n"
SERVICE_V2 = "def answer():\n    return 'v2'\n"


def fastapi_app(service, **options):
    app = FastAPI()
    app.add_middleware(AsgiMiddleware, **options)
    app.state.entered = threading.Event()
    app.state.release = threading.Event()

    @app.get("/hello")
    def hello():
        return {"answer": service.answer(), "readers": gate.readers}

    @app.get("/slow")
    async def slow():
        first = service.answer()
        app.state.entered.set()
        await anyio.to_thread.run_sync(app.state.release.wait, 10)
        return {"first": first, "second": service.answer()}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket):
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{text} {gate.readers}")
        await websocket.close()

    return app


def flask_app(service, **options):
    app = Flask(__name__)
    app.wsgi_app = WsgiMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    app.config["entered"] = threading.Event()
    app.config["release"] = threading.Event()

    @app.get("/hello")
    def hello():
        return {"answer": service.answer(), "readers": gate.readers}

    @app.get("/slow")
    def slow():
        first = service.answer()
        app.config["entered"].set()
        app.config["release"].wait(10)
        return {"first": first, "second": service.answer()}

    @app.get("/stream")
    def stream():
        def chunks():
            yield f"{gate.readers} "
            yield service.answer()

        return Response(stream_with_context(chunks()))

    return app


def flask_json(client, path):
    """GET through Flask's test client, closing the response as a WSGI server does."""
    response = client.get(path)
    try:
        return response.get_json()
    finally:
        response.close()


def in_flight_request_holds_the_reload(project, fetch, state) -> None:
    """A request in flight sees one version; the reload waits for it, then goes live."""
    project.write("service", SERVICE_V2)
    responses: list[dict[str, str]] = []
    request = threading.Thread(target=lambda: responses.append(fetch("/slow")))
    request.start()
    assert state["entered"].wait(30)
    results: list[hotswap.ReloadResult] = []
    reload = threading.Thread(target=lambda: results.append(hotswap.reload("service")))
    reload.start()
    assert gate.wait_for_writer(30)  # the reload waits for the pinned request
    state["release"].set()
    request.join(30)
    reload.join(30)
    assert responses == [{"first": "v1", "second": "v1"}]
    assert results[0].ok
    assert fetch("/hello")["answer"] == "v2"


def test_asgi_middleware_request_sees_one_version_during_a_reload(project):
    service = project.load("service", SERVICE)
    app = fastapi_app(service)
    with TestClient(app) as client:
        state = {"entered": app.state.entered, "release": app.state.release}
        in_flight_request_holds_the_reload(project, lambda path: client.get(path).json(), state)


def test_wsgi_middleware_request_sees_one_version_during_a_reload(project):
    service = project.load("service", SERVICE)
    app = flask_app(service)
    client = app.test_client()
    in_flight_request_holds_the_reload(project, lambda path: flask_json(client, path), app.config)


def test_asgi_middleware_pins_http_only(project):
    service = project.load("service", SERVICE)
    app = fastapi_app(service)
    with TestClient(app) as client:  # the lifespan runs through the middleware
        assert gate.readers == 0
        assert client.get("/hello").json() == {"answer": "v1", "readers": 1}
        with client.websocket_connect("/ws") as websocket:
            websocket.send_text("readers")
            assert websocket.receive_text() == "readers 0"
    assert gate.readers == 0


def test_asgi_middleware_passes_lifespan_state_through(project):
    from contextlib import asynccontextmanager

    service = project.load("service", SERVICE)
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app):
        events.append(f"startup {gate.readers}")
        app.state.pool = "open"
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(AsgiMiddleware)

    @app.get("/pool")
    def pool():
        return {"pool": app.state.pool, "answer": service.answer()}

    with TestClient(app) as client:
        assert client.get("/pool").json() == {"pool": "open", "answer": "v1"}
    assert events == ["startup 0", "shutdown"]


def make_client(kind, service, **options):
    """A function (method, path) -> (status, headers, JSON or None) over either framework."""
    if kind == "asgi":
        asgi = TestClient(fastapi_app(service, **options))

        def call_asgi(method, path):
            response = asgi.request(method, path)
            is_json = response.headers.get("content-type") == "application/json"
            return response.status_code, response.headers, response.json() if is_json else None

        return call_asgi
    wsgi = flask_app(service, **options).test_client()

    def call_wsgi(method, path):
        response = wsgi.open(path, method=method)
        try:
            return response.status_code, response.headers, response.get_json(silent=True)
        finally:
            response.close()

    return call_wsgi


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_middleware_status_path_answers_status_json(project, kind):
    service = project.load("service", SERVICE)
    project.write("service", SERVICE_V2)
    assert hotswap.reload("service").ok
    call = make_client(kind, service, status_path="/_hotswap")
    code, headers, body = call("GET", "/_hotswap")
    assert code == 200
    assert headers["content-type"] == "application/json"
    assert body == hotswap.status().to_dict()
    module = body["modules"]["service"]
    assert module["version"] == 2
    assert len(module["source_hash"]) == 64
    assert module["last_result"]["ok"] is True
    assert body["watching"] is False
    assert call("GET", "/hello")[2]["answer"] == "v2"  # other paths untouched
    code, headers, _ = call("POST", "/_hotswap")
    assert code == 405
    assert headers["allow"] == "GET, HEAD"
    assert gate.readers == 0


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_middleware_status_path_is_off_by_default(project, kind):
    service = project.load("service", SERVICE)
    call = make_client(kind, service)
    assert call("GET", "/_hotswap")[0] == 404
    assert call("GET", "/hello")[2] == {"answer": "v1", "readers": 1}
    assert gate.readers == 0


def test_middleware_plain_asgi_app_wrapped_directly(project):
    async def app(scope, receive, send):
        assert scope["type"] == "http"
        body = f"readers {gate.readers}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    client = TestClient(AsgiMiddleware(app, status_path="/status"))
    assert client.get("/anything").text == "readers 1"
    assert client.get("/status").json() == hotswap.status().to_dict()
    assert gate.readers == 0


def test_wsgi_middleware_streamed_response_stays_pinned_until_closed(project):
    service = project.load("service", SERVICE)
    app = flask_app(service)
    response = app.test_client().get("/stream", buffered=False)
    assert next(iter(response.response)) == b"1 "
    assert gate.readers == 1  # neither produced to its end nor closed yet
    response.close()  # a client that went away: the server closes it midway
    assert gate.readers == 0


def waiting_at_the_gate() -> bool:
    """Whether some thread is blocked entering a pinned section (a request held off)."""
    for top in sys._current_frames().values():
        frame = top
        while frame is not None:
            code = frame.f_code
            if code.co_name == "_enter" and code.co_filename.endswith(
                os.path.join("_engine", "pin.py")
            ):
                return True
            frame = frame.f_back
    return False


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_middleware_request_arriving_during_a_reload_waits_for_it(project, kind):
    service = project.load("service", SERVICE)
    call = make_client(kind, service)
    order: list[str] = []
    with gate.exclusive(30, "a reload"):  # a reload between execute and commit
        request = threading.Thread(target=lambda: order.append(call("GET", "/hello")[2]))
        request.start()
        deadline = time.monotonic() + 30
        while not waiting_at_the_gate():  # held off, not refused
            assert time.monotonic() < deadline, "the request did not wait at the gate"
            time.sleep(0.005)
        order.append("committed")
    request.join(30)
    assert order == ["committed", {"answer": "v1", "readers": 1}]
