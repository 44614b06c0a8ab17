"""The Python in README.md and docs/ runs as written (blocks fenced ``python notest`` excepted)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hotswap

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    found = []
    for document in DOCUMENTS:
        for index, match in enumerate(FENCE.finditer(document.read_text())):
            found.append((f"{document.name}[{index}]", match.group(1)))
    return found


def test_docs_have_python_to_run():
    names = [name for name, _ in blocks()]
    assert any(name.startswith("README.md") for name in names)
    assert any(name.startswith("guide.md") for name in names)


@pytest.mark.parametrize(("name", "code"), blocks(), ids=[name for name, _ in blocks()])
def test_docs_code_runs(name, code, project):
    project.load(
        "pricing", "def total(amount, currency='EUR'):\n    return f'{amount} {currency}'\n"
    )
    namespace = {"__name__": f"docs_{name}"}
    try:
        # dont_inherit: the block runs as written, not under this module's __future__ imports
        # (string annotations would send dataclasses looking for a module that is not there).
        exec(compile(code, name, "exec", dont_inherit=True), namespace)
    finally:
        hotswap.disable()
