"""A whole-module rewrite runs the new text as it is, compiled once (issue 26): the result
equals a fresh import of the new source, held references see the new code, a failure rolls
back everything, the policy still holds; an edit that keeps a statement takes the statement
path."""

from __future__ import annotations

import importlib
import sys
import threading
import types

import pytest

import hotswap
from hotswap._engine import adapters as _adapters
from hotswap._engine.history import records
from hotswap._plan import lines as _lines
from hotswap._plan import sources as _sources
from hotswap._plan import whole as _whole
from hotswap._plan.whole import MIN_STATEMENTS, LazySource
from hotswap._watch.changeset import HUGE_SOURCE
from hotswap.exceptions import ExecutionError, IncompatibleChangeError

COUNT = MIN_STATEMENTS + 20


def version(n: int, *, tail: str = "", drop: str | None = None) -> str:
    """A module of COUNT constants, functions, a class, an instance and a table of
    functions, every statement of which differs between two values of ``n``."""
    lines = ['"""A rewritten module."""', "import math", ""]
    lines += [f"C{i} = {i} + {n}" for i in range(COUNT) if f"C{i}" != drop]
    lines += [
        "",
        f"def scale(x):\n    return x * {n + 1}",
        "",
        f"def label(x):\n    return 'v{n}:' + str(scale(x))",
        "",
        f"class Model:\n    kind = 'k{n}'\n\n"
        f"    def total(self):\n        return {n} + math.floor(1.5)",
        "",
        f"INSTANCE = Model() if {n} >= 0 else None",
        f"HANDLERS = [scale, label] if {n} >= 0 else []",
        f"_PRIVATE = {n}",
        tail,
    ]
    return "\n".join(lines) + "\n"


def fresh(source: str, name: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": name}
    exec(compile(source, f"<fresh {name}>", "exec"), namespace)
    return namespace


def rewritten(module: types.ModuleType) -> bool:
    """Whether the live version came from the whole-module path (its statements unread)."""
    live = records[module.__name__].live
    return isinstance(live, LazySource)


@pytest.fixture
def mod(reloading):
    module = reloading.load("rewritten_mod", version(0))
    # Its first reload starts from the bytes it was imported from, unread: a rewrite too.
    first = reloading.reload("rewritten_mod", version(1), policy="off")
    assert first.ok, first.error
    assert rewritten(module)
    yield module
    sys.modules.pop("rewritten_mod", None)


def test_rewrite_equals_a_fresh_import_and_keeps_identities(reloading, mod):
    scale, label, model, instance = mod.scale, mod.label, mod.Model, mod.INSTANCE
    source = version(2, drop="C5")

    result = reloading.reload("rewritten_mod", source, policy="off")

    assert result.ok, result.error
    assert rewritten(mod)
    assert result.version == 3
    expected = fresh(source, "rewritten_mod")
    names = {n for n in vars(mod) if not n.startswith("__")}
    assert names == {n for n in expected if not n.startswith("__")}
    for name in names:
        value = getattr(mod, name)
        if name == "HANDLERS":
            assert [f.__name__ for f in value] == ["scale", "label"]
        elif not callable(value) and not isinstance(value, types.ModuleType | model):
            assert value == expected[name], name
    assert "C5" not in vars(mod)
    assert "C5" in result.changes.removed
    assert mod.__doc__ == "A rewritten module."
    # Updated in place: what the program held runs the new code.
    assert mod.scale is scale
    assert scale(2) == 6
    assert mod.label is label
    assert label(1) == "v2:3"
    assert mod.Model is model
    assert model.kind == "k2"
    assert mod.HANDLERS[0] is mod.scale
    assert mod.HANDLERS[1] is mod.label
    assert type(mod.INSTANCE) is mod.Model
    assert instance.total() == 3
    assert set(result.changes.changed) >= {"scale", "label", "Model", "C0"}


def test_a_one_statement_edit_after_a_rewrite_takes_the_statement_path(reloading, mod):
    assert reloading.reload("rewritten_mod", version(2), policy="off").ok
    assert rewritten(mod)
    source = version(2).replace("return x * 3", "return x * 30")

    result = reloading.reload("rewritten_mod", source, policy="off")

    assert result.ok, result.error
    assert not rewritten(mod)
    assert result.changes.changed == ("scale",)
    assert mod.scale(1) == 30


def test_a_failing_rewrite_rolls_back_everything(reloading, mod):
    before = dict(vars(mod))
    live = records["rewritten_mod"].live
    code = mod.scale.__code__
    kind = mod.Model.kind

    failing = version(2, tail="raise RuntimeError('late')")
    result = reloading.reload("rewritten_mod", failing, policy="off")

    assert not result.ok
    assert result.rolled_back
    assert isinstance(result.error, ExecutionError)
    assert "late" in str(result.error)
    assert dict(vars(mod)) == before
    assert all(vars(mod)[k] is v for k, v in before.items())
    assert mod.scale.__code__ is code
    assert mod.Model.kind == kind
    assert result.version == 2
    assert records["rewritten_mod"].live is live
    again = reloading.reload("rewritten_mod", version(3), policy="off")
    assert rewritten(mod)
    assert again.ok
    assert again.version == 3
    assert mod.scale(1) == 4


def test_an_unchanged_statement_keeps_its_state(reloading, mod):
    source = version(1).replace("_PRIVATE = 1", "CACHE = {}\n_PRIVATE = 1")
    assert reloading.reload("rewritten_mod", source, policy="off").ok
    mod.CACHE["kept"] = True
    source = version(2).replace("_PRIVATE", "CACHE = {}\n_PRIVATE")

    result = reloading.reload("rewritten_mod", source, policy="off")

    assert result.ok, result.error
    assert not rewritten(mod)
    assert mod.CACHE == {"kept": True}


def test_strict_never_removes_a_public_name_without_the_statement_check(reloading):
    def data(n: int, drop: str | None = None, tail: str = "") -> str:
        lines = [f"D{i} = {i} * {n}" for i in range(COUNT) if f"D{i}" != drop]
        return "\n".join([*lines, tail]) + "\n"

    module = reloading.load("rewritten_data", data(1))
    try:
        assert reloading.reload("rewritten_data", data(2), policy="strict").ok
        taken = reloading.reload("rewritten_data", data(3), policy="strict")
        assert taken.ok
        assert rewritten(module)
        # Gone from the code: the statement path decides (is something still using it?).
        gone = reloading.reload("rewritten_data", data(4, drop="D7"), policy="strict")
        assert not rewritten(module)
        assert gone.ok == ("D7" not in vars(module))
        assert reloading.reload("rewritten_data", data(5), policy="strict").ok
        assert rewritten(module)
        before = dict(vars(module))

        # Named by the code but not bound by it: refused, everything as it was.
        unbound = data(6, drop="D7", tail="if D0 < 0:\n    D7 = 0")
        result = reloading.reload("rewritten_data", unbound, policy="strict")

        assert not result.ok
        assert result.rolled_back
        assert isinstance(result.error, IncompatibleChangeError)
        assert "D7" in str(result.error)
        assert dict(vars(module)) == before
        assert module.D7 == 35
    finally:
        sys.modules.pop("rewritten_data", None)


def test_strict_takes_the_statement_path_for_public_functions(reloading, mod):
    result = reloading.reload("rewritten_mod", version(2), policy="strict")

    assert result.ok, result.error
    assert not rewritten(mod)
    assert mod.scale(1) == 3


def test_a_rewrite_after_a_rollback_and_status(reloading, mod):
    assert reloading.reload("rewritten_mod", version(2), policy="off").ok
    assert rewritten(mod)

    back = hotswap.rollback("rewritten_mod")

    assert back.ok, back.error
    assert mod.scale(1) == 2
    assert mod.C0 == 1
    assert hotswap.status().to_dict()["modules"]["rewritten_mod"]["version"] == 2
    importlib.invalidate_caches()


def plain(n: int, *, same: int | None = None) -> str:
    """Constants and a function only: what the first reload of a never-seen source reads from
    the compiled code. ``same``: that constant keeps its value."""
    lines = [f"P{i} = 'p{i}-{0 if i == same else n}'" for i in range(COUNT)]
    return "\n".join([*lines, f"\n\ndef value():\n    return {n}\n"])


@pytest.fixture
def never_seen(reloading):
    """A plain module whose import-time bytes are not kept (imported before hotswap)."""

    def load(source: str) -> types.ModuleType:
        module = reloading.load("never_seen", source)
        _sources.take(str(reloading.path("never_seen")))
        return module

    yield load
    sys.modules.pop("never_seen", None)


def test_a_never_seen_source_whose_every_binding_changed_runs_whole(reloading, never_seen):
    module = never_seen(plain(0))
    value = module.value

    result = reloading.reload("never_seen", plain(1), policy="off")

    assert result.ok, result.error
    assert rewritten(module)
    assert module.value is value
    assert value() == 1
    assert [getattr(module, f"P{i}") for i in range(3)] == ["p0-1", "p1-1", "p2-1"]
    assert len(result.changes.changed) == COUNT + 1


def test_a_never_seen_source_keeps_a_binding_the_module_holds(reloading, never_seen):
    module = never_seen(plain(0))
    # Equal to what the unchanged ``P0 = 'p0-0'`` makes, another object: that statement stays.
    module.P0 = kept = "".join(["p0-", "0"])

    result = reloading.reload("never_seen", plain(1, same=0), policy="off")

    assert result.ok, result.error
    assert not rewritten(module)
    assert module.value() == 1
    assert module.P0 is kept


@pytest.mark.watcher
def test_a_huge_saved_rewrite_is_read_ahead_and_never_parsed(project, watch, parses):
    pad = "x" * 1000

    def huge(n: int) -> str:
        lines = [f"S{i} = '{pad}{n}'" for i in range(HUGE_SOURCE // 1000 + 20)]
        return "\n".join(lines) + f"\n\n\ndef value():\n    return {n}\n"

    big = project.load("huge_rewrite", huge(0))
    parsed = parses.start()
    try:
        seen = watch(policy="off")
        project.path("huge_rewrite").write_text(huge(1))
        seen.wait_for(lambda results: any(r.module == "huge_rewrite" for r in results))

        assert seen.results[-1].ok, seen.results[-1].error
        assert big.value() == 1
        assert big.S3.endswith("1")
        assert rewritten(big)
        assert not parsed
    finally:
        sys.modules.pop("huge_rewrite", None)


def test_a_comment_and_layout_save_of_a_big_module_is_unchanged(reloading, mod):
    assert reloading.reload("rewritten_mod", version(2), policy="off").ok
    assert rewritten(mod)
    mod.C0 = "state"  # program state the module's statement set: a no-op save keeps it
    relaid = version(2).replace(" = ", "  =  ").replace("\n", "  # note\n")

    result = reloading.reload("rewritten_mod", relaid, policy="off")

    assert result.ok, result.error
    assert result.kind == "unchanged"
    assert mod.C0 == "state"


def formatted(exploded: bool) -> str:
    """A big module whose every statement a formatter's save changes (quotes, exploded calls
    with trailing commas, wrapping parentheses), and nothing else."""
    quote = '"' if exploded else "'"
    lines = []
    for i in range(COUNT):
        if exploded:
            lines.append(f"N{i} = dict(\n    key={quote}k{i}{quote},\n    size=({i} + 1),\n)")
        else:
            lines.append(f"N{i} = dict(key={quote}k{i}{quote}, size={i} + 1)")
    lines.append(
        f"CACHE = {{{quote}seen{quote}: [{quote}x{quote},]}}"
        if exploded
        else "CACHE = {'seen': ['x']}"
    )
    return "\n".join(lines) + "\n"


def test_a_formatter_save_of_a_big_module_is_unchanged(reloading):
    module = reloading.load("formatted_mod", formatted(exploded=False))
    try:
        module.CACHE["seen"].append("state")  # program state: a formatter's save keeps it

        result = reloading.reload("formatted_mod", formatted(exploded=True))

        assert result.ok, result.error
        assert result.kind == "unchanged"
        assert module.CACHE == {"seen": ["x", "state"]}
    finally:
        sys.modules.pop("formatted_mod", None)


def test_a_decorated_module_takes_the_statement_path(reloading, mod):
    source = version(2).replace("def label(x):", "@functools.cache\ndef label(x):")
    source = source.replace("import math", "import functools\nimport math")

    result = reloading.reload("rewritten_mod", source, policy="off")

    assert result.ok, result.error
    assert not rewritten(mod)
    assert mod.label(1) == "v2:3"


@pytest.mark.parametrize(
    ("importer", "whole", "seen"),
    [
        # It takes a name: its statement runs again with the new value.
        ("from rewritten_mod import C0\n\nSEEN = C0 * 2\n", False, 4),
        # It reads the module's names at import: the same.
        ("import rewritten_mod\n\nSEEN = rewritten_mod.C0 * 2\n", False, 4),
        # It only holds the module, and its function reads it when called: nothing runs.
        ("import rewritten_mod\n\ndef SEEN():\n    return rewritten_mod.C0 * 2\n", True, 4),
    ],
    ids=["takes-a-name", "reads-at-import", "holds-it"],
)
def test_an_importer_whose_statements_run_again_takes_the_statement_path(
    reloading, mod, importer, whole, seen
):
    user = reloading.load("rewritten_importer", importer)
    try:
        result = reloading.reload("rewritten_mod", version(2), policy="off")

        assert result.ok, result.error
        assert rewritten(mod) is whole
        assert (user.SEEN() if callable(user.SEEN) else user.SEEN) == seen
    finally:
        sys.modules.pop("rewritten_importer", None)


def test_a_read_after_the_line_a_thread_runs_leaves_it_to_the_rewrite(reloading, mod):
    # As a script's main loop: what follows the running line never runs again, and reads the
    # module as it is when it gets there.
    gate = reloading.load(
        "rewritten_gate", "import threading\nREADY = threading.Event()\nGO = threading.Event()\n"
    )
    reloading.write(
        "rewritten_script",
        "import rewritten_gate\nimport rewritten_mod\n\n"
        "rewritten_gate.READY.set()\nrewritten_gate.GO.wait(60)\nSEEN = rewritten_mod.C0\n",
    )
    importlib.invalidate_caches()
    script = threading.Thread(target=importlib.import_module, args=("rewritten_script",))
    script.start()
    try:
        assert gate.READY.wait(60)
        result = reloading.reload("rewritten_mod", version(2), policy="off")

        assert result.ok, result.error
        assert rewritten(mod)
    finally:
        gate.GO.set()
        script.join(60)
        sys.modules.pop("rewritten_gate", None)
    assert sys.modules.pop("rewritten_script").SEEN == 2


# A package whose __path__ reaches another package's folder (toolz's tlz.curried reaches
# toolz/curried): importing its submodule runs the other package's file under a second name.
REACHES = """\
import os

__path__ = [os.path.join(os.path.dirname(os.path.dirname(__file__)), "rwsrc")]
"""


def test_a_rewritten_file_run_as_two_modules_rewrites_each_from_its_source(project, bytecode):
    path = project.write("rwsrc.op", version(0))
    project.write("rwmirror.__init__", REACHES)
    first, second = importlib.import_module("rwsrc.op"), importlib.import_module("rwmirror.op")
    assert second.__spec__.origin == first.__spec__.origin
    path.write_text(version(1, drop="C5"))
    try:
        for module in (first, second):
            result = hotswap.reload(module, policy="off")

            assert result.ok, result.error
            assert rewritten(module), module.__name__
            # What a fresh import of the new text gives it: the second module's reload
            # starts from the source it was imported from too, not from the new text.
            assert (module.C0, module.label(1)) == (1, "v1:2"), module.__name__
            assert not hasattr(module, "C5"), module.__name__
    finally:
        for name in ("rwsrc.op", "rwsrc", "rwmirror.op", "rwmirror"):
            sys.modules.pop(name, None)


class Recording:
    """A framework adapter that records the plans it is given."""

    def __init__(self) -> None:
        self.plans: list[object] = []

    def prepare(self, plans):
        self.plans += [plan.module.__name__ for plan in plans]

    def sync(self, updates):
        return None


@pytest.fixture
def adapter():
    import decimal  # the "framework": its trigger module is imported

    assert decimal.Decimal(1)
    recording = Recording()
    _adapters.register_adapter("decimal", lambda: recording)
    try:
        yield recording
    finally:
        _adapters.unregister_adapter("decimal")


def test_an_active_adapter_leaves_a_module_of_plain_code_to_the_rewrite(reloading, adapter):
    # Flask, FastAPI or Django imported anywhere in the program: a module that holds none of
    # their objects still takes the rewrite path (it did not once any framework was imported).
    module = reloading.load("rewritten_plain", version(0))
    result = reloading.reload("rewritten_plain", version(1), policy="off")

    assert result.ok, result.error
    assert rewritten(module)
    assert adapter.plans == []


def test_a_module_holding_framework_objects_takes_the_statement_path(reloading, adapter):
    tail = "import decimal\nPRICE = decimal.Decimal({n})"
    module = reloading.load("rewritten_framework", version(0, tail=tail.format(n=0)))
    result = reloading.reload(
        "rewritten_framework", version(1, tail=tail.format(n=1)), policy="off"
    )

    assert result.ok, result.error
    assert not rewritten(module)
    assert adapter.plans == ["rewritten_framework"]  # the adapter follows its statements
    assert module.PRICE == 1


def _shared_by_characters(a: str, b: str, direction: int, limit: int | None = None) -> int:
    most = min(len(a), len(b)) if limit is None else limit
    done = 0
    while done < most and (
        a[done] == b[done] if direction > 0 else a[len(a) - 1 - done] == b[len(b) - 1 - done]
    ):
        done += 1
    return done


@pytest.mark.parametrize("size", [0, 1, 7, 4095, 4096, 4097, 9000])
@pytest.mark.parametrize("where", [0, 1, 0.5, -2, -1])
def test_shared_text_is_measured_exactly_at_either_end(size, where):
    base = "".join(chr(97 + (i * 7) % 23) for i in range(size))
    at = int(size * where) if isinstance(where, float) else where % size if size else 0
    edited = base[:at] + "#" + base[at + 1 :] if size else "#"
    for a, b in ((base, edited), (base, base), (base, base + "tail"), (base, "head" + base)):
        for direction in (1, -1):
            for limit in (None, min(len(a), len(b)) // 2):
                expected = _shared_by_characters(a, b, direction, limit)
                assert _lines.shared(a, b, direction, limit) == expected


def test_a_reload_reads_the_file_once(reloading, monkeypatch):
    module = reloading.load("read_once_mod", version(0))
    path = module.__file__
    reloading.write("read_once_mod", version(0) + "EXTRA = 1\n")
    opened: list[object] = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        if file == path:
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    try:
        result = hotswap.reload("read_once_mod")
    finally:
        monkeypatch.undo()
        sys.modules.pop("read_once_mod", None)

    assert result.ok, result.error
    assert module.EXTRA == 1
    assert len(opened) == 1


def test_plain_bindings_are_read_from_the_code_of_every_python():
    # 3.14 compiles a small int to LOAD_SMALL_INT and 3.15 None to LOAD_COMMON_CONSTANT (the
    # import's fromlist, the module's return): a plain module was not taken for one there.
    from hotswap._engine import plaincode

    code = compile("import math\nX = 5\nS = 'five'\n\ndef f():\n    return X\n", "m", "exec")
    found = plaincode.bindings(code)

    assert found is not None
    assert found.constants == [("X", 5), ("S", "five")]
    assert found.imported == ["math"]
    assert [name for name, _ in found.functions] == ["f"]
    # A binding whose value this reading does not know: not a plain module.
    assert plaincode.bindings(compile("X = 5\nY = X + 1\n", "m", "exec")) is None


def test_a_rewrite_that_binds_every_name_again_never_reads_the_old_names(reloading, monkeypatch):
    # Under "off" the old text's names are needed only for a name the run left unbound; for
    # a 10 MB file they cost a tenth of a second (issue 26).
    module = reloading.load("rebinds_all", version(0))
    read: list[int] = []
    real = _whole.binds_of
    monkeypatch.setattr(_whole, "binds_of", lambda text: read.append(len(text)) or real(text))

    result = reloading.reload("rebinds_all", version(1), policy="off")

    assert result.ok, result.error
    assert rewritten(module)
    assert read == []
    assert module.C3 == 4
    sys.modules.pop("rebinds_all", None)


def test_a_rewrite_leaving_a_name_the_old_text_does_not_tell_takes_the_statement_path(
    reloading,
):
    # ``X = Y = 1`` is not a form the text is read in: whether the old source bound what the
    # run leaves unbound is the statement path's to decide, before anything runs (a run undone
    # would have done its effects outside the module twice).
    runs = reloading.load("leaves_runs", "RUNS = []\n")
    module = reloading.load("leaves_names", version(0, tail="X = Y = 1"))
    source = version(1, drop="C5", tail="import leaves_runs\nleaves_runs.RUNS.append(1)")
    planned: list[object] = []
    unsubscribe = hotswap.subscribe(
        lambda event: planned.append(event) if isinstance(event, hotswap.Planned) else None
    )
    try:
        result = reloading.reload("leaves_names", source, policy="off")
    finally:
        unsubscribe()

    assert result.ok, result.error
    assert not rewritten(module)
    assert runs.RUNS == [1]  # the added statement ran once
    assert len(planned) == 1
    expected = fresh(source.replace("leaves_runs.RUNS.append(1)", ""), "leaves_names")
    assert {n for n in vars(module) if not n.startswith("__")} == {
        n for n in expected if not n.startswith("__")
    }
    assert {"C5", "X", "Y"} <= set(result.changes.removed)
    sys.modules.pop("leaves_names", None)
    sys.modules.pop("leaves_runs", None)
