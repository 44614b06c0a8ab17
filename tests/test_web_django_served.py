"""A Django project served by ``hotswap run manage.py runserver --noreload`` on 127.0.0.1
(issue 24): URL patterns of an ``include()``d URLconf and template edits answer on the next
request."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("django")

pytestmark = pytest.mark.watcher

TIMEOUT = 30.0  # generous: the machine may be loaded; never a bound on what is asserted

PROJECT = {
    "manage.py": """
        import os
        import sys

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
        """,
    "site_settings.py": """
        from pathlib import Path

        BASE = Path(__file__).resolve().parent
        DEBUG = True
        SECRET_KEY = "test"
        ROOT_URLCONF = "site_urls"
        ALLOWED_HOSTS = ["127.0.0.1"]
        INSTALLED_APPS = ["shop"]
        MIDDLEWARE = []
        DATABASES = {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE / "db.sqlite3"}
        }
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        TEMPLATES = [
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [BASE / "templates"],
                "APP_DIRS": True,
            }
        ]
        """,
    "site_urls.py": """
        from django.http import HttpResponse
        from django.urls import include, path

        from shop import views

        def root(request):
            return HttpResponse("root")

        urlpatterns = [
            path("shop/", include("shop.urls")),
            path("page/", views.page),
            path("item/", views.app_page),
            path("", root),
        ]
        """,
    "shop/__init__.py": "",
    "shop/urls.py": """
        from django.urls import path

        from shop import views

        urlpatterns = [path("hello/", views.hello, name="hello")]
        """,
    "shop/views.py": """
        from django.http import HttpResponse
        from django.shortcuts import render
        from django.urls import reverse

        def hello(request):
            return HttpResponse("hello at " + reverse("hello"))

        def new(request):
            return HttpResponse("new")

        def page(request):
            return render(request, "page.html", {"name": "ada"})

        def app_page(request):
            return render(request, "shop/item.html", {"name": "ada"})
        """,
    "templates/page.html": "v1 {{ name }}\n",
    "shop/templates/shop/item.html": "item v1 {{ name }}\n",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str] | None:
    """(status, body) of a GET, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return None


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@contextlib.contextmanager
def served(folder: Path) -> Iterator[int]:
    """``hotswap run manage.py runserver --noreload`` on a free port; stopped by its PID."""
    for name, text in PROJECT.items():
        write(folder, name, text)
    port = free_port()
    log = folder / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "hotswap", "run", "manage.py", "runserver"]
    command += ["--noreload", f"127.0.0.1:{port}"]
    with log.open("w") as output:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_until(lambda: process.poll() is not None or get(port, "/") is not None, "serving")
        except AssertionError:
            raise AssertionError(log.read_text()) from None
        assert process.poll() is None, log.read_text()
        yield port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def answers(port: int, path: str, expected: tuple[int, str]) -> Callable[[], bool]:
    return lambda: get(port, path) == expected


def test_django_included_urlconf_edits_answer(tmp_path):
    with served(tmp_path) as port:
        assert get(port, "/shop/hello/") == (200, "hello at /shop/hello/")
        assert get(port, "/shop/new/") == (404, "")
        # A pattern added to the included URLconf answers.
        write(
            tmp_path,
            "shop/urls.py",
            PROJECT["shop/urls.py"].replace(
                'name="hello")]', 'name="hello"), path("new/", views.new)]'
            ),
        )
        wait_until(answers(port, "/shop/new/", (200, "new")), "the added pattern to answer")
        # A renamed pattern: the new path answers, reverse() follows, the old path is gone.
        write(
            tmp_path,
            "shop/urls.py",
            PROJECT["shop/urls.py"].replace('"hello/"', '"hi/"'),
        )
        wait_until(answers(port, "/shop/hi/", (200, "hello at /shop/hi/")), "the renamed pattern")
        assert get(port, "/shop/hello/") == (404, "")
        assert get(port, "/shop/new/") == (404, "")
        assert get(port, "/") == (200, "root")
        log = (tmp_path / "server.log").read_text()
        assert "Traceback" not in log, log
        assert "rolled back" not in log, log


def test_django_template_edits_answer_under_noreload(tmp_path):
    with served(tmp_path) as port:
        assert get(port, "/page/") == (200, "v1 ada\n")
        assert get(port, "/item/") == (200, "item v1 ada\n")
        # A project template (TEMPLATES DIRS) and an app template (APP_DIRS), both cached by
        # Django's cached loader, which only its autoreloader (off here) would reset.
        write(tmp_path, "templates/page.html", "v2 {{ name }}\n")
        wait_until(answers(port, "/page/", (200, "v2 ada\n")), "the project template edit")
        staged = tmp_path / "shop/templates/shop/.item.html.tmp"
        staged.write_text("item v2 {{ name }}\n")
        staged.replace(tmp_path / "shop/templates/shop/item.html")  # an atomic save
        wait_until(answers(port, "/item/", (200, "item v2 ada\n")), "the app template edit")
        log = (tmp_path / "server.log").read_text()
        assert "Traceback" not in log, log
