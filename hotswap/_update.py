"""In-place update of plain functions, classes and instances.

After the new code has executed in the live module dict, each name holds a *new* object while
the rest of the program holds references to the *old* ones. :class:`Updater` carries the new
behaviour into the old objects and binds the names back to them, so identity is kept:

- a function gets the new code, defaults, docstring, annotations and attributes; when its
  closure layout changed (``super()`` or a new free variable), its code becomes a trampoline
  that calls the new function, so held references still run the new behaviour;
- a class gets new, changed and removed members; ``super()`` in the new methods binds to the
  kept class; a class that cannot be patched (an Enum, a changed metaclass, bases or
  ``__slots__``) is replaced and reported;
- an unchanged definition keeps its old object untouched (a cache on it survives).

Everything this module mutates was captured by ``_snapshot.capture`` before it ran, which is how
the transaction undoes it.
"""

from __future__ import annotations

import contextlib
import enum
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hotswap._baseline import MODULE_ATTRIBUTES, owned_function
from hotswap._diff import ChangeSet
from hotswap._snapshot import UNSETTABLE, cell_value, set_cell
from hotswap._symbols import code_key

__all__ = ("Outcome", "Updater", "same_function", "trampoline", "update_function")

_MISSING: Any = object()
# Set by the compiler on every class (3.13+): they follow the new source without being changes.
_BOOKKEEPING = frozenset({"__firstlineno__", "__static_attributes__"})
_SLOT_DESCRIPTORS = (types.MemberDescriptorType, types.GetSetDescriptorType)
_TRAMPOLINE_TARGET = "__hotswap_trampoline_target__"
_MAX_DEPTH = 8
# Values whose equality means something; an instance of another class is made anew by every
# execution, so only a change of its type is worth reporting.
_DATA_TYPES = (int, float, complex, str, bytes, bool, tuple, list, dict, set, frozenset, type(None))


@dataclass
class Outcome:
    """What the update found and did, beyond what the AST diff knew."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    after_commit: list[Callable[[], object]] = field(default_factory=list)


# --- comparing objects --------------------------------------------------------------------------


def _same_value(
    a: object, b: object, mapping: dict[int, type], depth: int = 0, *, lenient: bool = False
) -> bool:
    """Whether two values are the same, as far as a reload is concerned.

    ``lenient`` (for the change report) counts two instances of one class without value
    semantics as the same: every execution makes new ones, so only their type tells.
    """
    if a is b:
        return True
    if depth > _MAX_DEPTH or type(a) is not type(b):
        return False
    if lenient and not isinstance(a, _DATA_TYPES) and not isinstance(a, type | types.FunctionType):
        return True
    if type(a) is types.FunctionType:
        return same_function(a, b, mapping, depth + 1)  # type: ignore[arg-type]
    if isinstance(a, type):
        return mapping.get(id(b)) is a
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(  # type: ignore[arg-type]
            _same_value(x, y, mapping, depth + 1, lenient=lenient)
            for x, y in zip(a, b, strict=True)  # type: ignore[call-overload]
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(  # type: ignore[attr-defined]
            _same_value(v, b[k], mapping, depth + 1, lenient=lenient)  # type: ignore[index]
            for k, v in a.items()
        )
    try:
        return (a == b) is True
    except Exception:  # an object whose comparison raises or is ambiguous (arrays)
        return False


def _differs(old: object, new: object, mapping: dict[int, type]) -> bool:
    """Whether a value changed, for the change report."""
    return not _same_value(old, new, mapping, lenient=True)


def same_function(
    old: types.FunctionType,
    new: types.FunctionType,
    mapping: dict[int, type] | None = None,
    depth: int = 0,
) -> bool:
    """Whether two functions behave the same: code, defaults, docs, annotations, closures."""
    mapping = {} if mapping is None else mapping
    if code_key(old.__code__) != code_key(new.__code__) or old.__doc__ != new.__doc__:
        return False
    pairs: list[tuple[object, object]] = [
        (old.__defaults__, new.__defaults__),
        (old.__kwdefaults__, new.__kwdefaults__),
        (old.__annotations__, new.__annotations__),
        # Attributes set at run time are state, not code; a wrapper's target is code.
        (old.__dict__.get("__wrapped__"), new.__dict__.get("__wrapped__")),
    ]
    old_cells = [cell_value(c) for c in old.__closure__ or ()]
    new_cells = [cell_value(c) for c in new.__closure__ or ()]
    pairs += [
        (a, b)
        for name, a, b in zip(old.__code__.co_freevars, old_cells, new_cells, strict=True)
        if name != "__class__"
    ]
    return all(_same_value(a, b, mapping, depth + 1) for a, b in pairs)


# --- updating functions -------------------------------------------------------------------------

_KINDS = 0x80 | 0x20 | 0x200  # CO_COROUTINE | CO_GENERATOR | CO_ASYNC_GENERATOR
_trampolines: dict[tuple[tuple[str, ...], int, bool], types.CodeType] = {}

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


def trampoline(freevars: tuple[str, ...], flags: int, target: types.FunctionType) -> types.CodeType:
    """Code of the kind ``flags`` names (plain, coroutine, generator, async generator) that
    calls ``target`` and fits a closure of ``freevars``.

    A function's closure is fixed for life, so new code with another layout cannot be given to
    it directly; and since Python 3.13 giving a function code of another kind is deprecated, so
    a function whose kind changed keeps its own kind and forwards.
    """
    kind = flags & _KINDS
    same = (target.__code__.co_flags & _KINDS) == kind
    template = _trampolines.get((freevars, kind, same))
    if template is None:
        body = (_SAME_KIND if same else _OTHER_KIND)[kind]
        prefix = "async " if kind in (0x80, 0x200) else ""
        cells = "".join(f"    {name} = None\n" for name in freevars)
        # Naming the free variables in dead code makes them free variables of the trampoline
        # (so the old closure fits) without ever reading them.
        uses = f"        if False:\n            ({', '.join(freevars)},)\n" if freevars else ""
        source = (
            f"def outer():\n{cells}"
            f"    {prefix}def trampoline(*args, **kwargs):\n{uses}"
            f"        t = {_TRAMPOLINE_TARGET!r}\n"
            f"        {body}\n"
            f"    return trampoline\n"
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, "<hotswap trampoline>", "exec"), namespace)
        template = namespace["outer"]().__code__
        _trampolines[(freevars, kind, same)] = template
    # The target travels as a constant: LOAD_CONST pushes any object.
    consts = tuple(target if c == _TRAMPOLINE_TARGET else c for c in template.co_consts)
    return template.replace(co_consts=consts, co_name=target.__name__)


def update_function(old: types.FunctionType, new: types.FunctionType) -> None:
    """Give ``old`` the behaviour of ``new``, keeping ``old``'s identity."""
    old_code, new_code = old.__code__, new.__code__
    same_kind = (old_code.co_flags & _KINDS) == (new_code.co_flags & _KINDS)
    if old_code.co_freevars == new_code.co_freevars and same_kind:
        old.__code__ = new_code
        for name, old_cell, new_cell in zip(
            old_code.co_freevars, old.__closure__ or (), new.__closure__ or (), strict=True
        ):
            # __class__ is the cell super() reads; the old one names the kept class.
            if name == "__class__":
                continue
            set_cell(old_cell, cell_value(new_cell))
    else:
        old.__code__ = trampoline(old_code.co_freevars, old_code.co_flags, new)
    old.__defaults__ = new.__defaults__
    old.__kwdefaults__ = new.__kwdefaults__
    old.__doc__ = new.__doc__
    old.__annotations__ = new.__annotations__
    # Merged, not replaced: what the new source sets wins, attributes set at run time stay.
    old.__dict__.update(new.__dict__)


# --- the updater --------------------------------------------------------------------------------


def _why_not_patchable(old: type, new: type, bases: tuple[type, ...]) -> str | None:
    if type(old) is not type(new):
        return "its metaclass changed"
    if isinstance(old, enum.EnumMeta):
        return "it is an Enum"
    if bases != old.__bases__:
        return "its bases changed"
    if vars(old).get("__slots__") != vars(new).get("__slots__"):
        return "its __slots__ changed"
    return None


def _merge_attributes(old: types.FunctionType, new: types.FunctionType) -> None:
    if new.__dict__:
        old.__dict__.update(new.__dict__)


class Updater:
    """Reconciles a module dict after new code executed in it (see the module docstring).

    Args:
        old: the module dict as it was before the new code ran (the snapshot's copy).
        live: the module dict, holding what the new code bound.
        module_name: the module's name.
        changes: the AST diff; names it does not know are compared as objects.
        keep: names whose old objects stay (``__hotswap_keep__``).
    """

    def __init__(
        self,
        old: dict[str, Any],
        live: dict[str, Any],
        module_name: str,
        changes: ChangeSet,
        keep: frozenset[str],
    ) -> None:
        self.old = old
        self.live = live
        self.module_name = module_name
        self.changes = changes
        self.keep = keep
        self.outcome = Outcome()
        # id(new class) -> the old class it was merged into; the new classes are held in
        # self._merged so their ids stay valid while the mapping is in use.
        self.mapping: dict[int, type] = {}
        self._merged: list[type] = []
        self._attributes_changed = False

    def run(self, skip: frozenset[str] = frozenset()) -> Outcome:
        """Reconcile every name (but ``skip``: names already reconciled as they were bound)."""
        for name, new in list(self.live.items()):
            if name in MODULE_ATTRIBUTES or name in skip:
                continue
            old = self.old.get(name, _MISSING)
            if old is _MISSING or old is new:
                continue
            if name in self.keep:
                self.live[name] = old
                continue
            self.live[name] = self.reconcile(name, old, new)
        for value in list(self.live.values()):
            self._adopt(value)
        return self.outcome

    def _status(self, qualname: str) -> bool | None:
        """True: changed; False: unchanged; None: not known, compare objects."""
        if qualname in self.changes.lines:
            return self.changes.is_changed(qualname)
        return None  # not a symbol of the diff: a generated method, a name from ``import *``

    def _note(self, qualname: str, changed: bool) -> None:
        (self.outcome.changed if changed else self.outcome.unchanged).append(qualname)

    def reconcile(self, qualname: str, old: object, new: object) -> object:
        """The object ``qualname`` should be bound to: ``old`` updated, or ``new``."""
        status = self._status(qualname)
        # type() rather than isinstance(): a proxy claims to be a function through __class__.
        if type(old) is types.FunctionType and type(new) is types.FunctionType:
            if old.__globals__ is self.live and new.__globals__ is self.live:
                return self._function(qualname, old, new, status)
            return new
        if isinstance(old, type) and isinstance(new, type):
            if self._owns(old, qualname) and self._owns(new, qualname):
                return self._class(qualname, old, new)
            return new
        if type(old) is type(new) and hasattr(new, "__wrapped__"):
            return self._wrapper(qualname, old, new, status)
        if status is None:
            self._note(qualname, _differs(old, new, self.mapping))
        return new

    def _owns(self, cls: type, qualname: str) -> bool:
        return cls.__module__ == self.module_name and cls.__qualname__ == qualname

    def _function(
        self,
        qualname: str,
        old: types.FunctionType,
        new: types.FunctionType,
        status: bool | None,
    ) -> types.FunctionType:
        if status is None:
            status = not same_function(old, new, self.mapping)
            self._note(qualname, status)
        if status:
            update_function(old, new)
        else:
            _merge_attributes(old, new)  # ``f.tag = ...`` after the def is not part of it
        return old

    def _wrapper(self, qualname: str, old: Any, new: Any, status: bool | None) -> object:
        """A decorator's object (lru_cache, a third-party wrapper) around a function."""
        inner_old = owned_function(old, self.live)
        inner_new = owned_function(new, self.live)
        if status is None:
            same = (
                inner_old is not None
                and inner_new is not None
                and same_function(inner_old, inner_new, self.mapping)
            )
            status = not same
            self._note(qualname, status)
        if not status:
            return old
        # The name follows the new source (its wrapper's settings included), and references
        # held to the old wrapper run the new code too.
        if inner_old is not None and inner_new is not None and inner_old is not inner_new:
            update_function(inner_old, inner_new)
            clear = getattr(old, "cache_clear", None)
            if callable(clear):
                self.outcome.after_commit.append(clear)
        return new

    def _class(self, qualname: str, old: type, new: type) -> type:
        bases = tuple(self.mapping.get(id(b), b) for b in new.__bases__)
        reason = _why_not_patchable(old, new, bases)
        if reason is not None:
            # The new class stands; make it inherit from kept classes so isinstance with the
            # names the module exports keeps working.
            if bases != new.__bases__:
                with contextlib.suppress(TypeError):
                    new.__bases__ = bases
            self.outcome.replaced.append(f"{qualname} ({reason})")
            return new
        self._bind_class_cell(new, old)
        self.mapping[id(new)] = old
        self._merged.append(new)
        own = self._status(qualname)
        outer_changed, self._attributes_changed = self._attributes_changed, False
        current = vars(old)
        incoming = vars(new)
        for key, value in incoming.items():
            if key in UNSETTABLE:
                continue
            before = current.get(key, _MISSING)
            if before is value:
                continue
            if before is _MISSING:
                setattr(old, key, value)
                self._attributes_changed = True
                continue
            if key in _BOOKKEEPING:
                setattr(old, key, value)
                continue
            merged = self._member(f"{qualname}.{key}", before, value, own)
            if merged is not before:
                setattr(old, key, merged)
        for key in [k for k in current if k not in incoming and k not in UNSETTABLE]:
            delattr(old, key)
            self._attributes_changed = True
        if own is None:
            self._note(qualname, self._attributes_changed)
        self._attributes_changed = outer_changed  # a nested class reports for itself
        return old

    def _member(self, qualname: str, old: Any, new: Any, owner: bool | None) -> object:
        kind = type(old)
        if kind is not type(new):
            return new
        if isinstance(old, _SLOT_DESCRIPTORS):
            return old  # the old class's own slot layout
        if kind is staticmethod or kind is classmethod:
            inner = self.reconcile(qualname, old.__func__, new.__func__)
            return old if inner is old.__func__ else new
        if kind is property:
            return self._property(qualname, old, new)
        if kind is types.FunctionType or isinstance(old, type) or hasattr(new, "__wrapped__"):
            return self.reconcile(qualname, old, new)
        # A class attribute: it follows the new source when the class's own definition changed.
        status = owner
        if status is None:
            status = not _same_value(old, new, self.mapping)
            self._attributes_changed |= _differs(old, new, self.mapping)
        return new if status else old

    def _property(self, qualname: str, old: property, new: property) -> property:
        pairs = [(old.fget, new.fget), (old.fset, new.fset), (old.fdel, new.fdel)]
        if any((a is None) != (b is None) for a, b in pairs):
            return new  # a setter or deleter came or went: the new property stands
        status = self._status(qualname)
        for a, b in pairs:
            if a is None or a is b:
                continue
            if not (type(a) is types.FunctionType and type(b) is types.FunctionType):
                return new
            if status is None:
                status = not same_function(a, b, self.mapping)
                self._note(qualname, status)
            if status:
                update_function(a, b)
        return old

    @staticmethod
    def _bind_class_cell(new: type, old: type) -> None:
        # The new methods' __class__ cell (one, shared by the class body) names the new class;
        # pointing it at the kept class makes super() in them work for existing instances.
        for value in vars(new).values():
            function = value
            if isinstance(value, staticmethod | classmethod):
                function = value.__func__
            elif isinstance(value, property):
                function = value.fget
            if type(function) is not types.FunctionType:
                continue
            # A @reloadable method's stub carries its staged target until commit.
            staged = function.__dict__.get("__hotswap_staged__")
            if type(staged) is types.FunctionType:
                function = staged
            cells = function.__closure__ or ()
            for name, cell in zip(function.__code__.co_freevars, cells, strict=True):
                if name == "__class__" and cell_value(cell) is new:
                    cell.cell_contents = old

    def _adopt(self, value: object, *, inside: bool = False) -> None:
        """An instance the new code made of a class that was merged into a kept one becomes an
        instance of the kept class, so isinstance with the module's names holds for it. Module
        values are adopted, and the items of module-level containers (a registry)."""
        if not self.mapping:
            return
        kept = self.mapping.get(id(type(value)))
        if kept is not None:
            with contextlib.suppress(TypeError):  # a layout the interpreter will not switch
                value.__class__ = kept
        elif not inside and isinstance(value, list | tuple | set | frozenset | dict):
            items = value.values() if isinstance(value, dict) else value
            for item in list(items):
                self._adopt(item, inside=True)
