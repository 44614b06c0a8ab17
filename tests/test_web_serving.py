"""Serving entry points, end to end: real servers on 127.0.0.1 in subprocesses, real saves.

Each server imports an app whose folder hotswap must watch (not the serving tool's package):
an edit saved there answers on the next requests, with no request refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
pytest.importorskip("fastapi")
pytest.importorskip("flask")

pytestmark = pytest.mark.watcher

TIMEOUT = 60.0  # generous: the machine may be loaded; nothing is asserted on time
BIN = Path(sys.executable).parent

FASTAPI_APP = """
import hotswap
{enable}
import os

from fastapi import FastAPI

import helpers

app = FastAPI()

@app.get("/")
def index():
    return {{"helper": helpers.message(), "handler": "v1", "pid": os.getpid()}}
"""

FLASK_APP = """
import hotswap
{enable}
import os

from flask import Flask

import helpers

app = Flask(__name__)

@app.route("/")
def index():
    return {{"helper": helpers.message(), "handler": "v1", "pid": os.getpid()}}
"""

HELPERS = 'def message():\n    return "v1"\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll a condition until it holds (a wait on a condition, bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def get(port: int, path: str = "/") -> Any:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


@contextlib.contextmanager
def server(
    command: list[str], cwd: Path, port: int, **variables: str
) -> Iterator[subprocess.Popen[str]]:
    """Start a server, wait until it answers, and stop it (and only it) afterwards."""
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONUNBUFFERED": "1"}
    env.pop("FLASK_APP", None)
    env.update(variables)
    # To a file, not a pipe: a server logging every request would block on a full pipe.
    log = cwd / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        try:
            wait_until(lambda: process.poll() is not None or get(port) is not None, "the server")
        except AssertionError:
            process.kill()
            raise
        if process.poll() is not None:
            message = f"the server exited ({process.returncode}):\n{log.read_text()}"
            raise AssertionError(message)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def edit_answers(folder: Path, port: int) -> None:
    """Save edits in the app's folder: a helper module and the app module's handler."""
    (folder / "helpers.py").write_text(HELPERS.replace("v1", "v2"))
    wait_until(lambda: (get(port) or {}).get("helper") == "v2", "the helper edit to answer")
    main = folder / "main.py"
    main.write_text(main.read_text().replace('"handler": "v1"', '"handler": "v2"'))
    wait_until(lambda: (get(port) or {}).get("handler") == "v2", "the handler edit to answer")


def write_app(folder: Path, template: str, enable: bool) -> None:
    text = template.format(enable="hotswap.enable()" if enable else "")
    (folder / "main.py").write_text(textwrap.dedent(text))
    (folder / "helpers.py").write_text(HELPERS)


def tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN))
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_serving_uvicorn_console_script_watches_the_app(tmp_path):
    write_app(tmp_path, FASTAPI_APP, enable=True)
    port = free_port()
    command = [tool("uvicorn"), "main:app", "--host", "127.0.0.1", "--port", str(port)]
    with server(command, tmp_path, port):
        edit_answers(tmp_path, port)


def test_serving_python_m_uvicorn_watches_the_app(tmp_path):
    write_app(tmp_path, FASTAPI_APP, enable=True)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "main:app", "--port", str(port)]
    with server(command, tmp_path, port):
        edit_answers(tmp_path, port)


def test_serving_flask_run_watches_the_app(tmp_path):
    write_app(tmp_path, FLASK_APP, enable=True)
    port = free_port()
    command = [tool("flask"), "--app", "main", "run", "--port", str(port), "--no-reload"]
    with server(command, tmp_path, port):
        edit_answers(tmp_path, port)


def every_worker_reloads(folder: Path, port: int, workers: int) -> None:
    """Each worker process answers the edit: each runs its own watcher."""
    seen: dict[int, str] = {}

    def record() -> None:
        # A new connection per request: the kernel spreads them over the workers.
        answer = get(port) or {}
        if "pid" in answer:
            seen[answer["pid"]] = answer["helper"]

    wait_until(lambda: record() or len(seen) == workers, "every worker to answer")
    (folder / "helpers.py").write_text(HELPERS.replace("v1", "v2"))
    wait_until(lambda: record() or set(seen.values()) == {"v2"}, "every worker to answer the edit")


def test_serving_gunicorn_workers_each_reload(tmp_path):
    write_app(tmp_path, FLASK_APP, enable=True)
    port = free_port()
    command = [tool("gunicorn"), "-b", f"127.0.0.1:{port}", "-w", "2", "main:app"]
    with server(command, tmp_path, port):
        every_worker_reloads(tmp_path, port, workers=2)


def test_serving_python_main_py_watches_the_app(tmp_path):
    write_app(tmp_path, FASTAPI_APP, enable=True)
    port = free_port()
    main = tmp_path / "main.py"
    main.write_text(
        main.read_text() + f'\nif __name__ == "__main__":\n    import uvicorn\n'
        f'    uvicorn.run(app, host="127.0.0.1", port={port})\n'
    )
    with server([sys.executable, "main.py"], tmp_path, port):
        (tmp_path / "helpers.py").write_text(HELPERS.replace("v1", "v2"))
        wait_until(lambda: (get(port) or {}).get("helper") == "v2", "the helper edit")
        main.write_text(main.read_text().replace('"handler": "v1"', '"handler": "v2"'))
        wait_until(lambda: (get(port) or {}).get("handler") == "v2", "the handler edit")


def test_serving_hotswap_run_m_uvicorn(tmp_path):
    write_app(tmp_path, FASTAPI_APP, enable=False)
    port = free_port()
    command = [sys.executable, "-m", "hotswap", "run", "-m", "uvicorn", "main:app"]
    with server([*command, "--port", str(port)], tmp_path, port):
        edit_answers(tmp_path, port)


def test_serving_hotswap_run_m_flask_run_with_flask_app_variable(tmp_path):
    write_app(tmp_path, FLASK_APP, enable=False)
    port = free_port()
    command = [sys.executable, "-m", "hotswap", "run", "-m", "flask", "run"]
    with server([*command, "--port", str(port), "--no-reload"], tmp_path, port, FLASK_APP="main"):
        edit_answers(tmp_path, port)


def test_serving_hotswap_run_m_flask_run(tmp_path):
    write_app(tmp_path, FLASK_APP, enable=False)
    port = free_port()
    command = [sys.executable, "-m", "hotswap", "run", "-m", "flask", "--app", "main", "run"]
    with server([*command, "--port", str(port), "--no-reload"], tmp_path, port):
        edit_answers(tmp_path, port)


# --- under load: 20 saves while a client requests without pause ---------------------------------

LOADED_APP = """
from fastapi import FastAPI

from hotswap.integrations.asgi import HotswapMiddleware

VERSION = 0

app = FastAPI()
app.add_middleware(HotswapMiddleware, status_path="/_hotswap")

@app.get("/")
def index():
    return {{"handler": 0, "constant": VERSION}}
"""


def loaded_source(n: int) -> str:
    text = LOADED_APP.replace("VERSION = 0", f"VERSION = {n}")
    return text.replace('"handler": 0', f'"handler": {n}').replace("{{", "{").replace("}}", "}")


class Traffic:
    """A client that requests without pause and records every outcome."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[int, int]] = []
        self.failures: list[str] = []
        self.latest = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/")
                except httpx.TransportError as error:
                    self.failures.append(repr(error))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text}")
                    continue
                body = response.json()
                self.seen.append((body["handler"], body["constant"]))
                self.latest = body["handler"]

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)


def test_serving_twenty_saves_under_traffic_refuse_nothing(tmp_path):
    (tmp_path / "main.py").write_text(loaded_source(0))
    port = free_port()
    command = [sys.executable, "-m", "hotswap", "run", "-m", "uvicorn", "main:app"]
    with server([*command, "--port", str(port)], tmp_path, port):
        with Traffic(port) as traffic:
            for n in range(1, 21):
                (tmp_path / "main.py").write_text(loaded_source(n))
                wait_until(lambda n=n: traffic.latest == n, f"edit {n} to answer")
        status = get(port, "/_hotswap")
    assert status is not None
    assert status["modules"]["main"]["version"] == 21
    assert status["watching"] is True
    assert traffic.failures == []
    assert all(handler == constant for handler, constant in traffic.seen)  # one version each
    handlers = [handler for handler, _ in traffic.seen]
    assert handlers == sorted(handlers)  # never an older version after a newer one


def test_bench_web_runs():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import bench_web
    finally:
        sys.path.pop(0)
    row = bench_web.measure("hotswap-fastapi", saves=2, wait=TIMEOUT)
    assert row is not None
    assert row["lost"] == 0
    assert row["failed"] == 0


def test_serving_uvicorn_workers_each_reload(tmp_path):
    write_app(tmp_path, FASTAPI_APP, enable=True)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "main:app", "--port", str(port), "--workers", "2"]
    with server(command, tmp_path, port):
        every_worker_reloads(tmp_path, port, workers=2)


MIXED_APP = """
from fastapi import FastAPI
from pydantic import BaseModel

from hotswap.integrations.asgi import HotswapMiddleware

app = FastAPI()
app.add_middleware(HotswapMiddleware)

class Order(BaseModel):
    item: str

@app.get("/")
def index():
    return {"handler": 0, "constant": 0}

@app.post("/orders")
def order(order: Order):
    return order
"""


def mixed_source(n: int) -> str:
    """Edit n of 20: every third adds a route, every third a required model field."""
    text = MIXED_APP.replace('"handler": 0, "constant": 0', f'"handler": {n}, "constant": {n}')
    for k in range(1, n + 1):
        if k % 3 == 1:
            text += f'\n@app.get("/r{k}")\ndef route_{k}():\n    return {k}\n'
        elif k % 3 == 2:
            text = text.replace("    item: str\n", f"    item: str\n    f{k}: int\n")
    return text


def test_serving_twenty_mixed_saves_under_traffic(tmp_path):
    (tmp_path / "main.py").write_text(mixed_source(0))
    port = free_port()
    command = [sys.executable, "-m", "hotswap", "run", "-m", "uvicorn", "main:app"]
    wait = TIMEOUT
    with server([*command, "--port", str(port)], tmp_path, port), Traffic(port) as traffic:
        for n in range(1, 21):
            (tmp_path / "main.py").write_text(mixed_source(n))
            wait_until(lambda n=n: traffic.latest == n, f"edit {n} to answer", wait)
            if n % 3 == 1:
                assert get(port, f"/r{n}") == n
            elif n % 3 == 2:
                response = httpx.post(f"http://127.0.0.1:{port}/orders", json={"item": "pen"})
                assert response.status_code == 422  # the new required field is validated
    assert traffic.failures == []
    assert all(handler == constant for handler, constant in traffic.seen)


DJANGO_FILES = {
    "manage.py": """
        import os
        import sys

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
        """,
    "mysite/__init__.py": "",
    "mysite/settings.py": """
        import hotswap

        hotswap.enable()  # watches the folder holding mysite/, the project

        SECRET_KEY = "test"
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1"]
        ROOT_URLCONF = "mysite.urls"
        INSTALLED_APPS = []
        DATABASES = {}
        MIDDLEWARE = []
        """,
    "mysite/views.py": """
        from django.http import JsonResponse

        import helpers

        def hello(request):
            return JsonResponse({"helper": helpers.message(), "handler": "v1"})
        """,
    "mysite/urls.py": """
        from django.urls import path

        from mysite import views

        urlpatterns = [path("", views.hello)]
        """,
    "helpers.py": HELPERS,
}


def django_project(folder: Path) -> None:
    pytest.importorskip("django")
    for name, text in DJANGO_FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_serving_django_runserver_noreload_watches_the_project(tmp_path):
    django_project(tmp_path)
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with server(command, tmp_path, port):
        (tmp_path / "helpers.py").write_text(HELPERS.replace("v1", "v2"))
        wait_until(lambda: (get(port) or {}).get("helper") == "v2", "the helper edit")
        views = tmp_path / "mysite" / "views.py"
        views.write_text(views.read_text().replace('"handler": "v1"', '"handler": "v2"'))
        wait_until(lambda: (get(port) or {}).get("handler") == "v2", "the view edit")


def test_serving_django_urls_change_answers(tmp_path):
    django_project(tmp_path)
    port = free_port()
    command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with server(command, tmp_path, port):
        urls = tmp_path / "mysite" / "urls.py"
        urls.write_text(
            urls.read_text().replace('path("", views.hello)', 'path("new/", views.hello)')
        )
        wait_until(lambda: get(port, "/new/") is not None, "the new URL", timeout=15)
