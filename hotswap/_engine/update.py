"""In-place update of plain functions, classes and instances.

After the new code has executed in the live module dict, each name holds a *new* object while
the rest of the program holds references to the *old* ones. :class:`Updater` carries the new
behaviour into the old objects and binds the names back to them, so identity is kept:

- a function gets the new code, defaults, docstring, annotations and attributes, in a switch
  that is atomic for callers in other threads; when its closure cannot hold the new version's
  (``super()`` or a new free variable, other values in its cells), it takes the new closure
  too (``closures``), or, where that cannot be done, its code becomes a trampoline that calls
  the new function, so held references still run the new behaviour;
- a class gets new, changed and removed members; ``super()`` in the new methods binds to the
  kept class; a class that cannot be patched (an Enum, a changed metaclass, bases or
  ``__slots__``) is replaced and reported;
- a decorator's wrapper (``functools.wraps``, ``contextmanager``, ``lru_cache``, from this
  module or another) is kept when the decorator and its arguments are unchanged, and the
  function it wraps is updated in place, so every reference the program ever took to it runs
  the newest code; when the decorator changed, the name takes the new wrapper and the old
  wrapper's function forwards to the new one;
- an unchanged definition keeps its old object untouched (a cache on it survives).

Everything this module mutates was captured by ``_snapshot.capture`` before it ran, which is how
the transaction undoes it.
"""

from __future__ import annotations

import contextlib
import enum
import types
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from hotswap._engine.baseline import MODULE_ATTRIBUTES, owned_function
from hotswap._engine.compare import (
    MAX_DEPTH,
    MISSING,
    differs,
    is_class,
    safe_attribute,
    same_function,
    same_value,
    same_wrapping,
    wrapped_of,
)
from hotswap._engine.snapshot import UNSETTABLE, WRAPPER_TYPES
from hotswap._engine.switch import (
    cell_value,
    forward,
    kind_changed,
    same_items,
    trampoline,
    update_function,
)
from hotswap._plan.diff import ChangeSet

__all__ = (
    "Outcome",
    "Updater",
    "forward",
    "kind_changed",
    "same_function",
    "shifted",
    "trampoline",
    "update_function",
)

# Set by the compiler on every class (3.13+): they follow the new source without being changes.
_BOOKKEEPING = frozenset({"__firstlineno__", "__static_attributes__"})
_SLOT_DESCRIPTORS = (types.MemberDescriptorType, types.GetSetDescriptorType)
_set_class = object.__dict__["__class__"].__set__
# A wrapper's attributes that belong to it, not to the function it wraps.
_OWN_WRAPPER_KEYS = frozenset({"__wrapped__", "cache_parameters"})


@dataclass
class Outcome:
    """What the update found and did, beyond what the AST diff knew."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    after_commit: list[Callable[[], object]] = field(default_factory=list)
    # Run the moment the transaction commits, before __hotswap_verify__ (deferred cache clears
    # of functions the hook may call).
    at_commit: list[Callable[[], object]] = field(default_factory=list)
    # Run once __hotswap_verify__ passed, still inside the gate (the other deferred clears).
    verified: list[Callable[[], object]] = field(default_factory=list)


# --- the updater --------------------------------------------------------------------------------


def _why_not_patchable(old: type, new: type, bases: tuple[type, ...]) -> str | None:
    if type(old) is not type(new):
        return "its metaclass changed"
    if issubclass(type(old), enum.EnumMeta):
        return "it is an Enum"
    if not same_items(bases, old.__bases__):
        return "its bases changed"
    if not same_value(vars(old).get("__slots__"), vars(new).get("__slots__"), {}):
        return "its __slots__ changed"
    return None


def shifted(code: types.CodeType, delta: int) -> types.CodeType:
    """``code`` moved ``delta`` lines, with the code of what it defines."""
    consts = tuple(
        shifted(c, delta) if isinstance(c, types.CodeType) else c for c in code.co_consts
    )
    return code.replace(co_firstlineno=code.co_firstlineno + delta, co_consts=consts)


def _merge_attributes(old: types.FunctionType, new: types.FunctionType) -> None:
    if new.__dict__:
        old.__dict__.update(new.__dict__)


# An inner function -> the wrappers replaced by a changed decorator whose old function now
# forwards to it; their caches must be emptied whenever it changes. Weak both ways: the
# program decides how long it holds an old wrapper.
_forwarded: weakref.WeakKeyDictionary[types.FunctionType, list[weakref.ref[Any]]] = (
    weakref.WeakKeyDictionary()
)


def _refresh_wrappers(
    old: object, new: object, inner_old: types.FunctionType, *, metadata: bool = True
) -> None:
    """Bring a kept chain of wrappers' metadata (``functools.wraps`` copies of the function's
    docstring and annotations, when ``metadata``) and attributes up to date with the new
    chain; attributes the program set on the old wrappers at run time stay."""
    for _ in range(MAX_DEPTH):
        if old is inner_old:
            return
        if metadata and type(old) is types.FunctionType:
            old.__doc__ = new.__doc__
            old.__annotations__ = new.__annotations__
        attributes = vars(new)
        target = vars(old)
        for key, value in attributes.items():
            if key not in _OWN_WRAPPER_KEYS and target.get(key, MISSING) is not value:
                target[key] = value
        old, new = wrapped_of(old), wrapped_of(new)


def _substitute(container: Any, mapping: dict[int, type]) -> None:
    """Put the kept class in place of each merged new class in ``container``; a list that
    held the kept class already keeps one entry."""
    if type(container) is dict:
        for key, item in list(container.items()):
            kept = mapping.get(id(item))
            if kept is not None and isinstance(item, type):
                container[key] = kept
    elif type(container) is set:
        found = [item for item in container if isinstance(item, type) and id(item) in mapping]
        for item in found:
            container.discard(item)
            container.add(mapping[id(item)])
    elif type(container) is list:
        for index in range(len(container) - 1, -1, -1):
            item = container[index]
            kept = mapping.get(id(item))
            if kept is None or not isinstance(item, type):
                continue
            if any(other is kept for other in container):
                del container[index]  # registered again: the first registration stands
            else:
                container[index] = kept


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
        *,
        eager: Collection[str] | None = None,
        verify_calls: Collection[str] = (),
        emptied: set[int] | None = None,
        registries: Collection[Any] = (),
    ) -> None:
        self.old = old
        self.live = live
        self.module_name = module_name
        self.changes = changes
        self.keep = keep
        # Names of the functions code of the transaction may call before commit (None: any):
        # a changed cached function among them has its cache emptied at once, so that this
        # code gets results of the new code. Those ``__hotswap_verify__`` may call
        # (``verify_calls``) are emptied at commit, the others once it passed: a failure
        # before then keeps their caches whole, exactly as they were.
        self.eager = eager
        self.verify_calls = verify_calls
        # ids of the cache wrappers emptied so far (a rollback empties them again: results of
        # the new code may have filled them since).
        self.emptied: set[int] = set() if emptied is None else emptied
        self.outcome = Outcome()
        # Containers of other modules (and of classes above) that the hooks run as a class is
        # created may fill (:mod:`hotswap._engine.classhooks`).
        self.registries = registries
        # id(new class) -> the old class it was merged into; the new classes are held in
        # self._merged so their ids stay valid while the mapping is in use.
        self.mapping: dict[int, type] = {}
        self._merged: list[type] = []
        # id(new function) -> the old one it was merged into (the new ones are held in
        # self._merged_functions): an alias ``f = g`` follows where ``g`` went.
        self._kept_functions: dict[int, types.FunctionType] = {}
        self._merged_functions: list[types.FunctionType] = []
        self._attributes_changed = False

    def run(self, skip: frozenset[str] = frozenset()) -> Outcome:
        """Reconcile every name (but ``skip``: names already reconciled as they were bound)."""
        for name, new in list(self.live.items()):
            if name in MODULE_ATTRIBUTES or name in skip:
                continue
            old = self.old.get(name, MISSING)
            if old is MISSING or old is new:
                continue
            if name in self.keep:
                self.live[name] = old
                continue
            self.live[name] = self.reconcile(name, old, new)
        for value in list(self.live.values()):
            self._adopt(value)
        for kept in list(self.mapping.values()):
            # A merged class took the new body's attributes: ``user = _Property(...)`` made by
            # a nested class that was merged too is an instance of the kept nested class.
            for value in list(vars(kept).values()):
                self._adopt(value)
        self._registries()
        return self.outcome

    def _registries(self) -> None:
        """A class decorator or ``__init_subclass__`` of the new code registered the class it
        was given, the one then merged into the kept class: module-level containers, the
        container attributes of the module's classes and the registries the hooks may fill
        hold the kept class instead (once, as after a fresh import)."""
        if not self.mapping:
            return
        containers = [v for v in self.live.values() if type(v) in (list, dict, set)]
        containers += self.registries
        for value in list(self.live.values()):
            if is_class(value) and vars(value).get("__module__") == self.module_name:
                containers += [v for v in vars(value).values() if type(v) in (list, dict, set)]
        for container in containers:
            _substitute(container, self.mapping)

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
                # A wrapper made by an unchanged decorator of this module is kept like one of
                # another module's: its function is updated and no call takes an extra hop.
                inners = self._inners_if_same_decorator(old, new)
                if inners is not None:
                    return self._wrapper(qualname, old, new, status, inners)
                return self._function(qualname, old, new, status)
            # A decorator from another module (contextlib.contextmanager, a functools.wraps
            # decorator of a helper module) wraps this module's function.
            if wrapped_of(new) is not MISSING:
                return self._wrapper(qualname, old, new, status)
            return new
        if is_class(old) and is_class(new):
            if self._owns(old, qualname) and self._owns(new, qualname):
                return self._class(qualname, old, new)
            return new
        if type(old) is type(new) and wrapped_of(new) is not MISSING:
            return self._wrapper(qualname, old, new, status)
        if status is None:
            self._note(qualname, differs(old, new, self.mapping))
        return new

    def _inners_if_same_decorator(
        self, old: types.FunctionType, new: types.FunctionType
    ) -> tuple[types.FunctionType, types.FunctionType] | None:
        """The functions two wrappers of this module wrap, when the same decorator made them."""
        below_old, below_new = wrapped_of(old), wrapped_of(new)
        if below_old is MISSING or below_new is MISSING:
            return None
        inner_old = owned_function(below_old, self.live)
        inner_new = owned_function(below_new, self.live)
        if inner_old is None or inner_new is None or inner_old is inner_new:
            return None
        if not same_wrapping(old, new, inner_old, inner_new, self.mapping):
            return None
        return inner_old, inner_new

    def _owns(self, cls: type, qualname: str) -> bool:
        module = vars(cls).get("__module__")
        name = vars(cls).get("__qualname__", cls.__qualname__)
        return type(module) is str and module == self.module_name and name == qualname

    def _function(
        self,
        qualname: str,
        old: types.FunctionType,
        new: types.FunctionType,
        status: bool | None,
    ) -> types.FunctionType:
        alias = self._alias(qualname, old, new)
        if alias is not None:
            return alias
        if status is None:
            status = not same_function(old, new, self.mapping)
            self._note(qualname, status)
        if status and kind_changed(old, new):
            # The name takes the new function, of the kind a fresh import makes (what
            # ``inspect.isgeneratorfunction`` and fixtures dispatch on); references held
            # before keep their kind and forward to it.
            forward(old, new)
            return new
        if status:
            update_function(old, new)
        else:
            _merge_attributes(old, new)  # ``f.tag = ...`` after the def is not part of it
            # An unchanged method of a changed class that moved: the lines it stands at now.
            delta = new.__code__.co_firstlineno - old.__code__.co_firstlineno
            if delta:
                old.__code__ = shifted(old.__code__, delta)
        self._kept_functions[id(new)] = old
        self._merged_functions.append(new)
        return old

    def _alias(
        self, qualname: str, old: types.FunctionType, new: types.FunctionType
    ) -> types.FunctionType | None:
        """What the name binds when either version is another name for a function the
        module binds under its own name (``f = g``), else None.

        The function of such a name is never updated in place with the other version: it is
        ``g``'s (``f = g`` -> ``f = lambda: 2`` must leave ``g`` alone), and a fresh import
        binds ``g`` itself. A function of the name's own (``f = lambda: 0`` -> ``f = g``)
        forwards to ``g``, so the references held to it follow."""
        short = qualname.rpartition(".")[2]
        old_alias = old.__name__ != short and self.old.get(old.__name__) is old
        target: types.FunctionType | None = None
        if new.__name__ != short:
            bound = self.live.get(new.__name__)
            if bound is new or (bound is not None and self._kept_functions.get(id(new)) is bound):
                target = bound
        if target is None and not old_alias:
            return None
        self._note(qualname, True)
        if target is None:
            return new
        if not old_alias and old is not target:
            forward(old, target)
        return target

    def _wrapper(
        self,
        qualname: str,
        old: Any,
        new: Any,
        status: bool | None,
        inners: tuple[types.FunctionType, types.FunctionType] | None = None,
    ) -> object:
        """A decorator's object (lru_cache, a third-party wrapper) around a function."""
        if inners is None:
            inner_old, inner_new = owned_function(old, self.live), owned_function(new, self.live)
        else:
            inner_old, inner_new = inners
        if inner_old is None or inner_new is None or inner_old is inner_new:
            if status is None:
                self._note(qualname, True)
            return old if status is False else new
        kept_wrapping = same_wrapping(old, new, inner_old, inner_new, self.mapping)
        if status is None:
            status = not (kept_wrapping and same_function(inner_old, inner_new, self.mapping))
            self._note(qualname, status)
        if not status:
            if kept_wrapping:
                # ``f.tag = ...`` after the definition is not part of it (as for a function).
                _refresh_wrappers(old, new, inner_old, metadata=False)
            return old
        if kept_wrapping:
            # The decorator is the same (only the function changed): the old wrapper is kept,
            # so every reference the program ever took to it runs the newest code, across
            # any number of edits. Its cache, filled by the old code, is emptied at commit.
            update_function(inner_old, inner_new)
            _refresh_wrappers(old, new, inner_old)
            self._clear_caches(old, inner_old, qualname)
            return old
        # The decorator changed: the name follows the new wrapper (and its settings); the old
        # wrapper's function forwards to the new one, which later edits update in place.
        forward(inner_old, inner_new)
        self._clear_caches(old, inner_old, qualname)
        followers = _forwarded.setdefault(inner_new, [])
        followers += [ref for ref in _forwarded.get(inner_old, ()) if ref() is not None]
        with contextlib.suppress(TypeError):  # a wrapper that takes no weak references
            followers.append(weakref.ref(old))
        return new

    def _clear_caches(self, wrapper: object, inner: types.FunctionType, name: str) -> None:
        """Empty the caches of ``wrapper`` and of every replaced wrapper that forwards to
        ``inner``: they hold results of the old code. Now when code of the transaction may
        call ``name`` before commit (``eager``), so that it gets results of the new code; at
        commit when ``__hotswap_verify__`` may call it, else once the hook passed; and after
        commit, for a result that a call of the old code in another thread stored meanwhile.
        The later the better: a cache that is not emptied yet comes out of a failure whole
        (``_snapshot``), one that was cannot be filled again."""
        called = name.rpartition(".")[2]  # ``obj.method(...)`` is called by its last part
        wrappers = [wrapper] + [ref() for ref in _forwarded.get(inner, ())]
        for item in wrappers:
            level: object = item
            for _ in range(MAX_DEPTH):
                if level is None or level is MISSING or level is inner:
                    break
                clear = safe_attribute(level, "cache_clear")
                if type(level) in WRAPPER_TYPES and callable(clear):
                    clear = self._emptying(level, clear)
                    if self.eager is None or called in self.eager:
                        clear()
                    elif called in self.verify_calls:
                        self.outcome.at_commit.append(clear)
                    else:
                        self.outcome.verified.append(clear)
                    self.outcome.after_commit.append(clear)
                level = wrapped_of(level)

    def _emptying(self, wrapper: object, clear: Callable[[], object]) -> Callable[[], object]:
        """``clear``, noting that the transaction emptied ``wrapper``'s cache."""

        def empty() -> None:
            self.emptied.add(id(wrapper))
            clear()

        return empty

    def _class(self, qualname: str, old: type, new: type) -> type:
        bases = tuple(self.mapping.get(id(b), b) for b in new.__bases__)
        reason = _why_not_patchable(old, new, bases)
        if reason is not None:
            # The new class stands; make it inherit from kept classes so isinstance with the
            # names the module exports keeps working.
            if not same_items(bases, new.__bases__):
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
            before = current.get(key, MISSING)
            if before is value:
                continue
            if before is MISSING:
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
        if issubclass(kind, _SLOT_DESCRIPTORS):
            return old  # the old class's own slot layout
        if kind is staticmethod or kind is classmethod:
            inner = self.reconcile(qualname, old.__func__, new.__func__)
            return old if inner is old.__func__ else new
        if kind is property:
            return self._property(qualname, old, new)
        if kind is types.FunctionType or is_class(old) or wrapped_of(new) is not MISSING:
            return self.reconcile(qualname, old, new)
        # A class attribute: it follows the new source when the class's own definition changed.
        status = owner
        if status is None:
            status = not same_value(old, new, self.mapping)
            self._attributes_changed |= differs(old, new, self.mapping)
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
            if issubclass(type(value), staticmethod | classmethod):
                function = value.__func__
            elif issubclass(type(value), property):
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
        kind = type(value)
        kept = self.mapping.get(id(kind))
        if kept is not None:
            with contextlib.suppress(TypeError):  # a layout the interpreter will not switch
                # object's own descriptor: a class may define a __class__ property of its own.
                _set_class(value, kept)
        elif not inside and issubclass(kind, list | tuple | set | frozenset | dict):
            try:
                items = list(dict.values(value) if issubclass(kind, dict) else value)  # type: ignore[arg-type, call-overload]
            except Exception:  # a subclass whose iteration runs code that failed: not ours
                return
            for item in items:
                self._adopt(item, inside=True)
