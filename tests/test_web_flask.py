"""The Flask adapter, driven as the transaction drives it, and end to end through reload()."""

from __future__ import annotations

import textwrap

import pytest

pytest.importorskip("flask")

from flask import Flask

import hotswap
from hotswap._engine.adapters import ModulePlan, ModuleUpdate, active_adapters
from hotswap.integrations.flask import FlaskAdapter

APP = """
from flask import Flask

app = Flask(__name__)
app.config["GREETING"] = "hello"

@app.route("/old")
def page():
    return "old page"

@app.route("/stay")
def stay():
    return "stays"
"""


def run_in(module, source: str) -> None:
    """What the engine does for the statements that run: execute them in the live module."""
    exec(compile(textwrap.dedent(source), module.__file__, "exec"), vars(module))


def plan(module, rebinding=(), inplace=(), removing=()) -> ModulePlan:
    namespace = vars(module)
    return ModulePlan(
        module=module,
        rebinding={n: namespace[n] for n in rebinding if n in namespace},
        inplace={n: namespace[n] for n in inplace},
        removing={n: namespace[n] for n in removing},
    )


def transaction(adapter, module, source, rebinding=(), removing=()):
    """prepare -> run -> sync, as the engine will; returns the undo steps, newest first."""
    before = dict(vars(module))
    undo_prepare = adapter.prepare([plan(module, rebinding=rebinding, removing=removing)])
    run_in(module, source)
    for name in removing:
        del vars(module)[name]
    namespace = vars(module)
    rebound = {
        n: (before[n], namespace[n])
        for n in rebinding
        if n in before and n in namespace and before[n] is not namespace[n]
    }
    added = {n: namespace[n] for n in rebinding if n not in before and n in namespace}
    update = ModuleUpdate(
        module=module,
        rebound=rebound,
        removed={n: before[n] for n in removing},
        added=added,
    )
    undo_sync = adapter.sync([update])
    return [step for step in (undo_sync, undo_prepare) if step is not None]


def text(client, path: str) -> tuple[int, str]:
    response = client.get(path)
    return response.status_code, response.get_data(as_text=True)


def test_flask_adapter_registered_by_name_and_made_once_flask_is_imported():
    adapters = [a for a in active_adapters() if isinstance(a, FlaskAdapter)]
    assert len(adapters) == 1


def test_flask_adapter_changed_rule_after_first_request(project):
    module = project.load("web", APP)
    client = module.app.test_client()
    assert text(client, "/old") == (200, "old page")
    adapter = FlaskAdapter()
    transaction(
        adapter,
        module,
        """
        @app.route("/new", methods=["GET", "POST"])
        def page():
            return "new page"
        """,
        rebinding=["page"],
    )
    assert text(client, "/new") == (200, "new page")
    assert client.post("/new").status_code == 200
    assert text(client, "/old")[0] == 404
    assert text(client, "/stay") == (200, "stays")
    # Flask's guard is back: setup after the first request is refused again.
    with pytest.raises(AssertionError, match="can no longer be called"):
        module.app.route("/late")(lambda: "late")


def test_flask_adapter_changed_methods_answer_405_on_the_old_method(project):
    module = project.load("web", APP)
    client = module.app.test_client()
    assert text(client, "/old")[0] == 200
    transaction(
        FlaskAdapter(),
        module,
        """
        @app.route("/old", methods=["POST"])
        def page():
            return "posted"
        """,
        rebinding=["page"],
    )
    assert client.get("/old").status_code == 405
    assert client.post("/old").get_data(as_text=True) == "posted"


def test_flask_adapter_new_route_answers(project):
    module = project.load("web", APP)
    client = module.app.test_client()
    assert text(client, "/old")[0] == 200
    transaction(
        FlaskAdapter(),
        module,
        """
        @app.route("/added")
        def added():
            return "added"
        """,
        rebinding=["added"],
    )
    assert text(client, "/added") == (200, "added")
    assert text(client, "/old") == (200, "old page")


def test_flask_adapter_removed_view_404s(project):
    module = project.load("web", APP)
    client = module.app.test_client()
    assert text(client, "/old")[0] == 200
    transaction(FlaskAdapter(), module, "", removing=["page"])
    assert text(client, "/old")[0] == 404
    assert "page" not in module.app.view_functions
    assert text(client, "/stay") == (200, "stays")


def test_flask_adapter_hook_defined_again_is_not_doubled(project):
    module = project.load(
        "web",
        APP
        + """
calls = []

@app.before_request
def count():
    calls.append("v1")
""",
    )
    client = module.app.test_client()
    assert text(client, "/stay")[0] == 200
    transaction(
        FlaskAdapter(),
        module,
        """
        @app.before_request
        def count():
            calls.append("v2")
        """,
        rebinding=["count"],
    )
    module.calls.clear()
    assert text(client, "/stay")[0] == 200
    assert module.calls == ["v2"]


def test_flask_adapter_blueprint_in_another_module(project):
    shop = project.load(
        "shop",
        """
        from flask import Blueprint

        bp = Blueprint("shop", __name__, url_prefix="/shop")

        @bp.route("/items")
        def items():
            return "items"
        """,
    )
    web = project.load(
        "web",
        "from flask import Flask\nimport shop\napp = Flask(__name__)\n"
        "app.register_blueprint(shop.bp)\n",
    )
    client = web.app.test_client()
    assert text(client, "/shop/items") == (200, "items")
    transaction(
        FlaskAdapter(),
        shop,
        """
        @bp.route("/things")
        def items():
            return "things"

        @bp.route("/cart")
        def cart():
            return "cart"
        """,
        rebinding=["items", "cart"],
    )
    assert text(client, "/shop/things") == (200, "things")
    assert text(client, "/shop/cart") == (200, "cart")
    assert text(client, "/shop/items")[0] == 404
    with pytest.raises(AssertionError, match="can no longer be called"):
        shop.bp.route("/late")(lambda: "late")


def test_flask_adapter_blueprint_registered_with_a_prefix(project):
    shop = project.load(
        "shop",
        """
        from flask import Blueprint

        bp = Blueprint("shop", __name__)

        @bp.route("/items")
        def items():
            return "items"
        """,
    )
    web = project.load(
        "web",
        "from flask import Flask\nimport shop\napp = Flask(__name__)\n"
        "app.register_blueprint(shop.bp, url_prefix='/v2')\n",
    )
    client = web.app.test_client()
    assert text(client, "/v2/items") == (200, "items")
    transaction(
        FlaskAdapter(),
        shop,
        '@bp.route("/goods")\ndef items():\n    return "goods"\n',
        rebinding=["items"],
    )
    assert text(client, "/v2/goods") == (200, "goods")
    assert text(client, "/v2/items")[0] == 404


FACTORY = """
from flask import Flask

def create_app():
    app = Flask(__name__)
    app.config["COLOR"] = "blue"

    @app.route("/")
    def index():
        return "index v1"

    @app.errorhandler(404)
    def missing(error):
        return "missing v1", 404

    return app

app = create_app()
"""


def test_flask_adapter_app_factory_keeps_the_served_app(project):
    module = project.load("factory", FACTORY)
    served = module.app
    client = served.test_client()
    assert text(client, "/") == (200, "index v1")
    served.config["COLOR"] = "red"  # set at run time: must survive
    served.extensions["db"] = "connection"
    new_factory = FACTORY.replace("v1", "v2").replace(
        "    return app\n",
        '    @app.route("/extra")\n    def extra():\n        return "extra"\n\n    return app\n',
    )
    transaction(FlaskAdapter(), module, new_factory, rebinding=["create_app", "app"])
    assert module.app is served
    assert text(client, "/") == (200, "index v2")
    assert text(client, "/extra") == (200, "extra")
    assert text(client, "/nowhere") == (404, "missing v2")
    assert served.config["COLOR"] == "red"
    assert served.extensions["db"] == "connection"


def test_flask_adapter_undo_restores_routing_exactly(project):
    module = project.load("web", APP)
    client = module.app.test_client()
    assert text(client, "/old")[0] == 200
    rules = sorted(
        (r.rule, r.endpoint, tuple(sorted(r.methods))) for r in module.app.url_map.iter_rules()
    )
    views = dict(module.app.view_functions)
    before = dict(vars(module))
    undo = transaction(
        FlaskAdapter(),
        module,
        """
        @app.route("/new")
        def page():
            return "new page"
        """,
        rebinding=["page"],
    )
    for step in undo:  # the transaction rolled back: adapters first, then the namespace
        step()
    vars(module).update(before)
    after = sorted(
        (r.rule, r.endpoint, tuple(sorted(r.methods))) for r in module.app.url_map.iter_rules()
    )
    assert after == rules
    assert module.app.view_functions == views
    assert text(client, "/old") == (200, "old page")
    assert text(client, "/new")[0] == 404
    assert module.app._got_first_request


def test_flask_adapter_undo_after_factory_restores_the_old_routes(project):
    module = project.load("factory", FACTORY)
    served = module.app
    client = served.test_client()
    assert text(client, "/") == (200, "index v1")
    undo = transaction(
        FlaskAdapter(), module, FACTORY.replace("v1", "v2"), rebinding=["create_app", "app"]
    )
    assert text(client, "/") == (200, "index v2")
    for step in undo:
        step()
    assert text(client, "/") == (200, "index v1")


def test_flask_adapter_ignores_apps_that_never_answered(project):
    module = project.load("web", APP)
    transaction(
        FlaskAdapter(),
        module,
        '@app.route("/fresh")\ndef fresh():\n    return "fresh"\n',
        rebinding=["fresh"],
    )
    assert not module.app._got_first_request  # still open for setup, as before
    assert text(module.app.test_client(), "/fresh") == (200, "fresh")


# --- end to end through hotswap.reload() ---------------------------------------------------------


def served(project, source=APP):
    module = project.load("web", source)
    client = module.app.test_client()
    assert text(client, "/old") == (200, "old page")
    return module, client


def test_flask_reload_view_body_edit_goes_live(project):
    _module, client = served(project)
    result = project.reload("web", APP.replace('"old page"', '"edited page"'))
    assert result.ok, result.error
    assert text(client, "/old") == (200, "edited page")


def test_flask_reload_new_route_answers_after_first_request(project):
    _module, client = served(project)
    result = project.reload(
        "web", APP + '\n@app.route("/added")\ndef added():\n    return "added"\n'
    )
    assert result.ok, result.error
    assert text(client, "/added") == (200, "added")


def test_flask_reload_changed_rule_answers_on_the_new_rule(project):
    _module, client = served(project)
    result = project.reload("web", APP.replace('"/old"', '"/renamed"'))
    assert result.ok, result.error
    assert text(client, "/renamed") == (200, "old page")
    assert text(client, "/old")[0] == 404


def test_flask_reload_removed_view_404s(project):
    _module, client = served(project)
    source = APP.replace('@app.route("/old")\ndef page():\n    return "old page"\n', "")
    result = project.reload("web", source)
    assert result.ok, result.error
    assert text(client, "/old")[0] == 404


def test_flask_reload_app_factory_keeps_config_and_serves_new_routes(project):
    module = project.load("factory", FACTORY)
    app = module.app
    client = app.test_client()
    assert text(client, "/") == (200, "index v1")
    app.config["COLOR"] = "red"
    result = project.reload("factory", FACTORY.replace("v1", "v2"))
    assert result.ok, result.error
    assert module.app is app
    assert text(client, "/") == (200, "index v2")
    assert app.config["COLOR"] == "red"


def test_flask_reload_failed_edit_keeps_serving(project):
    module, client = served(project)
    result = project.reload("web", APP.replace('return "old page"', "return (1/0)\nboom("))
    assert not result.ok
    assert text(client, "/old") == (200, "old page")
    assert isinstance(module.app, Flask)
    assert hotswap.status().modules["web"].version == 1


def test_flask_adapter_leaves_lazy_proxies_alone(project):
    """``current_app`` at module level raises if evaluated outside a request."""
    module = project.load("web", "from flask import current_app, request\n" + APP)
    client = module.app.test_client()
    assert text(client, "/old")[0] == 200
    adapter = FlaskAdapter()
    transaction(
        adapter, module, '@app.route("/new")\ndef page():\n    return "new"\n', rebinding=["page"]
    )
    assert text(client, "/new") == (200, "new")


def test_flask_adapter_views_names_registered_view_functions(project):
    module = project.load("web", APP + "\ndef helper():\n    return 1\n")
    assert FlaskAdapter().views(module) == {"page", "stay"}
