"""Template edits show on the next request (issue 24.3) for the Jinja environments an app
built: Flask's ``app.jinja_env`` (no debug mode, so Jinja never checks the files itself) and
FastAPI's ``Jinja2Templates``; through the real watcher."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import pytest

pytest.importorskip("jinja2")

pytestmark = pytest.mark.watcher

TIMEOUT = 10.0  # generous: the machine may be loaded; never a bound on what is asserted

FLASK_APP = """
from flask import Flask, render_template

app = Flask(__name__)

@app.route("/")
def index():
    return render_template("page.html", name="ada")
"""

FASTAPI_APP = """
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.templating import Jinja2Templates

app = FastAPI()
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

@app.get("/")
def index(request: Request):
    return templates.TemplateResponse(request, "page.html", {"name": "ada"})
"""


def wait_until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def flask_client(module):
    return lambda: module.app.test_client().get("/").get_data(as_text=True)


def fastapi_client(module):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    client = TestClient(module.app)
    return lambda: client.get("/").text


@pytest.mark.parametrize(
    ("kind", "source", "client"),
    [("flask", FLASK_APP, flask_client), ("fastapi", FASTAPI_APP, fastapi_client)],
)
def test_template_edit_shows_on_the_next_request(project, watch, kind, source, client):
    pytest.importorskip(kind)
    template = project.root / "templates" / "page.html"
    template.parent.mkdir()
    template.write_text("v1 {{ name }}")
    module = project.load(f"{kind}_templates_app", source)
    get = client(module)
    watch()
    assert get() == "v1 ada"  # compiled and cached now
    template.write_text("v2 {{ name }}")
    assert wait_until(lambda: get() == "v2 ada"), get()
    # An editor's atomic save: written elsewhere, renamed into place.
    staged = project.root / "templates" / ".page.html.tmp"
    staged.write_text("v3 {{ name }}")
    staged.replace(template)
    assert wait_until(lambda: get() == "v3 ada"), get()
