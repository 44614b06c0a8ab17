"""``@reloadable``: wrapt proxies whose identity never changes while their target is swapped.

The call path stays in wrapt's C ``CallableObjectProxy``: no Python ``__call__`` and no wrapper
function per call. A method binds through ``__get__`` straight to the current target, so the
bound call itself is a plain bound-method call.

Re-decoration during a reload finds the proxy already registered for the same module and
qualified name, *stages* the new target on the reload's :class:`Stage` and returns the same
proxy. The transaction swaps every staged target of one reload at commit
(:meth:`Stage.commit`) or drops them on rollback.

This is the only module that imports wrapt. wrapt >= 2.4 is required (pyproject.toml): before
it, assigning ``__wrapped__`` while other threads called through the C proxy was not safe.
"""

from __future__ import annotations

import threading
import types
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

import wrapt

from hotswap._snapshot import register_stateful

__all__ = ("Stage", "is_reloadable", "reloadable")

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


_registry: dict[tuple[str, str], weakref.ref[_Proxy]] = {}
_registry_lock = threading.Lock()
_stage: Stage | None = None  # the reload being executed, if any (one at a time: reload lock)


class Stage:
    """The targets staged by one reload of one module, swapped together at commit."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.staged: list[tuple[_Proxy, Callable[..., Any]]] = []

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
        for proxy, target in self.staged:
            proxy.__wrapped__ = target
        self.staged.clear()

    def discard(self) -> None:
        """Drop the staged targets; the proxies keep the ones they have."""
        self.staged.clear()


def is_reloadable(obj: object) -> bool:
    """Whether ``obj`` is a ``@reloadable`` proxy or class."""
    return getattr(obj, "__hotswap_reloadable__", False) is True


def _proxy_for(function: Callable[..., Any]) -> _Proxy:
    key = (str(function.__module__), str(function.__qualname__))
    with _registry_lock:
        existing = _registry.get(key)
        proxy = existing() if existing is not None else None
        stage = _stage
        if proxy is not None and stage is not None and stage.module == key[0]:
            stage.staged.append((proxy, function))
            return proxy
        # First import, or a fresh import of the module: a new proxy.
        proxy = _Proxy(function)
        _registry[key] = weakref.ref(proxy)
        return proxy


@overload
def reloadable(obj: type[T]) -> type[T]: ...
@overload
def reloadable(obj: F) -> F: ...
def reloadable(obj: Any) -> Any:
    """Make a function, method or class safe to hold across reloads.

    A function or method becomes a proxy whose identity never changes: references taken
    before a reload call the new code after it, and the targets of one reload change together
    at commit. A class stays a real class (subclassing and ``isinstance`` keep working); it is
    updated in place and its members are held to the strict compatibility checks.

    Works on plain and async functions, generators, methods, and ``staticmethod`` /
    ``classmethod`` in either decorator order.

    Example:
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
        return type(obj)(_proxy_for(obj.__func__))
    if isinstance(obj, types.FunctionType) or callable(obj):
        return _proxy_for(obj)
    message = f"@reloadable applies to functions, methods and classes, not {type(obj).__name__}"
    raise TypeError(message)


def _get_target(proxy: _Proxy) -> object:
    return proxy.__wrapped__


def _set_target(proxy: _Proxy, target: object) -> None:
    if proxy.__wrapped__ is not target:
        proxy.__wrapped__ = target


register_stateful(_Proxy, _get_target, _set_target)
