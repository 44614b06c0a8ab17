"""Version history and rollback (DESIGN §4, §5.7)."""

from __future__ import annotations

import textwrap

import hotswap

SOURCE = textwrap.dedent(
    """
    CACHE = {}
    __hotswap_keep__ = ("CACHE",)

    def f():
        return 1

    class C:
        def m(self):
            return "m1"
    """
)


def v(n: int) -> str:
    return SOURCE.replace("return 1", f"return {n}").replace('"m1"', f'"m{n}"')


def test_rollback_restores_the_previous_version_exactly(reloading):
    mod = reloading.load("h", SOURCE)
    f, cls, method = mod.f, mod.C, mod.C.__dict__["m"]
    code_v1, method_code_v1 = f.__code__, method.__code__
    obj = cls()

    assert reloading.reload("h", v(2)).ok
    assert f() == 2

    result = hotswap.rollback("h")
    assert result.ok, result.error
    assert result.version == 1
    assert mod.f is f
    assert f.__code__ is code_v1
    assert mod.C is cls
    assert cls.__dict__["m"] is method
    assert method.__code__ is method_code_v1
    assert obj.m() == "m1"


def test_rollback_to_a_named_version_and_forward_again(reloading):
    mod = reloading.load("h", SOURCE)
    for n in (2, 3, 4):
        assert reloading.reload("h", v(n)).ok
    assert hotswap.status().modules["h"].history == (1, 2, 3, 4)

    result = hotswap.rollback("h", to=2)
    assert result.ok, result.error
    assert result.version == 2
    assert mod.f() == 2
    assert hotswap.status().modules["h"].version == 2

    # Forward to a version that is still kept.
    assert hotswap.rollback("h", to=4).ok
    assert mod.f() == 4
    # The previous version of 4 is 3.
    assert hotswap.rollback("h").version == 3
    assert mod.f() == 3


def test_rollback_removes_names_added_later_and_restores_removed_ones(reloading):
    mod = reloading.load("h", SOURCE)
    assert reloading.reload("h", v(2) + "\ndef extra():\n    return 'x'\n").ok
    assert mod.extra() == "x"
    assert hotswap.rollback("h").ok
    assert not hasattr(mod, "extra")

    assert reloading.reload("h", "CACHE = {}\n__hotswap_keep__ = ('CACHE',)\n", policy="off").ok
    assert not hasattr(mod, "f")
    result = hotswap.rollback("h")
    assert result.version == 2  # versions 1, 2 and 3 are kept; 1 was live before 3
    assert mod.f() == 2


def test_rollback_keeps_kept_names(reloading):
    mod = reloading.load("h", SOURCE)
    assert reloading.reload("h", v(2)).ok
    mod.CACHE["live"] = True
    cache = mod.CACHE
    assert hotswap.rollback("h").ok
    assert mod.CACHE is cache


def test_rollback_of_a_failed_reload_leaves_the_version(reloading):
    mod = reloading.load("h", SOURCE)
    assert reloading.reload("h", v(2)).ok
    failed = reloading.reload("h", v(3) + "\nraise RuntimeError('no')\n")
    assert failed.rolled_back
    assert failed.version == 2
    assert mod.f() == 2
    assert hotswap.rollback("h").version == 1


def test_rollback_of_unknown_version_is_a_failed_result(reloading):
    reloading.load("h", SOURCE)
    assert reloading.reload("h", v(2)).ok
    result = hotswap.rollback("h", to=7)
    assert not result.ok
    assert isinstance(result.error, hotswap.VersionNotFoundError)
    assert "version 7" in str(result.error)
    assert result.version == 2


def test_rollback_without_history_is_a_failed_result(reloading):
    reloading.load("h", SOURCE)
    result = hotswap.rollback("h")
    assert not result.ok
    assert isinstance(result.error, hotswap.VersionNotFoundError)


def test_rollback_reports_changes_between_known_versions(reloading):
    reloading.load("h", SOURCE)
    assert reloading.reload("h", v(2)).ok
    assert reloading.reload("h", v(3)).ok
    result = hotswap.rollback("h")
    assert result.changes.changed == ("f", "C.m")
