"""The checks a change set passes before anything runs: compatibility under the policy.

A removal counts as breaking only while something may still use the name: a public function
removed together with every mention of it under the user's modules (its callers changed in the
same change set, or a route handler nobody calls) is accepted (DESIGN §6).
"""

from __future__ import annotations

import ast
import logging
import re
import warnings
from collections.abc import Callable, Iterable

from hotswap._ops.events import location
from hotswap._plan import diff as _diff
from hotswap._plan.symbols import (
    KEYWORD_ONLY,
    POSITIONAL_ONLY,
    POSITIONAL_OR_KEYWORD,
    VAR_KEYWORD,
    VAR_POSITIONAL,
    Signature,
    Symbols,
)
from hotswap.exceptions import HotswapWarning, IncompatibleChangeError

__all__ = ("check_compatibility",)

logger = logging.getLogger(__name__)


def _mentions(text: str, module: str, symbol: str) -> bool:
    """Whether a module's text may use ``module``'s removed ``symbol``: it imports it from
    that module (or everything from it), reads an attribute by that name, or loads the name
    without binding a name of its own by it (``with ... as pager``, a parameter, a function
    moved here, an import of it from another module)."""
    short = symbol.rpartition(".")[2]
    if not re.search(rf"\b{re.escape(short)}\b", text):
        return False
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return True  # cannot tell: it may
    last = module.rpartition(".")[2]
    loads = False
    bound = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = (node.module or "").rpartition(".")[2]
            for alias in node.names:
                if alias.name == "*" and (source == last or node.level):
                    return True  # everything of the module, this name maybe
                if alias.name == short and (source == last or (node.level and not node.module)):
                    return True
                if (alias.asname or alias.name) == short:
                    bound = True
        elif isinstance(node, ast.Attribute) and node.attr == short:
            return True  # ``module.name``, or any object's: it may be the module
        elif isinstance(node, ast.Name) and node.id == short:
            if isinstance(node.ctx, ast.Load):
                loads = True
            else:
                bound = True
        elif isinstance(node, ast.arg) and node.arg == short:
            bound = True
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound = bound or node.name == short
        elif isinstance(node, ast.ExceptHandler) and node.name == short:
            bound = True
        elif isinstance(node, ast.Import):
            bound = bound or any((a.asname or a.name) == short for a in node.names)
    return loads and not bound


def _binds(call: ast.Call, signature: Signature) -> bool:
    """Whether ``call`` passes arguments the parameters of ``signature`` accept (False when it
    cannot tell: ``*args`` or ``**kwargs`` at the call)."""
    params = list(signature.caller_params)
    if any(isinstance(a, ast.Starred) for a in call.args) or any(
        k.arg is None for k in call.keywords
    ):
        return False
    positional = [p for p in params if p.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)]
    kinds = {p.kind for p in params}
    if len(call.args) > len(positional) and VAR_POSITIONAL not in kinds:
        return False
    filled = {p.name for p in positional[: len(call.args)]}
    by_keyword = {p.name for p in params if p.kind in (POSITIONAL_OR_KEYWORD, KEYWORD_ONLY)}
    for keyword in call.keywords:
        if keyword.arg in filled or (keyword.arg not in by_keyword and VAR_KEYWORD not in kinds):
            return False
        filled.add(keyword.arg)  # type: ignore[arg-type]
    return all(p.name in filled for p in params if p.default is None and p.kind not in _VARIADIC)


_VARIADIC = (VAR_POSITIONAL, VAR_KEYWORD)


def _calls_fit(text: str, symbol: str, signature: Signature) -> bool | None:
    """Whether every use of ``symbol`` in a module's text is a call the new ``signature``
    accepts (None: no use at all). A use that is not a call (a reference handed on) may be
    called with anything: it does not fit."""
    short = symbol.rpartition(".")[2]
    if not re.search(rf"\b{re.escape(short)}\b", text):
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    called: set[int] = set()
    fits = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Name) and func.id == short) or (
                isinstance(func, ast.Attribute) and func.attr == short
            ):
                if not _binds(node, signature):
                    return False
                called.add(id(func))
                fits = True
    for node in ast.walk(tree):
        mention = (isinstance(node, ast.Name) and node.id == short) or (
            isinstance(node, ast.Attribute) and node.attr == short
        )
        if mention and isinstance(node.ctx, ast.Load) and id(node) not in called:  # type: ignore[attr-defined]
            return False
    return fits


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
    # A module of a private package or a private module (``pkg._impl``) has no public names.
    private = any(p.startswith("_") and not p.startswith("__") for p in name.split("."))
    findings = [f for f in _diff.check(old, new) if (f.public and not private) or f.reloadable]
    removals = [f for f in findings if f.new == "(removed)" and not f.reloadable]
    if removals:
        sources = list(texts())
        for finding in removals:
            if not any(_mentions(text, name, finding.symbol) for text in sources):
                findings.remove(finding)  # nothing under the watched code uses it any more
    signatures = [f for f in findings if "parameter" in f.reason and not f.reloadable]
    if signatures:
        sources = list(texts())
        for finding in signatures:
            after = new.get(finding.symbol)
            signature = None if after is None else after.signature
            if signature is None:
                continue
            fit = [_calls_fit(text, finding.symbol, signature) for text in sources]
            # The callers the project has were changed with it and pass what the new version
            # takes. With no caller at all the finding stands: the callers are elsewhere (a
            # framework, another program), and the change may break them.
            if True in fit and False not in fit:
                findings.remove(finding)
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
