"""Compatibility policies through hotswap.reload() (DESIGN §4, §6)."""

from __future__ import annotations

import logging
import textwrap

import pytest

import hotswap
from hotswap._ops.events import describe

SHOP = textwrap.dedent(
    """
    def charge(amount, currency="EUR"):
        return (amount, currency)

    def _internal(a, b):
        return a + b

    class Account:
        def __init__(self, owner):
            self.owner = owner

        def deposit(self, amount):
            return amount
    """
)

BREAKING = (
    SHOP.replace('def charge(amount, currency="EUR"):', "def charge(amount):")
    .replace("return (amount, currency)", "return (amount, 'USD')")
    .replace("def deposit(self, amount):", "async def deposit(self, amount):")
)


def test_strict_rejects_before_running_and_lists_every_finding(reloading):
    shop = reloading.load("shop", SHOP)
    objects = dict(vars(shop))
    codes = {k: v.__code__ for k, v in objects.items() if hasattr(v, "__code__")}

    result = reloading.reload("shop", BREAKING)

    assert not result.ok
    assert not result.rolled_back
    error = result.error
    assert isinstance(error, hotswap.IncompatibleChangeError)
    assert len(error.findings) == 2
    message = str(error)
    assert (
        "charge(amount, currency='EUR') -> charge(amount): parameter 'currency' removed" in message
    )
    assert "Account.deposit" in message
    assert "was a function, now a coroutine function" in message
    assert "shop.py:2)" in message
    for key, value in objects.items():
        assert vars(shop)[key] is value
    for key, code in codes.items():
        assert vars(shop)[key].__code__ is code
    assert result.version == 1


def test_strict_rejects_on_the_first_reload_from_the_live_baseline(reloading):
    # hotswap never saw the imported source: the old signatures come from the live objects.
    shop = reloading.load("shop", SHOP)
    result = reloading.reload(
        "shop", SHOP.replace("def __init__(self, owner):", "def __init__(self):")
    )
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
    assert "Account.__init__(self, owner) -> Account.__init__(self): parameter 'owner' removed" in (
        str(result.error)
    )
    assert shop.Account("me").owner == "me"


def test_strict_allows_private_and_compatible_changes(reloading):
    shop = reloading.load("shop", SHOP)
    new = SHOP.replace("def _internal(a, b):", "def _internal(a):").replace(
        "return a + b", "return a"
    )
    new = new.replace(
        'def charge(amount, currency="EUR"):', 'def charge(amount, currency="EUR", *, note=None):'
    )
    result = reloading.reload("shop", new)
    assert result.ok, result.error
    assert shop._internal(1) == 1


def test_warn_applies_with_a_warning_at_the_users_line(reloading, caplog):
    shop = reloading.load("shop", SHOP)
    with (
        caplog.at_level(logging.WARNING, logger="hotswap"),
        pytest.warns(hotswap.HotswapWarning) as record,
    ):
        result = reloading.reload("shop", BREAKING, policy="warn")
    assert result.ok, result.error
    messages = [str(w.message) for w in record]
    assert any("parameter 'currency' removed" in m for m in messages)
    assert any("now a coroutine function" in m for m in messages)
    assert len(result.warnings) == 2
    assert shop.charge(1) == (1, "USD")
    # The warning points at the user's file and line, and the log does not repeat it.
    path = str(reloading.path("shop"))
    assert all(w.filename == path and w.lineno > 0 for w in record)
    assert "parameter 'currency' removed" not in caplog.text
    assert "applied with 2 compatibility warnings" in describe(result)


def test_warn_escalated_to_an_error_rejects(reloading):
    shop = reloading.load("shop", SHOP)
    charge_code = shop.charge.__code__
    # pytest runs with filterwarnings=error: the warning raises, and hotswap rejects.
    result = reloading.reload("shop", BREAKING, policy="warn")
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
    assert shop.charge.__code__ is charge_code


def test_off_skips_the_check(reloading):
    shop = reloading.load("shop", SHOP)
    result = reloading.reload("shop", BREAKING, policy="off")
    assert result.ok, result.error
    assert result.warnings == ()
    assert shop.charge(1) == (1, "USD")


def test_configured_policy_applies_and_a_call_overrides_it(reloading):
    shop = reloading.load("shop", SHOP)
    hotswap.configure(policy="off")
    assert reloading.reload("shop", BREAKING).ok
    result = reloading.reload(
        "shop", SHOP.replace("def _internal", "def _internal2"), policy="strict"
    )
    # Back from async to a plain deposit() is still a break, whatever the configured policy.
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
    assert "now a function" in str(result.error)
    assert shop.charge(1) == (1, "USD")


def test_dataclass_module_first_reload_is_not_rejected(reloading):
    source = textwrap.dedent(
        """
        from dataclasses import dataclass

        @dataclass
        class Order:
            id: int

            def label(self):
                return f"order {self.id}"
        """
    )
    mod = reloading.load("orders", source)
    result = reloading.reload("orders", source.replace("order {", "Order {"))
    assert result.ok, result.error
    assert mod.Order(1).label() == "Order 1"
    assert result.changes.changed == ("Order.label",)


FALLBACK = """\
try:
    from functools import total_ordering
except ImportError:
    def total_ordering(cls):
        return cls
"""


def test_strict_accepts_an_import_whose_fallback_definition_goes(reloading):
    # boltons 24.0.0: the fallback ``def`` never ran, the import did; callers hold
    # functools.total_ordering before and after, so no caller can break (issue 25.12).
    import functools

    mod = reloading.load("fallback", FALLBACK)
    reloading.load("fallbackuser", "from fallback import total_ordering\n")
    result = reloading.reload("fallback", "from functools import total_ordering\n")
    assert result.ok, result.error
    assert mod.total_ordering is functools.total_ordering


def test_strict_still_refuses_a_function_turned_into_a_value(reloading):
    # idna 3.17: ``def joining_types()`` became a dict; ``joining_types()`` now raises.
    reloading.load("jtypes", "def joining_types():\n    return {1: 2}\n")
    reloading.load("jtypesuser", "import jtypes\n\n\ndef f():\n    return jtypes.joining_types()\n")
    result = reloading.reload("jtypes", "joining_types = {1: 2}\n")
    assert isinstance(result.error, hotswap.IncompatibleChangeError)


def test_strict_still_refuses_a_removal_whose_changed_caller_still_calls_it(project):
    # Issue 25.12's first case, the other way: the caller changed in the same set but still
    # calls the removed function (it does not bind the name itself), so it would break.
    from hotswap._engine import transaction

    project.load("pg2", "def pager(text):\n    return text\n")
    project.load("pg2user", "from pg2 import pager\n\n\ndef show(t):\n    return pager(t)\n")
    project.write("pg2", "def other():\n    return 1\n")
    project.write("pg2user", "from pg2 import pager\n\n\ndef show(t):\n    return pager(t + 1)\n")
    results = transaction.reload_many([("pg2", None), ("pg2user", None)], policy="strict")
    assert not all(r.ok for r in results)
    assert any(isinstance(r.error, hotswap.IncompatibleChangeError) for r in results)


def test_strict_still_refuses_a_breaking_change_in_a_public_submodule(project):
    # Issue 25.12's last case, the other way: names of a public module of the same package
    # are public.
    project.write("pubpkg.impl", "def helper(a, b):\n    return a + b\n")
    project.load("pubpkg.impl", "def helper(a, b):\n    return a + b\n")
    result = project.reload("pubpkg.impl", "def helper(a):\n    return a\n", policy="strict")
    assert isinstance(result.error, hotswap.IncompatibleChangeError)
