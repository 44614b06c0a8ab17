"""After any sequence of edits, a reloaded module behaves like a fresh import of its source."""

from __future__ import annotations

import enum
import importlib
import itertools
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hotswap
from hotswap import _transaction

NAMES = ["alpha", "beta", "Gamma", "Delta", "_hidden", "LIMIT"]
_counter = itertools.count()


@st.composite
def definition(draw: st.DrawFn, name: str) -> str:
    value = draw(st.integers(0, 4))
    kind = draw(st.sampled_from(["function", "class", "constant", "enum", "calls", "nested"]))
    if kind == "function":
        default = draw(st.integers(0, 2))
        return f"def {name}(x={default}):\n    return x + {value}\n"
    if kind == "calls":
        return f"def {name}():\n    return helper() * {value}\n"
    if kind == "constant":
        return f"{name} = {value}\n"
    if kind == "enum":
        members = "".join(f"    M{i} = {i}\n" for i in range(value + 1))
        return f"class {name}(enum.Enum):\n{members}"
    methods = draw(st.lists(st.sampled_from(["one", "two", "prop", "stat"]), unique=True))
    body = [f"    attr = {value}\n"]
    for method in methods:
        if method == "prop":
            body.append(f"    @property\n    def prop(self):\n        return {value} + 10\n")
        elif method == "stat":
            body.append(f"    @staticmethod\n    def stat():\n        return {value} + 20\n")
        else:
            body.append(f"    def {method}(self):\n        return {value} + len('{method}')\n")
    if kind == "nested":
        body.append(f"    class Inner:\n        def get(self):\n            return {value}\n")
    return f"class {name}:\n{''.join(body)}"


@st.composite
def module_source(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    parts = ["import enum\n", f"def helper():\n    return {draw(st.integers(1, 3))}\n"]
    parts += [draw(definition(name)) for name in names]
    return "\n".join(parts)


def behaviour(namespace: dict[str, Any]) -> dict[str, Any]:
    """What a caller can observe of a module: values, call results, class behaviour."""
    seen: dict[str, Any] = {}
    for key, value in namespace.items():
        if key.startswith("__") or isinstance(value, types.ModuleType):
            continue
        if isinstance(value, enum.EnumMeta):
            seen[key] = ("enum", [(m.name, m.value) for m in value])  # type: ignore[var-annotated]
        elif isinstance(value, type):
            seen[key] = ("class", describe_instance(value, value()))
        elif callable(value):
            seen[key] = ("function", value())
        else:
            seen[key] = ("value", value)
    return seen


def describe_instance(cls: type, obj: object) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for member, value in vars(cls).items():
        if member.startswith("__"):
            continue
        if member == "Inner":
            found[member] = obj.Inner().get()  # type: ignore[attr-defined]
        elif isinstance(value, property | staticmethod) or callable(value):
            attribute = getattr(obj, member)
            found[member] = attribute() if callable(attribute) else attribute
        else:
            found[member] = value
    return found


def fresh(source: str) -> dict[str, Any]:
    module = types.ModuleType("fresh_copy")
    exec(compile(source, "<fresh>", "exec"), vars(module))
    return vars(module)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(module_source(), min_size=2, max_size=5))
def test_reloaded_module_behaves_like_a_fresh_import(versions):
    name = f"hs_prop_{next(_counter)}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.py"
        path.write_text(versions[0])
        sys.path.insert(0, folder)
        try:
            module = importlib.import_module(name)
            held = {k: v for k, v in vars(module).items() if not k.startswith("__")}
            instances = {
                k: v()
                for k, v in held.items()
                if isinstance(v, type) and not issubclass(v, enum.Enum)
            }
            for source in versions[1:]:
                path.write_text(source)
                result = hotswap.reload(module, policy="off")
                assert result.ok, result.error
                expected = behaviour(fresh(source))
                assert behaviour(vars(module)) == expected
                # References held since the first version see the new code wherever the
                # object was kept.
                for key, old in held.items():
                    if vars(module).get(key) is not old:
                        continue
                    if isinstance(old, type) and key in instances:
                        assert describe_instance(old, instances[key]) == expected[key][1]
                    elif isinstance(old, types.FunctionType):
                        assert ("function", old()) == expected[key]
        finally:
            sys.path.remove(folder)
            sys.modules.pop(name, None)
            _transaction.reset()
