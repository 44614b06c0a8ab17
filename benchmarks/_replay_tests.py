"""What a release's own pytest settings say about running its tests (bench_replay.py).

The replay runs a release's tests from a copy, with ``-o addopts=`` (coverage and similar
options of the project are not wanted), so the project's settings are not read. The marker
expression of its ``addopts`` is kept: click 8.3+ deselects its ``stress`` tests there
(``-m 'not stress'``: 10,000 invocations each followed by ``gc.collect()``, which ran for
hours in a process holding a replayed package).
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

__all__ = ("marker_expression",)


def marker_expression(root: Path) -> str | None:
    """The ``-m`` expression of the ``addopts`` in ``root``'s ``pyproject.toml``, if any."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None
    options = settings.get("tool", {}).get("pytest", {}).get("ini_options", {})
    addopts = options.get("addopts", "")
    words = shlex.split(addopts) if isinstance(addopts, str) else [str(w) for w in addopts]
    for index, word in enumerate(words):
        if word == "-m" and index + 1 < len(words):
            return words[index + 1]
        if word.startswith("-m") and len(word) > 2:
            return word[2:]
    return None
