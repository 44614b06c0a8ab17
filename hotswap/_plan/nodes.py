"""Walking syntax trees, and their digests (pure).

Reading a statement walks its tree several times (what it loads, what it mutates, whether a
function yields) and shapes its definitions for their digests: a module read for the first
time (imported before hotswap) pays it for every statement. :func:`walk` finds
:func:`ast.walk`'s nodes without its two nested generators per node, and a class's digests
reuse its methods' shapes.
"""

from __future__ import annotations

import ast
import hashlib

__all__ = ("children", "digest", "forget_shapes", "node_digest", "walk")


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


def digest(*nodes: ast.AST) -> str:
    """The digest of AST nodes, ignoring positions."""
    # The shapes leave out line and column attributes, and the AST has no comments or layout,
    # so moving, reformatting or commenting a definition keeps its digest.
    if len(nodes) == 1:
        # A statement's digest is asked twice in a row (its symbol's fingerprint, then its
        # Info's), and the shape is the costliest part of reading a statement.
        last = _last_digest
        if last is not None and last[0] is nodes[0]:
            return last[1]
    text = repr([_shape_of(node) for node in nodes])
    found = hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=16).hexdigest()
    if len(nodes) == 1:
        _remember(nodes[0], found)
    return found


_last_digest: tuple[ast.AST, str] | None = None


def _shape(node: object) -> object:
    """``node`` as nested tuples of its class name and field values, without positions: two
    nodes have equal shapes exactly when :func:`ast.dump` prints them alike. (As fast as
    ``ast.dump``, which leaves a reference cycle behind at every call, its inner function: a
    rewritten module's thousands of digests filled the collector's young generation.)"""
    if isinstance(node, ast.AST):
        return (type(node).__name__, *[_shape(getattr(node, f, None)) for f in node._fields])
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return node  # a constant, an identifier or None: told apart by their repr, as dump does


# The shapes of the definitions of the statement being read, by id (with the node, so an id
# reused by another node never matches): a method is shaped for its own fingerprint, then
# again inside its class's digest and, for ``__init__``, the class's construction digest.
_shapes: dict[int, tuple[ast.AST, object]] = {}
_DEFINITIONS = frozenset({ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef})
_SHAPES_KEPT = 256


def forget_shapes() -> None:
    """Drop the remembered shapes (each statement's reading starts afresh: no tree is kept)."""
    _shapes.clear()


def _shape_of(node: ast.AST) -> object:
    """:func:`_shape` of ``node``, remembered for a definition and reused for those in a
    class's body."""
    kind = type(node)
    if kind not in _DEFINITIONS:
        return _shape(node)
    found = _shapes.get(id(node))
    if found is not None and found[0] is node:
        return found[1]
    if kind is ast.ClassDef:
        parts: list[object] = [kind.__name__]
        for name in node._fields:
            value = getattr(node, name, None)
            if name == "body" and type(value) is list:
                parts.append([_shape_of(item) for item in value])
            else:
                parts.append(_shape(value))
        shape: object = tuple(parts)
    else:
        shape = _shape(node)
    if len(_shapes) >= _SHAPES_KEPT:
        _shapes.clear()  # (a whole module read by other callers: no trees kept for long)
    _shapes[id(node)] = (node, shape)
    return shape


def _remember(node: ast.AST, digest: str) -> None:
    global _last_digest
    _last_digest = (node, digest)


def node_digest(*nodes: ast.AST | None) -> str:
    """The digest of AST nodes, ignoring positions (None entries are left out)."""
    return digest(*(n for n in nodes if n is not None))
