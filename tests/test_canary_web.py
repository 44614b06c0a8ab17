"""Gray release and automatic rollback behind the ASGI and WSGI middleware, with FastAPI and
Flask test clients: the share, whole requests on one version, sticky keys, the forcing header,
automatic abort and promotion, and rollback of a committed version whose requests fail."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator

import pytest

import hotswap
from hotswap._release import canary as _canary
from hotswap._release import health as _health

pytest.importorskip("fastapi")
pytest.importorskip("flask")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

FASTAPI_APP = """
from urllib.parse import parse_qs

from fastapi import FastAPI
from hotswap.integrations.asgi import HotswapMiddleware

app = FastAPI()
SEEN = [0]

def version():
    return "v1"

def detail():
    return "d1"

@app.get("/")
def index():
    SEEN[0] += 1
    return {"version": version(), "detail": detail()}

def user_of(scope):
    return (parse_qs(scope["query_string"].decode()).get("user") or [None])[0]

app.add_middleware(HotswapMiddleware, canary_key=user_of)
"""

FLASK_APP = """
from flask import Flask, request
from hotswap.integrations.wsgi import HotswapMiddleware

app = Flask(__name__)
SEEN = [0]

def version():
    return "v1"

def detail():
    return "d1"

@app.route("/")
def index():
    SEEN[0] += 1
    return {"version": version(), "detail": detail()}

def user_of(environ):
    query = environ.get("QUERY_STRING", "")
    return query.partition("user=")[2] or None

app.wsgi_app = HotswapMiddleware(app.wsgi_app, canary_key=user_of)
"""

V2 = {"v1": "v2", "d1": "d2"}
# Every tenth call of the candidate's detail() raises.
FLAKY = """
def detail():
    SEEN.append(1)
    if len(SEEN) % 10 == 0:
        raise RuntimeError("flaky")
    return "d2"
"""


def candidate_source(source: str, *, flaky: bool = False) -> str:
    new = source.replace('return "v1"', 'return "v2"')
    if flaky:
        return new.replace('def detail():\n    return "d1"\n', FLAKY)
    return new.replace('return "d1"', 'return "d2"')


@pytest.fixture(autouse=True)
def nothing_left() -> Iterator[None]:
    yield
    for run in _canary.running().values():
        run.abort()
    _health.reset()


@pytest.fixture(params=["fastapi", "flask"])
def served(request, project) -> Iterator[tuple[object, Callable[..., tuple[int, dict]]]]:
    kind = request.param
    source = FASTAPI_APP if kind == "fastapi" else FLASK_APP
    module = project.load(f"{kind}_canary_app", source)
    if kind == "fastapi":
        client = TestClient(module.app, raise_server_exceptions=False)
        client.__enter__()

        def get(path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict]:
            response = client.get(path, headers=headers or {})
            body = response.json() if response.status_code == 200 else {}
            return response.status_code, body

    else:
        flask_client = module.app.test_client()

        def get(path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, dict]:
            response = flask_client.get(path, headers=headers or {})
            body = response.get_json() if response.status_code == 200 else {}
            response.close()  # what a server does: the end of the request for WSGI
            return response.status_code, body

    module.__test_source__ = source
    try:
        yield module, get
    finally:
        if kind == "fastapi":
            client.__exit__(None, None, None)


def write_candidate(project, module, **options) -> None:
    project.write(module.__name__, candidate_source(module.__test_source__, **options))


def arm(body: dict) -> str:
    pair = (body["version"], body["detail"])
    assert pair in (("v1", "d1"), ("v2", "d2")), pair  # never a mix within one request
    return "candidate" if pair == ("v2", "d2") else "live"


def test_share_whole_requests_and_stats_over_2000_requests(project, served):
    module, get = served
    write_candidate(project, module)
    run = hotswap.canary(module, weight=0.2)
    arms = []
    for _ in range(2000):
        status, body = get()
        assert status == 200
        arms.append(arm(body))
    candidate = arms.count("candidate")
    assert 310 <= candidate <= 490, candidate  # 400 +- 5 standard deviations
    stats = run.stats
    assert stats["candidate"]["calls"] == candidate
    assert stats["live"]["calls"] == 2000 - candidate
    assert stats["candidate"]["errors"] == stats["live"]["errors"] == 0
    assert stats["candidate"]["p99_ms"] >= stats["candidate"]["p50_ms"] > 0
    assert module.SEEN[0] == 2000  # one state, shared by both versions


def test_sticky_keys_and_the_forcing_header(project, served):
    module, get = served
    write_candidate(project, module)
    hotswap.canary(module, weight=0.5)
    first = {user: arm(get(f"/?user=u{user}")[1]) for user in range(100)}
    assert 20 < list(first.values()).count("candidate") < 80
    for _ in range(3):
        assert {user: arm(get(f"/?user=u{user}")[1]) for user in range(100)} == first
    for _ in range(20):
        assert arm(get(headers={"x-hotswap-canary": "1"})[1]) == "candidate"
        assert arm(get(headers={"x-hotswap-canary": "0"})[1]) == "live"


def test_forcing_header_does_nothing_without_a_canary(served):
    _, get = served
    assert arm(get(headers={"x-hotswap-canary": "1"})[1]) == "live"


def test_candidate_failing_in_ten_percent_is_aborted_and_live_never_interrupted(project, served):
    module, get = served
    write_candidate(project, module, flaky=True)
    run = hotswap.canary(module, weight=0.5, min_calls=100, max_error_rate=0.05)
    for _ in range(2000):
        if run.state != "running":
            break
        status, body = get()
        if status == 200:
            arm(body)
    else:
        pytest.fail("the canary was not aborted")
    assert run.wait(10) == "aborted"
    assert "error rate" in run.reason
    stats = run.stats
    assert stats["live"]["errors"] == 0
    assert stats["candidate"]["calls"] >= 100
    assert stats["candidate"]["errors"] >= 5
    for _ in range(200):  # everyone on the live version, which never failed
        status, body = get(headers={"x-hotswap-canary": "1"})
        assert status == 200
        assert arm(body) == "live"


def test_promotion_after_n_candidate_requests(project, served):
    module, get = served
    write_candidate(project, module)
    run = hotswap.canary(module, weight=0.5, promote_after=50, min_calls=10)
    for _ in range(1000):
        get()
        if run.state != "running":
            break
    assert run.wait(10) == "promoted"
    assert run.result is not None
    assert run.result.ok
    assert run.result.version == 2
    assert all(arm(get()[1]) == "candidate" for _ in range(50))


def test_requests_in_threads_each_on_one_version(project, served):
    module, get = served
    write_candidate(project, module)
    run = hotswap.canary(module, weight=0.3)
    problems: list[object] = []

    def work() -> None:
        try:
            for _ in range(50):
                status, body = get()
                if status != 200:
                    problems.append(status)
                else:
                    arm(body)
        except BaseException as error:
            problems.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert run.stats["live"]["calls"] + run.stats["candidate"]["calls"] == 400


def test_auto_rollback_of_a_committed_version_whose_requests_fail(project, served, events):
    module, get = served
    hotswap.configure(auto_rollback={"window": 60.0, "min_calls": 40, "max_error_rate": 0.05})
    project.write(module.__name__, candidate_source(module.__test_source__, flaky=True))
    assert hotswap.reload(module).ok
    for _ in range(400):
        get()
        if any(isinstance(e, hotswap.ReloadResult) and e.kind == "rollback" for e in events.seen):
            break
    events.wait_for(lambda rec: any(getattr(e, "kind", "") == "rollback" for e in rec.seen))
    rolled = next(e for e in events.seen if getattr(e, "kind", "") == "rollback")
    assert rolled.ok
    assert rolled.version == 1
    assert "auto rollback" in rolled.reason
    assert "> 0.05" in rolled.reason
    assert any(isinstance(e, hotswap.RolledBack) and e.reason == "health" for e in events.seen)
    assert hotswap.status().modules[module.__name__].last_result.kind == "rollback"
    assert all(get() == (200, {"version": "v1", "detail": "d1"}) for _ in range(20))
