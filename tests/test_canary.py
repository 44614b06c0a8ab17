"""Gray release through the public API: ``hotswap.canary()`` beside the live version, outside
requests (``@reloadable`` calls, ``canary_scope``), decisions, refusals, threads."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

import hotswap
from hotswap._release import canary as _canary

SHOP = """
import hotswap

RATE = 2
CALLS = [0]

def helper(x):
    return x * RATE

@hotswap.reloadable
def price(x):
    CALLS[0] += 1
    return helper(x)

class Base:
    def tag(self):
        return "base"

class Cart(Base):
    def total(self, x):
        return price(x) + 1

    def tag(self):
        return "cart-" + super().tag()

def run(x):
    return Cart().total(x)
"""
# The candidate: a new rate (a constant), a new body for a method (with super()).
SHOP_V2 = SHOP.replace("RATE = 2", "RATE = 3").replace('"cart-"', '"cart2-"')
LIVE, NEW = 2 * 5 + 1, 3 * 5 + 1  # run(5) on each version


@pytest.fixture(autouse=True)
def no_canary_left() -> Iterator[None]:
    yield
    for run in _canary.running().values():
        run.abort()


@pytest.fixture
def shop(project):
    module = project.load("shop", SHOP)
    project.write("shop", SHOP_V2)
    return module


def test_canary_runs_beside_the_live_version_without_touching_it(shop):
    held, cart = shop.run, shop.Cart()
    run = hotswap.canary(shop, weight=0.0)
    assert run.state == "running"
    assert (held(5), cart.total(5), cart.tag(), shop.RATE) == (LIVE, LIVE, "cart-base", 2)
    with hotswap.canary_scope("anyone"):  # weight 0: every key stays live
        assert held(5) == LIVE
    assert (
        hotswap.status().modules.get("shop") is None
        or hotswap.status().modules["shop"].version == 1
    )


def test_canary_scope_assigns_by_key_and_is_sticky(shop):
    run = hotswap.canary(shop, weight=0.5)
    held, cart = shop.run, shop.Cart()
    outcomes = {}
    for key in range(200):
        with hotswap.canary_scope(key):
            first = (held(5), cart.total(5), cart.tag())
        with hotswap.canary_scope(key):
            second = (held(5), cart.total(5), cart.tag())
        assert first == second  # the same key, the same version
        assert first in ((LIVE, LIVE, "cart-base"), (NEW, NEW, "cart2-base"))  # never mixed
        outcomes[key] = first[0]
    share = sum(v == NEW for v in outcomes.values()) / len(outcomes)
    assert 0.3 < share < 0.7, share
    assert run.stats["candidate"]["calls"] + run.stats["live"]["calls"] == 400


def test_reloadable_calls_outside_requests_are_assigned_by_weight(shop):
    run = hotswap.canary(shop, weight=1.0)
    assert shop.price(5) == 15  # the candidate's rate
    run.abort()
    assert shop.price(5) == 10
    run2 = hotswap.canary(shop, weight=0.0)
    assert [shop.price(5) for _ in range(50)] == [10] * 50
    assert run2.stats["live"]["calls"] == 50
    assert run2.stats["candidate"]["calls"] == 0


def test_plain_calls_outside_any_unit_run_the_live_version(shop):
    hotswap.canary(shop, weight=1.0)
    assert shop.helper(5) == 10  # not @reloadable, no scope: nothing assigns it
    # A @reloadable call made from there is a unit of its own (the rest stays live).
    assert shop.run(5) == 3 * 5 + 1


def test_promote_commits_the_candidate_in_place_with_state(shop):
    held, cart = shop.run, shop.Cart()
    shop.price(1)
    run = hotswap.canary(shop, weight=0.5)
    result = run.promote()
    assert result.ok
    assert result.kind == "reload"
    assert result.version == 2
    assert "promoted" in result.reason
    assert run.state == "promoted"
    assert run.wait(0) == "promoted"
    assert (held(5), cart.total(5), cart.tag()) == (NEW, NEW, "cart2-base")
    assert shop.CALLS[0] >= 1  # state kept
    assert hotswap.status().modules["shop"].version == 2
    assert run.promote() is result  # decided once


def test_promote_after_n_candidate_calls(shop):
    run = hotswap.canary(shop, weight=1.0, promote_after=20, min_calls=5)
    for _ in range(20):
        shop.price(5)
    assert run.wait(10) == "promoted"
    assert run.result is not None
    assert run.result.ok
    assert shop.run(5) == NEW


def test_failing_candidate_is_aborted_by_its_error_rate(project):
    module = project.load("flaky", SHOP)
    project.write("flaky", SHOP.replace("return x * RATE", "return (x * RATE) / (x % 10)"))
    seen: list[hotswap.ReloadResult] = []
    events: list[hotswap.Event] = []
    hotswap.subscribe(events.append)
    hotswap._ops.events.subscribe(seen.append)
    try:
        run = hotswap.canary(module, weight=1.0, min_calls=50, max_error_rate=0.05)
        failures = 0
        for i in range(1, 200):
            try:
                module.price(i)
            except ZeroDivisionError:
                failures += 1
            if run.state != "running":
                break
        assert run.wait(10) == "aborted"
    finally:
        hotswap._ops.events.unsubscribe(seen.append)
    assert failures >= 5
    assert "error rate" in run.reason
    assert "> 0.05" in run.reason
    assert [r.kind for r in seen] == ["canary"]
    assert not seen[0].ok
    assert seen[0].reason == run.reason
    decisions = [e for e in events if isinstance(e, hotswap.CanaryDecision)]
    assert [d.decision for d in decisions] == ["start", "abort"]
    assert decisions[1].stats["candidate"]["errors"] >= 5
    assert all(module.price(i) == i * 2 for i in range(1, 30))  # the live version, intact


def test_reload_and_rollback_wait_for_the_canary(shop):
    run = hotswap.canary(shop, weight=0.5)
    result = hotswap.reload(shop)
    assert not result.ok
    assert isinstance(result.error, hotswap.CanaryError)
    assert "promote() or abort()" in str(result.error)
    assert not hotswap.rollback(shop).ok
    with pytest.raises(hotswap.CanaryError, match="runs already"):
        hotswap.canary(shop)
    run.abort()
    assert hotswap.reload(shop).ok


def test_nothing_to_try_is_an_error(project):
    module = project.load("same", SHOP)
    with pytest.raises(hotswap.CanaryError, match="nothing to try"):
        hotswap.canary(module)


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("def f():\n    return 1\n", "@staticmethod\ndef f():\n    return 1\n", "decorators"),
        ("X = []\n", "X = []\nX.append(1)\n", "top-level expression"),
        (
            "class C:\n    a = 1\n    def m(self):\n        return 1\n",
            "class C:\n    a = 2\n    def m(self):\n        return 1\n",
            "other than its methods",
        ),
        (
            "class C:\n    def m(self):\n        return 1\n",
            "class C:\n    def m(self):\n        return 1\n    def n(self):\n        return 2\n",
            "added or removed",
        ),
    ],
)
def test_changes_that_act_on_shared_objects_are_refused(project, old, new, why):
    module = project.load("effects", old)
    project.write("effects", new)
    before = dict(vars(module))
    with pytest.raises(hotswap.CanaryError, match=why) as caught:
        hotswap.canary(module)
    assert caught.value.filename
    assert caught.value.lineno
    assert "hotswap.reload()" in str(caught.value)
    assert dict(vars(module)) == before
    assert _canary.running() == {}


def test_bad_candidate_source_raises_what_a_reload_reports(project):
    module = project.load("broken", SHOP)
    project.write("broken", SHOP.replace("def helper(x):", "def helper(x:"))
    with pytest.raises(hotswap.SourceSyntaxError):
        hotswap.canary(module)
    project.write("broken", SHOP.replace("RATE = 2", "RATE = 1 / 0"))
    with pytest.raises(hotswap.ExecutionError, match="ZeroDivisionError"):
        hotswap.canary(module)
    assert module.RATE == 2
    assert module.run(5) == LIVE


@pytest.mark.parametrize(
    "bad",
    [{"weight": 1.5}, {"min_calls": -1}, {"max_error_rate": 2.0}, {"promote_after": 0}],
)
def test_arguments_out_of_range(shop, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        hotswap.canary(shop, **bad)


def test_async_functions_follow_the_assignment(project):
    source = "import hotswap\nK = 1\n\n@hotswap.reloadable\nasync def get():\n    return K\n"
    module = project.load("asyncshop", source)
    project.write("asyncshop", source.replace("K = 1", "K = 2"))
    run = hotswap.canary(module, weight=1.0)
    assert asyncio.run(module.get()) == 2
    run.abort()
    assert asyncio.run(module.get()) == 1


def test_eight_threads_each_unit_on_one_version(shop):
    run = hotswap.canary(shop, weight=0.3)
    held, cart = shop.run, shop.Cart()
    errors: list[BaseException] = []
    mixed: list[tuple[object, ...]] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(300):
                with hotswap.canary_scope(f"{worker}-{i}"):
                    got = (held(5), cart.total(5), cart.tag(), shop.price(5))
                if got not in ((LIVE, LIVE, "cart-base", 10), (NEW, NEW, "cart2-base", 15)):
                    mixed.append(got)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert not mixed
    stats = run.stats
    assert stats["live"]["calls"] + stats["candidate"]["calls"] == 8 * 300
    assert 0.2 < stats["candidate"]["calls"] / 2400 < 0.4


def test_decision_waits_for_units_on_the_candidate(shop):
    run = hotswap.canary(shop, weight=1.0)
    inside, release = threading.Event(), threading.Event()
    got: list[int] = []

    def request() -> None:
        with hotswap.canary_scope("k"):
            got.append(shop.run(5))
            inside.set()
            release.wait(10)
            got.append(shop.run(5))

    worker = threading.Thread(target=request)
    worker.start()
    assert inside.wait(10)
    aborting = threading.Thread(target=run.abort)
    aborting.start()
    deadline = time.monotonic() + 10
    while not run._stopping and time.monotonic() < deadline:  # the decision is taken...
        time.sleep(0.001)
    assert run.wait(0.05) == "running"  # ...and waits for the unit in flight
    with hotswap.canary_scope("k"):  # a new unit after the decision: the live version
        assert shop.run(5) == LIVE
    release.set()
    worker.join()
    aborting.join()
    assert got == [NEW, NEW]  # the unit in flight finished on the candidate
    assert run.state == "aborted"


def test_watcher_canary_mode_starts_a_canary_per_save(project, watch):
    module = project.load("watched", SHOP)
    collector = watch(canary={"weight": 1.0, "promote_after": 10})
    project.write("watched", SHOP_V2.replace("RATE = 3", "RATE = 4"))
    collector.wait_for(lambda results: any(r.kind == "canary" for r in results))
    first = _canary.running()["watched"]
    project.write("watched", SHOP_V2)  # a newer save supersedes the running canary

    def started(results: list[hotswap.ReloadResult]) -> list[hotswap.ReloadResult]:
        return [r for r in results if r.kind == "canary" and r.ok and "canary started" in r.reason]

    # The registry holds the new canary before on_reload hears of it: wait for both.
    collector.wait_for(
        lambda results: (
            _canary.running().get("watched") not in (None, first) and len(started(results)) >= 2
        )
    )
    assert first.state == "aborted"
    assert "superseded" in first.reason
    assert len(started(collector.results)) == 2
    run = _canary.running()["watched"]
    for _ in range(10):
        module.price(5)
    assert run.wait(10) == "promoted"
    assert module.run(5) == NEW
    # The watcher's on_reload hears of the decisions too, with their reasons.
    collector.wait_for(lambda results: any("promoted after 10" in r.reason for r in results))
    assert any(r.kind == "canary" and "superseded" in r.reason for r in collector.results)


FAILING = "import hotswap\n\n@hotswap.reloadable\ndef work(x):\n    return 10 // x\n"


def test_auto_rollback_counts_reloadable_calls_outside_requests(project, events):
    from hotswap._release import health as _health

    module = project.load("worker", FAILING)
    hotswap.configure(auto_rollback={"window": 60.0, "min_calls": 20, "max_error_rate": 0.1})
    try:
        result = project.reload("worker", FAILING.replace("10 // x", "10 // (x % 3)"))
        assert result.ok
        assert result.version == 2
        for x in range(1, 100):
            with contextlib.suppress(ZeroDivisionError):
                module.work(x)
            if hotswap.status().modules["worker"].version == 1:
                break
        events.wait_for(lambda rec: any(getattr(e, "kind", "") == "rollback" for e in rec.seen))
        rolled = next(e for e in events.seen if getattr(e, "kind", "") == "rollback")
        assert rolled.ok
        assert rolled.version == 1
        assert "over 20 calls" in rolled.reason
        assert rolled.to_dict()["reason"] == rolled.reason
        assert [module.work(x) for x in (1, 3, 6)] == [10, 3, 1]  # never divides by zero again
    finally:
        hotswap.configure(auto_rollback=False)
        _health.reset()


def test_auto_rollback_off_by_default_and_turned_off_again(project):
    from hotswap._release import health as _health
    from hotswap._release import routing as _routing

    assert hotswap.configure().auto_rollback is None
    module = project.load("quiet", FAILING)
    project.reload("quiet", FAILING.replace("10 // x", "0 // x"))
    assert _routing.idle()  # nothing watched: the middleware and calls pay nothing
    settings = hotswap.configure(auto_rollback=True)
    assert settings.auto_rollback == hotswap.AutoRollback()
    project.reload("quiet", FAILING.replace("10 // x", "1 // x"))
    assert not _routing.idle()
    assert hotswap.configure(auto_rollback=False).auto_rollback is None
    _health.reset()
    assert _routing.idle()
    assert module.work(1) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"weight": 0.5, "promote_after": 10}', hotswap.CanaryPolicy(0.5, promote_after=10)),
        ("1", hotswap.CanaryPolicy()),
        ("0", None),
    ],
)
def test_canary_mode_from_the_environment(monkeypatch, project, value, expected):
    from hotswap._config import settings as _config

    monkeypatch.setenv("HOTSWAP_CANARY", value)
    _config.reset()
    assert _config.current().canary == expected


def test_bad_canary_and_auto_rollback_settings_name_where(monkeypatch, project):
    from hotswap._config import settings as _config

    monkeypatch.setenv("HOTSWAP_AUTO_ROLLBACK", '{"window": -1}')
    _config.reset()
    with pytest.raises(ValueError, match="HOTSWAP_AUTO_ROLLBACK"):
        _config.current()
    monkeypatch.delenv("HOTSWAP_AUTO_ROLLBACK")
    _config.reset()
    expected = r"configure\(canary=\.\.\.\): \{'weight': 3\} is not valid"
    with pytest.raises(ValueError, match=expected):
        hotswap.configure(canary={"weight": 3})


def test_a_reload_reaching_an_importer_under_canary_is_refused(project):
    rates = project.load("rates", "RATE = 2\n")
    uses = "from rates import RATE\n\ndef f():\n    return RATE\n\ndef g():\n    return 1\n"
    importer = project.load("uses", uses)
    project.write("uses", uses.replace("return 1", "return 2"))
    run = hotswap.canary(importer, weight=1.0)
    result = project.reload("rates", "RATE = 3\n")
    assert not result.ok
    assert isinstance(result.error, hotswap.CanaryError)
    assert "uses" in str(result.error)
    assert (rates.RATE, importer.RATE) == (2, 2)
    run.abort()
    assert hotswap.reload(rates).ok
    assert importer.RATE == 3


def test_status_lists_running_canaries_as_json(shop):
    import json

    assert hotswap.status().canaries == {}
    run = hotswap.canary(shop, weight=1.0, promote_after=50)
    shop.price(1)
    status = hotswap.status()
    assert status.canaries == {"shop": run}
    shown = json.loads(json.dumps(status.to_dict()))["canaries"]["shop"]
    assert shown["state"] == "running"
    assert shown["version"] == 2
    assert shown["weight"] == 1.0
    assert shown["promote_after"] == 50
    assert shown["stats"]["candidate"]["calls"] == 1
    run.abort()
    assert hotswap.status().canaries == {}


def test_second_enable_with_the_same_canary_policy_is_silent(project, watch):
    collector = watch(canary={"weight": 0.5})
    # pytest runs with filterwarnings=error: a warning here fails the test.
    assert hotswap.enable([str(project.root)], on_reload=collector, canary={"weight": 0.5})
    with pytest.warns(hotswap.HotswapWarning, match="canary"):
        hotswap.enable(canary={"weight": 0.2})


def test_auto_rollback_bar_is_the_rate_of_a_version_that_stayed_live(project):
    from hotswap._release import health as _health

    module = project.load("bar", FAILING)
    hotswap.configure(auto_rollback={"window": 60.0, "min_calls": 10, "max_error_rate": 0.1})
    rolled: list[hotswap.ReloadResult] = []
    done = threading.Event()

    def on_result(result: hotswap.ReloadResult) -> None:
        if result.kind == "rollback":
            rolled.append(result)
            done.set()

    hotswap._ops.events.subscribe(on_result)
    try:
        for attempt in range(2):  # v2 fails always, is rolled back; then v3 fails always too
            done.clear()
            assert project.reload("bar", FAILING.replace("10 // x", f"{attempt} // 0")).ok
            for _ in range(30):
                with contextlib.suppress(ZeroDivisionError):
                    module.work(1)
                if done.is_set():
                    break
            assert done.wait(10)
        # The second failing version is judged by the bound, not by the first one's failures.
        assert len(rolled) == 2
        assert "(no error rate is known for the version before)" in rolled[1].reason
        assert "unknown" not in rolled[1].reason
    finally:
        hotswap._ops.events.unsubscribe(on_result)
        hotswap.configure(auto_rollback=False)
        _health.reset()
