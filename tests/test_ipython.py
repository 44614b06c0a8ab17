"""The IPython extension through a real InteractiveShell: the scenarios of IPython's own
autoreload tests (functions, classes, methods, properties, enums, ``from m import x``,
``import *``, removed names, syntax errors), each applied by ``%load_ext hotswap``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hotswap
from hotswap._watch import pending as _pending


def run(shell, code):
    """Run a cell as a user would; its last expression's value, or the error it raised."""
    result = shell.run_cell(code)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


SMOKE_V1 = """
x = 9
z = 123

def foo(y):
    return y + 3

class Baz:
    def __init__(self, x):
        self.x = x
    def bar(self, y):
        return self.x + y
    @property
    def quux(self):
        return 42
    def zzz(self):
        return 99
"""

SMOKE_V2 = """
x = 10

def foo(y):
    return y + 4

class Baz:
    def __init__(self, x):
        self.x = x
    def bar(self, y):
        return self.x + y + 1
    @property
    def quux(self):
        return 43
"""


def test_ipython_function_edit_applies_before_the_next_cell(shell, project):
    project.write("shop", "def price():\n    return 1\n")
    run(shell, "from shop import price")
    assert run(shell, "price()") == 1
    project.write("shop", "def price():\n    return 2\n")
    assert run(shell, "price()") == 2


def test_ipython_module_contents_follow_edits_and_removals(shell, project, capsys):
    project.write("smoke", SMOKE_V1)
    run(shell, "import smoke; old_foo = smoke.foo; old_obj = smoke.Baz(9)")
    assert run(shell, "(smoke.x, old_foo(0), old_obj.bar(1), old_obj.quux, old_obj.zzz())") == (
        9,
        3,
        10,
        42,
        99,
    )
    # Removing the public method zzz breaks a caller: strict rejects it, with one line. (A
    # removal nothing under the project uses any more would be accepted.)
    project.write("caller", "def use(baz):\n    return baz.zzz()\n")
    run(shell, "import caller")
    project.write("smoke", SMOKE_V2)
    assert run(shell, "smoke.x") == 9
    assert "Baz.zzz" in capsys.readouterr().err
    run(shell, "%hotswap policy off")
    project.write("smoke", SMOKE_V2 + "\n")
    assert run(shell, "(smoke.x, old_foo(0), old_obj.bar(1), old_obj.quux)") == (10, 4, 11, 43)
    assert run(shell, "hasattr(smoke, 'z'), hasattr(old_obj, 'zzz')") == (False, False)
    assert run(shell, "smoke.Baz(9).bar(1)") == 11


def test_ipython_deleted_file_keeps_the_code(shell, project):
    path = project.write("gone", "def f():\n    return 'kept'\n")
    run(shell, "from gone import f")
    path.unlink()
    assert run(shell, "f()") == "kept"


def test_ipython_syntax_error_prints_one_line_once_and_the_cell_runs(shell, project, capsys):
    project.write("calc", "def double(n):\n    return 2 * n\n")
    run(shell, "from calc import double")
    project.write("calc", "def double(n):\n    return 2 * n +\n")
    assert run(shell, "double(2)") == 4
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "calc.py:2" in lines[0]
    assert "invalid syntax" in lines[0]
    assert run(shell, "double(3)") == 6
    assert capsys.readouterr().err == ""  # the same content is not reported again
    project.write("calc", "def double(n):\n    return n + n + 0\n")
    assert run(shell, "double(5)") == 10
    project.write("calc", "def double(n):\n    return 2 * n +\n")  # the same bad content again
    run(shell, "double(1)")
    assert capsys.readouterr().err.count("invalid syntax") == 1


def test_ipython_class_edit_reaches_existing_instances(shell, project):
    project.write("shapes", "class Test:\n    def meth(self):\n        return 'old'\n")
    run(shell, "from shapes import Test; test = Test()")
    project.write("shapes", "class Test:\n    def meth(self):\n        return 'new'\n")
    assert run(shell, "test.meth()") == "new"
    assert run(shell, "isinstance(test, Test) and type(test) is Test") is True
    run(shell, "import pickle; assert pickle.loads(pickle.dumps(test)).meth() == 'new'")


def test_ipython_class_attributes_and_added_methods(shell, project):
    project.write(
        "my",
        """
        class MyClass:
            def __init__(self, a=10):
                self.a = a
                self.b = 22

            def square(self):
                return self.a * self.a
        """,
    )
    run(shell, "from my import MyClass; first = MyClass(5)")
    with pytest.raises(AttributeError):
        run(shell, "first.power(5)")
    run(shell, "%hotswap policy off")
    project.write(
        "my",
        """
        class MyClass:
            def __init__(self, a=10):
                self.a = a
                self.b = 11

            def power(self, p):
                return self.a ** p
        """,
    )
    run(shell, "second = MyClass(5)")
    for name in ("first", "second"):
        assert run(shell, f"{name}.power(2)") == 25
        with pytest.raises(AttributeError):
            run(shell, f"{name}.square()")
    assert run(shell, "first.b, second.b") == (22, 11)


def test_ipython_property_edit(shell, project):
    project.write("prop", "class P:\n    @property\n    def v(self):\n        return 1\n")
    run(shell, "from prop import P; p = P()")
    project.write("prop", "class P:\n    @property\n    def v(self):\n        return 2\n")
    assert run(shell, "p.v") == 2


def test_ipython_enum_edit_rebinds_the_shell_name(shell, project):
    project.write("colors", "import enum\nclass Color(enum.Enum):\n    RED = 1\n")
    run(shell, "from colors import Color")
    project.write("colors", "import enum\nclass Color(enum.Enum):\n    RED = 1\n    BLUE = 2\n")
    assert run(shell, "Color.BLUE.value") == 2
    assert run(shell, "import colors; Color is colors.Color") is True


def test_ipython_from_import_constant_follows_unless_rebound(shell, project):
    project.write("cfg", "RATE = 1\nLIMIT = 5\n")
    run(shell, "from cfg import RATE, LIMIT as limit")
    run(shell, "RATE = 100")  # the user's value from now on
    project.write("cfg", "RATE = 2\nLIMIT = 6\n")
    assert run(shell, "RATE, limit") == (100, 6)


def test_ipython_import_as_follows_the_module(shell, project):
    project.write("tools", "def f():\n    return 'old'\n")
    run(shell, "import tools as t")
    project.write("tools", "def f():\n    return 'new'\n")
    assert run(shell, "t.f()") == "new"


def test_ipython_star_import_gains_new_names(shell, project):
    project.write("star", "def func1():\n    return 1\n")
    run(shell, "from star import *")
    with pytest.raises(NameError):
        run(shell, "func2()")
    project.write(
        "star",
        """
        import enum
        def func1():
            return 1
        def func2():
            return 2
        class Test:
            pass
        number = 0
        class TestEnum(enum.Enum):
            A = "a"
        """,
    )
    assert run(shell, "func2(), number, TestEnum.A.value, type(Test()).__name__") == (
        2,
        0,
        "a",
        "Test",
    )
    project.write(
        "star",
        """
        import enum
        def func1():
            return "changed"
        def func2():
            return "changed"
        class Test:
            def new_func(self):
                return "changed"
        number = 1
        class TestEnum(enum.Enum):
            A = "a"
            B = "added"
        """,
    )
    assert run(shell, "func1(), func2(), Test().new_func(), number, TestEnum.B.value") == (
        "changed",
        "changed",
        "changed",
        1,
        "added",
    )


def test_ipython_star_import_of_another_module(shell, project):
    project.write("ext", "def ext_func():\n    return 'ext'\next_int = 2\n")
    project.write("front", "def own():\n    return 1\n")
    run(shell, "from front import *")
    project.write("front", "from ext import *\ndef own():\n    return 1\n")
    assert run(shell, "ext_func(), ext_int") == ("ext", 2)


def test_ipython_removed_name_leaves_the_shell(shell, project):
    project.write("rm", "def keep():\n    return 1\ndef legacy():\n    return 2\n")
    run(shell, "from rm import keep, legacy")
    run(shell, "%hotswap policy off")
    project.write("rm", "def keep():\n    return 1\n")
    assert run(shell, "'legacy' in dir()") is False
    assert run(shell, "keep()") == 1


def test_ipython_importers_follow_in_dependency_order(shell, project):
    project.write("rates", "RATE = 2\n")
    project.write("prices", "from rates import RATE\ndef price(n):\n    return n * RATE\n")
    run(shell, "from prices import price")
    assert run(shell, "price(10)") == 20
    # The pre-cell look alone, so that its order is what is tested (the watcher applies the
    # two saves as their events come, and importers following then is the core's business).
    hotswap.disable()
    project.write("rates", "RATE = 3\n")
    project.write("prices", "from rates import RATE\ndef price(n):\n    return n * RATE + 1\n")
    assert run(shell, "price(10)") == 31


def test_ipython_status_table_lists_versions_changes_and_errors(shell, project, capsys):
    project.write("shop", "def price():\n    return 1\n")
    run(shell, "import shop")
    project.write("shop", "def price():\n    return 2\n")
    run(shell, "pass")
    project.write("shop", "def price(:\n    return 3\n")
    run(shell, "pass")
    capsys.readouterr()
    run(shell, "%hotswap")
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("hotswap on, watching")
    assert table[1].split() == ["module", "version", "last", "change", "last", "error"]
    # The watcher may also have seen the first write (made as it started): read the version.
    version = hotswap.status().modules["shop"].version
    assert table[2].split()[:3] == ["shop", f"v{version}", "~price"]
    assert "shop.py:1" in table[2]


def test_ipython_rollback_sticks_until_the_next_save(shell, project):
    project.write("shop", "def price():\n    return 1\n")
    run(shell, "from shop import price")
    project.write("shop", "def price():\n    return 2\n")
    assert run(shell, "price()") == 2
    run(shell, "%hotswap rollback shop 1")
    assert run(shell, "price()") == 1
    assert run(shell, "price()") == 1
    project.write("shop", "def price():\n    return 3\n")
    assert run(shell, "price()") == 3


def test_ipython_off_and_on(shell, project):
    project.write("shop", "def price():\n    return 1\n")
    run(shell, "from shop import price")
    run(shell, "%hotswap off")
    assert not hotswap.status().watching
    project.write("shop", "def price():\n    return 2\n")
    assert run(shell, "price()") == 1
    run(shell, "%hotswap on")
    assert run(shell, "price()") == 2


def test_ipython_reset_runs_the_whole_module_again(shell, project, capsys):
    project.write("counter", "COUNT = []\ndef add():\n    COUNT.append(1)\n    return len(COUNT)\n")
    run(shell, "import counter; counter.add(); counter.add()")
    run(shell, "%hotswap reset counter")
    version = hotswap.status().modules["counter"].version
    assert f"counter: v{version} reset" in capsys.readouterr().out
    assert run(shell, "counter.add()") == 1


def test_ipython_policy_magic_and_usage(shell, project, capsys):
    run(shell, "%hotswap policy warn")
    assert hotswap.configure().policy == "warn"
    run(shell, "%hotswap policy nonsense")
    assert "usage:" in capsys.readouterr().err
    assert hotswap.configure().policy == "warn"


def test_ipython_unload_stops_everything(shell, project):
    project.write("shop", "def price():\n    return 1\n")
    run(shell, "from shop import price")
    run(shell, "%unload_ext hotswap")
    assert not hotswap.status().watching
    project.write("shop", "def price():\n    return 2\n")
    assert run(shell, "price()") == 1
    assert "hotswap" not in shell.magics_manager.magics["line"]


def test_ipython_load_twice_is_one_extension(shell, project, capsys):
    run(shell, "%reload_ext hotswap")
    project.write("calc", "def f():\n    return 1\n")
    run(shell, "from calc import f")
    project.write("calc", "def f(:\n    return 1\n")
    run(shell, "f()")
    assert capsys.readouterr().err.count("invalid syntax") == 1


def test_import_hotswap_does_not_import_ipython():
    code = "import sys, hotswap; print('IPython' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_pending_ignores_touches_and_orders_importers_last(project):
    a = project.write("alpha", "A = 1\n")
    project.write("beta", "from alpha import A\nB = A\n")
    project.load("beta", "from alpha import A\nB = A\n")
    pending = _pending.Pending([str(project.root)])
    pending.learn()
    assert pending.changes() == []
    data = a.read_bytes()
    a.write_bytes(data)  # saved without a change
    assert pending.changes() == []
    project.write("beta", "from alpha import A\nB = A + 1\n")
    project.write("alpha", "A = 2\n")
    assert [c.module for c in pending.changes()] == ["alpha", "beta"]
    assert pending.changes() == []


def test_ipython_applies_saves_before_the_cell_without_the_watcher(shell, project):
    project.write("cfg", "RATE = 1\ndef rate():\n    return RATE\n")
    run(shell, "from cfg import RATE, rate")
    hotswap.disable()  # only the pre-cell look remains
    for value in range(2, 6):
        project.write("cfg", f"RATE = {value}\ndef rate():\n    return RATE\n")
        assert run(shell, "RATE, rate()") == (value, value)


def _changes_importing(imports, order):
    return [
        _pending.Change(
            f"hs_order_{i}",
            f"/nowhere/hs_order_{i}.py",
            str(i),
            "".join(f"import hs_order_{j}\n" for j in sorted(imports.get(i, ()))).encode(),
        )
        for i in order
    ]


@given(
    st.integers(min_value=1, max_value=8).flatmap(
        lambda n: st.tuples(
            st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))),
            st.permutations(range(n)),
        )
    )
)
def test_pending_dependency_order_puts_imports_first(case):
    pairs, given_order = case
    edges = {(a, j) for a, j in pairs if a > j}  # module a imports module j: no cycles
    imports = {a: {j for b, j in edges if b == a} for a, _ in edges}
    changes = _changes_importing(imports, given_order)
    ordered = [c.module for c in _pending.dependency_order(changes)]
    assert sorted(ordered) == sorted(c.module for c in changes)
    position = {name: index for index, name in enumerate(ordered)}
    for a, j in edges:
        assert position[f"hs_order_{j}"] < position[f"hs_order_{a}"]


def test_pending_dependency_order_survives_a_cycle():
    changes = _changes_importing({0: {1}, 1: {2}, 2: {0}}, [2, 0, 1])
    ordered = [c.module for c in _pending.dependency_order(changes)]
    assert sorted(ordered) == ["hs_order_0", "hs_order_1", "hs_order_2"]


def test_ipython_status_table_forgets_an_error_once_saved_back(shell, project, capsys):
    # Issue 24.7: saved back to the code that runs, the module has no error any more.
    project.write("shop", "def price():\n    return 1\n")
    run(shell, "import shop")
    project.write("shop", "def price(:\n    return 3\n")
    run(shell, "pass")
    capsys.readouterr()
    run(shell, "%hotswap")
    assert "invalid syntax" in capsys.readouterr().out
    project.write("shop", "def price():\n    return 1\n")  # the live code, as it was
    assert run(shell, "shop.price()") == 1
    capsys.readouterr()
    run(shell, "%hotswap")
    table = capsys.readouterr().out
    assert "invalid syntax" not in table, table
