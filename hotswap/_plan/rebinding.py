"""Statements that run again without rebinding anything: the planner's exceptions to "a
statement that runs binds its names anew".

When a module's ``__future__`` flags change every statement runs again (each may compile to
another thing). A plain ``import m`` that the old source had too binds the very module object
it bound before (``sys.modules`` holds it): the names it binds are not rebound, so a class
whose bases read them (``class Codec(codecs.Codec)``) is merged into the kept class rather than
replaced, as every other unchanged class is.
"""

from __future__ import annotations

from collections.abc import Sequence

from hotswap._plan.analysis import IMPORT
from hotswap._plan.statements import Statement

__all__ = ("same_module_imports",)


def same_module_imports(old: Sequence[Statement], new: Sequence[Statement]) -> frozenset[int]:
    """Indexes of ``new``'s plain ``import`` statements whose text ``old`` has too."""
    texts = {s.text for s in old if s.info.kind == IMPORT}
    return frozenset(
        index
        for index, stmt in enumerate(new)
        if stmt.info.kind == IMPORT and stmt.text.startswith("import ") and stmt.text in texts
    )
