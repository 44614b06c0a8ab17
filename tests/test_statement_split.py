"""The line scan that splits a module into top-level statements reads only the lines that may
start one when every line ends with ``\\n`` (issue 26): it splits as the line-by-line scan
that ``\\r\\n`` sources take does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import hotswap
from hotswap._plan.lines import split_edited, split_lf, split_statements

TRICKY = [
    "",
    "x = 1",
    "x = 1\n",
    "\n\n# leading comment\nx = 1\n\n\n",
    "@a\n@b(\n  1)\ndef f():\n    pass\n# trailing\n\nY = 2\n",
    "if x:\n    pass\nelif y:\n    pass\nelse:\n    z = 1\n\n\nw = (\n1,\n)\n",
    "try:\n    import a\nexcept ImportError:\n    a = None\nfinally:\n    pass\n",
    "total = 1 + \\\n2\nafter = 3\n",
    "s = '''\ntext at column 0\n'''\nnext_one = 1\n",
    "a = 1\n\f\nb = 2\n\x0bc = 3\n   \n",
    "@decorator\n\nclass C:\n    x = 1\n    # c\n\n",
    "x = [\n]\n)\n#\n",
]


@pytest.mark.parametrize("source", TRICKY)
def test_split_reads_lf_sources_as_the_line_by_line_scan(source):
    assert split_statements(source) == split_statements(source.replace("\n", "\r\n"))


def test_split_of_real_modules_is_the_line_by_line_scans():
    package = Path(hotswap.__file__).parent
    files = sorted(package.rglob("*.py"))
    assert len(files) > 50
    for file in files:
        source = file.read_text(encoding="utf-8")
        found = split_statements(source)
        assert found is not None
        assert found == split_statements(source.replace("\n", "\r\n")), file
        assert [first for first, _ in found] == sorted({first for first, _ in found})


# Lines an edit puts in or takes out: each can change where statements start (a decorator, a
# continuation, a backslash, a block's next clause, a string's lines at column 0).
PIECES = [
    "x = 1",
    "@deco",
    "def f():",
    "    return 1",
    "else:",
    "except E:",
    "y = 1 + \\",
    ")",
    "# note",
    "",
    "   ",
    "'''",
    "class C:",
    "    z = [",
    "]",
    "\f",
]


def _edits(source: str, seed: int) -> list[str]:
    """Versions of ``source`` with lines replaced, put in or taken out at a few places."""
    rng = random.Random(seed)
    lines = source.split("\n")
    versions = []
    for _ in range(12):
        edited = list(lines)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(edited) + 1)
            action = rng.random()
            if action < 0.4 and at < len(edited):
                edited[at] = rng.choice(PIECES)
            elif action < 0.7:
                edited[at:at] = rng.sample(PIECES, rng.randint(1, 3))
            else:
                del edited[at : at + rng.randint(1, 3)]
        versions.append("\n".join(edited))
    return versions


def _split_and_starts(source: str) -> tuple[list[tuple[int, str]], list[int]]:
    found = split_lf(source)
    assert found[0] == split_statements(source)
    return found


@pytest.mark.parametrize("seed", range(6))
def test_split_of_an_edit_from_the_version_before_is_the_whole_scan(seed):
    files = sorted(Path(hotswap.__file__).parent.rglob("*.py"))
    rng = random.Random(seed)
    sources = [f.read_text(encoding="utf-8") for f in rng.sample(files, 6)]
    sources += ["\n".join(rng.choices(PIECES, k=80)) + "\n" for _ in range(4)]
    for source in sources:
        chunks, starts = _split_and_starts(source)
        for edited in _edits(source, seed):
            again = split_edited(edited, source, starts, chunks)
            if again is None:
                continue
            assert again == _split_and_starts(edited)


def test_a_one_function_edit_is_split_from_the_version_before():
    source = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(50))
    edited = source.replace("return x + 20", "if x:\n        return 0\n    return x + 20")
    chunks, starts = split_lf(source)

    again = split_edited(edited, source, starts, chunks)

    assert again == split_lf(edited)
    assert again is not None
    assert again[0][30][1] is chunks[30][1]  # the statements after the edit are the old ones
