"""Walking syntax trees: :func:`ast.walk`'s nodes, found without its generators (pure).

Reading a statement walks its tree several times (what it loads, what it mutates, whether a
function yields), and :func:`ast.walk` spends most of that time in its two nested
generators per node: a module read for the first time (imported before hotswap) pays it for
every statement.
"""

from __future__ import annotations

import ast

__all__ = ("children", "walk")


def children(node: ast.AST) -> list[ast.AST]:
    """The nodes :func:`ast.iter_child_nodes` yields, in its order."""
    found: list[ast.AST] = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            found.append(value)
        elif isinstance(value, list):
            found += [item for item in value if isinstance(item, ast.AST)]
    return found


def walk(node: ast.AST) -> list[ast.AST]:
    """Every node :func:`ast.walk` yields (``node`` and all below it), in another order."""
    found: list[ast.AST] = []
    stack = [node]
    while stack:
        current = stack.pop()
        found.append(current)
        for name in current._fields:
            value = getattr(current, name, None)
            if isinstance(value, ast.AST):
                stack.append(value)
            elif isinstance(value, list):
                stack += [item for item in value if isinstance(item, ast.AST)]
    return found
