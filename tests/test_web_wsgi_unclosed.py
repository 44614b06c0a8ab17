"""The WSGI middleware under Flask's test client, whose responses are read but never closed
(issue 24.5): a request's pin and canary assignment end once its body has been produced or on
close, whichever comes first, and never stay in the calling thread's context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("flask")

from flask import Flask, Response, stream_with_context

import hotswap
from hotswap._engine.pin import gate
from hotswap._release import canary as _canary
from hotswap._release import health as _health
from hotswap.integrations.wsgi import HotswapMiddleware

SERVICE = "def answer():\n    return 'v1'\n"
SERVICE_V2 = "def answer():\n    return 'v2'\n"


@pytest.fixture(autouse=True)
def no_canary_left() -> Iterator[None]:
    yield
    for run in _canary.running().values():
        run.abort()
    _health.reset()


def flask_app(service) -> Flask:
    app = Flask(__name__)
    app.wsgi_app = HotswapMiddleware(app.wsgi_app)  # type: ignore[method-assign]

    @app.get("/hello")
    def hello():
        return {"answer": service.answer(), "readers": gate.readers}

    @app.get("/stream")
    def stream():
        def chunks():
            yield f"{gate.readers} "
            yield service.answer()

        return Response(stream_with_context(chunks()))

    return app


def test_wsgi_unclosed_response_read_to_the_end_holds_no_pin(project, bytecode):
    # A pin left behind would make the reload below wait this long, then fail.
    hotswap.configure(pin_timeout=0.5)
    service = project.load("service", SERVICE)
    client = flask_app(service).test_client()
    response = client.get("/hello")  # read, never closed: as most Flask test code does
    assert response.get_json() == {"answer": "v1", "readers": 1}
    assert gate.readers == 0
    project.write("service", SERVICE_V2)
    result = hotswap.reload("service")
    assert result.ok, result.error
    assert client.get("/hello").get_json() == {"answer": "v2", "readers": 1}
    assert gate.readers == 0


def test_wsgi_streamed_response_pinned_while_produced_released_when_exhausted(project):
    service = project.load("service", SERVICE)
    response = flask_app(service).test_client().get("/stream", buffered=False)
    chunks = iter(response.response)
    assert next(chunks) == b"1 "
    assert gate.readers == 1  # application code still runs while the body is produced
    assert b"".join(chunks) == b"v1"
    assert gate.readers == 0  # exhausted: the request is over, closed or not
    response.close()
    assert gate.readers == 0  # and closing it afterwards ends nothing twice


def test_wsgi_request_assignment_never_leaks_into_the_callers_context(project, bytecode):
    service = project.load("service", SERVICE)
    client = flask_app(service).test_client()
    project.write("service", SERVICE_V2)
    hotswap.canary(service, weight=0.5)
    forced = client.get("/hello", headers={"X-Hotswap-Canary": "1"})
    assert forced.get_json()["answer"] == "v2"  # this request ran the candidate
    # The test's own calls, outside any request, are not that request's: live code.
    assert service.answer() == "v1"
    live = client.get("/hello", headers={"X-Hotswap-Canary": "0"})
    assert live.get_json()["answer"] == "v1"
    assert service.answer() == "v1"
    assert gate.readers == 0
