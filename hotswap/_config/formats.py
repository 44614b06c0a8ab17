"""Configuration file formats: bytes in, a dict out, or a :class:`ConfigError` naming the line.

The format is chosen by the file's extension. TOML, JSON and YAML carry types (numbers,
booleans, lists, tables); INI carries only strings, which the schema converts (see
:mod:`hotswap._config.schema`). PyYAML (the ``hotswap[yaml]`` extra) and ``tomllib`` are
imported only when a file of theirs is read.
"""

from __future__ import annotations

import configparser
import json
import os
import re
from collections.abc import Callable
from typing import Any

from hotswap._ops.events import display_path
from hotswap.exceptions import ConfigError

__all__ = ("FORMATS", "format_of", "key_line", "parse", "textual")

# tomllib's messages end with "(at line 3, column 7)"; 3.14 also sets lineno.
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def format_of(path: str) -> str:
    """The format name for ``path``'s extension.

    Raises:
        ValueError: the extension is not one of :data:`FORMATS`.
    """
    extension = os.path.splitext(path)[1].lower()
    for name, extensions in FORMATS.items():
        if extension in extensions:
            return name
    known = ", ".join(e for extensions in FORMATS.values() for e in extensions)
    message = f"{path}: unknown configuration format {extension or '(no extension)'!r} ({known})"
    raise ValueError(message)


def textual(format_name: str) -> bool:
    """Whether every value of the format is a string the schema must convert (INI)."""
    return format_name == "ini"


def parse(path: str, data: bytes) -> dict[str, Any]:
    """The mapping a configuration file holds.

    Raises:
        ConfigError: the bytes are not valid in the file's format, or the top level is not a
            mapping; ``lineno`` is set where the parser reports it.
        ModuleNotFoundError: the format's optional parser is not installed.
    """
    format_name = format_of(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        message = f"{display_path(path)}: not UTF-8 text (byte {error.start}): {error.reason}"
        raise ConfigError(message, filename=path) from error
    parsed = _PARSERS[format_name](path, text)
    if parsed is None:  # an empty YAML document
        return {}
    if not isinstance(parsed, dict):
        message = (
            f"{display_path(path)}: the top level must be a mapping of keys to values, "
            f"not {type(parsed).__name__}"
        )
        raise ConfigError(message, filename=path)
    return parsed


def _fail(path: str, lineno: int | None, why: str) -> ConfigError:
    where = display_path(path) if lineno is None else f"{display_path(path)}:{lineno}"
    return ConfigError(f"{where}: {why}", filename=path, lineno=lineno)


def _toml(path: str, text: str) -> Any:
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        why = str(error.args[0]) if error.args else str(error)
        lineno: int | None = getattr(error, "lineno", None)
        found = _TOML_WHERE.search(why)
        if found:
            why = why[: found.start()]
            lineno = lineno or int(found.group(1))
        raise _fail(path, lineno, f"invalid TOML: {why}") from error


def _json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        why = f"invalid JSON: {error.msg} (column {error.colno})"
        raise _fail(path, error.lineno, why) from error


def _yaml(path: str, text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]  # stubs: not a dependency
    except ModuleNotFoundError as error:
        message = (
            f"{path}: reading YAML needs PyYAML, hotswap's 'yaml' extra "
            "(pip install -e '.[yaml]' in a checkout)"
        )
        raise ModuleNotFoundError(message, name="yaml") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        lineno = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        why = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
        raise _fail(path, lineno, why) from error


def _ini(path: str, text: str) -> Any:
    # No interpolation: a '%' in a password or a URL is data, not a template.
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    try:
        parser.read_string(text, source=path)
    except configparser.Error as error:
        lineno = getattr(error, "lineno", None)
        errors = getattr(error, "errors", None)
        if lineno is None and errors:
            lineno = errors[0][0]
        why = type(error).__name__
        if isinstance(error, configparser.MissingSectionHeaderError):
            why = "a key before any [section] header"
        elif isinstance(error, configparser.DuplicateOptionError):
            why = f"key {error.option!r} twice in section [{error.section}]"
        elif isinstance(error, configparser.DuplicateSectionError):
            why = f"section [{error.section}] twice"
        elif isinstance(error, configparser.ParsingError):
            why = "a line that is neither a [section], a key = value, nor a comment"
        raise _fail(path, lineno, f"invalid INI: {why}") from error
    return {section: dict(parser.items(section)) for section in parser.sections()}


_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def key_line(path: str, data: bytes, key: str) -> int | None:
    """The line of the value at the dotted ``key`` (``db.port``, ``servers[1].port``) where
    the format keeps positions (YAML); None elsewhere or when not found."""
    if format_of(path) != "yaml" or not key:
        return None
    try:
        import yaml

        node: Any = yaml.compose(data.decode("utf-8-sig"))
        for name, index in _KEY_PART.findall(key):
            if index:
                node = node.value[int(index)] if isinstance(node, yaml.SequenceNode) else None
            elif isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == name), None)
            else:
                node = None
            if node is None:
                return None
        return int(node.start_mark.line) + 1
    except Exception:  # best effort: the key alone still says where
        return None


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "toml": _toml,
    "json": _json,
    "yaml": _yaml,
    "ini": _ini,
}

#: format name -> the file extensions that select it
FORMATS: dict[str, tuple[str, ...]] = {
    "toml": (".toml",),
    "json": (".json",),
    "yaml": (".yaml", ".yml"),
    "ini": (".ini", ".cfg", ".conf"),
}
