"""hotswap.live_config through the public API: formats, schemas, environment overrides, bad
edits, on_change, rollback. Changes are applied with ``reload()`` here (``watch=False``);
test_live_config_watch.py goes through the file watch."""

from __future__ import annotations

import dataclasses
import enum
import logging
import pathlib
import subprocess
import sys
from pathlib import Path
from typing import Literal, TypedDict

import pydantic
import pytest

import hotswap


@dataclasses.dataclass(frozen=True)
class Database:
    host: str
    port: int = 5432
    timeout: float = 1.0


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    db: Database
    debug: bool = False
    tags: tuple[str, ...] = ()


SOURCES = {
    "app.toml": """\
        name = "shop"
        debug = true
        tags = ["a", "b"]
        [db]
        host = "db1"
        timeout = 2
        """,
    "app.json": """\
        {"name": "shop", "debug": true, "tags": ["a", "b"],
         "db": {"host": "db1", "timeout": 2}}
        """,
    "app.yaml": """\
        name: shop
        debug: true
        tags: [a, b]
        db:
          host: db1
          timeout: 2
        """,
}
EXPECTED = Service("shop", Database("db1", 5432, 2.0), True, ("a", "b"))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_live_config_formats_typed(configs, name):
    configs.write(name, SOURCES[name])
    with hotswap.live_config(name, schema=Service, watch=False) as config:
        assert config.value == EXPECTED
        assert isinstance(config.value.db.timeout, float)  # an int where a float is declared
        assert config.version == 1
        assert config.history == (1,)


@dataclasses.dataclass
class IniServer:
    port: int
    ratio: float
    enabled: bool
    hosts: list[str]
    secret: str


@dataclasses.dataclass
class Ini:
    server: IniServer


def test_live_config_ini_text_converted_to_declared_types(configs):
    configs.write(
        "app.ini",
        """\
        [server]
        port = 8080
        ratio = 0.5
        enabled = yes
        hosts = a, b
        secret = 100% sure
        """,
    )
    with hotswap.live_config("app.ini", schema=Ini, watch=False) as config:
        assert config.value == Ini(IniServer(8080, 0.5, True, ["a", "b"], "100% sure"))


def test_live_config_schema_annotations_must_resolve(configs):
    @dataclasses.dataclass
    class Local:
        inner: Unknown  # type: ignore[name-defined]  # noqa: F821

    configs.write("app.json", '{"inner": 1}')
    with pytest.raises(TypeError, match="annotations do not resolve"):
        hotswap.live_config("app.json", schema=Local, watch=False)


def test_live_config_without_schema_is_the_mapping(configs):
    configs.write("app.ini", "[server]\nPort = 80\n")
    with hotswap.live_config("app.ini", watch=False) as config:
        assert config.value == {"server": {"Port": "80"}}  # keys keep their case; INI is text


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Rich:
    path: pathlib.Path
    color: Color
    mode: Literal["fast", "safe"]
    limit: int | None = None
    weights: dict[str, float] = dataclasses.field(default_factory=dict)


def test_live_config_dataclass_expected_conversions(configs):
    configs.write(
        "app.toml",
        """\
        path = "/srv/data"
        color = "blue"
        mode = "safe"
        weights = {a = 1, b = 0.5}
        """,
    )
    with hotswap.live_config("app.toml", schema=Rich, watch=False) as config:
        assert config.value == Rich(
            pathlib.Path("/srv/data"), Color.BLUE, "safe", None, {"a": 1.0, "b": 0.5}
        )


class DbDict(TypedDict):
    host: str
    port: int


class AppDict(TypedDict, total=False):
    name: str
    db: DbDict


def test_live_config_typeddict(configs):
    configs.write("app.json", '{"name": "shop", "db": {"host": "h", "port": 1}}')
    with hotswap.live_config("app.json", schema=AppDict, watch=False) as config:
        assert config.value == {"name": "shop", "db": {"host": "h", "port": 1}}
        configs.write("app.json", '{"db": {"host": "h"}}')
        assert not config.reload()
        assert config.last_error is not None
        assert config.last_error.key == "db.port"
        assert "missing key" in str(config.last_error)


class PDb(pydantic.BaseModel):
    host: str
    port: int = 5432


class PApp(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True)
    name: str
    db: PDb


def test_live_config_pydantic_model(configs):
    configs.write("app.yaml", "name: shop\ndb:\n  host: h\n")
    with hotswap.live_config("app.yaml", schema=PApp, watch=False) as config:
        assert config.value == PApp(name="shop", db=PDb(host="h"))
        configs.write("app.yaml", "name: shop\ndb:\n  host: h\n  port: many\n")
        assert not config.reload()
        assert config.last_error is not None
        assert config.last_error.key == "db.port"
        assert "app.yaml:4: key 'db.port'" in str(config.last_error)  # YAML keeps positions
        assert isinstance(config.last_error.__cause__, pydantic.ValidationError)
        assert config.value.db.port == 5432


def test_live_config_callable_schema(configs):
    def parse_limits(data):
        if data["max"] < data["min"]:
            message = "max is below min"
            raise ValueError(message)
        return range(data["min"], data["max"])

    configs.write("limits.json", '{"min": 1, "max": 5}')
    with hotswap.live_config("limits.json", schema=parse_limits, watch=False) as config:
        assert config.value == range(1, 5)
        configs.write("limits.json", '{"min": 9, "max": 5}')
        assert not config.reload()
        assert "limits.json: ValueError: max is below min" in str(config.last_error)
        configs.write("limits.json", '{"min": 9}')
        assert not config.reload()
        assert config.last_error is not None
        assert config.last_error.key == "max"
        assert config.value == range(1, 5)


def test_live_config_env_overrides_converted(configs, monkeypatch):
    monkeypatch.setenv("APP_DB__TIMEOUT", "5")
    monkeypatch.setenv("APP_DEBUG", "off")
    monkeypatch.setenv("APP_TAGS", "x,y")
    monkeypatch.setenv("OTHER_NAME", "ignored")
    configs.write("app.toml", SOURCES["app.toml"])
    with hotswap.live_config("app.toml", schema=Service, env_prefix="APP_", watch=False) as config:
        assert config.value.db == Database("db1", 5432, 5.0)
        assert config.value.debug is False
        assert config.value.tags == ("x", "y")
        monkeypatch.setenv("APP_DB__PORT", "6000")  # a key the file does not set
        assert config.reload()  # the environment is read again with the file
        assert config.value.db.port == 6000


def test_live_config_env_overrides_without_schema_follow_the_file(configs, monkeypatch):
    monkeypatch.setenv("APP_DB__TIMEOUT", "5")
    monkeypatch.setenv("APP_DB__NEW", "text")
    configs.write("app.json", '{"db": {"timeout": 1.5}}')
    with hotswap.live_config("app.json", env_prefix="APP_", watch=False) as config:
        assert config.value == {"db": {"timeout": 5.0, "new": "text"}}


def test_live_config_env_override_bad_text_names_variable(configs, monkeypatch):
    monkeypatch.setenv("APP_DB__PORT", "many")
    configs.write("app.toml", SOURCES["app.toml"])
    with pytest.raises(hotswap.ConfigError) as raised:
        hotswap.live_config("app.toml", schema=Service, env_prefix="APP_", watch=False)
    assert raised.value.key == "db.port"
    assert "$APP_DB__PORT='many'" in str(raised.value)
    assert "expected int" in str(raised.value)


BAD_EDITS = [
    # (file, good, bad, line or None, key or None, words of the reason)
    (
        "app.toml",
        'name = "a"\n[db]\nhost = "h"\n',
        'name = "a"\n[db\nhost = "h"\n',
        2,
        None,
        "TOML",
    ),
    (
        "app.json",
        '{"name": "a", "db": {"host": "h"}}',
        '{"name": "a",\n "db": {"host" "h"}}',
        2,
        None,
        "JSON",
    ),
    ("app.yaml", "name: a\ndb:\n  host: h\n", "name: a\ndb:\n  host: [h\n", 4, None, "YAML"),
    ("app.ini", "[db]\nhost = h\n", "host = h\n", 1, None, "section"),
    (
        "app.toml",
        'name = "a"\n[db]\nhost = "h"\n',
        'name = "a"\n[db]\nhost = "h"\nport = "5432"\n',
        None,
        "db.port",
        "expected int, got str '5432'",
    ),
    (
        "app.json",
        '{"name": "a", "db": {"host": "h"}}',
        '{"name": "a", "db": {}}',
        None,
        "db.host",
        "missing key",
    ),
    (
        "app.yaml",
        "name: a\ndb:\n  host: h\n",
        "name: a\ndb:\n  host: h\n  hots: x\n",
        4,
        "db.hots",
        "unknown key",
    ),
]


@pytest.mark.parametrize(("name", "good", "bad", "line", "key", "why"), BAD_EDITS)
def test_live_config_bad_edit_keeps_value(configs, caplog, name, good, bad, line, key, why):
    schema = Service if name != "app.ini" else None
    configs.write(name, good)
    with hotswap.live_config(name, schema=schema, watch=False) as config:
        before = config.value
        configs.write(name, bad)
        with caplog.at_level(logging.WARNING, logger="hotswap"):
            assert not config.reload()
        assert config.value is before
        assert config.version == 1
        error = config.last_error
        assert isinstance(error, hotswap.ConfigError)
        assert isinstance(error, ValueError)
        assert (error.lineno, error.key) == (line, key)
        assert error.filename == str(configs.root / name)
        where = f"{name}:{line}:" if line else f"{name}:"
        if key:
            where += f" key {key!r}:"
        assert str(error).startswith(where)
        assert why in str(error)
        logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert logged == [f"hotswap: {error}; keeping version 1"]
        assert "\n" not in logged[0]
        configs.write(name, good + "\n")  # fixed: the next save goes live
        assert config.reload()
        assert config.last_error is None
        assert config.version == 2


def test_live_config_unchanged_save_is_no_version(configs):
    configs.write("app.json", '{"a": 1}')
    with hotswap.live_config("app.json", watch=False) as config:
        configs.write("app.json", '{"a": 1}')
        assert not config.reload()
        assert config.version == 1
        assert config.last_error is None


def test_live_config_creation_errors(configs):
    configs.write("app.json", "{")
    with pytest.raises(hotswap.ConfigError, match=r"app\.json:1: invalid JSON"):
        hotswap.live_config("app.json", watch=False)
    with pytest.raises(hotswap.ConfigError, match="cannot read"):
        hotswap.live_config("missing.toml", watch=False)
    with pytest.raises(ValueError, match=r"unknown configuration format '\.txt'"):
        hotswap.live_config("app.txt", watch=False)
    configs.write("app.json", "{}")
    with pytest.raises(TypeError, match="schema must be"):
        hotswap.live_config("app.json", schema=42, watch=False)  # type: ignore[call-overload]
    configs.write("list.json", "[1, 2]")
    with pytest.raises(hotswap.ConfigError, match="top level must be a mapping"):
        hotswap.live_config("list.json", watch=False)


def test_live_config_yaml_missing_is_a_clear_error(configs, monkeypatch):
    configs.write("app.yaml", "a: 1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    with pytest.raises(ModuleNotFoundError, match=r"hotswap's 'yaml' extra \(pip install -e"):
        hotswap.live_config("app.yaml", watch=False)


def test_live_config_on_change_after_swap(configs):
    configs.write("app.json", '{"size": 1}')
    seen = []
    with hotswap.live_config("app.json", watch=False) as config:

        @config.on_change
        def resize(old, new):
            seen.append((old["size"], new["size"], config.value["size"], config.version))

        configs.write("app.json", '{"size": 2}')
        assert config.reload()
    assert seen == [(1, 2, 2, 2)]


def test_live_config_on_change_raising_rolls_back(configs, caplog):
    configs.write("app.json", '{"size": 1}')
    pools = []

    def rebuild(old, new):
        pools.append(new["size"])

    def limiter(old, new):
        if new["size"] > 10:
            message = "limiter cannot take more than 10"
            raise RuntimeError(message)

    config = hotswap.live_config("app.json", on_change=rebuild, watch=False)
    config.on_change(limiter)
    configs.write("app.json", '{"size": 50}')
    with caplog.at_level(logging.ERROR, logger="hotswap"):
        assert not config.reload()
    assert config.value == {"size": 1}
    assert config.version == 1
    assert config.history == (1,)
    assert pools == [50, 1]  # the pool built for 50 was rebuilt for the restored value
    error = config.last_error
    assert isinstance(error, hotswap.ConfigError)
    assert isinstance(error.__cause__, RuntimeError)
    assert "on_change callback" in str(error)
    assert "limiter cannot take more than 10; the change was undone" in str(error)
    assert any("keeping version 1" in r.getMessage() for r in caplog.records)
    configs.write("app.json", '{"size": 5}')
    assert config.reload()
    assert config.version == 2  # the refused change used no version number
    config.close()


def test_live_config_rollback(configs):
    configs.write("app.json", '{"v": 1}')
    told = []
    with hotswap.live_config(
        "app.json", on_change=lambda old, new: told.append(new["v"]), history=3, watch=False
    ) as config:
        for n in range(2, 6):
            configs.write("app.json", f'{{"v": {n}}}')
            assert config.reload()
        assert (config.version, config.history) == (5, (3, 4, 5))
        assert config.rollback() == {"v": 4}
        assert config.version == 4
        assert config.rollback(to=3) == {"v": 3}
        assert config.rollback(to=5) == {"v": 5}
        assert told == [2, 3, 4, 5, 4, 3, 5]
        with pytest.raises(hotswap.VersionNotFoundError, match=r"version 1 is not kept"):
            config.rollback(to=1)
        configs.write("app.json", '{"v": 6}')
        assert config.reload()
        assert config.version == 6


def test_live_config_rollback_refused_by_callback(configs):
    configs.write("app.json", '{"v": 1}')
    with hotswap.live_config("app.json", watch=False) as config:
        configs.write("app.json", '{"v": 2}')
        assert config.reload()

        def refuse_downgrade(old, new):
            if new["v"] < old["v"]:
                message = "no downgrades"
                raise ValueError(message)

        config.on_change(refuse_downgrade)
        with pytest.raises(hotswap.ConfigError, match="no downgrades"):
            config.rollback()
        assert (config.version, config.value) == (2, {"v": 2})


def test_live_config_close_and_context_manager(configs):
    configs.write("app.json", "{}")
    with hotswap.live_config("app.json") as config:
        assert config.watching
    assert not config.watching
    config.close()  # idempotent
    assert config.value == {}
    assert "app.json version 1" in repr(config)


def test_live_config_example_runs():
    example = Path(__file__).resolve().parent.parent / "examples" / "live_config.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "expected int, got str 'fast'" in done.stdout
    assert "the limiter cannot take 50000 requests/s; the change was undone" in done.stdout
    assert done.stdout.rstrip().endswith("v1 live, history (1, 2)")
