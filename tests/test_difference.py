"""A reload applies the difference (DESIGN §5.1, §5.2, §5.5): unchanged statements keep their
objects, changed ones and their dependents run, importers follow, in one transaction."""

from __future__ import annotations

import copy
import json
import pickle
import sys
import textwrap

import hotswap
from hotswap._ops.events import describe


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# A registry that refuses a second registration, as Flask does for an endpoint.
REGISTRY = src("""
    class Registry:
        def __init__(self):
            self.views = {}

        def route(self, path):
            def register(function):
                if path in self.views:
                    raise AssertionError(f"overwriting an existing endpoint: {path}")
                self.views[path] = function
                return function
            return register

    registry = Registry()
    """)

APP = src("""
    from registry import registry

    COUNTER = {"n": 0}

    def helper():
        return "v1"

    @registry.route("/")
    def index():
        COUNTER["n"] += 1
        return "index " + helper()
    """)


def test_reload_decorated_view_body_is_updated_without_registering_again(reloading):
    reloading.load("registry", REGISTRY)
    app = reloading.load("app", APP)
    registry = sys.modules["registry"].registry
    view = registry.views["/"]
    assert view() == "index v1"
    result = reloading.reload("app", APP.replace('"index "', '"home "'))
    assert result.ok, result.error
    assert result.changes.changed == ("index",)
    assert registry.views["/"] is view  # the registered object runs the new code
    assert view() == "home v1"
    assert app.COUNTER == {"n": 2}  # state survives


def test_reload_undecorated_helper_and_new_route(reloading):
    reloading.load("registry", REGISTRY)
    app = reloading.load("app", APP)
    registry = sys.modules["registry"].registry
    new = APP.replace('"v1"', '"v2"') + src("""

        @registry.route("/about")
        def about():
            return "about"
        """)
    result = reloading.reload("app", new)
    assert result.ok, result.error
    assert result.changes.added == ("about",)
    assert result.changes.changed == ("helper",)
    assert sorted(registry.views) == ["/", "/about"]
    assert registry.views["/"]() == "index v2"
    assert app.about is registry.views["/about"]


def test_reload_changed_decorator_line_runs_the_statement(reloading):
    reloading.load("registry", REGISTRY)
    reloading.load("app", APP)
    registry = sys.modules["registry"].registry
    result = reloading.reload("app", APP.replace('route("/")', 'route("/home")'))
    assert result.ok, result.error
    assert sorted(registry.views) == ["/", "/home"]  # a framework adapter removes the old one


def test_reload_comment_only_edit_is_a_no_op(reloading):
    app = reloading.load("app", "COUNTER = {'n': 0}\n\ndef f():\n    return 1\n")
    app.COUNTER["n"] = 5
    held = app.COUNTER
    result = reloading.reload(
        "app", "# a comment\nCOUNTER = {'n': 0}  # the counter\n\n\ndef f():\n    return (1)\n"
    )
    assert result.ok, result.error
    assert result.kind == "unchanged"
    assert result.version == 1
    assert hotswap.status().modules["app"].history == (1,)
    assert app.COUNTER is held
    assert app.COUNTER == {"n": 5}


def test_reload_state_in_unchanged_statements_survives_an_edit_elsewhere(reloading):
    app = reloading.load("app", "CACHE = {}\nITEMS = []\nRATE = 1\n")
    app.CACHE["warm"] = True
    app.ITEMS.append(1)
    result = reloading.reload("app", "CACHE = {}\nITEMS = []\nRATE = 2\n")
    assert result.ok, result.error
    assert result.changes.changed == ("RATE",)
    assert app.CACHE == {"warm": True}
    assert app.ITEMS == [1]
    assert app.RATE == 2


def test_reload_dependent_constant_is_recomputed(reloading):
    app = reloading.load("app", "BASE = 10\nRATE = 2\nPRICE = BASE * RATE\nOTHER = []\n")
    other = app.OTHER
    result = reloading.reload("app", "BASE = 10\nRATE = 3\nPRICE = BASE * RATE\nOTHER = []\n")
    assert result.ok, result.error
    assert app.PRICE == 30
    assert app.OTHER is other
    assert set(result.changes.changed) == {"RATE", "PRICE"}


TABLE = src("""
    def factor():
        return 2

    def build_table():
        return [i * factor() for i in range(3)]

    TABLE = build_table()
    UNRELATED = {"kept": True}
    """)


def test_reload_table_follows_its_builder_and_a_helper(reloading):
    app = reloading.load("app", TABLE)
    unrelated = app.UNRELATED
    result = reloading.reload("app", TABLE.replace("i * factor()", "i * factor() + 1"))
    assert result.ok, result.error
    assert app.TABLE == [1, 3, 5]
    result = reloading.reload(
        "app", TABLE.replace("i * factor()", "i * factor() + 1").replace("return 2", "return 3")
    )
    assert result.ok, result.error
    assert app.TABLE == [1, 4, 7]  # the helper build_table calls changed
    assert app.UNRELATED is unrelated


def test_reload_registry_rebuilt_when_its_definition_changes(reloading):
    source = "REGISTRY = []\nREGISTRY.append('a')\n"
    app = reloading.load("app", source)
    result = reloading.reload("app", "REGISTRY = ['x']\nREGISTRY.append('a')\n")
    assert result.ok, result.error
    assert app.REGISTRY == ["x", "a"]
    # A removed mutation of a plain container: the container is built again, as fresh.
    result = reloading.reload("app", "REGISTRY = ['x']\n")
    assert result.ok, result.error
    assert app.REGISTRY == ["x"]


def test_reload_removed_names_and_source_set_attributes_go(reloading):
    app = reloading.load(
        "app", "def f():\n    return 1\n\nf.route = '/old'\n\ndef g():\n    return 2\n"
    )
    app.f.runtime = "kept"
    result = reloading.reload("app", "def f():\n    return 1\n")
    assert result.ok, result.error
    assert not hasattr(app, "g")
    assert result.changes.removed == ("g",)
    assert not hasattr(app.f, "route")
    assert app.f.runtime == "kept"


def test_reload_importers_follow_by_value_and_attribute(reloading):
    reloading.load("config", "RATE = 2\n\ndef make_table():\n    return [RATE]\n")
    by_value = reloading.load("by_value", "from config import RATE\nX = RATE * 2\nKEEP = []\n")
    by_attr = reloading.load(
        "by_attr", "import config\nY = config.RATE * 3\nT = config.make_table()\n"
    )
    inside = reloading.load("inside", "import config\n\ndef rate():\n    return config.RATE\n")
    keep = by_value.KEEP
    result = reloading.reload("config", "RATE = 5\n\ndef make_table():\n    return [RATE]\n")
    assert result.ok, result.error
    assert (by_value.RATE, by_value.X, by_value.KEEP is keep) == (5, 10, True)
    assert (by_attr.Y, by_attr.T) == (15, [5])
    assert inside.rate() == 5
    dependents = {d.module: d.lines for d in result.dependents}
    assert dependents == {"by_value": (1, 2), "by_attr": (2, 3)}  # not "inside"
    result = reloading.reload("config", "RATE = 5\n\ndef make_table():\n    return [RATE, 0]\n")
    assert by_attr.T == [5, 0]
    assert [d.module for d in result.dependents] == ["by_attr"]


def test_reload_importers_follow_transitively(reloading):
    reloading.load("base", "RATE = 1\n")
    reloading.load("middle", "from base import RATE\nDOUBLE = RATE * 2\n")
    top = reloading.load("top", "from middle import DOUBLE\nQUAD = DOUBLE * 2\n")
    result = reloading.reload("base", "RATE = 3\n")
    assert result.ok, result.error
    assert top.QUAD == 12
    assert [d.module for d in result.dependents] == ["middle", "top"]
    assert "dependents: middle (2 statements), top (2 statements)" in describe(result)


def test_reload_failing_dependent_rolls_back_the_changed_module_too(reloading):
    config = reloading.load("config", "RATE = 2\n")
    user = reloading.load("user", "from config import RATE\n\nSHARE = 1 / RATE\n")
    result = reloading.reload("config", "RATE = 0\n")
    assert not result.ok
    assert result.rolled_back
    assert isinstance(result.error, hotswap.ExecutionError)
    assert "user" in str(result.error)
    assert ":3" in str(result.error)  # the importer's failing line
    assert isinstance(result.error.__cause__, ZeroDivisionError)
    assert (config.RATE, user.RATE, user.SHARE) == (2, 2, 0.5)
    assert hotswap.status().modules["config"].version == 1


def test_reload_replaced_enum_and_its_users_follow(reloading):
    source = src("""
        import enum

        class Color(enum.Enum):
            RED = 1

        DEFAULT = Color.RED
        """)
    app = reloading.load("app", source)
    old = app.Color
    result = reloading.reload("app", source.replace("RED = 1", "RED = 1\n    BLUE = 2"))
    assert result.ok, result.error
    assert app.Color is not old
    assert result.changes.replaced == ("Color (it is an Enum)",)
    assert app.DEFAULT is app.Color.RED
    assert [m.name for m in app.Color] == ["RED", "BLUE"]


def test_reload_class_edit_keeps_instances_and_reports_the_method(reloading):
    source = src("""
        class Cart:
            def __init__(self):
                self.items = []

            def total(self):
                return len(self.items)

        CART = Cart()
        """)
    app = reloading.load("app", source)
    cart = app.CART
    cart.items.append("x")
    result = reloading.reload("app", source.replace("len(self.items)", "len(self.items) * 10"))
    assert result.ok, result.error
    assert app.CART is cart  # a method changed, not how a Cart is made: CART keeps its state
    assert cart.total() == 10
    assert result.changes.changed == ("Cart.total",)
    assert result.changes.lines["Cart.total"] == (5, 5)


def test_reload_new_subclass_of_a_kept_base(reloading):
    app = reloading.load("errs", "class AppError(Exception):\n    pass\n")
    result = reloading.reload(
        "errs", "class AppError(Exception):\n    pass\n\nclass NotFound(AppError):\n    pass\n"
    )
    assert result.ok, result.error
    assert issubclass(app.NotFound, app.AppError)
    try:
        raise app.NotFound
    except app.AppError:
        pass


def test_reload_force_runs_everything_and_keeps_identity(reloading):
    app = reloading.load("app", "STATE = {'n': 0}\n\ndef f():\n    return 1\n")
    f = app.f
    app.STATE["n"] = 3
    result = hotswap.reload("app", force=True)
    assert result.ok, result.error
    assert result.kind == "reset"
    assert result.version == 2
    assert app.STATE == {"n": 0}
    assert app.f is f


def test_reload_dispose_gets_the_old_objects_after_commit(reloading):
    source = src("""
        CLOSED = []
        SERVER = object()

        def __hotswap_dispose__(old):
            CLOSED.append(sorted(old))
        """)
    app = reloading.load("app", source)
    first = app.SERVER
    result = reloading.reload(
        "app", source.replace("SERVER = object()", "SERVER = object()  \nX = 1")
    )
    assert result.ok, result.error
    assert app.CLOSED == []  # SERVER's statement did not change: nothing was rebound
    result = reloading.reload("app", source.replace("object()", "[object()]"))
    assert result.ok, result.error
    assert app.CLOSED == [["SERVER", "X"]]
    assert app.SERVER is not first
    failing = source.replace("object()", "1 / 0")
    result = reloading.reload("app", failing)
    assert not result.ok
    assert app.CLOSED == [["SERVER", "X"]]  # never called for a failed reload


def test_reload_keep_names_keep_their_objects(reloading):
    app = reloading.load("app", "__hotswap_keep__ = ('CACHE',)\nCACHE = {}\nRATE = 1\n")
    cache = app.CACHE
    result = reloading.reload("app", "__hotswap_keep__ = ('CACHE',)\nCACHE = {'x': 1}\nRATE = 2\n")
    assert result.ok, result.error
    assert app.CACHE is cache
    assert app.RATE == 2


def test_reload_report_names_lines_in_the_new_file(reloading):
    source = src("""
        SPEED = 1

        def price(amount):
            total = amount
            return total

        def refund():
            return 0
        """)
    reloading.load("shop", source)
    new = "\n" + source.replace("SPEED = 1", "SPEED = 10").replace(
        "total = amount", "total = amount * 2"
    )
    new += "\ndef extra():\n    return 1\n"
    result = reloading.reload("shop", new)
    assert result.ok, result.error
    assert result.changes.lines["SPEED"] == (2, 2)
    assert result.changes.lines["price"] == (4, 6)
    line = describe(result)
    assert "~SPEED (L2)" in line
    assert "~price (L4-6)" in line
    assert "+extra (L11-12)" in line
    assert line.startswith("shop: v2 live,")


def test_reload_result_serialises(reloading):
    reloading.load("app", "RATE = 1\n")
    result = reloading.reload("app", "RATE = (\n")
    assert not result.ok
    data = json.loads(json.dumps(result.to_dict()))
    assert data["error"]["type"] == "SourceSyntaxError"
    assert data["error"]["lineno"] == 1
    again = pickle.loads(pickle.dumps(result))
    assert str(again.error) == str(result.error)
    assert copy.deepcopy(result).error.lineno == 1
    status = json.loads(json.dumps(hotswap.status().to_dict()))
    assert status["modules"]["app"]["version"] == 1


def test_reload_main_alias_is_one_module(reloading, monkeypatch):
    app = reloading.load("app", "RATE = 1\n")
    monkeypatch.setitem(sys.modules, "__mp_main__", app)
    reloading.write("app", "RATE = 2\n")
    result = hotswap.reload("__mp_main__")
    assert result.ok, result.error
    assert result.module == "app"
    assert app.RATE == 2
    assert list(hotswap.status().modules) == ["app"]
