"""The coercion rules of configuration schemas (hotswap/_config_schema.py), over many cases."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotswap._config.schema import Invalid, build, env_overrides, text_to


@dataclasses.dataclass(frozen=True)
class Inner:
    count: int
    ratio: float = 0.0
    flag: bool = False
    names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner
    servers: list[Inner] = dataclasses.field(default_factory=list)
    wait: datetime.timedelta = datetime.timedelta(0)


finite = st.floats(allow_nan=False, allow_infinity=False)
names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=8)


@settings(deadline=None)  # a loaded machine must not fail a correct run
@given(count=st.integers(), ratio=finite | st.integers(), flag=st.booleans(), items=st.lists(names))
def test_schema_typed_values_kept(count, ratio, flag, items):
    data = {"inner": {"count": count, "ratio": ratio, "flag": flag, "names": items}}
    value = build(Outer, json.loads(json.dumps(data)))
    assert value == Outer(Inner(count, float(ratio), flag, tuple(items)))
    assert type(value.inner.ratio) is float


@settings(deadline=None)  # a loaded machine must not fail a correct run
@given(count=st.integers(), ratio=finite, flag=st.booleans())
def test_schema_text_converts_to_declared_types(count, ratio, flag):
    data = {"inner": {"count": str(count), "ratio": repr(ratio), "flag": str(flag).lower()}}
    value = build(Outer, data, text=True)
    assert value.inner == Inner(count, ratio, flag)


@settings(deadline=None)  # a loaded machine must not fail a correct run
@given(text=names)
def test_schema_str_where_int_declared_names_the_key(text):
    with pytest.raises(Invalid) as raised:
        build(Outer, {"inner": {"count": 1}, "servers": [{"count": 2}, {"count": text}]})
    assert raised.value.key == "servers[1].count"
    assert "expected int, got str" in raised.value.why


@settings(deadline=None)  # a loaded machine must not fail a correct run
@given(value=st.booleans() | finite)
def test_schema_bool_or_float_where_int_declared_refused(value):
    with pytest.raises(Invalid, match="expected int"):
        build(Outer, {"inner": {"count": value}})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("yes", True), ("ON", True), ("1", True), ("false", False), ("Off", False), ("0", False)],
)
def test_schema_text_booleans(text, expected):
    assert text_to(text, bool, "k") is expected


def test_schema_text_bool_refuses_other_words():
    with pytest.raises(Invalid, match="true/false"):
        text_to("maybe", bool, "debug")


def test_schema_timedelta_from_seconds():
    value = build(Outer, {"inner": {"count": 1}, "wait": 2.5})
    assert value.wait == datetime.timedelta(seconds=2.5)


@settings(deadline=None)  # a loaded machine must not fail a correct run
@given(
    path=st.lists(st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=4),
    number=st.integers(),
)
def test_schema_env_nesting_sets_the_key(path, number):
    name = "APP_" + "__".join(part.upper() for part in path)
    data = env_overrides({}, None, "APP_", {name: str(number), "OTHER": "x"})
    node = data
    for part in path[:-1]:
        node = node[part]
    assert node[path[-1]] == str(number)  # no schema, no value in the file: text stays text


@settings(deadline=None)  # a loaded machine must not fail a correct run
@given(number=st.integers(), ratio=finite)
def test_schema_env_converts_to_schema_types(number, ratio):
    environ = {"APP_INNER__COUNT": str(number), "APP_INNER__RATIO": repr(ratio)}
    data = env_overrides({"inner": {"count": 0}}, Outer, "APP_", environ)
    value = build(Outer, data)
    assert value.inner.count == number
    assert value.inner.ratio == ratio or math.isclose(value.inner.ratio, ratio)


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Kinds:
    day: datetime.date = datetime.date(2000, 1, 1)
    pair: tuple[int, str] = (0, "")
    ids: frozenset[int] = frozenset()
    limit: int | None = None
    mode: Literal["fast", "safe"] = "fast"
    level: Level = Level.LOW
    either: int | str = 0


@pytest.mark.parametrize(
    ("data", "text", "expected"),
    [
        ({"day": "2024-01-02"}, False, Kinds(day=datetime.date(2024, 1, 2))),
        ({"pair": [1, "a"], "ids": [1, 2, 2]}, False, Kinds(pair=(1, "a"), ids=frozenset({1, 2}))),
        ({"level": "HIGH"}, False, Kinds(level=Level.HIGH)),
        ({"level": 2}, False, Kinds(level=Level.HIGH)),
        ({"either": "x", "limit": None}, False, Kinds(either="x")),
        ({"pair": '[1, "a"]', "ids": "1, 2"}, True, Kinds(pair=(1, "a"), ids=frozenset({1, 2}))),
        (
            {"limit": "none", "mode": "safe", "level": "2"},
            True,
            Kinds(mode="safe", level=Level.HIGH),
        ),
        ({"limit": "7", "either": "5"}, True, Kinds(limit=7, either=5)),
    ],
)
def test_schema_declared_kinds_accept(data, text, expected):
    assert build(Kinds, data, text=text) == expected


@pytest.mark.parametrize(
    ("data", "key", "why"),
    [
        ({"day": "soon"}, "day", "expected date, got str 'soon'"),
        ({"pair": [1]}, "pair", "expected 2 items, got 1"),
        ({"ids": [1, "2"]}, "ids[1]", "expected int, got str '2'"),
        ({"mode": "slow"}, "mode", "expected one of 'fast', 'safe', got 'slow'"),
        ({"level": "MID"}, "level", "a value: 1, 2; or a name: LOW, HIGH"),
        ({"either": 1.5}, "either", "expected int | str, got float 1.5"),
        ({"limit": "7"}, "limit", "expected int | None, got str '7'"),
    ],
)
def test_schema_declared_kinds_refuse(data, key, why):
    with pytest.raises(Invalid) as raised:
        build(Kinds, data)
    assert raised.value.key == key
    assert why in raised.value.why
