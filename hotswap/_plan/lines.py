"""Lines and top-level statements of a source text, found without parsing it (pure)."""

from __future__ import annotations

import re

__all__ = ("source_lines", "split_statements")

_BLOCK_CONTINUATION = re.compile(r"(else|elif|except|finally)\b")
_NOT_A_START = ("", " ", "\t", "\f", "#", ")", "]", "}")


def split_statements(source: str) -> list[tuple[int, str]] | None:
    """The top-level statements of ``source`` as (first line, text), found by a line scan.

    A line at column 0 starts a statement unless it continues one (``else:``, a closing
    bracket, a decorated definition, a backslash). The scan does not see inside strings or
    brackets; where it splits wrongly, a piece does not parse on its own and the caller parses
    the whole module instead, so a wrong split costs time, never correctness.
    """
    chunks: list[tuple[int, list[str]]] = []
    decorating = False
    for number, line in enumerate(source_lines(source), 1):
        starts = line[:1] not in _NOT_A_START and not _BLOCK_CONTINUATION.match(line)
        if starts and chunks:
            previous = chunks[-1][1][-1]
            if previous.endswith("\\"):
                starts = False
            elif decorating:
                starts = False
                decorating = line.startswith("@")
        if starts:
            chunks.append((number, [line]))
            decorating = line.startswith("@")
        elif chunks:
            chunks[-1][1].append(line)
    result: list[tuple[int, str]] = []
    for first, lines in chunks:
        # Trailing blank and comment lines belong to no statement.
        while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("#")):
            lines.pop()
        result.append((first, "\n".join(lines)))
    return result


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def source_lines(source: str) -> list[str]:
    """The lines of ``source`` as Python counts them: only ``\\n``, ``\\r\\n`` and ``\\r``
    end a line (``str.splitlines`` also splits at form feeds and U+2028, which may stand
    inside a line or a string)."""
    lines = _LINE_BREAK.split(source)
    if lines and lines[-1] == "":
        lines.pop()
    return lines
