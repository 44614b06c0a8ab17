"""After any sequence of edits, class hierarchies, their importers and their registries are
those of a fresh import (issue 25: points 1, 6, 13, 14).

A differential fuzz beside ``test_property_reload.py``: hypothesis writes versions of a module
``m`` holding a base class (sometimes an ``abc.ABC``, so an edit replaces it and every subclass),
subclasses with class decorators that fill a registry, an ``__init_subclass__`` registry on the
base, and ``functools.lru_cache`` functions; a second module imports the classes by value
(``from m import ...``). Each version is reloaded with ``policy="off"`` and compared with a fresh
execution: values, MROs, whether the importer's names are the module's classes, what each
registry holds (by name and by identity), ``isinstance`` across modules. Some versions first
fail at their end: the reload rolls back and the ``lru_cache`` caches keep what they held.

Every feature is on in every case; a fixed divergence's smallest edit stays as a two-version
test (``tests/test_exact_class_hooks.py`` for the registries). ``HOTSWAP_FUZZ_EXAMPLES`` sets the
number of sequences (40 by default, derandomized).
"""

from __future__ import annotations

import functools
import importlib
import itertools
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hotswap
from hotswap._engine import transaction as _transaction

EXAMPLES = int(os.environ.get("HOTSWAP_FUZZ_EXAMPLES", "40"))
EDITS = 6
_counter = itertools.count()

STALE_IMPORTERS = "importers_of_replaced_subclasses"  # issue 25.1
LRU_EMPTIED = "lru_cache_kept_on_failure"  # issue 25.13
# Registries filled as classes are created, found by this fuzz (issue 25.6, 25.14).
FAILED_REGISTRATIONS = "registries_after_a_failed_reload"
CLASS_REGISTRY = "init_subclass_registry_on_the_base"
REPLACED_REGISTRIES = "registries_of_replaced_classes"
REMOVED_SUBCLASSES = "init_subclass_registrations_of_removed_classes"
HANDLED = frozenset(
    {
        "class_decorators",
        "init_subclass",
        "lru_cache",
        "bases_replaced",
        STALE_IMPORTERS,
        LRU_EMPTIED,
        FAILED_REGISTRATIONS,
        CLASS_REGISTRY,
        REPLACED_REGISTRIES,
        REMOVED_SUBCLASSES,
    }
)


@st.composite
def module_source(draw: st.DrawFn, features: frozenset[str]) -> str:
    v = [draw(st.integers(0, 3)) for _ in range(6)]
    base = "(abc.ABC)" if "bases_replaced" in features and draw(st.booleans()) else ""
    # Where ``__init_subclass__`` registers: a module-level list, or a list in the base's body.
    places = ["PLUGINS"] + (["Base.plugins"] if CLASS_REGISTRY in features else [])
    plugins = draw(st.sampled_from(places))
    parts = [
        "import abc\nimport functools\n",
        "REGISTRY = []\nPLUGINS = []\n",
        f"def register(cls):\n    REGISTRY.append(cls)\n    cls.tag = {v[0]}\n    return cls\n",
        f"class Base{base}:\n"
        "    plugins = []\n"
        + (
            "    def __init_subclass__(cls, **kwargs):\n"
            "        super().__init_subclass__(**kwargs)\n"
            f"        {plugins}.append(cls)\n"
            if "init_subclass" in features
            else ""
        )
        + f"    def value(self):\n        return {v[1]}\n",
    ]
    for name, value in (("Sub", v[2]), ("Other", v[3])):
        registered = "init_subclass" in features
        comes_and_goes = REMOVED_SUBCLASSES in features or not registered
        if name == "Other" and comes_and_goes and not draw(st.booleans()):
            continue  # comes and goes between versions
        decorated = "class_decorators" in features and draw(st.booleans())
        moves = REPLACED_REGISTRIES in features or not registered
        parent = draw(st.sampled_from(["Base", "Sub"])) if name == "Other" and moves else "Base"
        parts.append(
            ("@register\n" if decorated else "") + f"class {name}({parent}):\n"
            f"    def value(self):\n        return super().value() + {value}\n"
        )
    if "lru_cache" in features or LRU_EMPTIED in features:
        size = draw(st.sampled_from(["None", "8"]))
        parts.append(
            f"@functools.lru_cache(maxsize={size})\ndef cached(x):\n    return x * {v[4]}\n"
        )
    return "\n".join(parts)


def imported_names(features: frozenset[str], style: int) -> tuple[str, ...]:
    """The classes the importer takes by value: the subclass alone, or with its base."""
    if STALE_IMPORTERS in features and style == 0:
        return ("Sub",)  # not naming the base (issue 25.1)
    return ("Base", "Sub")


def importer_source(module: str, names: tuple[str, ...]) -> str:
    """A module taking ``m``'s classes by value, as ``pkg/__init__.py`` does."""
    return (
        f"import {module}\n"
        f"from {module} import {', '.join(names)}\n\n\n"
        "def make():\n    return Sub().value()\n\n\n"
        f"def is_base(obj):\n    return isinstance(obj, {module}.Base)\n"
    )


def observe(namespace: dict[str, Any], importer: dict[str, Any] | None) -> dict[str, Any]:
    """What a program sees of the module (and of its importer, when there is one)."""
    seen: dict[str, Any] = {}
    classes = {n: namespace[n] for n in ("Base", "Sub", "Other") if n in namespace}
    for name, cls in classes.items():
        mro = [c.__name__ for c in cls.__mro__]
        current = all(namespace.get(c.__name__, c) is c for c in cls.__mro__)
        seen[name] = (
            mro,
            current,
            cls().value() if name != "Base" else None,
            getattr(cls, "tag", None),
            isinstance(cls(), namespace["Base"]),
        )
    registry = namespace["REGISTRY"]
    seen["REGISTRY"] = [(c.__name__, namespace.get(c.__name__) is c) for c in registry]
    for key, plugins in (("plugins", namespace["Base"].plugins), ("PLUGINS", namespace["PLUGINS"])):
        seen[key] = [(c.__name__, namespace.get(c.__name__) is c) for c in plugins]
    if "cached" in namespace:
        seen["cached"] = namespace["cached"](3)
    if importer is not None:
        for name in ("Base", "Sub"):
            if name in importer:
                seen[f"importer.{name}"] = importer[name] is namespace[name]
        seen["importer.make"] = importer["make"]()
        seen["importer.is_base"] = importer["is_base"](namespace["Sub"]())
    return seen


def fresh(source: str, imported: tuple[str, ...]) -> dict[str, Any]:
    """What a program sees after a fresh import of ``source`` and of an importer taking the
    classes ``imported`` by value."""
    module = types.ModuleType("fresh_copy")
    exec(compile(source, "<fresh>", "exec"), vars(module))
    seen = observe(vars(module), None)
    if imported:
        # In a fresh import the importer's names are the module's own classes.
        seen.update({f"importer.{name}": True for name in imported})
        seen["importer.make"] = seen["Sub"][2]
        seen["importer.is_base"] = True
    return seen


def check_sequence(features: frozenset[str], data: st.DataObject) -> None:
    """Import a first version and its importer, apply the next ones, compare each with a
    fresh execution."""
    number = next(_counter)
    name, importer_name = f"hs_cls_{number}", f"hs_cls_importer_{number}"
    versions = data.draw(st.lists(module_source(features), min_size=EDITS + 1, max_size=EDITS + 1))
    imported = imported_names(features, data.draw(st.integers(0, 1), label="importer style"))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.py"
        path.write_text(versions[0])
        Path(folder, f"{importer_name}.py").write_text(importer_source(name, imported))
        sys.path.insert(0, folder)
        try:
            importlib.invalidate_caches()
            module = importlib.import_module(name)
            importer = importlib.import_module(importer_name)
            assert observe(vars(module), vars(importer)) == fresh(versions[0], imported)
            failing = features & {LRU_EMPTIED, FAILED_REGISTRATIONS}
            for source in versions[1:]:
                if failing and data.draw(st.integers(0, 2), label="fail first") == 0:
                    cache = _fill(module) if LRU_EMPTIED in features else None
                    path.write_text(source + "\nraise RuntimeError('boom')\n")
                    result = hotswap.reload(module, policy="off")
                    assert not result.ok
                    assert result.rolled_back
                    if cache is not None:
                        assert module.cached.cache_info() == cache
                path.write_text(source)
                result = hotswap.reload(module, policy="off")
                assert result.ok, result.error
                assert observe(vars(module), vars(importer)) == fresh(source, imported)
        finally:
            sys.path.remove(folder)
            sys.modules.pop(name, None)
            sys.modules.pop(importer_name, None)
            _transaction.reset()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="HOTSWAP_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_classes_and_importers_follow_a_fresh_import(data: st.DataObject) -> None:
    check_sequence(HANDLED, data)


def _fill(module: types.ModuleType) -> Any:
    cached: functools._lru_cache_wrapper[Any] = module.cached
    cached(1)
    cached(1)
    return cached.cache_info()
