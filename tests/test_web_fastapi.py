"""The Starlette/FastAPI adapter, driven as the transaction drives it, and end to end."""

from __future__ import annotations

import textwrap
import warnings

import pytest

pytest.importorskip("fastapi")

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 and warns when its test client runs on httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from hotswap._engine.adapters import ModulePlan, ModuleUpdate, active_adapters
from hotswap._engine.update import update_function
from hotswap.integrations.starlette import StarletteAdapter

APP = """
from fastapi import Depends, FastAPI, Header
from pydantic import BaseModel

app = FastAPI()
app.state.counter = 0

class Item(BaseModel):
    name: str

def token(x_token: str = Header("none")):
    return x_token

@app.get("/items")
def items(auth: str = Depends(token)):
    app.state.counter += 1
    return {"auth": auth, "count": app.state.counter}

@app.post("/items")
def create(item: Item):
    return item

@app.get("/old")
def page():
    return {"page": "old"}
"""


def run_in(module, source: str) -> None:
    """The statements that run whole: executed in the live module, decorators included."""
    exec(compile(textwrap.dedent(source), module.__file__, "exec"), vars(module))


def in_place(module, source: str) -> dict[str, object]:
    """A definition updated in place, as the engine does: the kept function gets the new code."""
    scratch = dict(vars(module))
    exec(compile(textwrap.dedent(source), module.__file__, "exec"), scratch)
    updated = {}
    for name, value in scratch.items():
        old = vars(module).get(name)
        if callable(value) and old is not value and hasattr(old, "__code__"):
            update_function(old, value)
            updated[name] = old
    return updated


def transaction(adapter, module, source="", *, rebinding=(), removing=(), inplace=""):
    """prepare -> run -> update in place -> sync, as the engine will; returns the undo steps."""
    namespace = vars(module)
    before = dict(namespace)
    scratch = dict(namespace)
    exec(compile(textwrap.dedent(inplace), module.__file__, "exec"), scratch)
    inplace_names = [n for n in scratch if n in namespace and scratch[n] is not namespace[n]]
    undo_prepare = adapter.prepare(
        [
            ModulePlan(
                module=module,
                rebinding={n: namespace[n] for n in rebinding if n in namespace},
                inplace={n: namespace[n] for n in inplace_names},
                removing={n: namespace[n] for n in removing},
            )
        ]
    )
    run_in(module, source)
    updated = in_place(module, inplace)
    for name in removing:
        del namespace[name]
    update = ModuleUpdate(
        module=module,
        updated=updated,
        rebound={
            n: (before[n], namespace[n])
            for n in rebinding
            if n in before and n in namespace and before[n] is not namespace[n]
        },
        removed={n: before[n] for n in removing},
        added={n: namespace[n] for n in rebinding if n not in before and n in namespace},
    )
    undo_sync = adapter.sync([update])
    return [step for step in (undo_sync, undo_prepare) if step is not None]


@pytest.fixture
def served(project):
    """The app module, loaded, and a test client on its app that has answered a request."""
    module = project.load("api", APP)
    client = TestClient(module.app)
    assert client.get("/old").json() == {"page": "old"}
    return module, client


def test_starlette_adapter_registered_by_name_and_made_once_starlette_is_imported():
    assert any(isinstance(a, StarletteAdapter) for a in active_adapters())


def test_starlette_adapter_new_query_parameter_validated_in_place(served):
    module, client = served
    endpoint = module.items
    transaction(
        StarletteAdapter(),
        module,
        inplace="""
        def items(auth: str = Depends(token), limit: int = 10):
            return {"auth": auth, "limit": limit}
        """,
    )
    assert module.items is endpoint  # same object, decorators not run again
    assert client.get("/items?limit=3").json() == {"auth": "none", "limit": 3}
    assert client.get("/items?limit=many").status_code == 422
    parameters = module.app.openapi()["paths"]["/items"]["get"]["parameters"]
    assert "limit" in [p["name"] for p in parameters]


def test_starlette_adapter_changed_dependency_signature_applies(served):
    module, client = served
    transaction(
        StarletteAdapter(),
        module,
        inplace="""
        def token(x_token: str = Header("none"), user: str = "anonymous"):
            return f"{user}:{x_token}"
        """,
    )
    body = client.get("/items?user=ann", headers={"x-token": "t1"}).json()
    assert body["auth"] == "ann:t1"


def test_starlette_adapter_inferred_response_model_follows_the_annotation(served):
    module, client = served
    run_in(
        module,
        """
        class Public(BaseModel):
            name: str

        @app.get("/user")
        def user() -> Item:
            return {"name": "ann", "secret": "s"}
        """,
    )
    assert client.get("/user").json() == {"name": "ann"}
    transaction(
        StarletteAdapter(),
        module,
        inplace="""
        def user() -> dict:
            return {"name": "ann", "secret": "s"}
        """,
    )
    assert client.get("/user").json() == {"name": "ann", "secret": "s"}


def test_starlette_adapter_replaced_model_validates_the_new_field(served):
    module, client = served
    assert client.post("/items", json={"name": "pen"}).json() == {"name": "pen"}
    transaction(
        StarletteAdapter(),
        module,
        """
        class Item(BaseModel):
            name: str
            price: float

        @app.post("/items")
        def create(item: Item):
            return item
        """,
        rebinding=["Item", "create"],
    )
    assert client.post("/items", json={"name": "pen"}).status_code == 422
    assert client.post("/items", json={"name": "pen", "price": 2}).json() == {
        "name": "pen",
        "price": 2.0,
    }
    posts = [r for r in module.app.routes if getattr(r, "path", "") == "/items"]
    assert len(posts) == 2  # one GET, one POST: the old POST went
    schema = module.app.openapi()  # a duplicate operation id would warn (an error here)
    assert "price" in schema["components"]["schemas"]["Item"]["properties"]


def test_starlette_adapter_changed_path_and_removed_route(served):
    module, client = served
    transaction(
        StarletteAdapter(),
        module,
        """
        @app.get("/new")
        def page():
            return {"page": "new"}
        """,
        rebinding=["page"],
    )
    assert client.get("/new").json() == {"page": "new"}
    assert client.get("/old").status_code == 404
    transaction(StarletteAdapter(), module, removing=["page"])
    assert client.get("/new").status_code == 404
    assert "/new" not in module.app.openapi()["paths"]
    assert module.app.state.counter == 0


def test_starlette_adapter_router_in_another_module(project):
    shop = project.load(
        "shop",
        """
        from fastapi import APIRouter

        router = APIRouter(prefix="/shop")

        @router.get("/items")
        def items():
            return ["pen"]
        """,
    )
    api = project.load(
        "api",
        "from fastapi import FastAPI\nimport shop\napp = FastAPI()\n"
        "app.include_router(shop.router, prefix='/v1')\n",
    )
    client = TestClient(api.app)
    assert client.get("/v1/shop/items").json() == ["pen"]
    transaction(
        StarletteAdapter(),
        shop,
        """
        @router.get("/things")
        def items():
            return ["thing"]

        @router.get("/cart")
        def cart():
            return []
        """,
        rebinding=["items", "cart"],
    )
    assert client.get("/v1/shop/cart").json() == []
    assert client.get("/v1/shop/things").json() == ["thing"]
    assert client.get("/v1/shop/items").status_code == 404
    paths = api.app.openapi()["paths"]
    assert set(paths) == {"/v1/shop/things", "/v1/shop/cart"}


def test_starlette_adapter_router_included_by_copy(project):
    """FastAPI before 0.120 copied a router's routes into the app at include_router time."""
    shop = project.load(
        "shop",
        """
        from fastapi import APIRouter

        router = APIRouter()

        @router.get("/items")
        def items():
            return ["pen"]
        """,
    )
    api = project.load(
        "api",
        "from fastapi import FastAPI\nimport shop\napp = FastAPI()\n"
        "app.add_api_route('/v1/items', shop.items)\n",  # the copy include_router made
    )
    client = TestClient(api.app)
    assert client.get("/v1/items").json() == ["pen"]
    transaction(
        StarletteAdapter(),
        shop,
        '@router.get("/cart")\ndef cart():\n    return []\n',
        rebinding=["cart"],
    )
    assert client.get("/v1/cart").json() == []


def test_starlette_adapter_exception_handler_defined_again(project):
    handlers = """
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse

        app = FastAPI()

        @app.exception_handler(ValueError)
        def bad_value(request, error):
            return JSONResponse({"handler": "v1"}, status_code=400)

        @app.get("/fail")
        def fail():
            raise ValueError("no")
        """
    module = project.load("handlers", handlers)
    client = TestClient(module.app)
    assert client.get("/fail").json() == {"handler": "v1"}  # the middleware stack is built
    transaction(
        StarletteAdapter(),
        module,
        """
        @app.exception_handler(ValueError)
        def bad_value(request, error):
            return JSONResponse({"handler": "v2"}, status_code=400)
        """,
        rebinding=["bad_value"],
    )
    assert client.get("/fail").json() == {"handler": "v2"}


FACTORY = """
from contextlib import asynccontextmanager
from fastapi import FastAPI, Request

@asynccontextmanager
async def lifespan(app):
    app.state.pool = "open"
    yield

def create_app():
    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    def index(request: Request):
        return {"version": 1, "pool": request.app.state.pool}

    return app

app = create_app()
"""


def test_starlette_adapter_app_factory_keeps_the_served_app(project):
    module = project.load("factory", FACTORY)
    app = module.app
    with TestClient(app) as client:
        assert client.get("/").json() == {"version": 1, "pool": "open"}
        app.state.hits = 5
        new = FACTORY.replace('"version": 1', '"version": 2').replace(
            "    return app\n",
            '    @app.get("/extra")\n    def extra():\n        return "extra"\n\n    return app\n',
        )
        transaction(StarletteAdapter(), module, new, rebinding=["create_app", "app"])
        assert module.app is app
        assert client.get("/extra").json() == "extra"
        assert client.get("/").json() == {"version": 2, "pool": "open"}
        assert app.state.hits == 5
        assert app.state.pool == "open"


def test_starlette_adapter_undo_restores_routes_exactly(served):
    module, client = served
    routes = list(module.app.router.routes)
    before = dict(vars(module))
    undo = transaction(
        StarletteAdapter(),
        module,
        '@app.get("/new")\ndef page():\n    return {"page": "new"}\n',
        rebinding=["page"],
        inplace="def items(limit: int = 1):\n    return {'limit': limit}\n",
    )
    assert client.get("/new").status_code == 200
    for step in undo:
        step()
    vars(module).update(before)
    assert module.app.router.routes == routes
    assert client.get("/old").json() == {"page": "old"}
    assert client.get("/new").status_code == 404


# --- end to end through hotswap.reload() ---------------------------------------------------------


def test_fastapi_reload_handler_body_edit_goes_live(served, project):
    _module, client = served
    result = project.reload("api", APP.replace('{"page": "old"}', '{"page": "edited"}'))
    assert result.ok, result.error
    assert client.get("/old").json() == {"page": "edited"}


def test_fastapi_reload_new_route_answers_and_state_survives(served, project):
    _module, client = served
    client.get("/items")
    source = APP + '\n@app.get("/added")\ndef added():\n    return "added"\n'
    result = project.reload("api", source)
    assert result.ok, result.error
    assert client.get("/added").json() == "added"
    assert client.get("/items").json()["count"] == 2  # app.state survived


def test_fastapi_reload_new_model_field_is_validated(served, project):
    module, client = served
    result = project.reload(
        "api", APP.replace("    name: str\n", "    name: str\n    price: float\n")
    )
    assert result.ok, result.error
    assert client.post("/items", json={"name": "pen"}).status_code == 422
    assert "price" in module.app.openapi()["components"]["schemas"]["Item"]["properties"]


def test_fastapi_reload_new_query_parameter_is_validated(served, project):
    _module, client = served
    source = APP.replace(
        "def items(auth: str = Depends(token)):",
        "def items(auth: str = Depends(token), limit: int = 1):",
    )
    result = project.reload("api", source)
    assert result.ok, result.error
    assert client.get("/items?limit=x").status_code == 422


def test_fastapi_reload_removed_route_404s(served, project):
    _module, client = served
    source = APP.replace('@app.get("/old")\ndef page():\n    return {"page": "old"}\n', "")
    result = project.reload("api", source)
    assert result.ok, result.error
    assert client.get("/old").status_code == 404


def test_starlette_adapter_leaves_lazy_proxies_alone(project):
    """A lazy proxy at module level (Flask's ``current_app``) raises if evaluated."""
    pytest.importorskip("flask")
    module = project.load("api", "from flask import current_app\n" + APP)
    client = TestClient(module.app)
    transaction(
        StarletteAdapter(),
        module,
        '@app.get("/new")\ndef page():\n    return 1\n',
        rebinding=["page"],
    )
    assert client.get("/new").json() == 1


def test_starlette_adapter_views_names_route_endpoints(project):
    module = project.load("api", APP + "\nNOTHING = None\n")
    assert StarletteAdapter().views(module) == {"items", "create", "page"}


def test_starlette_adapter_replaced_model_under_postponed_annotations(project):
    """With ``from __future__ import annotations`` the def does not read the class when it
    runs, so it is not run again: its route resolves the annotation again instead."""
    module = project.load("api", "from __future__ import annotations\n" + APP)
    client = TestClient(module.app)
    assert client.post("/items", json={"name": "pen"}).status_code == 200
    transaction(
        StarletteAdapter(),
        module,
        "class Item(BaseModel):\n    name: str\n    price: float\n",
        rebinding=["Item"],
    )
    assert client.post("/items", json={"name": "pen"}).status_code == 422
    assert client.post("/items", json={"name": "pen", "price": 1}).json()["price"] == 1.0


def test_starlette_adapter_plain_starlette_app(project):
    source = """
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        def hello(request):
            return PlainTextResponse("hello")

        def bye(request):
            return PlainTextResponse("bye")

        app = Starlette(routes=[Route("/hello", hello), Route("/bye", bye)])
        app.state.sessions = 3
        """
    module = project.load("plain", source)
    app = module.app
    client = TestClient(app)
    assert client.get("/hello").text == "hello"
    transaction(StarletteAdapter(), module, removing=["bye"])
    assert client.get("/bye").status_code == 404
    rebuilt = textwrap.dedent(source).replace('Route("/bye", bye)', 'Route("/hi", hello)')
    rebuilt = rebuilt.replace('\ndef bye(request):\n    return PlainTextResponse("bye")\n', "")
    app.state.sessions = 7  # changed at run time: must survive the rebuilt app
    transaction(StarletteAdapter(), module, rebuilt, rebinding=["app"])
    assert module.app is app
    assert client.get("/hi").text == "hello"
    assert app.state.sessions == 7
