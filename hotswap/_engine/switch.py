"""Switching a live function to other code, atomically for its callers.

A function's behaviour is spread over several attributes: ``__code__``, ``__defaults__``,
``__kwdefaults__`` and the contents of its closure cells. Assigning them one by one lets a call
in another thread start between two assignments and run the code of one version with the
defaults or cells of another (a new required-looking parameter without its new default:
``TypeError: g() missing 1 required positional argument``). :func:`switch_function` makes the
switch one step for callers: the function first becomes a *trampoline* to a complete function of
the target version (one assignment), then the attributes the trampoline ignores are set, then
the final code is assigned (one assignment). A call sees either the old version, or the new
one through the trampoline, or the new one directly; after the switch calls run the final code
itself, with no extra cost.

It also gives a function the behaviour of its new version in place (:func:`update_function`)
or makes it forward to it (:func:`forward`), and holds the closure-cell helpers and identity
comparisons that the snapshot and the updater share: nothing on the reload path calls a user
``__eq__``.
"""

from __future__ import annotations

import dis
import types
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, TypeGuard, TypeVar

from hotswap._engine import closures

__all__ = (
    "EMPTY",
    "KEEP",
    "KINDS",
    "cell_value",
    "forward",
    "is_instance",
    "is_trampoline",
    "kind_changed",
    "loosen",
    "point",
    "restore_items",
    "same_items",
    "set_cell",
    "switch_function",
    "trampoline",
    "trampoline_target",
    "update_function",
    "wrapper_chain",
)

T = TypeVar("T")
EMPTY: Any = object()  # the value of an empty closure cell
KEEP: Any = object()  # switch_function's closure argument: the function keeps its closure
KINDS = 0x80 | 0x20 | 0x200  # CO_COROUTINE | CO_GENERATOR | CO_ASYNC_GENERATOR
_TRAMPOLINE_TARGET = "__hotswap_trampoline_target__"
_TRAMPOLINE_FILE = "<hotswap trampoline>"
_trampolines: dict[tuple[tuple[str, ...], int, bool, tuple[str, str], bool], types.CodeType] = {}
_COPY_FREE_VARS = dis.opmap["COPY_FREE_VARS"]
_NOP = dis.opmap["NOP"]
_VARARGS, _VARKEYWORDS = 0x04, 0x08  # CO_VARARGS, CO_VARKEYWORDS
_LOCAL = "__hotswap_target"  # the trampoline's one local besides the parameters

# The body of a trampoline of a kind (the key) calling a target of the same kind...
_SAME_KIND = {
    0x80: "return await t(*args, **kwargs)",
    0x20: "return (yield from t(*args, **kwargs))",
    0x200: "async for item in t(*args, **kwargs):\n            yield item",
    0: "return t(*args, **kwargs)",
}
# ...and of another kind (an incompatible change applied anyway): the function keeps its own
# kind, so its callers get what they expect (an awaitable, an iterator) around the new result.
_OTHER_KIND = {
    0x80: "return t(*args, **kwargs)",
    0x20: "return (yield from t(*args, **kwargs))",
    0x200: (
        "result = t(*args, **kwargs)\n"
        "        if hasattr(result, '__aiter__'):\n"
        "            async for item in result:\n"
        "                yield item\n"
        "        else:\n"
        "            for item in result:\n"
        "                yield item"
    ),
    0: "return t(*args, **kwargs)",
}


def cell_value(cell: types.CellType) -> object:
    """What a closure cell holds, or :data:`EMPTY`."""
    try:
        return cell.cell_contents
    except ValueError:
        return EMPTY


def set_cell(cell: types.CellType, value: object) -> None:
    """Make ``cell`` hold ``value`` (:data:`EMPTY` empties it); untouched when it already does."""
    if value is EMPTY:
        if cell_value(cell) is not EMPTY:
            del cell.cell_contents
    elif cell_value(cell) is not value:
        cell.cell_contents = value


def is_instance(value: object, kind: type[T]) -> TypeGuard[T]:
    """``isinstance(value, kind)`` by the value's real type only.

    ``isinstance`` also asks a value for its ``__class__`` when the type does not match, which
    a proxy or a broken object may answer with anything, or with an exception.
    """
    return issubclass(type(value), kind)


def wrapper_chain(value: object, limit: int | None = None) -> Iterator[object]:
    """``value``, then what it wraps, down its ``__wrapped__`` chain: each object once, at most
    ``limit`` of them (None: no bound but a cycle's)."""
    seen: set[int] = set()
    while id(value) not in seen and (limit is None or len(seen) < limit):
        seen.add(id(value))
        yield value
        try:
            value = value.__wrapped__  # type: ignore[attr-defined]
        except Exception:  # (a proxy or a broken object may raise anything)
            return


def same_items(a: Sequence[object] | None, b: Sequence[object] | None) -> bool:
    """Whether two sequences hold the same objects, compared by identity (never ``__eq__``)."""
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def restore_items(target: MutableMapping[str, Any], items: Mapping[str, Any]) -> None:
    """Make ``target`` hold exactly ``items``, by identity, touching only the keys that differ.

    Keys are set and deleted one by one rather than by clearing, so a reader in another thread
    never finds a key missing that both states have.
    """
    for key in [k for k in target if k not in items]:
        del target[key]
    for key, value in items.items():
        if target.get(key, EMPTY) is not value:
            target[key] = value


def _parameters(code: types.CodeType) -> tuple[str, str]:
    """The parameter list of ``code`` as source, and the call passing each on (``a, /, b, *c,
    d, **e`` and ``a, b, *c, d=d, **e``); no defaults: they live on the function object."""
    names = code.co_varnames
    positional = list(names[: code.co_argcount])
    keywords = list(names[code.co_argcount : code.co_argcount + code.co_kwonlyargcount])
    rest = code.co_argcount + code.co_kwonlyargcount
    star = names[rest] if code.co_flags & _VARARGS else None
    rest += 1 if star else 0
    double = names[rest] if code.co_flags & _VARKEYWORDS else None
    params = positional[:]
    if code.co_posonlyargcount:
        params.insert(code.co_posonlyargcount, "/")
    if star:
        params.append(f"*{star}")
    elif keywords:
        params.append("*")
    params += keywords
    call = positional + ([f"*{star}"] if star else []) + [f"{k}={k}" for k in keywords]
    if double:
        params.append(f"**{double}")
        call.append(f"**{double}")
    return ", ".join(params), ", ".join(call)


def trampoline(
    freevars: tuple[str, ...],
    flags: int,
    target: types.FunctionType,
    *,
    exact: bool = False,
    closed: bool = False,
) -> types.CodeType:
    """Code of the kind ``flags`` names (plain, coroutine, generator, async generator) that
    calls ``target`` and fits a closure of ``freevars``.

    A function's closure is fixed for life, so new code with another layout cannot be given to
    it directly; and since Python 3.13 giving a function code of another kind is deprecated, so
    a function whose kind changed keeps its own kind and forwards.

    ``exact``: the code takes ``target``'s parameters by name (``inspect.signature`` of a
    function forwarding for good shows what the new code takes), for a function whose
    defaults are ``target``'s already; else it takes ``(*args, **kwargs)``, whatever its
    defaults (the first step of an atomic switch).

    ``closed``: the code never reads the function's closure (its first instruction, which
    copies the cells into the frame, is a no-op), so it may run while the closure is being
    replaced by one of another length (:func:`switch_function`).
    """
    kind = flags & KINDS
    same = (target.__code__.co_flags & KINDS) == kind
    shape = ("*args, **kwargs", "*args, **kwargs")
    if exact:
        names = set(target.__code__.co_varnames[: _count(target.__code__)])
        if not names & ({_LOCAL, *freevars}):
            shape = _parameters(target.__code__)
    key = (freevars, kind, same, shape, closed)
    template = _trampolines.get(key)
    if template is None:
        params, call = shape
        forwarded = f"{_LOCAL}({call})"
        body = (_SAME_KIND if same else _OTHER_KIND)[kind].replace("t(*args, **kwargs)", forwarded)
        prefix = "async " if kind in (0x80, 0x200) else ""
        cells = "".join(f"    {name} = None\n" for name in freevars)
        # Naming the free variables in dead code makes them free variables of the trampoline
        # (so the old closure fits) without ever reading them.
        uses = f"        if False:\n            ({', '.join(freevars)},)\n" if freevars else ""
        source = (
            f"def outer():\n{cells}"
            f"    {prefix}def trampoline({params}):\n{uses}"
            f"        {_LOCAL} = {_TRAMPOLINE_TARGET!r}\n"
            f"        {body}\n"
            f"    return trampoline\n"
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, _TRAMPOLINE_FILE, "exec"), namespace)
        template = namespace["outer"]().__code__
        if closed:
            template = _without_cells(template)
        _trampolines[key] = template
    # The target travels as a constant: LOAD_CONST pushes any object.
    consts = tuple(target if c == _TRAMPOLINE_TARGET else c for c in template.co_consts)
    return template.replace(co_consts=consts, co_name=target.__name__)


def _without_cells(code: types.CodeType) -> types.CodeType:
    """``code`` with its ``COPY_FREE_VARS`` turned into ``NOP``: it keeps its free variables
    (``__code__`` takes it for a closure of that length) but never reads the closure. The
    trampoline's free variables are only named in dead code, so nothing misses them."""
    raw = bytearray(code.co_code)
    for instruction in dis.get_instructions(code):
        if instruction.opcode == _COPY_FREE_VARS:
            raw[instruction.offset : instruction.offset + 2] = bytes((_NOP, 0))
    return code.replace(co_code=bytes(raw))


def _count(code: types.CodeType) -> int:
    """How many of ``code.co_varnames`` are its parameters."""
    count = code.co_argcount + code.co_kwonlyargcount
    return count + bool(code.co_flags & _VARARGS) + bool(code.co_flags & _VARKEYWORDS)


def is_trampoline(code: types.CodeType) -> bool:
    """Whether ``code`` is a :func:`trampoline`."""
    return code.co_filename == _TRAMPOLINE_FILE


def trampoline_target(function: types.FunctionType) -> types.FunctionType | None:
    """The function ``function`` forwards to, when its code is a :func:`trampoline`."""
    code = function.__code__
    if code.co_filename != _TRAMPOLINE_FILE:
        return None
    for const in code.co_consts:
        if type(const) is types.FunctionType:
            return const
    return None


def _complete(
    function: types.FunctionType,
    code: types.CodeType,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    cells: Sequence[object],
) -> types.FunctionType:
    """A new function of the target version, complete on its own (fresh cells)."""
    closure = tuple(types.CellType() if v is EMPTY else types.CellType(v) for v in cells)
    through = types.FunctionType(code, function.__globals__, function.__name__, defaults, closure)
    through.__kwdefaults__ = kwdefaults
    return through


def switch_function(
    function: types.FunctionType,
    code: types.CodeType,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    cells: Sequence[object] | None,
    *,
    through: types.FunctionType | None = None,
    closure: tuple[types.CellType, ...] | None = KEEP,
) -> bool:
    """Give ``function`` another version's code, defaults and cell contents, atomically for
    its callers (see the module docstring).

    Args:
        function: the live function; its identity is kept.
        code: the final code; its free variables must match the closure the function ends
            with.
        defaults: the final ``__defaults__`` (assigned as is: the object, not a copy).
        kwdefaults: the final ``__kwdefaults__`` (assigned as is).
        cells: what each cell of the final closure must hold, in order (:data:`EMPTY` for an
            empty cell); None leaves the cells alone.
        through: a complete function of the target version to run while the switch is in
            progress; made from the other arguments when not given.
        closure: the final closure (a tuple of cells, or None), when it is another one than
            the function's (:func:`closures.set_closure`); :data:`KEEP` by default.

    Returns:
        Whether anything a call depends on changed.
    """
    if closure is not KEEP and function.__closure__ is not closure:
        _reclose(function, code, defaults, kwdefaults, cells, through, closure)
        return True
    closure = function.__closure__ or ()
    cells_differ = cells is not None and any(
        cell_value(cell) is not value for cell, value in zip(closure, cells, strict=True)
    )
    rest_differs = (
        cells_differ
        or function.__defaults__ is not defaults
        or function.__kwdefaults__ is not kwdefaults
    )
    if not rest_differs:
        if function.__code__ is code:
            return False
        function.__code__ = code  # one assignment: already atomic
        return True
    current = function.__code__
    if through is None:
        values = [cell_value(cell) for cell in closure] if cells is None else cells
        through = _complete(function, code, defaults, kwdefaults, values)
    # Step 1: callers are sent to a complete function of the new version; what follows is
    # ignored by the trampoline's (*args, **kwargs) signature and by its dead-code cells.
    function.__code__ = trampoline(current.co_freevars, current.co_flags, through)
    function.__defaults__ = defaults
    function.__kwdefaults__ = kwdefaults
    if cells is not None:
        for cell, value in zip(closure, cells, strict=True):
            set_cell(cell, value)
    # Step 2: the final code, whose defaults and cells are now all in place.
    function.__code__ = code
    return True


def _reclose(
    function: types.FunctionType,
    code: types.CodeType,
    defaults: tuple[Any, ...] | None,
    kwdefaults: dict[str, Any] | None,
    cells: Sequence[object] | None,
    through: types.FunctionType | None,
    closure: tuple[types.CellType, ...] | None,
) -> None:
    """:func:`switch_function` to a closure of another layout (or other cells)."""
    new_cells = closure or ()
    if cells is not None:
        # Cells of the final closure: no running call of the function reads them yet.
        for cell, value in zip(new_cells, cells, strict=True):
            set_cell(cell, value)
    if through is None:
        through = types.FunctionType(
            code, function.__globals__, function.__name__, defaults, closure
        )
        through.__kwdefaults__ = kwdefaults
    current = function.__code__
    # Step 1: a trampoline that fits the current closure and never reads it; then the
    # defaults and the closure, which a call of the trampoline ignores whatever their length
    # (a call of the old code that started before copied its cells into its frame).
    function.__code__ = trampoline(current.co_freevars, current.co_flags, through, closed=True)
    function.__defaults__ = defaults
    function.__kwdefaults__ = kwdefaults
    closures.set_closure(function, closure)
    # Step 2: the final code, which ``__code__`` takes now that the closure fits it.
    function.__code__ = code


# --- updating a function in place, or making it forward ----------------------------------------


def update_function(old: types.FunctionType, new: types.FunctionType) -> None:
    """Give ``old`` the behaviour of ``new``, keeping ``old``'s identity.

    The switch is atomic for callers in other threads (:func:`switch_function`): no call runs
    the new code with the old defaults or cells, or the reverse. ``old`` runs the new code itself
    (calls cost what they did). When its closure cannot hold the new version's (another
    layout: a method that starts or stops calling ``super()``; other values in its cells), it
    takes ``new``'s closure (:mod:`closures`), as a fresh import has it; its old cells are
    never written: a call of the old code still running in another thread reads them after
    the switch, and must read the old values. Where the closure cannot be replaced, or the new
    code is of another kind, its code becomes a trampoline to ``new`` for good.
    """
    old_code, new_code = old.__code__, new.__code__
    same_kind = (old_code.co_flags & KINDS) == (new_code.co_flags & KINDS)
    fits = same_kind and old_code.co_freevars == new_code.co_freevars
    if fits:
        for name, old_cell, new_cell in zip(
            old_code.co_freevars, old.__closure__ or (), new.__closure__ or (), strict=True
        ):
            # __class__ is the cell super() reads; the old one names the kept class.
            if name != "__class__" and cell_value(old_cell) is not cell_value(new_cell):
                fits = False
                break
    closure: tuple[types.CellType, ...] | None = KEEP
    if fits:
        code = new_code
    elif same_kind and closures.available():
        code, closure = new_code, new.__closure__
    else:
        # A trampoline takes the new parameters by name: the old function gets the new
        # defaults in the same switch, and introspection (``inspect.signature``) sees them.
        code = trampoline(old_code.co_freevars, old_code.co_flags, new, exact=True)
    # Attributes first: they are not part of a call, and a reader sees them with either code.
    old.__doc__ = new.__doc__
    old.__annotations__ = new.__annotations__
    # A lambda rebound to a ``def`` of the same name (or the reverse) is named as a fresh
    # import names it.
    old.__name__, old.__qualname__ = new.__name__, new.__qualname__
    # Merged, not replaced: what the new source sets wins, attributes set at run time stay;
    # but a wrapper whose decorator is gone no longer wraps (``inspect.signature`` follows
    # ``__wrapped__``).
    if "__wrapped__" in old.__dict__ and "__wrapped__" not in new.__dict__:
        del old.__dict__["__wrapped__"]
    old.__dict__.update(new.__dict__)
    switch_function(
        old, code, new.__defaults__, new.__kwdefaults__, None, through=new, closure=closure
    )


def kind_changed(old: types.FunctionType, new: types.FunctionType) -> bool:
    """Whether ``new`` is another kind of function (plain, generator, coroutine, async
    generator) than ``old``: an incompatible change, applied only under ``policy="off"``."""
    return (old.__code__.co_flags & KINDS) != (new.__code__.co_flags & KINDS)


def forward(old: types.FunctionType, new: types.FunctionType) -> None:
    """Make ``old`` call ``new`` from now on, whatever ``new`` becomes later.

    For a function that only a replaced wrapper still holds: ``new`` is the one later reloads
    update in place, so the old wrapper reaches the newest code through one hop.
    """
    old.__doc__ = new.__doc__
    old.__annotations__ = new.__annotations__
    old.__name__, old.__qualname__ = new.__name__, new.__qualname__  # as what it runs
    old.__dict__.update(new.__dict__)
    point(old, new)


def point(function: types.FunctionType, target: types.FunctionType) -> None:
    """Make ``function`` a trampoline to ``target`` that takes its parameters by name, with its
    defaults, atomically for callers.

    A trampoline taking the parameters by name passes every argument on, defaults included:
    about half the cost of one taking ``(*args, **kwargs)`` (no tuple and dict to build and
    unpack), and what introspection reads. First a trampoline that ignores defaults, then the
    new defaults, then the one by name: no call sees ``target`` with another's defaults.
    """
    freevars, flags = function.__code__.co_freevars, function.__code__.co_flags
    function.__code__ = trampoline(freevars, flags, target)
    function.__defaults__ = target.__defaults__
    function.__kwdefaults__ = target.__kwdefaults__
    function.__code__ = trampoline(freevars, flags, target, exact=True)


def loosen(function: types.FunctionType) -> None:
    """Make a trampoline pass its arguments on as they come, ``(*args, **kwargs)``, so its
    target applies its own defaults: before that target's defaults change in place (or are
    restored), a trampoline holding copies of them would pass the old ones to the new code.
    Calls compute what they did (one assignment); :func:`point` makes it fast again."""
    target = trampoline_target(function)
    if target is not None:
        code = function.__code__
        function.__code__ = trampoline(code.co_freevars, code.co_flags, target)
