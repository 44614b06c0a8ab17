"""Reading a statement faster finds what it found before: the tree walks find what :mod:`ast`'s
own walks find, and a statement read with its text has the symbols it has without."""

from __future__ import annotations

import ast
import collections
import hashlib
from pathlib import Path

import pytest

import hotswap
from hotswap._plan import nodes as _nodes
from hotswap._plan.analysis import analyse
from hotswap._plan.nodes import children, walk

SOURCES = sorted(Path(hotswap.__file__).parent.rglob("*.py")) + sorted(
    Path(ast.__file__).parent.glob("[a-d]*.py")
)


@pytest.mark.parametrize("path", SOURCES[::7], ids=lambda p: p.name)
def test_walk_finds_every_node_ast_walk_finds(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for statement in tree.body:
        found = collections.Counter(map(id, walk(statement)))
        expected = collections.Counter(map(id, ast.walk(statement)))
        assert found == expected


def test_children_are_ast_child_nodes_in_order():
    tree = ast.parse(
        "@deco(1)\nasync def f(a, /, b=2, *c, d: int = 3, **e) -> int:\n"
        "    match a:\n        case [x, *_] if x: return {k: v for k, v in b}\n"
        "    return (yield from c)\nx = lambda q=1: q; del x[1:2]\n"
    )
    for node in ast.walk(tree):
        assert children(node) == list(ast.iter_child_nodes(node))


def test_a_statement_read_with_its_text_finds_generators_as_without():
    sources = [
        "def f():\n    yield 1\n",
        "def f():\n    x = yield\n    return x\n",
        "async def f():\n    yield 1\n",
        "async def f():\n    return 1\n",
        "def f():\n    def g():\n        yield 1\n    return g\n",
        "class C:\n    def m(self):\n        yield from ()\n\n    def n(self):\n        return 1\n",
        "def f():\n    return 'yield'\n",
    ]
    for source in sources:
        node = ast.parse(source).body[0]
        with_text = analyse(node, 0, 1, source)
        without = analyse(node, 0, 1)
        assert with_text.symbols == without.symbols, source


def _plain_digest(*nodes: ast.AST) -> str:
    text = repr([_nodes._shape(node) for node in nodes])
    return hashlib.blake2b(text.encode(errors="surrogatepass"), digest_size=16).hexdigest()


@pytest.mark.parametrize("path", SOURCES[::9], ids=lambda p: p.name)
def test_digests_of_classes_reusing_their_methods_shapes_are_the_plain_ones(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        info = analyse(node, 0, 1)  # (its methods' shapes remembered while it is read)
        assert info.digest == _plain_digest(node)
        if isinstance(node, ast.ClassDef):
            methods = [s for s in node.body if isinstance(s, ast.FunctionDef)]
            assert _nodes.node_digest(node, *methods) == _plain_digest(node, *methods)
