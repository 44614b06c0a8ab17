"""The public functions, composed from the modules that own each concern."""

from __future__ import annotations

import types
from typing import Any

from hotswap import _config, _transaction
from hotswap._events import ReloadResult, Status
from hotswap._pin import Pin, gate

__all__ = ("configure", "pinned", "reload", "rollback", "status")


def reload(module_or_name: types.ModuleType | str, *, policy: str | None = None) -> ReloadResult:
    """Reload a module now, through the same checks and transaction as the watcher.

    Works on any loaded module with a Python source file. It compiles the source it reads,
    never a cached ``.pyc``. A failed reload changes nothing and is returned, not raised.

    Args:
        module_or_name: the module, or its name in ``sys.modules``.
        policy: ``"strict"``, ``"warn"`` or ``"off"``; None uses the configured policy.

    Returns:
        The :class:`ReloadResult`: ``ok``, ``version``, ``changes``, ``error``...

    Example:
        >>> import hotswap, json
        >>> hotswap.reload(json).ok
        True
    """
    return _transaction.reload(module_or_name, policy=policy)


def rollback(module_or_name: types.ModuleType | str, to: int | None = None) -> ReloadResult:
    """Restore a kept version of a module: the previous one, or version ``to``.

    Objects and code are restored exactly (functions get their old code back, in place);
    names in ``__hotswap_keep__`` keep their current objects.
    """
    return _transaction.rollback(module_or_name, to=to)


def status() -> Status:
    """What hotswap knows: per-module versions and history, counters and timings."""
    from hotswap import _watcher

    metrics = _transaction.metrics
    return Status(
        modules=_transaction.module_statuses(),
        watching=_watcher.is_running(),
        reloads=metrics.reloads,
        failures=metrics.failures,
        last_duration=metrics.last_duration,
        total_duration=metrics.total_duration,
    )


def configure(**settings: Any) -> _config.Settings:
    """Change settings for this process: ``policy``, ``history``, ``pin_timeout``...

    Returns the settings now in force. See :class:`hotswap.Settings`.
    """
    return _config.configure(**settings)


def pinned(timeout: float | None = None) -> Pin:
    """A context manager (``with`` or ``async with``) inside which every call sees one
    consistent version of every module.

    A reload waits (up to its ``pin_timeout``, 5 s by default) before it executes until pinned
    sections have left; a pinned section that starts while a reload runs waits for it. Nested
    pins, and a reload started from a pinned section, do not deadlock. Code that never pins
    pays nothing.

    Args:
        timeout: the longest wait to enter, in seconds (None: as long as a reload takes);
            past it, :class:`~hotswap.PinTimeoutError`.

    Example:
        >>> import hotswap
        >>> with hotswap.pinned():
        ...     pass
    """
    return gate.pin(timeout)
