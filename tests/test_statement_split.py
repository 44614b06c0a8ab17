"""The line scan that splits a module into top-level statements reads only the lines that may
start one when every line ends with ``\\n`` (issue 26): it splits as the line-by-line scan
that ``\\r\\n`` sources take does."""

from __future__ import annotations

from pathlib import Path

import pytest

import hotswap
from hotswap._plan.lines import split_statements

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
