"""The AST diff and the compatibility rules (DESIGN §6), pure: no live objects."""

from __future__ import annotations

import ast
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotswap._plan import diff as _diff
from hotswap._plan import symbols as _symbols


def symbols(source: str) -> dict[str, _diff.Symbol]:
    source = textwrap.dedent(source)
    return _symbols.module_symbols(source, compile(source, "<test>", "exec", dont_inherit=True))


def reasons(old: str, new: str) -> list[str]:
    return [f.reason for f in _diff.check(symbols(old), symbols(new))]


# (old source, new source, the reasons expected; [] means compatible)
RULES = [
    # bodies, docstrings, defaults and annotations may change
    ("def f(a): return 1", "def f(a): return 2", []),
    ("def f(a):\n    'doc'", "def f(a):\n    'other doc'", []),
    ("def f(a=1): pass", "def f(a=2): pass", []),
    ("def f(a: int) -> int: pass", "def f(a: str) -> str: pass", []),
    # optional parameters may be added
    ("def f(a): pass", "def f(a, b=1): pass", []),
    ("def f(a): pass", "def f(a, *, b=1): pass", []),
    ("def f(a): pass", "def f(a, *args, **kwargs): pass", []),
    ("def f(a, b): pass", "def f(a, b=2): pass", []),
    # removed, renamed, reordered
    ("def f(a, b): pass", "def f(a): pass", ["parameter 'b' removed"]),
    ("def f(a, b): pass", "def f(a, c): pass", ["parameter 'b' renamed to 'c'"]),
    ("def f(a, b): pass", "def f(b, a): pass", ["positional parameters reordered (a, b -> b, a)"]),
    ("def f(*, k): pass", "def f(): pass", ["parameter 'k' removed"]),
    # required parameters added
    ("def f(a): pass", "def f(a, b): pass", ["required parameter 'b' added"]),
    ("def f(a): pass", "def f(a, *, k): pass", ["required keyword-only parameter 'k' added"]),
    ("def f(a=1): pass", "def f(a): pass", ["parameter 'a' no longer has a default"]),
    # *args / **kwargs dropped
    ("def f(*args): pass", "def f(): pass", ["*args dropped"]),
    ("def f(**kwargs): pass", "def f(): pass", ["**kwargs dropped"]),
    # positional-only / keyword-only changes that break calls
    ("def f(a): pass", "def f(*, a): pass", ["parameter 'a' became keyword-only"]),
    ("def f(a): pass", "def f(a, /): pass", ["parameter 'a' became positional-only"]),
    ("def f(a, /): pass", "def f(b, /): pass", []),  # positional-only names are free
    ("def f(a, /): pass", "def f(a): pass", []),  # and may become keyword-capable
    ("def f(a, /): pass", "def f(): pass", ["positional parameter 'a' removed"]),
    ("def f(*, a): pass", "def f(a): pass", []),
    # call kinds
    ("def f(): pass", "async def f(): pass", ["was a function, now a coroutine function"]),
    ("async def f(): pass", "def f(): pass", ["was a coroutine function, now a function"]),
    ("def f(): return 1", "def f(): yield 1", ["was a function, now a generator function"]),
    (
        "async def f(): yield 1",
        "async def f(): return 1",
        ["was an async generator function, now a coroutine function"],
    ),
    ("def f():\n    def g(): yield 1\n    return g", "def f(): return 1", []),
    # removals of public names
    ("def f(): pass", "", ["function removed"]),
    ("class C: pass", "", ["class removed"]),
    ("class C:\n    def m(self): pass", "class C: pass", ["method removed"]),
    ("def _private(): pass", "", ["function removed"]),  # found; the policy ignores it
    ("X = 1", "", []),  # a constant is not a callable interface
    # methods: self is implicit, dunders are public
    ("class C:\n    def m(self, a): pass", "class C:\n    def m(this, a): pass", []),
    (
        "class C:\n    def __init__(self, a): pass",
        "class C:\n    def __init__(self): pass",
        ["parameter 'a' removed"],
    ),
    (
        "class C:\n    @staticmethod\n    def s(a): pass",
        "class C:\n    @staticmethod\n    def s(): pass",
        ["parameter 'a' removed"],
    ),
    (
        "class C:\n    @classmethod\n    def c(cls, a): pass",
        "class C:\n    @classmethod\n    def c(cls): pass",
        ["parameter 'a' removed"],
    ),
    (
        "class C:\n    @staticmethod\n    def s(): pass",
        "class C:\n    def s(self): pass",
        ["was a staticmethod, now a method"],
    ),
    ("def f(): pass", "class f: pass", ["was a function, now a class"]),
    ("def f(): pass", "f = 1", ["was a function, now a plain name"]),
    # a definition that is one of several alternatives (boltons 24.0.0's ``total_ordering``,
    # an import with a fallback ``def`` for old Pythons) is whatever ran: a plain name
    (
        "try:\n    from functools import total_ordering\nexcept ImportError:\n"
        "    def total_ordering(cls): pass",
        "from functools import total_ordering",
        [],
    ),
    ("if X:\n    f = len\nelse:\n    def f(a): pass", "f = 1", []),
    # ...but a definition bound on its own in a conditional is still a function
    ("if X:\n    def f(a): pass", "f = 1", ["was a function, now a plain name"]),
    (
        "try:\n    import json\n    def f(a): pass\nexcept ImportError:\n    pass",
        "f = 1",
        ["was a function, now a plain name"],
    ),
    # properties
    (
        "class C:\n    @property\n    def p(self): pass\n    @p.setter\n    def p(self, v): pass",
        "class C:\n    @property\n    def p(self): pass",
        ["property no longer has a setter"],
    ),
    (
        "class C:\n    @property\n    def p(self): return 1",
        "class C:\n    @property\n    def p(self): return 2",
        [],
    ),
    # nested classes
    (
        "class A:\n    class B:\n        def m(self, x): pass",
        "class A:\n    class B:\n        def m(self): pass",
        ["parameter 'x' removed"],
    ),
    # a removed class is reported once, not once per method
    ("class C:\n    def a(self): pass\n    def b(self): pass", "", ["class removed"]),
]


@pytest.mark.parametrize(("old", "new", "expected"), RULES)
def test_check_rule(old, new, expected):
    assert reasons(old, new) == expected


def test_check_finding_carries_symbol_signatures_line_and_visibility():
    old = "def charge(amount, currency='EUR'):\n    pass\n"
    new = "\n\ndef charge(amount):\n    pass\n"
    (finding,) = _diff.check(symbols(old), symbols(new))
    assert finding.symbol == "charge"
    assert finding.old == "charge(amount, currency='EUR')"
    assert finding.new == "charge(amount)"
    assert finding.lineno == 3
    assert finding.public
    text = finding.format("shop (shop.py:3)")
    assert text == (
        "shop (shop.py:3): charge(amount, currency='EUR') -> charge(amount): "
        "parameter 'currency' removed"
    )


def test_check_reloadable_members_are_held_to_the_checks():
    old = "@reloadable\nclass _C:\n    def _m(self, a): pass\n"
    new = "@reloadable\nclass _C:\n    def _m(self): pass\n"
    (finding,) = _diff.check(symbols(old), symbols(new))
    assert not finding.public
    assert finding.reloadable


def test_check_reloadable_function_removed():
    (finding,) = _diff.check(symbols("@reloadable\ndef _f(): pass"), symbols(""))
    assert finding.reloadable
    assert finding.reason == "reloadable function removed"


@pytest.mark.parametrize(
    ("name", "public"),
    [("f", True), ("_f", False), ("__init__", True), ("C.__eq__", True), ("_C.m", False)],
)
def test_is_public(name, public):
    assert _diff.is_public(name) is public


def test_signature_format():
    (sig,) = [
        s.signature for s in symbols("async def f(a, /, b=1, *c, d, e=2, **f): pass").values()
    ]
    assert sig is not None
    assert sig.format("f") == "async f(a, /, b=1, *c, d, e=2, **f)"
    (sig,) = [s.signature for s in symbols("def g(a, *, k): pass").values()]
    assert sig is not None
    assert sig.format("g") == "g(a, *, k)"


# --- the change set -----------------------------------------------------------------------------


def changes(old: str, new: str) -> _diff.ChangeSet:
    return _diff.diff(symbols(old), symbols(new))


def test_diff_names_added_changed_removed_with_lines():
    old = "X = 1\ndef f(): return 1\ndef gone(): pass\nclass C:\n    def m(self): pass\n"
    new = "X = 1\ndef f(): return 2\nclass C:\n    def m(self): pass\n    def n(self): pass\n"
    result = changes(old, new)
    assert result.added == ("C.n",)
    assert result.changed == ("f",)
    assert result.removed == ("gone",)
    assert result.lines["C.n"] == 5
    assert result.lines["gone"] == 3


def test_diff_ignores_moves_formatting_and_comments():
    old = "def a():\n    return 1\n\ndef b(x):\n    return x\n"
    new = "# header\n\ndef b( x ):\n    return (x)  # same\n\n\ndef a():\n    return 1\n"
    assert not changes(old, new)


def test_diff_decorated_definition_changes_with_its_decorator():
    old = "def deco(f):\n    return f\n\n@deco\ndef g(): pass\n"
    new = "def deco(f):\n    print(f)\n    return f\n\n@deco\ndef g(): pass\n"
    assert changes(old, new).changed == ("deco", "g")


def test_diff_dependencies_are_transitive_and_cover_defaults_and_bases():
    old = "A = 1\nB = A + 1\ndef f(x=B): pass\nclass K(dict if B else list): pass\n"
    new = old.replace("A = 1", "A = 2")
    assert changes(old, new).changed == ("A", "B", "f", "K")


def test_diff_call_time_references_are_not_dependencies():
    old = "A = 1\ndef f():\n    return A\n"
    new = old.replace("A = 1", "A = 2")
    assert changes(old, new).changed == ("A",)


def test_diff_annotations_are_dependencies_unless_postponed():
    old = "T = int\ndef f(x: T): pass\n"
    new = old.replace("T = int", "T = str")
    assert changes(old, new).changed == ("T", "f")
    future = "from __future__ import annotations\n"
    assert changes(future + old, future + new).changed == ("T",)


def test_diff_conditional_definitions_are_symbols():
    old = (
        "try:\n    import json\nexcept ImportError:\n    json = None\nif True:\n    def f(): pass\n"
    )
    found = symbols(old)
    assert {"json", "f"} <= found.keys()


def test_diff_unknown_old_definitions_are_left_to_object_comparison():
    new = symbols("def f(): pass")
    old = {"f": _symbols.Symbol("f", _symbols.FUNCTION, 1, None)}
    result = _diff.diff(old, new)
    assert result.unknown == ("f",)
    assert result.is_changed("f") is None


# --- properties ---------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "c", "helper", "_private", "Thing"])


@st.composite
def modules(draw: st.DrawFn) -> str:
    """Small random modules: functions, classes with methods, constants."""
    lines: list[str] = []
    for name in draw(st.lists(NAMES, unique=True, max_size=5)):
        kind = draw(st.sampled_from(["def", "async", "class", "const", "gen"]))
        params = ", ".join(draw(st.lists(st.sampled_from(["x", "y", "z=1"]), unique=True)))
        params = ", ".join(sorted(params.split(", "), key=lambda p: "=" in p)) if params else ""
        body = draw(st.integers(0, 3))
        if kind == "def":
            lines.append(f"def {name}({params}):\n    return {body}\n")
        elif kind == "async":
            lines.append(f"async def {name}({params}):\n    return {body}\n")
        elif kind == "gen":
            lines.append(f"def {name}({params}):\n    yield {body}\n")
        elif kind == "class":
            methods = draw(st.lists(st.sampled_from(["m", "n", "__init__"]), unique=True))
            members = "".join(
                f"    def {m}(self, {params}):\n        return {body}\n" for m in methods
            )
            lines.append(f"class {name}:\n{members or '    pass'}\n")
        else:
            lines.append(f"{name} = {body}\n")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None)
@given(modules())
def test_property_diff_of_a_module_with_itself_is_empty(source):
    table = symbols(source)
    assert not _diff.diff(table, table)
    assert _diff.check(table, table) == []


@settings(max_examples=150, deadline=None)
@given(modules(), modules())
def test_property_diff_reversed_swaps_added_and_removed(a, b):
    forward = _diff.diff(symbols(a), symbols(b))
    backward = _diff.diff(symbols(b), symbols(a))
    assert set(forward.added) == set(backward.removed)
    assert set(forward.removed) == set(backward.added)
    assert set(forward.changed) == set(backward.changed)


@settings(max_examples=150, deadline=None)
@given(modules())
def test_property_reformatting_through_unparse_is_no_change(source):
    reformatted = ast.unparse(ast.parse(source))
    assert not _diff.diff(symbols(source), symbols(reformatted))


# --- statement splitting and the per-statement cache ----------------------------------------------

TRICKY = [
    "@deco\n# note\n@other(1)\ndef f():\n    pass\n",
    "if X:\n    a = 1\nelif Y:\n    a = 2\nelse:\n    a = 3\n",
    "try:\n    import json\nexcept ImportError:\n    json = None\nfinally:\n    pass\n",
    "x = [\n1,\n2,\n]\ny = (\n    3\n)\n",
    "total = 1 + \\\n2\n",
    'doc = """\ndef looks_like_code():\n    pass\n"""\n',
    "a = 1; b = 2\n",
    "class C:\n    def m(self):\n        return '''\nnot = code\n'''\n",
    "elsewhere = 1\nexcepted = 2\n",
]


def table(symbols_: _symbols.Symbols) -> dict[str, tuple[object, ...]]:
    return {
        name: (s.kind, s.fingerprint, s.signature, s.deps, symbols_.line(name))
        for name, s in symbols_.items()
    }


@pytest.mark.parametrize("source", TRICKY)
def test_split_statements_agrees_with_a_full_parse(source):
    code = compile(source, "<test>", "exec", dont_inherit=True)
    chunked = _symbols.module_symbols(source, code)
    parsed = _symbols.module_symbols(source, code, tree=ast.parse(source))
    assert table(chunked) == table(parsed)


def test_split_statements_names_first_lines():
    chunks = _symbols.split_statements("import os\n\n@d\ndef f():\n    pass\n# trailing\n")
    assert chunks == [(1, "import os"), (3, "@d\ndef f():\n    pass")]


def test_cache_reuses_unchanged_statements_and_moves_their_lines():
    old_source = "def a():\n    return 1\n\ndef b():\n    return 2\n"
    new_source = "X = 0\n\n\n" + old_source.replace("return 2", "return 3")
    old = symbols(old_source)
    code = compile(new_source, "<test>", "exec", dont_inherit=True)
    new = _symbols.module_symbols(new_source, code, old)
    assert new["a"] is old["a"]
    assert new["b"] is not old["b"]
    assert new.line("a") == 4
    assert table(new) == table(_symbols.module_symbols(new_source, code))
    assert _diff.diff(old, new).changed == ("b",)


@settings(max_examples=150, deadline=None)
@given(modules(), modules())
def test_property_cached_symbols_equal_fresh_ones(a, b):
    code = compile(b, "<test>", "exec", dont_inherit=True)
    fresh = _symbols.module_symbols(b, code)
    cached = _symbols.module_symbols(b, code, symbols(a))
    assert table(cached) == table(fresh)
    assert table(fresh) == table(_symbols.module_symbols(b, code, tree=ast.parse(b)))
