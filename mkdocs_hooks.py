"""mkdocs hooks for the docs site (mkdocs.yml ``hooks:``); not part of the package.

The docstrings name other objects with Sphinx roles (``:class:`ReloadResult```), which
Markdown renders as the role's text followed by the code. The page shows just the code.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|attr|exc|data|mod|obj):<code>~?([^<]*)</code>")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Drop the Sphinx role before each code span the docstrings produced."""
    return ROLE.sub(lambda match: f"<code>{match[1]}</code>", html)
