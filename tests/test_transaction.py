"""The reload transaction: execute, commit, roll back, state hooks (DESIGN §4, §5.1, §5.4)."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import threading
import types

import pytest

import hotswap
from hotswap._engine import transaction as _transaction
from hotswap._engine.gil import gil_enabled

V1 = textwrap.dedent(
    """
    import math

    RATE = 2
    registry = []

    def price(amount):
        return amount * RATE

    def helper():
        return "helper"

    class Cart:
        def total(self, amounts):
            return sum(price(a) for a in amounts)
    """
)


def test_reload_body_change_runs_new_code_through_old_references(reloading):
    shop = reloading.load("shop", V1)
    price = shop.price
    from shop import Cart

    cart = Cart()
    result = reloading.reload("shop", V1.replace("amount * RATE", "amount * RATE + 1"))

    assert result.ok, result.error
    assert result.version == 2
    assert result.changes.changed == ("price",)
    assert shop.price is price
    assert price(10) == 21
    assert cart.total([1]) == 3
    assert shop.Cart is Cart


def test_reload_unchanged_content_is_a_noop(reloading):
    reloading.load("shop", V1)
    first = reloading.reload("shop", V1.replace("RATE = 2", "RATE = 3"))
    again = hotswap.reload("shop")

    assert first.version == 2
    assert again.ok
    assert again.version == 2
    assert not again.changes


def test_reload_syntax_error_changes_nothing(reloading):
    shop = reloading.load("shop", V1)
    before = dict(vars(shop))
    code = shop.price.__code__

    result = reloading.reload("shop", V1 + "\ndef broken(:\n    pass\n")

    assert not result.ok
    assert not result.rolled_back
    assert isinstance(result.error, hotswap.SourceSyntaxError)
    assert isinstance(result.error, SyntaxError)
    message = str(result.error)
    assert message.startswith("shop (")
    assert "shop.py:" in message
    assert result.error.lineno == 17
    assert result.version == 1
    assert vars(shop) == before
    assert shop.price.__code__ is code


@pytest.mark.parametrize(
    "failure",
    [
        "raise ValueError('boom')",
        "1 / 0",
        "raise SystemExit(3)",
        "import no_such_module_anywhere",
    ],
)
def test_reload_exception_while_executing_restores_everything(reloading, failure):
    shop = reloading.load("shop", V1)
    objects = dict(vars(shop))
    price_code = shop.price.__code__
    cart_total = shop.Cart.__dict__["total"]
    new = V1.replace("RATE = 2", "RATE = 5").replace("return amount * RATE", "return -1")
    new += "\ndef added():\n    return 1\n\n" + failure + "\n"

    result = reloading.reload("shop", new)

    assert not result.ok
    assert result.rolled_back
    assert isinstance(result.error, hotswap.ExecutionError)
    assert f"shop.py:{new.count(chr(10))})" in str(result.error)
    assert result.version == 1
    assert vars(shop).keys() == objects.keys()
    for key, value in objects.items():
        assert vars(shop)[key] is value, key
    assert shop.price.__code__ is price_code
    assert shop.Cart.__dict__["total"] is cart_total
    assert shop.price(1) == 2


def test_reload_error_names_the_failing_line(reloading):
    reloading.load("shop", V1)
    new = V1 + "\ndef f():\n    return 1\n\nf() + None\n"
    line = new.count("\n")
    result = reloading.reload("shop", new)
    assert f"shop.py:{line})" in str(result.error)
    assert "TypeError" in str(result.error)
    assert result.error.lineno == line


def test_reload_keyboard_interrupt_is_reraised_after_rollback(reloading):
    shop = reloading.load("shop", V1)
    price = shop.price
    code = price.__code__
    with pytest.raises(KeyboardInterrupt):
        reloading.reload("shop", V1 + "\nraise KeyboardInterrupt\n")
    assert shop.price is price
    assert price.__code__ is code
    assert shop.price(1) == 2


def test_reload_removes_names_the_new_source_no_longer_defines(reloading):
    shop = reloading.load("shop", V1)
    new = V1.replace('def helper():\n    return "helper"\n', "")
    result = reloading.reload("shop", new, policy="off")
    assert result.ok, result.error
    assert not hasattr(shop, "helper")
    assert result.changes.removed == ("helper",)


def test_reload_keep_names_keep_their_objects(reloading):
    source = V1 + "\n__hotswap_keep__ = ('registry',)\n"
    shop = reloading.load("shop", source)
    shop.registry.append("state")
    kept = shop.registry

    result = reloading.reload("shop", source.replace("RATE = 2", "RATE = 3"))

    assert result.ok, result.error
    assert shop.registry is kept
    assert shop.registry == ["state"]
    assert shop.price(1) == 3


def test_reload_state_in_unchanged_statements_survives(reloading):
    shop = reloading.load("shop", V1)
    shop.registry.append("state")
    reloading.reload("shop", V1.replace("RATE = 2", "RATE = 3"))
    assert shop.registry == ["state"]
    assert shop.RATE == 3


def test_reload_migrate_moves_state(reloading):
    shop = reloading.load("shop", V1)
    shop.registry.extend([1, 2])
    new = V1 + (
        "\ndef __hotswap_migrate__(old):\n"
        "    global registry\n"
        "    registry = [x * 10 for x in old['registry']]\n"
    )
    result = reloading.reload("shop", new)
    assert result.ok, result.error
    assert shop.registry == [10, 20]


def test_reload_failing_migrate_rolls_back(reloading):
    shop = reloading.load("shop", V1)
    price = shop.price
    new = V1.replace("amount * RATE", "amount").replace(
        "registry = []",
        "registry = []\n\ndef __hotswap_migrate__(old):\n    raise RuntimeError('no')",
    )
    result = reloading.reload("shop", new)
    assert not result.ok
    assert result.rolled_back
    assert isinstance(result.error, hotswap.MigrationError)
    assert "__hotswap_migrate__" in str(result.error)
    assert shop.price is price
    assert shop.price(2) == 4
    assert not hasattr(shop, "__hotswap_migrate__")


def test_reload_failing_verify_rolls_back_after_commit(reloading):
    shop = reloading.load("shop", V1)
    new = V1.replace("amount * RATE", "amount * 0") + (
        "\ndef __hotswap_verify__():\n    assert price(1) == 2, 'price is broken'\n"
    )
    result = reloading.reload("shop", new)
    assert not result.ok
    assert result.rolled_back
    assert isinstance(result.error, hotswap.VerificationError)
    assert "price is broken" in str(result.error)
    assert result.version == 1
    assert shop.price(1) == 2
    assert hotswap.status().modules["shop"].version == 1


def test_reload_passing_verify_commits(reloading):
    shop = reloading.load("shop", V1)
    new = V1.replace("amount * RATE", "amount * 3") + (
        "\ndef __hotswap_verify__():\n    assert price(1) == 3\n"
    )
    result = reloading.reload("shop", new)
    assert result.ok, result.error
    assert shop.price(1) == 3


def test_reload_compiles_the_source_never_a_stale_pyc(project):
    # With bytecode writing on, a same-size edit inside the same second leaves a .pyc that
    # the import system takes for current: importlib.reload would run the old code.
    saved = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        path = project.write("stale", "def value():\n    return 111\n")
        stamp = os.stat(path).st_mtime
        module = importlib.import_module("stale")
        # (module.__spec__.cached: Python 3.15 no longer sets module.__cached__.)
        assert module.__spec__.cached
        assert os.path.exists(module.__spec__.cached)
        path.write_text("def value():\n    return 222\n")
        os.utime(path, (stamp, stamp))

        importlib.reload(module)
        assert module.value() == 111  # the trap is real

        result = hotswap.reload("stale")
        assert result.ok, result.error
        assert module.value() == 222
    finally:
        sys.dont_write_bytecode = saved


def test_reload_of_unknown_module_is_a_failed_result(project):
    result = hotswap.reload("no.such.module")
    assert not result.ok
    assert isinstance(result.error, hotswap.ModuleNotReloadableError)
    assert "no.such.module" in str(result.error)


def test_reload_of_module_without_source_is_a_failed_result(project):
    result = hotswap.reload("sys")
    assert not result.ok
    assert isinstance(result.error, hotswap.ModuleNotReloadableError)
    assert "sys" in str(result.error)


def test_reload_rejects_an_unknown_policy(project):
    project.load("shop", V1)
    with pytest.raises(ValueError, match="policy"):
        hotswap.reload("shop", policy="lenient")


def test_reload_package_init_and_submodule(reloading):
    reloading.write("pkg.sub", "def name():\n    return 'sub-1'\n")
    pkg = reloading.load("pkg", "from pkg.sub import name\n\nVERSION = 1\n")
    sub = sys.modules["pkg.sub"]
    name = sub.name

    assert reloading.reload("pkg.sub", "def name():\n    return 'sub-2'\n").ok
    assert name() == "sub-2"
    assert pkg.name() == "sub-2"

    result = reloading.reload("pkg", "from pkg.sub import name\n\nVERSION = 2\n")
    assert result.ok, result.error
    assert pkg.VERSION == 2
    assert pkg.sub is sub  # the submodule attribute the import system set is left alone


def test_reload_future_annotations_module(reloading):
    source = "from __future__ import annotations\n\ndef f(x: Undefined) -> Nope:\n    return 1\n"
    mod = reloading.load("fut", source)
    f = mod.f
    result = reloading.reload("fut", source.replace("return 1", "return 2"))
    assert result.ok, result.error
    assert f(0) == 2
    assert f.__annotations__ == {"x": "Undefined", "return": "Nope"}


def test_reload_from_module_code_is_refused(reloading):
    reloading.load("other", "X = 1\n")
    reloading.load("shop", V1)
    result = reloading.reload("shop", V1 + "\nimport hotswap\nRESULT = hotswap.reload('other')\n")
    assert result.ok, result.error
    inner = sys.modules["shop"].RESULT
    assert not inner.ok
    assert isinstance(inner.error, hotswap.ReentrantReloadError)


def test_reloads_are_serialized(project):
    project.load("shop", V1)
    project.write("shop", V1.replace("RATE = 2", "RATE = 9"))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(hotswap.reload("shop"))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.ok for r in results)
    assert sorted(r.version for r in results) == [2, 2, 2, 2]
    assert sum(bool(r.changes) for r in results) == 1


def test_status_reports_versions_history_and_counters(reloading):
    reloading.load("shop", V1)
    reloading.reload("shop", V1.replace("RATE = 2", "RATE = 3"))
    reloading.reload("shop", V1 + "\ndef broken(:\n")
    status = hotswap.status()
    module = status.modules["shop"]
    assert module.version == 2
    assert module.history == (1, 2)
    assert module.source_hash is not None
    assert module.last_result is not None
    assert not module.last_result.ok
    assert status.reloads >= 2
    assert status.failures >= 1
    assert not status.watching


def test_reload_result_duration_and_listener(reloading):
    seen = []
    hotswap_events = __import__("hotswap._ops.events", fromlist=["subscribe"])
    hotswap_events.subscribe(seen.append)
    try:
        reloading.load("shop", V1)
        result = reloading.reload("shop", V1.replace("RATE = 2", "RATE = 4"))
    finally:
        hotswap_events.unsubscribe(seen.append)
    assert seen == [result]
    assert result.duration > 0


def test_reload_history_is_bounded(project):
    hotswap.configure(history=3)
    project.load("shop", V1)
    for rate in range(3, 9):
        assert project.reload("shop", V1.replace("RATE = 2", f"RATE = {rate}")).ok
    assert hotswap.status().modules["shop"].history == (5, 6, 7)


def test_records_forget_a_module_imported_afresh(project):
    project.load("shop", V1)
    project.reload("shop", V1.replace("RATE = 2", "RATE = 3"))
    del sys.modules["shop"]
    importlib.import_module("shop")
    result = project.reload("shop", V1.replace("RATE = 2", "RATE = 4"))
    assert result.version == 2
    assert _transaction.module_statuses()["shop"].history == (1, 2)


@pytest.mark.parametrize(
    "kind",
    [
        hotswap.HotswapError,
        hotswap.PinTimeoutError,
        hotswap.ModuleNotReloadableError,
        hotswap.VersionNotFoundError,
        hotswap.ExecutionError,
    ],
)
def test_errors_print_their_message(kind):
    error = kind("shop (shop.py:3): why", module="shop", filename="shop.py", lineno=3)
    assert str(error) == "shop (shop.py:3): why"
    assert error.filename == "shop.py"
    assert error.lineno == 3


def test_reload_runs_with_a_short_switch_interval_and_restores_it(project):
    saved = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    try:
        mod = project.load("shop", V1)
        source = V1 + "\nimport sys\nINTERVAL = sys.getswitchinterval()\n"
        assert project.reload("shop", source).ok
        if gil_enabled():
            assert mod.INTERVAL < 0.001
        else:  # no GIL: nothing waits for one, the program's interval is left alone
            assert pytest.approx(0.004) == mod.INTERVAL
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        sys.setswitchinterval(saved)


@pytest.mark.parametrize("hook", ["__hotswap_migrate__(old)", "__hotswap_verify__()"])
def test_reload_keyboard_interrupt_in_a_hook_is_reraised_after_rollback(project, hook):
    shop = project.load("shop", V1)
    price_code = shop.price.__code__
    new = V1.replace("amount * RATE", "amount") + f"\ndef {hook}:\n    raise KeyboardInterrupt\n"
    with pytest.raises(KeyboardInterrupt):
        project.reload("shop", new)
    assert shop.price.__code__ is price_code
    assert shop.price(2) == 4


def test_reload_of_main_updates_definitions_only(project, monkeypatch):
    tally = project.load("tally", "RUNS = 0\n")
    source = "import tally\ntally.RUNS += 1\n\ndef answer():\n    return 1\n"
    script = project.write("app", source)
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    exec(compile(source, str(script), "exec"), vars(main))
    monkeypatch.setitem(sys.modules, "__main__", main)
    script.write_text(source.replace("return 1", "return 2"))
    result = hotswap.reload("__main__")
    assert result.ok, result.error
    assert main.answer() == 2
    assert tally.RUNS == 1  # the top-level statements did not run again
