"""The public functions, composed from the modules that own each concern."""

from __future__ import annotations

import logging
import os
import sys
import threading
import types
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hotswap import _fleet
from hotswap._config import settings as _config
from hotswap._engine import transaction as _transaction
from hotswap._engine.pin import Pin, gate
from hotswap._ops import events as _events
from hotswap._ops.events import Event, ReloadResult, Status
from hotswap._plan import datafiles as _datafiles
from hotswap._plan import modules as _modules
from hotswap._release import canary as _canary
from hotswap._release import health as _health
from hotswap.exceptions import HotswapWarning

if TYPE_CHECKING:
    from hotswap._watch.watcher import Reloader

__all__ = (
    "configure",
    "coordinate",
    "disable",
    "enable",
    "pinned",
    "reload",
    "rollback",
    "status",
    "subscribe",
)

_reloader: Any = None  # the running hotswap._watch.watcher.Reloader
_health.install()  # watches committed versions while auto_rollback is configured
_reloader_lock = threading.Lock()
logger = logging.getLogger(__name__)
_hide_status: Callable[[], None] | None = None  # undoes enable(verbose=True)


def _default_paths() -> list[str]:
    """Where ``enable()`` watches when no path is given or configured.

    The folder of ``__main__`` when that is the user's script. Under a serving tool
    (``python -m uvicorn``, ``uvicorn``, ``flask run``, ``gunicorn``), ``__main__`` is the tool's
    own module or console script, so the app is found from the module that called ``enable()``:
    the folder its top-level package is imported from (``main.py`` -> its folder,
    ``mysite/settings.py`` -> the folder holding ``mysite``). Else the current directory.
    """
    excluded = _modules.excluded_roots()
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    if isinstance(file, str) and file.endswith(".py"):
        folder = os.path.dirname(os.path.abspath(file))
        if not _outside_user_code(folder, excluded):
            return [folder]
    root = _caller_root(excluded)
    return [root] if root is not None else [os.getcwd()]


def _outside_user_code(path: str, excluded: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in excluded)


def _caller_root(excluded: tuple[str, ...]) -> str | None:
    """The import root of the first module up the stack that is neither hotswap's nor installed."""
    own = os.path.dirname(os.path.abspath(__file__))
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        globals_ = frame.f_globals
        file = globals_.get("__file__")
        name = globals_.get("__name__")
        if isinstance(file, str) and isinstance(name, str) and file.endswith(".py"):
            path = os.path.abspath(file)
            if not path.startswith(own + os.sep) and not _outside_user_code(path, excluded):
                folder = os.path.dirname(path)
                # A package's module is imported from the folder holding its top package.
                depth = name.count(".") + (os.path.basename(path) == "__init__.py")
                if name != "__main__":
                    for _ in range(depth):
                        folder = os.path.dirname(folder)
                return folder
        frame = frame.f_back
    return None


def enable(
    paths: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
    *,
    debounce: float | None = None,
    policy: str | None = None,
    polling: bool | None = None,
    on_reload: Callable[[ReloadResult], object] | None = None,
    canary: dict[str, Any] | bool | None = None,
    verbose: bool | None = None,
) -> Reloader:
    """Start watching source files and reload modules as they are saved.

    Idempotent: a second call returns the running watcher, as it runs. Arguments of a second
    call that differ from the running watcher's (other paths, another policy...) are not
    applied: a :class:`~hotswap.HotswapWarning` names them, pointing at the call; call
    :func:`disable` first to change them. The watches are live when it returns. Modules
    whose files lie under a watched path are reloaded by the watcher; the standard library and
    site-packages never, unless a path names them. The threads are daemon threads named
    ``hotswap-*``.

    Args:
        paths: files or directories to watch. Default: the ``[tool.hotswap] paths`` setting,
            else the directory of the ``__main__`` script when it is the user's, else (under
            ``uvicorn``, ``flask run``, ``gunicorn``...) the folder the calling module is
            imported from, else the current directory.
        debounce: the longest wait, in seconds, for a file to settle (0.05). A write that is
            complete (closed, or renamed into place) is applied at once.
        policy: ``"strict"`` (default), ``"warn"`` or ``"off"``, for every reload.
        polling: use watchdog's polling observer (network and container file systems).
        on_reload: called with the :class:`ReloadResult` of every reload the watcher attempts
            (failed ones included; not for a save that did not change the file), and of what
            hotswap decides by itself while it runs: a canary's promotion or abort, an
            automatic rollback. What it raises is logged. A change refused because pinned
            sections stayed past ``pin_timeout`` (:class:`PinTimeoutError`) is tried again by
            the watcher once they left, without another save; the retry's result comes too.
        canary: try every saved change of one module as a canary first (see
            :func:`hotswap.canary`): ``{"weight": 0.1, "promote_after": 500}`` (the keys are
            its arguments), ``True`` for its defaults, ``False`` to turn it off. A save of
            several modules at once applies as one reload.
        verbose: print one status line per reload on stderr, as ``hotswap run`` does
            (``shop: v3 live, ~price (L12-18) (1.2 ms)``), until :func:`disable`. The
            ``hotswap`` logger then writes there instead of propagating to your handlers.
            Also ``HOTSWAP_VERBOSE=1`` or ``[tool.hotswap] verbose = true``.

    Arguments left as None take their value from ``[tool.hotswap]`` in pyproject.toml and
    ``HOTSWAP_*`` environment variables, else the defaults above. Arguments given are this
    call's: they hold while the watcher it starts runs and end with :func:`disable`; they never
    become settings (a later ``enable()`` or ``%load_ext hotswap`` starts from the settings).

    Examples:
        >>> import hotswap
        >>> reloader = hotswap.enable(["src"])     # doctest: +SKIP
    """
    global _reloader, _hide_status
    from hotswap._watch.watcher import Reloader

    given: dict[str, object] = {
        "debounce": debounce,
        "policy": policy,
        "polling": polling,
        "verbose": verbose,
        "canary": canary,
    }
    with _reloader_lock:
        if _reloader is not None and _reloader.running:
            differ = _differences(_reloader, paths, given, on_reload)
            if differ:
                # A second enable() (a framework's, a plugin's, the user's own) must not swap
                # the watcher under the first caller; it says what it kept instead of silently
                # ignoring the arguments. Pointed at the caller's line.
                message = (
                    f"hotswap.enable(): a watcher is running already and is kept as it is; "
                    f"ignored: {'; '.join(differ)} (call hotswap.disable() first to change them)"
                )
                warnings.warn(message, HotswapWarning, stacklevel=2)
            return _reloader  # type: ignore[no-any-return]
        explicit = dict(given)
        if paths is not None:
            chosen = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
            explicit["paths"] = [os.fspath(p) for p in chosen]
        settings = _config.for_call(**explicit)
        watch = list(settings.paths) or _default_paths()
        coordinator = _fleet.coordinator()
        reloader = Reloader(
            settings,
            watch,
            on_reload,
            apply=_apply_change_set,
            apply_files=None if coordinator is None else coordinator.apply_files,
        )
        if _fleet.role() == "worker":
            # Workers never reload from the working tree: the fleet's coordinator watches
            # and sends them its releases. The watcher is returned unstarted.
            logger.info(
                "hotswap: enable() in a fleet worker (pid %d): the coordinator watches, "
                "this process runs its releases",
                os.getpid(),
            )
            return reloader
        # Modules imported from now on record the data files their top-level code reads
        # (before the watcher starts: its worker's start-up work then takes the interpreter).
        _datafiles.track(reloader.paths)
        # Files saved before the watcher started are looked for on its thread, off the
        # program's start (enable() with thousands of modules loaded: ~5 ms).
        try:
            reloader.start(then=lambda: _reconcile(reloader))
        except BaseException:
            _datafiles.untrack()
            raise
        if settings.verbose:
            # Imported here: it names a log level (NOTICE) that `import hotswap` must not.
            from hotswap._ops import console as _console

            if not _console.attached():  # hotswap run shows them already
                _hide_status = _console.show()
        _reloader = reloader
        return reloader


def _reconcile(reloader: Reloader) -> None:
    """Files saved before the watcher started (their module runs older code): applied now, as
    saves, and said in the log."""
    from hotswap._watch import reconcile
    from hotswap._watch.changeset import COMPLETE

    # (On the watcher's thread, once the watches are live: a file an event came for since
    # then is that event's to apply, not taken twice.)
    found = reconcile.stale(list(reloader.paths))
    if found:
        fresh = set(reloader.unannounced([path for _, path in found]))
        found = [(name, path) for name, path in found if path in fresh]
    if not found:
        return
    logger.info(
        "hotswap: enable(): %d module(s) run older code than their file (saved before the "
        "watcher started); applying: %s",
        len(found),
        ", ".join(name for name, _ in found),
    )
    for _, path in found:
        reloader.notify(path, COMPLETE)


def coordinate() -> _fleet.Coordinator:
    """Make this process its fleet's coordinator: the processes it forks or spawns from now on
    join the fleet, and the watcher (started by :func:`enable`, before or after) sends each
    change set to every worker in two phases (docs/fleets.md). Idempotent."""
    coordinator = _fleet.coordinate(_apply_change_set)
    with _reloader_lock:
        reloader = _reloader
    if reloader is not None and reloader.running:
        reloader.delegate(coordinator.apply_files)
    return coordinator


def end_fleet() -> None:
    """Stop coordinating (workers keep the code they run)."""
    _fleet.stop()


def _forked() -> None:
    """In a forked child: the parent's watcher did not come along (its threads are the
    parent's). A fleet worker needs none; anywhere else, say so loudly."""
    global _reloader, _hide_status, _reloader_lock
    _reloader_lock = threading.Lock()
    reloader, _reloader, _hide_status = _reloader, None, None
    if reloader is None or _fleet.role() == "worker":
        return
    logger.warning(
        "hotswap: pid %d was forked from pid %d, whose watcher does not run in it: saves do "
        "not reach this process. Run the program under `hotswap run` (its workers then join "
        "one fleet, docs/fleets.md), or call hotswap.enable() in the child",
        os.getpid(),
        os.getppid(),
    )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _apply_change_set(entries: list[tuple[str, bytes]]) -> list[ReloadResult]:
    """How the watcher's change sets go live: one transaction, or in canary mode a change to
    one module is tried on a share of the work first (a set of several modules applies as one
    reload: a canary tries one module's code)."""
    if len(entries) == 1 and _config.current().canary is not None:
        return [_canary.from_watcher(*entries[0])]
    return _transaction.reload_many(entries, policy=None)


def deliver(result: ReloadResult) -> None:
    """Give the running watcher's ``on_reload`` a result no save caused (a canary's decision,
    an automatic rollback): registered with :func:`_events.on_announce` below."""
    reloader = _reloader
    callback = None if reloader is None else reloader.on_reload
    if callback is not None:
        _events.call_safely(callback, result)


_events.on_announce(deliver)


def _differences(
    running: Reloader,
    paths: str | os.PathLike[str] | list[str | os.PathLike[str]] | None,
    given: dict[str, object],
    on_reload: Callable[[ReloadResult], object] | None,
) -> list[str]:
    """The arguments of a second ``enable()`` that differ from the running watcher's, each as
    ``name=given (running: value)``; unset (None) arguments never differ."""
    found = []
    if paths is not None:
        chosen = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        wanted = tuple(sorted({os.path.realpath(os.path.abspath(p)) for p in chosen}))
        if wanted != running.paths:
            found.append(f"paths={list(wanted)} (running: {list(running.paths)})")
    for name, value in given.items():
        now = getattr(running.settings, name)
        if value is not None and _config.value_of(name, value, "enable()") != now:
            found.append(f"{name}={value!r} (running: {now!r})")
    if on_reload is not None and on_reload != running.on_reload:
        found.append(f"on_reload={on_reload!r} (running: {running.on_reload!r})")
    return found


def disable() -> None:
    """Stop watching and join the watcher's threads; reloaded code stays as it is."""
    global _reloader, _hide_status
    with _reloader_lock:
        reloader, _reloader = _reloader, None
        hide, _hide_status = _hide_status, None
    if hide is not None:
        hide()
    if reloader is not None:
        _datafiles.untrack()
        reloader.stop()
        _config.end_call()  # enable()'s arguments were that call's: they end with its watcher


def reload(
    module_or_name: types.ModuleType | str, *, policy: str | None = None, force: bool = False
) -> ReloadResult:
    """Reload a module now, through the same checks and transaction as the watcher.

    Works on any loaded module with a Python source file. It compiles the source it reads,
    never a cached ``.pyc``. A failed reload changes nothing and is returned, not raised.
    ``__main__`` is updated definitions-only: its changed functions and classes go live, its
    top-level statements do not run again.

    Args:
        module_or_name: the module, or its name in ``sys.modules``.
        policy: ``"strict"``, ``"warn"`` or ``"off"``; None uses the configured policy.
        force: run the whole module again (a reset of its state, ``kind == "reset"``), through
            the same checks and transaction.

    Returns:
        The result, with ``ok``, ``version``, ``changes``, ``error``...

    Examples:
        >>> import hotswap, json
        >>> hotswap.reload(json).ok
        True
    """
    return _transaction.reload(module_or_name, policy=policy, force=force)


def rollback(module_or_name: types.ModuleType | str, to: int | None = None) -> ReloadResult:
    """Restore a kept version of a module: the previous one, or version ``to``.

    Objects and code are restored exactly (functions get their old code back, in place);
    names in ``__hotswap_keep__`` keep their current objects.

    The file keeps the source that was rolled back from, and the rollback sticks until the
    file changes: the watcher (also one started later with :func:`enable`) takes those same
    bytes for no save. ``reload(module)`` applies the file again.
    """
    return _transaction.rollback(module_or_name, to=to)


def status(*, fleet: bool = False) -> Status:
    """What hotswap knows: per-module versions and history, counters and timings.

    Args:
        fleet: in a fleet, also ask its coordinator for the fleet's view (``fleet_view``:
            each worker's epoch, the fleet's canaries with the fleet's figures, the last
            release, its mixed-version window and its health window), whichever process
            asks; one round trip from a worker. The middleware's status endpoint asks for
            it.
    """
    metrics = _transaction.metrics
    reloader = _reloader
    return Status(
        modules=_transaction.module_statuses(),
        watching=reloader is not None and reloader.running,
        reloads=metrics.reloads,
        failures=metrics.failures,
        last_duration=metrics.last_duration,
        total_duration=metrics.total_duration,
        canaries=_canary.running(),
        epoch=_fleet.ledger.epoch,
        fleet=_fleet.role(),
        fleet_view=_fleet.view() if fleet else None,
    )


def configure(**settings: Any) -> _config.Settings:
    """Change settings for this process: ``policy``, ``history``, ``pin_timeout``,
    ``auto_rollback``...

    ``auto_rollback={"window": 30.0, "min_calls": 50, "max_error_rate": 0.05}`` (or ``True``
    for those defaults) rolls a committed version back by itself when, within ``window``
    seconds of its commit and after ``min_calls`` calls (requests through the middleware and
    ``@reloadable`` calls), its error rate exceeds the bound and the previous version's; the
    rollback's result has ``kind == "rollback"`` and a ``reason`` with the figures.
    ``auto_rollback=False`` turns it off again.

    Returns the settings now in force. See :class:`hotswap.Settings`.
    """
    return _config.configure(**settings)


def pinned(timeout: float | None = None) -> Pin:
    """A context manager (``with`` or ``async with``) inside which every call sees one
    consistent version of every module.

    A reload waits (up to its ``pin_timeout``, 5 s by default) before it executes until pinned
    sections have left; a pinned section that starts while a reload runs waits for it. Nested
    pins, and a reload started from a pinned section, do not deadlock. Code that never pins
    pays nothing. A change the watcher could not apply in time is tried again by itself once
    the sections that held it off have left (docs/guide.md).

    Args:
        timeout: the longest wait to enter, in seconds (None: as long as a reload takes);
            past it, :class:`~hotswap.PinTimeoutError`.

    Examples:
        >>> import hotswap
        >>> with hotswap.pinned():
        ...     pass
    """
    return gate.pin(timeout)


def subscribe(callback: Callable[[Event], object]) -> Callable[[], None]:
    """Call ``callback(event)`` for every event hotswap publishes; returns ``unsubscribe``.

    The events, each a frozen dataclass with ``to_dict()``, in the order they happen:
    :class:`ChangeDetected` (the watcher read a changed file), :class:`Planned` (a change
    passed its checks), :class:`RolledBack` (earlier code is live again, and why),
    :class:`ReloadResult` (the last word on every reload and rollback attempt),
    :class:`WatcherState`, and while a gray release runs :class:`CanaryDecision` and
    :class:`CanaryCall`. Callbacks run on the thread that publishes; keep them short. What
    they raise is logged, never raised. A result is published before its reload returns, with
    the reload lock held: a callback that starts a reload itself gets a failed result
    (:class:`ReentrantReloadError`); hand the work to another thread instead.

    Examples:
        >>> import hotswap
        >>> seen = []
        >>> unsubscribe = hotswap.subscribe(seen.append)
        >>> unsubscribe()
    """
    return _events.listen(callback)
