"""Lines and top-level statements of a source text, found without parsing it (pure)."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable

__all__ = ("shared", "source_lines", "split_edited", "split_lf", "split_statements")

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
    return split_lf(source)[0]


def split_lf(source: str) -> tuple[list[tuple[int, str]], list[int]]:
    """:func:`split_statements` of a source without ``\r``, and the offsets its statements
    start at (for :func:`split_edited` of its next version)."""
    return _chunks(source, *_starts(source))


def _starts(
    source: str, begin: int = 0, line: int = 1, stop: Callable[[int], bool] | None = None
) -> tuple[list[int], list[int]]:
    """Where the statements of ``source`` start (offsets) and their first lines. ``begin``:
    0, or the offset of a statement start (at line ``line``) to scan from. ``stop``: asked at
    each start after ``begin``; true ends the scan there (that start is the last listed)."""
    starts: list[int] = []
    lines: list[int] = []
    counted = begin
    decorating = False
    if begin:
        starts.append(begin)
        lines.append(line)
        decorating = source.startswith("@", begin)
    candidates = [m.start() + 1 for m in _CANDIDATE.finditer(source, begin)]
    if not begin and _FIRST_CANDIDATE.match(source):
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
        if stop is not None and len(starts) > 1 and stop(position):
            break
    return starts, lines


def _chunks(
    source: str, starts: list[int], lines: list[int], count: int | None = None
) -> tuple[list[tuple[int, str]], list[int]]:
    """The statements (first line, text) that start at ``starts`` (the first ``count`` of
    them; each ends where the next starts), and the offsets they start at."""
    result: list[tuple[int, str]] = []
    total = len(starts) if count is None else count
    for index in range(total):
        start, first = starts[index], lines[index]
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
    return result, starts[:total]


def split_edited(
    source: str, old: str, old_starts: list[int], old_chunks: list[tuple[int, str]]
) -> tuple[list[tuple[int, str]], list[int]] | None:
    """:func:`split_statements` of ``source``, an edit of ``old`` (split into ``old_chunks``
    at ``old_starts``), and the offsets its statements start at: the statements before the
    edit and after it are ``old``'s, only the lines between are scanned (a one-function edit
    of a big module looks at one function). None when the texts are not both split by lines
    ending with ``\n`` (the caller splits the whole text).

    The scan decides at a line from that line, the one above and the start before it, so it
    resumes at a start of ``old`` whose line the edit left alone, and where it meets a start of
    ``old`` after the edit, the rest is ``old``'s, moved by the lines the edit added."""
    if "\r" in source or "\r" in old or not old_starts:
        return None
    prefix = shared(old, source, 1)
    suffix = shared(old, source, -1, min(len(old), len(source)) - prefix)
    # The last start of old whose whole line (its line break too) precedes the edit.
    resume = bisect_right(old_starts, prefix) - 1
    while resume >= 0 and not 0 <= old.find("\n", old_starts[resume]) < prefix:
        resume -= 1
    if resume <= 0:
        return None  # (the edit is in the first statement: the whole text is scanned)
    shift = len(source) - len(old)
    after = len(source) - suffix  # offsets from here on hold the old text
    found: list[int] = []

    def stop(position: int) -> bool:
        if position - 1 < after:
            return False
        index = bisect_left(old_starts, position - shift)
        if index < len(old_starts) and old_starts[index] == position - shift:
            found.append(index)
            return True
        return False

    begin = old_starts[resume]
    starts, lines = _starts(source, begin, old_chunks[resume][0], stop)
    if not found:
        middle, _ = _chunks(source, starts, lines)
        return old_chunks[:resume] + middle, old_starts[:resume] + starts
    middle, _ = _chunks(source, starts, lines, len(starts) - 1)
    again = found[0]
    moved = lines[-1] - old_chunks[again][0]
    tail = [(first + moved, text) for first, text in old_chunks[again:]]
    offsets = [start + shift for start in old_starts[again:]]
    return (
        old_chunks[:resume] + middle + tail,
        old_starts[:resume] + starts[:-1] + offsets,
    )


def shared(a: str, b: str, direction: int, limit: int | None = None) -> int:
    """The length of the text ``a`` and ``b`` share at the start (``direction`` 1) or the
    end (-1), up to ``limit``: compared a block at a time (no copy of a whole text, and no
    long hold of the interpreter on a huge one), then the block that differs by halves (a
    character at a time, a block cost a few thousand steps of Python on every save)."""
    most = min(len(a), len(b)) if limit is None else limit

    def same(start: int, size: int) -> bool:
        if direction > 0:
            return a[start : start + size] == b[start : start + size]
        end_a, end_b = len(a) - start, len(b) - start
        return a[end_a - size : end_a] == b[end_b - size : end_b]

    done = 0
    while done < most:
        size = min(_BLOCK, most - done)
        if not same(done, size):
            # The first difference is within [done, done + size): halve until one is left.
            while size > 1:
                half = size // 2
                if same(done, half):
                    done += half
                    size -= half
                else:
                    size = half
            return done
        done += size
    return done


_BLOCK = 4096


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def source_lines(source: str) -> list[str]:
    """The lines of ``source`` as Python counts them: only ``\\n``, ``\\r\\n`` and ``\\r``
    end a line (``str.splitlines`` also splits at form feeds and U+2028, which may stand
    inside a line or a string)."""
    lines = _LINE_BREAK.split(source)
    if lines and lines[-1] == "":
        lines.pop()
    return lines
