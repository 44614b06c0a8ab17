"""``@reloadable``: stand-ins whose identity never changes while their target is swapped.

A function or method becomes a real function object (a *stub*) whose code is a trampoline to
the current target, the target travelling as a constant of that code. The trampoline takes the
target's parameters by name and passes each on, with the target's defaults as its own
(``def handler(request, *, loud=False): return <target>(request, loud=loud)``): a call is two
plain Python calls, about 2x a direct one with positional or keyword arguments, where a proxy
object costs 2.5x positional and 4x with keywords (its C ``tp_call`` builds a tuple and a dict
for every call). A method's binding is the interpreter's own C ``function.__get__``: a proxy in a
class needs a Python-level ``__get__`` on every call, 5-9x a direct method call with every
wrapt type (benchmarks/bench_calls.py).

A swap gives the stub the new target and its defaults in three assignments that callers see
as one (:func:`~hotswap._engine.switch.point`): first a trampoline passing ``(*args, **kwargs)``
on, which ignores the stub's defaults, then the defaults, then the trampoline by name. When a
reload updates the target in place instead (its decorators unchanged), the engine loosens the
stub around that update in the same way.

A module-level ``async def`` or generator function, and any callable that is not a plain
function (a ``functools.partial``, an ``lru_cache`` wrapper), get a wrapt C
``CallableObjectProxy``: it returns the target's own coroutine or generator, whose code is
picked when it is called, where a stub's would be picked when it first runs.

Re-decoration during a reload finds the stand-in already registered for the same module and
qualified name, *stages* the new target on the reload's :class:`Stage` and returns the same
stand-in. The transaction swaps every staged target of one reload at commit
(:meth:`Stage.commit`) or drops them on rollback.

This is the only module that imports wrapt. wrapt >= 2.4 is required (pyproject.toml): before
it, assigning ``__wrapped__`` while other threads called through the C proxy was not safe.
"""

from __future__ import annotations

import contextlib
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeGuard, TypeVar, overload

import wrapt

from hotswap._engine import hooks as _hooks
from hotswap._engine.snapshot import register_stateful
from hotswap._engine.switch import KINDS, point
from hotswap._engine.update import trampoline as _trampoline
from hotswap._ops import forks as _forks

__all__ = ("STAGED", "Stage", "is_reloadable", "reloadable", "set_target", "standins", "target_of")

# A stub's attribute naming its staged target until commit: the updater reads it to bind the
# target's ``super()`` to the kept class.
STAGED = "__hotswap_staged__"

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class _Proxy(wrapt.CallableObjectProxy):  # type: ignore[type-arg]
    """A stable stand-in for a function or method; calls go to its current target."""

    # Read by the baseline to mark @reloadable symbols; a class attribute of the proxy, so it
    # is not forwarded to the target.
    __hotswap_reloadable__ = True

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # Accessed on the class: the proxy itself, so ``Cls.method`` keeps its identity.
        if instance is None:
            return self
        # Bind the current target directly: the call that follows costs what a plain
        # bound-method call costs.
        return self.__wrapped__.__get__(instance, owner)

    def __reduce_ex__(self, protocol: object) -> str:
        # Pickled by reference, like the function it stands for.
        return str(self.__qualname__)

    def __repr__(self) -> str:
        return f"<hotswap.reloadable {self.__wrapped__!r}>"


_registry: dict[tuple[str, str], weakref.ref[Any]] = {}
_registry_lock = _forks.guarded(threading.Lock(), "proxy registry")
_stage: Stage | None = None  # the reload being executed, if any (one at a time: reload lock)


class Stage:
    """The targets staged by one reload of one module, swapped together at commit."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.staged: list[tuple[Any, Callable[..., Any]]] = []

    @contextmanager
    def active(self) -> Iterator[Stage]:
        """While active, re-decorating a registered function stages instead of swapping."""
        global _stage
        _stage = self
        try:
            yield self
        finally:
            _stage = None

    def commit(self) -> None:
        """Swap every staged target.

        Each assignment is atomic; a call that already fetched the old target finishes on it.
        Callers that must never see two versions of a module mix use ``hotswap.pinned()``,
        which keeps them out while this runs.
        """
        for standin, target in self.staged:
            _set_target(standin, target)
        self.staged.clear()

    def discard(self) -> None:
        """Drop the staged targets; the stand-ins keep the ones they have."""
        for standin, _ in self.staged:
            if isinstance(standin, types.FunctionType):
                standin.__dict__.pop(STAGED, None)
        self.staged.clear()


# The engine asks for a stage per module it reloads: new targets swap at its commit.
_hooks.on_stage(Stage)


def is_reloadable(obj: object) -> bool:
    """Whether ``obj`` is a ``@reloadable`` proxy or class."""
    return getattr(obj, "__hotswap_reloadable__", False) is True


def _is_method(function: Callable[..., Any]) -> bool:
    """Defined in a class body: ``Cls.name``, not ``outer.<locals>.name``."""
    owner, _, _ = str(getattr(function, "__qualname__", "")).rpartition(".")
    return bool(owner) and not owner.endswith("<locals>")


def _stub_for(target: types.FunctionType) -> types.FunctionType:
    stub = types.FunctionType(
        _trampoline((), target.__code__.co_flags, target), target.__globals__, target.__name__
    )
    # What the target's decorators set on it (a marker, a framework's metadata) reads the
    # same on the stand-in, as through a proxy.
    stub.__dict__.update(target.__dict__)
    stub.__qualname__ = target.__qualname__
    stub.__module__ = target.__module__
    stub.__doc__ = target.__doc__
    stub.__annotations__ = target.__annotations__
    stub.__wrapped__ = target  # type: ignore[attr-defined]  # for inspect.signature & co
    stub.__hotswap_reloadable__ = True  # type: ignore[attr-defined]
    point(stub, target)
    return stub


def _stub_fits(function: Callable[..., Any]) -> TypeGuard[types.FunctionType]:
    """Whether ``function`` gets a stub rather than a proxy (see the module docstring)."""
    if type(function) is not types.FunctionType:
        return False
    return _is_method(function) or not function.__code__.co_flags & KINDS


def _standin_for(function: Callable[..., Any]) -> Any:
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        # A callable with no name to find it by again (a functools.partial): a proxy all the
        # same, but re-decoration in a reload cannot recognise it.
        return _Proxy(function)
    key = (module, qualname)
    with _registry_lock:
        existing = _registry.get(key)
        standin = existing() if existing is not None else None
        stage = _stage
        if standin is not None and stage is not None and stage.module == key[0]:
            stage.staged.append((standin, function))
            if isinstance(standin, types.FunctionType):
                standin.__dict__[STAGED] = function
            return standin
        # First import, or a fresh import of the module: a new stand-in.
        if _stub_fits(function):
            standin = _stub_for(function)
        else:
            standin = _Proxy(function)
        _registry[key] = weakref.ref(standin)
        return standin


@overload
def reloadable(obj: type[T]) -> type[T]: ...
@overload
def reloadable(obj: F) -> F: ...
def reloadable(obj: Any) -> Any:
    """Make a function, method or class safe to hold across reloads.

    A function or method becomes a stand-in whose identity never changes (a function taking
    the same parameters that calls the current version; a wrapt proxy for a module-level
    ``async def`` or generator function): references taken before a reload call the new code
    after it, and the targets of one reload change together at commit. A class stays
    a real class (subclassing and ``isinstance`` keep working); it is updated in place and its
    members are held to the strict compatibility checks.

    Works on plain and async functions, generators, methods, and ``staticmethod`` /
    ``classmethod`` in either decorator order.

    Examples:
        >>> import hotswap
        >>> @hotswap.reloadable
        ... def handler(request):
        ...     return f"hello {request}"
        >>> handler("you")
        'hello you'
    """
    if isinstance(obj, type):
        obj.__hotswap_reloadable__ = True  # type: ignore[attr-defined]
        return obj
    if isinstance(obj, staticmethod | classmethod):
        return type(obj)(_standin_for(obj.__func__))
    if callable(obj):
        return _standin_for(obj)
    message = f"@reloadable applies to functions, methods and classes, not {type(obj).__name__}"
    raise TypeError(message)


def _get_target(proxy: _Proxy) -> object:
    return proxy.__wrapped__


def _set_target(standin: Any, target: Any) -> None:
    if isinstance(standin, _Proxy):
        if standin.__wrapped__ is not target:
            standin.__wrapped__ = target
        return
    standin.__dict__.pop(STAGED, None)
    function = target if type(target) is types.FunctionType else _as_function(target)
    # Attributes first: they are not part of a call. Then the switch, which also brings the
    # defaults up to date when the target is the same function updated in place since.
    standin.__doc__ = function.__doc__
    standin.__annotations__ = function.__annotations__
    standin.__wrapped__ = target
    point(standin, function)


def _as_function(target: Callable[..., Any]) -> types.FunctionType:
    """A plain function calling ``target``, a callable of another type that a later version
    gave (``@lru_cache`` added under ``@reloadable``): trampolines are made to functions."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return target(*args, **kwargs)

    for attribute in ("__name__", "__qualname__", "__doc__"):
        with contextlib.suppress(AttributeError, TypeError):
            setattr(call, attribute, getattr(target, attribute))
    return call  # type: ignore[return-value]


register_stateful(_Proxy, _get_target, _set_target)


def standins(module: str) -> list[Any]:
    """The live stand-ins of ``module``'s ``@reloadable`` functions and methods."""
    with _registry_lock:
        found = [ref() for (owner, _), ref in _registry.items() if owner == module]
    return [standin for standin in found if standin is not None]


def target_of(standin: Any) -> Any:
    """What a stand-in calls now."""
    if isinstance(standin, _Proxy):
        return standin.__wrapped__
    return standin.__dict__.get("__wrapped__")


def set_target(standin: Any, target: Any) -> None:
    """Make a stand-in call ``target`` (one atomic assignment for its callers)."""
    _set_target(standin, target)
