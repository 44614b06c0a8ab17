"""Configuration schemas: a parsed mapping in, a validated object out, or :class:`Invalid`
naming the key and why.

A schema is a dataclass (nested dataclasses, lists, dicts, Optional, Literal, Enum, Path,
dates...), a pydantic model (validated by pydantic, by its own rules), a ``TypedDict``, or any
callable ``dict -> object`` that raises on invalid input. Values are taken as the file typed
them, with the conversions a reader expects and no others: an int where a float is declared, a
str where a Path, a date, an Enum member or a timedelta... is declared (ISO text, the member's
value or name, seconds). A str where an int is declared is an error naming the key. Text
(INI values, environment variables) is converted to the declared type instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import pathlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ("Invalid", "build", "env_overrides", "hint_at", "schema_kind", "text_to")

_MISSING = object()
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Invalid(ValueError):
    """A value does not fit the schema; ``key`` is its dotted path ("" for the whole)."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"key {key!r}: {why}" if key else why)
        self.key = key
        self.why = why


def schema_kind(schema: object) -> str:
    """``"none"``, ``"dataclass"``, ``"pydantic"``, ``"typeddict"`` or ``"callable"``.

    Raises:
        TypeError: ``schema`` is none of these.
    """
    if schema is None:
        return "none"
    if isinstance(schema, type) and dataclasses.is_dataclass(schema):
        return "dataclass"
    if isinstance(schema, type) and hasattr(schema, "model_validate"):
        return "pydantic"  # duck-typed: pydantic is imported only by the user
    if typing.is_typeddict(schema):
        return "typeddict"
    if callable(schema):
        return "callable"
    message = (
        f"schema must be a dataclass, a pydantic model, a TypedDict or a callable, not {schema!r}"
    )
    raise TypeError(message)


def build(schema: object, data: dict[str, Any], *, text: bool = False) -> object:
    """The validated value of ``data`` for ``schema`` (``data`` itself when schema is None).

    Args:
        schema: see :func:`schema_kind`.
        data: the parsed file, environment overrides applied.
        text: every leaf is a string to convert to the declared type (INI).

    Raises:
        Invalid: the data does not fit; names the key and why.
    """
    kind = schema_kind(schema)
    if kind == "none":
        return data
    if kind == "pydantic":
        return _pydantic(schema, data)
    if kind == "callable":
        assert callable(schema)
        try:
            return schema(data)
        except KeyError as error:
            raise Invalid(str(error.args[0]) if error.args else "", "missing key") from error
        except Exception as error:
            raise Invalid("", f"{type(error).__name__}: {error}") from error
    return _coerce(data, schema, "", text)


def _pydantic(schema: Any, data: dict[str, Any]) -> object:
    try:
        return schema.model_validate(data)
    except Exception as error:
        errors = getattr(error, "errors", None)
        if not callable(errors):
            raise Invalid("", f"{type(error).__name__}: {error}") from error
        found = errors()
        first = found[0] if found else {}
        key = _join(first.get("loc", ()))
        why = str(first.get("msg", error))
        if len(found) > 1:
            why += f" (and {len(found) - 1} more error{'s' * (len(found) > 2)})"
        raise Invalid(key, why) from error


def _join(loc: tuple[Any, ...] | list[Any]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _child(key: str, name: object) -> str:
    if isinstance(name, int):
        return f"{key}[{name}]"
    return f"{key}.{name}" if key else str(name)


def _shown(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _hints(cls: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as error:
        # Accepting any value for it instead would let a typo through unchecked.
        message = (
            f"schema {cls.__qualname__}: its annotations do not resolve ({error}); define the "
            f"classes it names at module level"
        )
        raise TypeError(message) from error


def _fields(cls: Any) -> dict[str, tuple[Any, bool]]:
    """name -> (declared type, required) for a dataclass or a TypedDict."""
    hints = _hints(cls)
    if dataclasses.is_dataclass(cls):
        found = {}
        for field in dataclasses.fields(cls):
            if not field.init:
                continue
            required = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            found[field.name] = (hints.get(field.name, Any), required)
        return found
    required_keys = getattr(cls, "__required_keys__", frozenset(hints))
    return {name: (hint, name in required_keys) for name, hint in hints.items()}


def hint_at(schema: object, path: list[str]) -> tuple[list[str], Any]:
    """The declared field names along ``path`` (matched case-insensitively) and the type at
    its end; names the schema does not know are returned lowercased, with type ``Any``."""
    names: list[str] = []
    hint: Any = schema
    for part in path:
        fields = _fields_of(hint)
        match = next((n for n in fields if n.lower() == part.lower()), None)
        if match is None:
            names.append(part.lower())
            hint = Any
        else:
            names.append(match)
            hint = fields[match]
    return names, hint


def _fields_of(hint: Any) -> dict[str, Any]:
    hint = _unwrap_optional(hint)
    if (isinstance(hint, type) and dataclasses.is_dataclass(hint)) or typing.is_typeddict(hint):
        return {name: kind for name, (kind, _) in _fields(hint).items()}
    model_fields = getattr(hint, "model_fields", None)
    if isinstance(hint, type) and isinstance(model_fields, Mapping):
        return {name: getattr(info, "annotation", Any) for name, info in model_fields.items()}
    return {}


def _unwrap_optional(hint: Any) -> Any:
    if _is_union(hint):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _is_union(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return origin is typing.Union or origin is types.UnionType


def text_to(text: str, hint: Any, key: str) -> Any:
    """``text`` (an environment variable, an INI value) converted to the declared type.

    Raises:
        Invalid: it does not convert.
    """
    return _coerce(text, hint, key, True)


def _coerce(value: Any, hint: Any, key: str, text: bool) -> Any:
    if hint is Any or hint is object:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return _coerce(value, args[0], key, text)
    if _is_union(hint):
        return _union(value, args, key, text)
    if origin is typing.Literal:
        for choice in args:
            candidate = value
            if text and isinstance(value, str) and not isinstance(choice, str):
                try:
                    candidate = _coerce(value, type(choice), key, True)
                except Invalid:
                    continue
            if candidate == choice and type(candidate) is type(choice):
                return choice
        raise Invalid(key, f"expected one of {', '.join(map(repr, args))}, got {value!r}")
    if hint in (list, tuple, set, frozenset, dict):  # bare, without item types
        origin = hint
    if origin is not None:
        return _generic(value, origin, args, key, text)
    if hint is type(None) or hint is None:
        if value is None or (text and value.strip().lower() in ("", "none", "null")):
            return None
        raise Invalid(key, f"expected nothing (None), got {_shown(value)}")
    if (isinstance(hint, type) and dataclasses.is_dataclass(hint)) or typing.is_typeddict(hint):
        return _record(value, hint, key, text)
    if isinstance(hint, type) and hasattr(hint, "model_validate"):
        try:
            return _pydantic(hint, value)
        except Invalid as error:
            raise Invalid(_child(key, error.key) if error.key else key, error.why) from error
    if isinstance(hint, type):
        return _scalar(value, hint, key, text)
    return value  # a TypeVar, a NewType, a forward reference left unresolved: taken as is


def _union(value: Any, args: tuple[Any, ...], key: str, text: bool) -> Any:
    if value is None and type(None) in args:
        return None
    members = [a for a in args if a is not type(None)]
    # Text converts to the first member that takes it; a typed value to a member that takes it
    # as it is before any that converts it (an int stays an int in `int | str`).
    for member in members:
        plain = not text and isinstance(member, type) and not typing.get_origin(member)
        if plain and isinstance(value, member) and not (isinstance(value, bool) and member is int):
            return value
    for member in members:
        try:
            return _coerce(value, member, key, text)
        except Invalid:
            continue
    if text and type(None) in args and value.strip().lower() in ("", "none", "null"):
        return None  # only when no member takes the text: `str | None` keeps "none"
    names = " | ".join("None" if a is type(None) else getattr(a, "__name__", str(a)) for a in args)
    raise Invalid(key, f"expected {names}, got {_shown(value)}")


def _generic(value: Any, origin: Any, args: tuple[Any, ...], key: str, text: bool) -> Any:
    if text and isinstance(value, str):
        value = _split(value, key)
    if origin in (dict, Mapping) or (isinstance(origin, type) and issubclass(origin, Mapping)):
        if not isinstance(value, Mapping):
            raise Invalid(key, f"expected a mapping, got {_shown(value)}")
        key_hint, value_hint = args if len(args) == 2 else (Any, Any)
        return {
            _coerce(k, key_hint, key, text): _coerce(v, value_hint, _child(key, k), text)
            for k, v in value.items()
        }
    if not isinstance(value, list | tuple):
        raise Invalid(key, f"expected a list, got {_shown(value)}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise Invalid(key, f"expected {len(args)} items, got {len(value)}")
        return tuple(
            _coerce(v, a, _child(key, i), text)
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    item = args[0] if args else Any
    items = [_coerce(v, item, _child(key, i), text) for i, v in enumerate(value)]
    if origin in (set, frozenset, tuple):
        return origin(items)
    return items


def _split(value: str, key: str) -> Any:
    stripped = value.strip()
    if stripped.startswith(("[", "{")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as error:
            raise Invalid(key, f"invalid JSON list or mapping: {error.msg}") from error
    return [part.strip() for part in stripped.split(",")] if stripped else []


def _record(value: Any, hint: Any, key: str, text: bool) -> Any:
    if not isinstance(value, Mapping):
        raise Invalid(key, f"expected a table of keys, got {_shown(value)}")
    fields = _fields(hint)
    unknown = [k for k in value if k not in fields]
    if unknown:
        known = ", ".join(fields) or "none"
        raise Invalid(_child(key, unknown[0]), f"unknown key (known here: {known})")
    values: dict[str, Any] = {}
    for name, (field_hint, required) in fields.items():
        if name in value:
            values[name] = _coerce(value[name], field_hint, _child(key, name), text)
        elif required:
            raise Invalid(_child(key, name), "missing key")
    if typing.is_typeddict(hint):
        return values
    try:
        return hint(**values)
    except Exception as error:  # __post_init__ checks: the whole record is at fault
        raise Invalid(key, f"{type(error).__name__}: {error}") from error


_TIME_TYPES = (datetime.datetime, datetime.date, datetime.time)


def _scalar(value: Any, hint: type, key: str, text: bool) -> Any:
    if isinstance(value, hint) and not (isinstance(value, bool) and hint is not bool):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    converted = _MISSING
    try:
        from_text = text or issubclass(hint, (pathlib.PurePath, *_TIME_TYPES, enum.Enum))
        if isinstance(value, str) and from_text:
            converted = _from_text(value, hint)
        elif issubclass(hint, enum.Enum):
            converted = hint(value)
        elif hint is datetime.timedelta and type(value) in (int, float):
            converted = datetime.timedelta(seconds=value)
    except (ValueError, KeyError, TypeError) as error:
        raise Invalid(key, _expected(hint, value, error)) from error
    if converted is _MISSING:
        raise Invalid(key, _expected(hint, value, None))
    return converted


def _from_text(value: str, hint: type) -> Any:
    stripped = value.strip()
    if hint is bool:
        lowered = stripped.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError("not one of true/false, yes/no, on/off, 1/0")
    if hint is str:
        return value
    if issubclass(hint, enum.Enum):
        try:
            return hint(stripped)
        except ValueError:
            pass
        for member in hint:
            if stripped in (member.name, str(member.value)):
                return member
        raise ValueError("no such member")
    if hint is datetime.timedelta:
        return datetime.timedelta(seconds=float(stripped))
    if issubclass(hint, _TIME_TYPES):
        return hint.fromisoformat(stripped)
    factory: Callable[[str], Any] = hint
    return factory(stripped)


def _expected(hint: type, value: Any, error: BaseException | None) -> str:
    why = f"expected {hint.__name__}, got {_shown(value)}"
    if issubclass(hint, enum.Enum):
        values = ", ".join(repr(m.value) for m in hint)
        why += f" (a value: {values}; or a name: {', '.join(m.name for m in hint)})"
    elif error is not None and str(error):
        why += f" ({error})"
    return why


def env_overrides(
    data: dict[str, Any], schema: object, prefix: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    """``data`` with the environment variables named ``prefix + KEY`` applied, ``__``
    separating nested keys (``APP_DB__TIMEOUT`` sets ``db.timeout``).

    Keys match the file's keys or the schema's fields case-insensitively. The text is converted
    to the type the schema declares there, else to the type of the value the file has there
    (a string stays a string when neither says). ``data`` itself is not changed.

    Raises:
        Invalid: a variable's text does not convert; names the key and the variable.
    """
    result = _copy_tree(data)
    for name in sorted(environ):
        if not name.startswith(prefix) or len(name) == len(prefix):
            continue
        parts = name[len(prefix) :].split("__")
        if not all(parts):
            continue
        text = environ[name]
        declared, hint = hint_at(schema, parts)
        node = result
        names: list[str] = []
        for depth, part in enumerate(parts):
            existing = next(
                (k for k in node if isinstance(k, str) and k.lower() == part.lower()), None
            )
            chosen = existing if existing is not None else declared[depth]
            names.append(chosen)
            if depth == len(parts) - 1:
                break
            child = node.get(chosen)
            if not isinstance(child, dict):
                child = node[chosen] = {}
            node = child
        leaf = names[-1]
        key = ".".join(names)
        if hint is Any and leaf in node and node[leaf] is not None:
            hint = _type_of(node[leaf])
        try:
            node[leaf] = text if hint is Any else text_to(text, hint, key)
        except Invalid as error:
            raise Invalid(key, f"from ${name}={text!r}: {error.why}") from error
    return result


def _type_of(value: Any) -> Any:
    if isinstance(value, dict):
        return Any  # a table replaced by text: leave it to the schema to refuse
    if isinstance(value, list):
        return list[Any]
    return type(value)


def _copy_tree(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy_tree(v) if isinstance(v, dict) else v for k, v in data.items()}
