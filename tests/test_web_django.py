"""The Django adapter, in a subprocess (Django's settings are configured once per process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("django")

FILES = {
    "shop/__init__.py": "",
    "shop/models.py": """
        from django.db import models

        class Item(models.Model):
            name = models.CharField(max_length=20)
        """,
    "shop/migrations/__init__.py": "",
    "shop/migrations/0001_initial.py": """
        from django.db import migrations, models

        class Migration(migrations.Migration):
            initial = True
            dependencies = []
            operations = [
                migrations.CreateModel(
                    name="Item",
                    fields=[
                        ("id", models.BigAutoField(
                            auto_created=True, primary_key=True, serialize=False,
                            verbose_name="ID",
                        )),
                        ("name", models.CharField(max_length=20)),
                    ],
                ),
            ]
        """,
    "shop/views.py": """
        from django.http import HttpResponse

        def hello(request):
            return HttpResponse("hello v1")
        """,
    "urls.py": """
        from django.urls import path

        from shop import views

        urlpatterns = [path("hello/", views.hello)]
        """,
}

SETUP = """
import pathlib
import django
from django.conf import settings

settings.configure(
    DEBUG=True,
    SECRET_KEY="test",
    ROOT_URLCONF="urls",
    INSTALLED_APPS=["shop"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    ALLOWED_HOSTS=["testserver"],
    MIDDLEWARE=[],
)
django.setup()

from django.apps import apps
from django.test import Client

import hotswap
from hotswap._engine.adapters import ModulePlan, ModuleUpdate, active_adapters
from hotswap.integrations.django import DjangoAdapter

client = Client()
assert client.get("/hello/").content == b"hello v1"
"""


def run_django(tmp_path, script: str) -> subprocess.CompletedProcess[str]:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    main = tmp_path / "check.py"
    main.write_text(SETUP + textwrap.dedent(script) + "\nprint('ok')\n")
    return subprocess.run(
        # A model registered twice warns (RuntimeWarning): the adapter must prevent it.
        [sys.executable, "-W", "error::RuntimeWarning", str(main)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_django_adapter_urls_change_answers(tmp_path):
    done = run_django(
        tmp_path,
        """
        assert any(isinstance(a, DjangoAdapter) for a in active_adapters())
        import urls
        adapter = DjangoAdapter()
        old = urls.urlpatterns
        adapter.prepare([ModulePlan(module=urls, rebinding={"urlpatterns": old})])
        exec("urlpatterns = [path('hi/', views.hello)]", vars(urls))
        undo = adapter.sync(
            [ModuleUpdate(module=urls, rebound={"urlpatterns": (old, urls.urlpatterns)})]
        )
        assert client.get("/hi/").status_code == 200
        assert client.get("/hello/").status_code == 404
        urls.urlpatterns = old  # rolled back: the transaction restores the namespace
        undo()
        assert client.get("/hello/").status_code == 200
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_django_adapter_model_change_needing_a_migration_is_refused(tmp_path):
    done = run_django(
        tmp_path,
        """
        import shop.models as m
        adapter = DjangoAdapter()
        old = m.Item
        undo = adapter.prepare([ModulePlan(module=m, rebinding={"Item": old})])
        exec(
            "class Item(models.Model):\\n"
            "    name = models.CharField(max_length=20)\\n"
            "    price = models.IntegerField(default=0)\\n",
            vars(m),
        )
        try:
            adapter.sync([ModuleUpdate(module=m, rebound={"Item": (old, m.Item)})])
        except hotswap.HotswapError as error:
            message = str(error)
        else:
            raise SystemExit("a change that needs a migration was applied")
        assert "shop.models (shop/models.py)" in message, message
        assert "Add field price to item" in message, message
        assert "makemigrations" in message, message
        undo()
        m.Item = old
        assert apps.get_model("shop", "Item") is old
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_django_adapter_model_change_without_migration_is_applied(tmp_path):
    done = run_django(
        tmp_path,
        """
        import shop.models as m
        adapter = DjangoAdapter()
        old = m.Item
        adapter.prepare([ModulePlan(module=m, rebinding={"Item": old})])
        exec(
            "class Item(models.Model):\\n"
            "    name = models.CharField(max_length=20)\\n"
            "    def label(self):\\n"
            "        return self.name.title()\\n",
            vars(m),
        )
        adapter.sync([ModuleUpdate(module=m, rebound={"Item": (old, m.Item)})])
        assert apps.get_model("shop", "Item") is m.Item
        assert m.Item(name="pen").label() == "Pen"
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_django_reload_view_edit_answers(tmp_path):
    done = run_django(
        tmp_path,
        """
        views = pathlib.Path("shop/views.py")
        views.write_text(views.read_text().replace("hello v1", "hello v2"))
        result = hotswap.reload("shop.views")
        assert result.ok, result.error
        assert client.get("/hello/").content == b"hello v2"
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_django_reload_refused_for_a_migration_says_it_once(tmp_path):
    done = run_django(
        tmp_path,
        """
        from hotswap._ops.events import describe

        assert hotswap.reload("shop.models").kind == "unchanged"  # the source on record
        models_file = pathlib.Path("shop/models.py")
        models_file.write_text(
            models_file.read_text() + "    price = models.IntegerField(default=0)\\n"
        )
        result = hotswap.reload("shop.models")
        assert not result.ok and result.rolled_back
        message = str(result.error)
        assert message.count("shop.models (shop/models.py)") == 1, message
        assert message.endswith("then restart the server."), message
        assert "while executing" not in describe(result), describe(result)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
