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
    if "\r" not in source:
        return _split_lf(source)
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


# A line that may start a statement: at column 0, not blank, a comment or a closing bracket.
# (Found by their line break: a pattern that starts with a literal is scanned for it in C.)
_CANDIDATE = re.compile(r"\n(?=[^ \t\f#)\]}\n])")
_FIRST_CANDIDATE = re.compile(r"[^ \t\f#)\]}\n]")


def _split_lf(source: str) -> list[tuple[int, str]]:
    """:func:`split_statements` of a source whose lines all end with ``\n``, by the same
    rules, looking only at the lines that may start a statement (the others belong to the
    statement above): a rewrite's reload reads thousands of lines."""
    starts: list[int] = []
    lines: list[int] = []
    line, counted = 1, 0
    decorating = False
    candidates = [m.start() + 1 for m in _CANDIDATE.finditer(source)]
    if _FIRST_CANDIDATE.match(source):
        candidates.insert(0, 0)
    for position in candidates:
        if _BLOCK_CONTINUATION.match(source, position):
            continue
        if starts:
            # The line above ends with a backslash: this one continues it.
            if source.endswith("\\", 0, position - 1):
                continue
            if decorating:
                decorating = source.startswith("@", position)
                continue
        line += source.count("\n", counted, position)
        counted = position
        starts.append(position)
        lines.append(line)
        decorating = source.startswith("@", position)
    result: list[tuple[int, str]] = []
    for index, (start, first) in enumerate(zip(starts, lines, strict=True)):
        end = starts[index + 1] if index + 1 < len(starts) else len(source)
        if source.endswith("\n", start, end):
            end -= 1  # the last line's own end
        # Trailing blank and comment lines belong to no statement.
        while True:
            cut = source.rfind("\n", start, end)
            if cut < 0:
                break
            last = source[cut + 1 : end]
            if last.strip() and not last.lstrip().startswith("#"):
                break
            end = cut
        result.append((first, source[start:end]))
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
