"""Releases and epochs in one process: every commit names the code by its content, a rollback
gives the earlier epoch back, and a module with committed bytes imports them, not its file."""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterator

import pytest

import hotswap
from hotswap._fleet import agent
from hotswap._fleet.release import GENESIS, Release, epoch_of, ledger, short

V1 = "def price():\n    return 1\n"
V2 = "def price():\n    return 2\n"


@pytest.fixture(autouse=True)
def fresh_ledger() -> Iterator[None]:
    ledger.reset()
    yield
    ledger.reset()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_fleet_release_epoch_is_content(reloading):
    reloading.load("shop", V1)
    assert hotswap.status().epoch == GENESIS
    result = reloading.reload("shop", V2)
    expected = epoch_of(GENESIS, {"shop": digest(V2)})
    assert result.ok
    assert result.epoch == expected
    assert hotswap.status().epoch == expected
    assert hotswap.status().to_dict()["epoch"] == expected
    assert Release.of(GENESIS, {"shop": V2.encode()}).epoch == expected
    assert short(expected) == expected[:12]


def test_fleet_release_unchanged_save_keeps_the_epoch(reloading):
    reloading.load("shop", V1)
    reloading.reload("shop", V2)
    epoch = hotswap.status().epoch
    assert hotswap.reload("shop").epoch == epoch  # the same bytes: no new release


def test_fleet_release_failure_carries_the_epoch_it_left(reloading):
    reloading.load("shop", V1)
    failed = reloading.reload("shop", "def price(:\n")
    assert not failed.ok
    assert failed.epoch == GENESIS


def test_fleet_release_rollback_gives_the_earlier_epoch_back(reloading):
    reloading.load("shop", V1)
    reloading.reload("shop", V2)
    assert hotswap.status().epoch != GENESIS
    back = hotswap.rollback("shop")
    assert back.ok
    assert back.epoch == hotswap.status().epoch == GENESIS  # back on what was imported
    again = reloading.reload("shop", V2)
    assert again.epoch == epoch_of(GENESIS, {"shop": digest(V2)})


def test_fleet_release_committed_bytes_are_imported_not_the_file(project):
    project.write("shop", "def price():\n    return 'rejected on disk'\n")
    ledger.adopt("e" * 64, {"shop": V2.encode()})
    finder = agent.CommittedFinder()
    sys.meta_path.insert(0, finder)
    try:
        importlib.invalidate_caches()
        shop = importlib.import_module("shop")
        assert shop.price() == 2
        # The engine diffs the first reload against the bytes the module ran.
        project.write("shop", "def price():\n    return 3\n")
        result = hotswap.reload("shop")
        assert result.ok
        assert result.changes.changed == ("price",)
        assert shop.price() == 3
    finally:
        sys.meta_path.remove(finder)


def test_fleet_release_middleware_headers_carry_the_epoch(reloading):
    import asyncio

    from hotswap.integrations.asgi import HotswapMiddleware as Asgi
    from hotswap.integrations.wsgi import HotswapMiddleware as Wsgi

    shop = reloading.load("shop", V1)

    def wsgi_app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(shop.price()).encode()]

    async def asgi_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(shop.price()).encode()})

    def wsgi_epoch() -> str:
        seen: list[tuple[str, str]] = []
        response = Wsgi(wsgi_app)({"PATH_INFO": "/"}, lambda status, headers: seen.extend(headers))
        response.close()  # type: ignore[attr-defined]
        return dict(seen)["X-Hotswap-Epoch"]

    def asgi_epoch() -> str:
        sent: list[dict[str, object]] = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request"}

        asyncio.run(Asgi(asgi_app)({"type": "http", "path": "/"}, receive, send))
        return dict(sent[0]["headers"])[b"x-hotswap-epoch"].decode()  # type: ignore[call-overload]

    assert wsgi_epoch() == asgi_epoch() == short(GENESIS)
    reloading.reload("shop", V2)
    expected = short(epoch_of(GENESIS, {"shop": digest(V2)}))
    assert wsgi_epoch() == asgi_epoch() == expected
