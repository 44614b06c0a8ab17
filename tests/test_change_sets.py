"""Change sets (DESIGN §5.3): files that change together are planned, checked and committed as
one transaction, and a failure anywhere rolls every module of the set back."""

from __future__ import annotations

import hotswap
from hotswap._engine import transaction as _transaction


def test_change_set_commits_several_modules_together(project):
    config = project.load("config", "RATE = 1\n")
    shop = project.load("shop", "def price():\n    return 10\n")
    project.write("config", "RATE = 2\n")
    project.write("shop", "def price():\n    return 20\n")
    results = _transaction.reload_many([("config", None), ("shop", None)])
    assert [r.ok for r in results] == [True, True]
    assert [r.module for r in results] == ["config", "shop"]
    assert (config.RATE, shop.price()) == (2, 20)


def test_change_set_syntax_error_in_one_file_rejects_the_set(project):
    config = project.load("config", "RATE = 1\n")
    shop = project.load("shop", "def price():\n    return 10\n")
    project.write("config", "RATE = 2\n")
    project.write("shop", "def price(:\n    return 20\n")
    results = _transaction.reload_many([("config", None), ("shop", None)])
    assert [r.ok for r in results] == [False, False]
    assert all(isinstance(r.error, hotswap.SourceSyntaxError) for r in results)
    assert (config.RATE, shop.price()) == (1, 10)  # nothing applied
    assert hotswap.status().modules["config"].version == 1


def test_change_set_failure_in_one_module_rolls_back_the_other(project):
    config = project.load("config", "RATE = 1\n")
    shop = project.load("shop", "LIMIT = 5\n")
    project.write("config", "RATE = 2\n")
    project.write("shop", "LIMIT = 1 / 0\n")
    results = _transaction.reload_many([("config", None), ("shop", None)])
    assert not any(r.ok for r in results)
    assert all(r.rolled_back for r in results)
    assert (config.RATE, shop.LIMIT) == (1, 5)


def test_change_set_removal_with_every_caller_changed_passes_strict(project):
    project.load("lib", "def old_name(x):\n    return x\n")
    user = project.load("user", "from lib import old_name\n\ndef go():\n    return old_name(1)\n")
    # Alone, removing a function a module still uses is refused under strict...
    project.write("lib", "def new_name(x):\n    return x + 1\n")
    assert isinstance(hotswap.reload("lib").error, hotswap.IncompatibleChangeError)
    # ...with its caller changed in the same set, nothing uses it any more: accepted.
    project.write("user", "from lib import new_name\n\ndef go():\n    return new_name(1)\n")
    results = _transaction.reload_many([("lib", None), ("user", None)], policy="strict")
    assert all(r.ok for r in results), [r.error for r in results]
    assert user.go() == 2
