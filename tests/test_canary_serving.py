"""End to end: a real uvicorn server on 127.0.0.1 with the watcher in canary mode. A save
starts a canary; the forcing header reaches each version; the canary promotes itself after
its calls, and the status path reports the new version."""

from __future__ import annotations

import sys
import textwrap

import httpx
import pytest
from test_web_serving import free_port, server, wait_until

pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")

pytestmark = pytest.mark.watcher

APP = """
import hotswap

hotswap.enable(canary={"weight": 0.5, "promote_after": 40, "min_calls": 10})

from fastapi import FastAPI
from hotswap.integrations.asgi import HotswapMiddleware

app = FastAPI()

def answer():
    return "v1"

@app.get("/")
def index():
    return {"answer": answer()}

app.add_middleware(HotswapMiddleware, status_path="/_hotswap")
"""


def answer(port: int, forced: str | None = None) -> str | None:
    headers = {} if forced is None else {"x-hotswap-canary": forced}
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", headers=headers, timeout=10)
    except httpx.TransportError:
        return None
    return response.json()["answer"] if response.status_code == 200 else None


def version(port: int) -> int | None:
    status = httpx.get(f"http://127.0.0.1:{port}/_hotswap", timeout=10).json()
    module = status["modules"].get("main")
    return None if module is None else module["version"]


def test_a_save_is_tried_as_a_canary_then_promoted(tmp_path):
    (tmp_path / "main.py").write_text(textwrap.dedent(APP))
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "main:app", "--port", str(port)]
    with server(command, tmp_path, port):
        main = tmp_path / "main.py"
        main.write_text(main.read_text().replace('return "v1"', 'return "v2"'))
        wait_until(lambda: answer(port, "1") == "v2", "the canary to start")
        assert answer(port, "0") == "v1"  # the live version serves everyone else
        seen = set()
        wait_until(
            lambda: seen.add(answer(port)) or version(port) == 2,
            "the canary to promote itself after 40 candidate requests",
        )
        assert seen <= {"v1", "v2"}
        assert {answer(port), answer(port, "0"), answer(port, "1")} == {"v2"}
