"""Issue 25: registries filled as classes are created (``__init_subclass__``, class decorators,
metaclasses) hold after a reload what a fresh import leaves in them: the classes the module
binds, once, and none the new source does not make (each test a two-version module)."""

from __future__ import annotations

import pytest

PLUGINS = """\
import abc

PLUGINS = []


class Base{bases}:
    plugins = []

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        PLUGINS.append(cls)
        Base.plugins.append(cls)

    def value(self):
        return {value}


class Sub(Base):
    x = {x}
"""
OTHER = "\n\nclass Other(Base):\n    pass\n"


def plugins(bases: str = "", value: int = 1, x: int = 1) -> str:
    return PLUGINS.format(bases=bases, value=value, x=x)


def registered(mod: object) -> tuple[list[object], list[object]]:
    """Both registries, each class as the module binds it (None for one it does not)."""
    return (
        [vars(mod).get(c.__name__) is c and c.__name__ for c in mod.PLUGINS],  # type: ignore[attr-defined]
        [vars(mod).get(c.__name__) is c and c.__name__ for c in mod.Base.plugins],  # type: ignore[attr-defined]
    )


def test_removed_subclass_leaves_the_registries_of_its_base(reloading):
    mod = reloading.load("hookremoved", plugins() + OTHER)
    result = reloading.reload("hookremoved", plugins(), policy="off")
    assert result.ok, result.error
    assert registered(mod) == (["Sub"], ["Sub"])


def test_subclass_replaced_with_its_base_is_registered_once(reloading):
    mod = reloading.load("hookreplaced", plugins())
    result = reloading.reload("hookreplaced", plugins(bases="(abc.ABC)"))
    assert result.ok, result.error
    assert registered(mod) == (["Sub"], ["Sub"])


def test_base_whose_body_changed_keeps_its_subclasses_registered(reloading):
    # The class body runs again (``plugins = []``): a fresh import registers Sub in it.
    mod = reloading.load("hookbody", plugins())
    result = reloading.reload("hookbody", plugins(value=2))
    assert result.ok, result.error
    assert registered(mod) == (["Sub"], ["Sub"])
    assert mod.Sub().value() == 2


@pytest.mark.parametrize("removed", [False, True], ids=["changed", "removed"])
def test_failed_reload_leaves_no_throwaway_class_in_the_registries(reloading, removed):
    first = plugins() + (OTHER if removed else "")
    mod = reloading.load(f"hookfailed{removed}", first)
    held = (list(mod.PLUGINS), list(mod.Base.plugins))
    new = plugins(x=2)
    result = reloading.reload(f"hookfailed{removed}", new + "\nraise RuntimeError('boom')\n")
    assert not result.ok
    assert (mod.PLUGINS, mod.Base.plugins) == held
    assert all(a is b for a, b in zip(mod.PLUGINS, held[0], strict=True))
    result = reloading.reload(f"hookfailed{removed}", new, policy="off")
    assert result.ok, result.error
    assert registered(mod) == (["Sub"], ["Sub"])


REGISTRY_ELSEWHERE = {
    "decorator": (
        "REG = []\n\n\ndef register(cls):\n    REG.append(cls)\n    return cls\n",
        "import {lib}\n\n\n@{lib}.register\nclass C:\n    def f(self):\n        return 1\n",
    ),
    "init_subclass": (
        "REG = []\n\n\nclass Base:\n    def __init_subclass__(cls, **kwargs):\n"
        "        super().__init_subclass__(**kwargs)\n        REG.append(cls)\n",
        "from {lib} import Base\n\n\nclass C(Base):\n    def f(self):\n        return 1\n",
    ),
    "metaclass": (
        "REG = {{}}\n\n\nclass Meta(type):\n    def __init__(cls, name, bases, ns):\n"
        "        super().__init__(name, bases, ns)\n        REG[name] = cls\n\n\n"
        "class Base(metaclass=Meta):\n    pass\n",
        "from {lib} import Base\n\n\nclass C(Base):\n    def f(self):\n        return 1\n",
    ),
}


def _held(registry: object) -> list[object]:
    values = registry.values() if isinstance(registry, dict) else registry
    return [c for c in values if c.__name__ in ("C", "D")]  # type: ignore[union-attr]


@pytest.mark.parametrize("hook", sorted(REGISTRY_ELSEWHERE))
def test_registry_of_another_module_holds_the_kept_class(reloading, hook):
    lib, name = f"hooklib{hook}", f"hookuser{hook}"
    library, user = REGISTRY_ELSEWHERE[hook]
    registry = reloading.load(lib, library.format(lib=lib)).REG
    decorated = f"@{lib}.register\n" if hook == "decorator" else ""
    source = user.format(lib=lib) + f"\n\n{decorated}class D(C):\n    pass\n"
    mod = reloading.load(name, source)
    kept = mod.C
    result = reloading.reload(name, source.replace("return 1", "return 2"))
    assert result.ok, result.error
    # A class of a custom metaclass is replaced (DESIGN §5.5), the others are merged.
    assert (mod.C is kept) == (hook != "metaclass")
    assert mod.C().f() == 2
    assert [c is vars(mod).get(c.__name__) for c in _held(registry)] == [True, True]
    result = reloading.reload(name, user.format(lib=lib), policy="off")  # D removed
    assert result.ok, result.error
    assert _held(registry) == [mod.C]
