"""Ready to publish (issue 24.9): the version is written once, the changelog follows Keep a
Changelog, and every extra the docs and messages name exists with what its examples import.
Building, ``twine check`` and installing the wheel and sdist run in ``.ci/package.sh``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import hotswap

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_packaging_version_is_written_once():
    assert "version" not in PROJECT["project"]
    assert "version" in PROJECT["project"]["dynamic"]
    assert PROJECT["tool"]["hatch"]["version"]["path"] == "hotswap/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", hotswap.__version__)
    written = [
        str(path.relative_to(ROOT))
        for path in [ROOT / "pyproject.toml", *sorted((ROOT / "hotswap").rglob("*.py"))]
        if re.search(rf"""["']{re.escape(hotswap.__version__)}["']""", path.read_text())
    ]
    assert written == ["hotswap/__init__.py"]


def test_packaging_changelog_keeps_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "Keep a Changelog" in text
    headings = re.findall(r"^## \[(.+?)\]", text, re.MULTILINE)
    assert headings
    assert headings[0] == "Unreleased"
    kinds = set(re.findall(r"^### (.+)$", text, re.MULTILINE))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_packaging_every_extra_named_exists():
    extras = PROJECT["project"]["optional-dependencies"]
    named: set[str] = set()
    texts = [p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]]
    texts += [p.read_text() for p in (ROOT / "hotswap").rglob("*.py")]
    for text in texts:
        for group in re.findall(r"""\.\[([\w,]+)\]""", text):
            named.update(group.split(","))
        named.update(re.findall(r"hotswap's '(\w+)' extra", text))
    assert {"prometheus", "otel", "signing", "yaml", "docs"} <= named
    assert named <= set(extras), named - set(extras)
    otel = " ".join(extras["otel"])
    assert "opentelemetry-api" in otel
    assert "opentelemetry-sdk" in otel  # the trace example in docs/operating.md imports it
    assert any(requirement.startswith(("ruff", "black")) for requirement in extras["docs"])
