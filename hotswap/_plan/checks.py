"""The checks a change set passes before anything runs: compatibility under the policy.

A removal counts as breaking only while something may still use the name: a public function
removed together with every mention of it under the user's modules (its callers changed in the
same change set, or a route handler nobody calls) is accepted (DESIGN §6).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterable

from hotswap._ops.events import location
from hotswap._plan import diff as _diff
from hotswap._plan.symbols import Symbols
from hotswap.exceptions import HotswapWarning, IncompatibleChangeError

__all__ = ("check_compatibility",)

logger = logging.getLogger(__name__)


def _mentions(text: str, module: str, symbol: str) -> bool:
    """Whether a module's text may use ``module``'s removed ``symbol``: it names it, and does
    not define a name of its own by that name without naming the module (a function moved
    to the one module that used it)."""
    short = re.escape(symbol.rpartition(".")[2])
    if not re.search(rf"\b{short}\b", text):
        return False
    own = re.search(rf"^(?:async\s+def|def|class)\s+{short}\b|^{short}\s*[:=]", text, re.M)
    names_module = re.search(rf"\b{re.escape(module.rpartition('.')[2])}\b", text)
    return own is None or names_module is not None


def check_compatibility(
    name: str,
    path: str,
    old: Symbols,
    new: Symbols,
    policy: str,
    texts: Callable[[], Iterable[str]],
) -> tuple[str, ...]:
    """Check ``old`` -> ``new`` under ``policy``; the findings applied anyway (``warn``).

    ``texts()`` yields the sources of the user's modules as they will be after the change set
    (the changed ones new), to tell whether a removed name is still mentioned.

    Raises:
        IncompatibleChangeError: policy ``strict`` and a change would break callers, or
            ``HotswapWarning`` is turned into an error by the program's warning filters.
    """
    if policy == "off":
        return ()
    findings = [f for f in _diff.check(old, new) if f.public or f.reloadable]
    removals = [f for f in findings if f.new == "(removed)" and not f.reloadable]
    if removals:
        sources = list(texts())
        for finding in removals:
            if not any(_mentions(text, name, finding.symbol) for text in sources):
                findings.remove(finding)  # nothing under the watched code uses it any more
    if not findings:
        return ()
    lines = [f.format(location(name, path, f.lineno)) for f in findings]
    if policy == "strict":
        count = f"{len(findings)} incompatible change{'s' * (len(findings) > 1)}"
        message = f"{location(name, path, findings[0].lineno)}: {count} rejected:\n  "
        message += "\n  ".join(lines)
        raise IncompatibleChangeError(message, module=name, filename=path, findings=findings)
    for finding, line in zip(findings, lines, strict=True):
        try:
            # Pointed at the user's file and line, not at hotswap's code.
            warnings.warn_explicit(line, HotswapWarning, path, finding.lineno, module=name)
        except HotswapWarning as escalated:
            # The program turned HotswapWarning into an error: it asked for a rejection.
            message = f"{escalated} (HotswapWarning is an error here)"
            raise IncompatibleChangeError(
                message, module=name, filename=path, findings=findings
            ) from escalated
    return tuple(lines)
