"""Live configuration files: read, validated, swapped atomically, versioned and reversible.

A :class:`LiveConfig` holds the validated value of one file. A change goes through one path:
the file watch delivers the complete bytes (never a half-written file), they are parsed
(:mod:`hotswap._config.formats`), environment overrides are applied and the result validated
(:mod:`hotswap._config.schema`); only then is the value swapped, as one reference, and the
``on_change`` callbacks told. A failure at any step keeps the value in force.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import types
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from hotswap._config import settings as _config
from hotswap._ops.events import display_path
from hotswap.exceptions import ConfigError, VersionNotFoundError

__all__ = ("LiveConfig", "live_config")

logger = logging.getLogger(__name__)

T = TypeVar("T")
Callback = Callable[[Any, Any], object]


class LiveConfig(Generic[T]):
    """The live, validated value of a configuration file. Made by :func:`hotswap.live_config`.

    Attributes:
        path: the file (absolute).
        schema: what validates it (None: the parsed mapping is the value).
        env_prefix: the prefix of environment variables that override keys, or None.
        last_error: the :class:`~hotswap.ConfigError` of the last change that was refused (a
            parse or validation failure, an ``on_change`` callback that raised); None once a
            change is applied.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        schema: Callable[..., T] | None = None,
        env_prefix: str | None = None,
        on_change: Callable[[T, T], object] | None = None,
        history: int | None = None,
        watch: bool = True,
    ) -> None:
        # Parsers and schemas load with the first live config: `import hotswap` stays light.
        from hotswap._config.formats import format_of
        from hotswap._config.schema import schema_kind

        self.path = os.path.abspath(os.fspath(path))
        self._format = format_of(self.path)  # an unknown extension fails here, before any read
        schema_kind(schema)  # ... as does a schema of no known kind
        self.schema = schema
        self.env_prefix = env_prefix
        self.last_error: ConfigError | None = None
        settings = _config.current()
        keep = settings.history if history is None else history
        if keep < 1:
            message = f"history must keep at least 1 version, not {keep}"
            raise ValueError(message)
        # One reference for (version, value): a reader of both never gets a mix of two versions.
        self._current: tuple[int, T]
        self._kept: collections.deque[tuple[int, T]] = collections.deque(maxlen=keep)
        self._latest = 0
        self._digest: str | None = None
        self._callbacks: list[Callback] = [] if on_change is None else [on_change]
        # Reentrant: an on_change callback may call rollback() or reload().
        self._lock = threading.RLock()
        self._watch: Any = None
        self._stop: Callable[[], object] = lambda: None
        if watch:
            from hotswap._watch.filewatch import FileWatch

            # The watch holds this object weakly and stops when it is collected: a config
            # dropped without close() must not keep a thread and itself alive for good.
            this = weakref.ref(self)

            def delivered(path: str, data: bytes) -> None:
                config = this()
                if config is not None:
                    config._apply(data)

            self._watch = FileWatch(
                [self.path], delivered, debounce=settings.debounce, polling=settings.polling
            )
            self._stop = weakref.finalize(self, self._watch.stop)
            # Watching starts before the first read, so an edit made meanwhile is not lost.
            self._watch.start()
        try:
            # Held so that a change the watch delivers meanwhile waits for version 1.
            with self._lock:
                data = self._read()
                value = self._build(data)
                self._digest = self._fingerprint(data)
                self._latest = 1
                self._current = (1, value)
                self._kept.append(self._current)
        except BaseException:
            self.close()  # outside the lock: the watch's thread may be waiting for it
            raise
        logger.info("hotswap: %s: version 1 loaded", display_path(self.path))

    # --- reading -------------------------------------------------------------------------------

    @property
    def value(self) -> T:
        """The current validated value. Take it once per unit of work (a request): two reads
        may straddle a change."""
        return self._current[1]

    @property
    def version(self) -> int:
        """1 for the value loaded at creation, one more for each applied change (a rollback
        makes the restored version current again)."""
        return self._current[0]

    @property
    def history(self) -> tuple[int, ...]:
        """The version numbers kept for :meth:`rollback`, oldest first (bounded by the
        ``history`` argument, else the ``history`` setting)."""
        with self._lock:
            return tuple(number for number, _ in self._kept)

    @property
    def watching(self) -> bool:
        """Whether the file is being watched (False after :meth:`close`)."""
        return self._watch is not None and bool(self._watch.running)

    def __repr__(self) -> str:
        return f"<LiveConfig {display_path(self.path)} version {self.version}>"

    # --- changing ------------------------------------------------------------------------------

    def on_change(self, callback: Callable[[T, T], object]) -> Callable[[T, T], object]:
        """Call ``callback(old, new)`` after each swap (usable as a decorator).

        Callbacks run in the order they were added, on the thread that applied the change
        (the file watch's, or the caller of :meth:`reload`/:meth:`rollback`), with
        :attr:`value` already the new one. If one raises, the swap is undone: the callbacks
        that already ran are called again with ``(new, old)``, the old value and version are
        current again, and the error is logged and kept in :attr:`last_error`.
        """
        with self._lock:
            self._callbacks.append(callback)
        return callback

    def reload(self) -> bool:
        """Read the file now (and the environment overrides) and apply it if it changed.

        Returns:
            True when a new version went live; False when nothing changed or the change was
            refused (see :attr:`last_error`).
        """
        try:
            data = self._read()
        except ConfigError as error:
            with self._lock:
                self._refuse(error)
            return False
        return self._apply(data)

    def rollback(self, to: int | None = None) -> T:
        """Make a kept version current again: the newest one older than the current, or ``to``.

        The ``on_change`` callbacks are told as for any change. The file is not touched: its
        next change is applied as usual.

        Returns:
            The value now current.

        Raises:
            VersionNotFoundError: no such version is kept (see :attr:`history`).
            ConfigError: an ``on_change`` callback raised; the rollback was undone.
        """
        with self._lock:
            current = self.version
            if to == current:
                return self.value
            if to is None:
                chosen = next((e for e in reversed(self._kept) if e[0] < current), None)
            else:
                chosen = next((e for e in self._kept if e[0] == to), None)
            if chosen is None:
                kept = ", ".join(str(n) for n, _ in self._kept)
                wanted = "an earlier version" if to is None else f"version {to}"
                message = (
                    f"{display_path(self.path)}: {wanted} is not kept "
                    f"(history: {kept}; current: {current})"
                )
                raise VersionNotFoundError(message, filename=self.path)
            error = self._swap(chosen)
            if error is not None:
                self._refuse(error, trace=error.__cause__)
                raise error
            logger.info(
                "hotswap: %s: rolled back to version %d", display_path(self.path), chosen[0]
            )
            return chosen[1]

    def close(self) -> None:
        """Stop watching the file (idempotent); the value stays readable."""
        self._stop()  # a finalizer: it runs once, here or when the object is collected

    def __enter__(self) -> LiveConfig[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------

    def _read(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except OSError as error:
            reason = error.strerror or type(error).__name__
            message = f"{display_path(self.path)}: cannot read the configuration: {reason}"
            raise ConfigError(message, filename=self.path) from error

    def _environ(self) -> list[tuple[str, str]]:
        prefix = self.env_prefix
        if not prefix:
            return []
        return sorted((k, v) for k, v in os.environ.items() if k.startswith(prefix))

    def _fingerprint(self, data: bytes) -> str:
        digest = hashlib.sha256(data)
        for name, text in self._environ():
            digest.update(f"\0{name}={text}".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def _build(self, data: bytes) -> T:
        from hotswap._config.formats import key_line, parse, textual
        from hotswap._config.schema import Invalid, build, env_overrides

        parsed = parse(self.path, data)
        from_env = True  # an override's error has no line in the file
        try:
            if self.env_prefix:
                parsed = env_overrides(parsed, self.schema, self.env_prefix, dict(self._environ()))
            from_env = False
            value: Any = build(self.schema, parsed, text=textual(self._format))
        except Invalid as error:
            lineno = None if from_env else key_line(self.path, data, error.key)
            where = display_path(self.path) + ("" if lineno is None else f":{lineno}")
            message = (
                f"{where}: key {error.key!r}: {error.why}" if error.key else f"{where}: {error.why}"
            )
            # The validator's own exception is the cause users look for, where there is one.
            cause = error.__cause__ or error
            raise ConfigError(
                message, filename=self.path, lineno=lineno, key=error.key or None
            ) from cause
        return value  # type: ignore[no-any-return]

    def _apply(self, data: bytes) -> bool:
        with self._lock:
            if not self._latest:
                return False  # the first read failed: this object is being discarded
            digest = self._fingerprint(data)
            if digest == self._digest:
                return False  # saved without a change
            self._digest = digest
            try:
                value = self._build(data)
            except ConfigError as error:
                self._refuse(error)
                return False
            entry = (self._latest + 1, value)
            refused = self._swap(entry)
            if refused is not None:
                self._refuse(refused, trace=refused.__cause__)
                return False
            self._latest = entry[0]
            self._kept.append(entry)
            self.last_error = None
            logger.info("hotswap: %s: version %d live", display_path(self.path), entry[0])
            return True

    def _swap(self, entry: tuple[int, T]) -> ConfigError | None:
        """Make ``entry`` current and tell the callbacks; undo it all if one raises (lock
        held)."""
        before = self._current
        old, new = before[1], entry[1]
        self._current = entry
        told: list[Callback] = []
        for callback in list(self._callbacks):
            try:
                callback(old, new)
            except BaseException as raised:
                self._current = before
                # Whatever the earlier callbacks built from the new value (a pool, a limiter)
                # follows the value back.
                for earlier in reversed(told):
                    try:
                        earlier(new, old)
                    except Exception:
                        logger.exception("hotswap: on_change callback %r raised undoing", earlier)
                if isinstance(raised, KeyboardInterrupt):
                    raise
                name = getattr(callback, "__qualname__", repr(callback))
                message = (
                    f"{display_path(self.path)}: on_change callback {name} raised "
                    f"{type(raised).__name__}: {raised}; the change was undone"
                )
                refused = ConfigError(message, filename=self.path)
                refused.__cause__ = raised
                return refused
            told.append(callback)
        return None

    def _refuse(self, error: ConfigError, *, trace: BaseException | None = None) -> None:
        """Keep ``error`` and log it in one line (plus ``trace``'s traceback: a callback's)."""
        self.last_error = error
        # As for module reloads: a refused change is a warning, a callback's failure an error.
        level = logging.WARNING if trace is None else logging.ERROR
        logger.log(level, "hotswap: %s; keeping version %d", error, self.version, exc_info=trace)


@overload
def live_config(
    path: str | os.PathLike[str],
    *,
    schema: None = None,
    env_prefix: str | None = None,
    on_change: Callable[[dict[str, Any], dict[str, Any]], object] | None = None,
    history: int | None = None,
    watch: bool = True,
) -> LiveConfig[dict[str, Any]]: ...


@overload
def live_config(
    path: str | os.PathLike[str],
    *,
    schema: Callable[..., T],
    env_prefix: str | None = None,
    on_change: Callable[[T, T], object] | None = None,
    history: int | None = None,
    watch: bool = True,
) -> LiveConfig[T]: ...


def live_config(
    path: str | os.PathLike[str],
    *,
    schema: Callable[..., Any] | None = None,
    env_prefix: str | None = None,
    on_change: Callable[[Any, Any], object] | None = None,
    history: int | None = None,
    watch: bool = True,
) -> LiveConfig[Any]:
    """Load a configuration file, validate it, and keep it live as the file changes.

    The format follows the extension: ``.toml``, ``.json``, ``.yaml``/``.yml`` (PyYAML:
    the ``yaml`` extra), ``.ini``/``.cfg``/``.conf``. Works whether or not
    :func:`hotswap.enable` was called; close it (or use ``with``) to stop watching.

    Args:
        path: the file.
        schema: a dataclass (nested ones too), a pydantic model, a ``TypedDict``, or a
            callable ``dict -> object`` that raises on invalid input. None: the value is the
            parsed mapping (treat it as read-only: versions are kept for rollback).
        env_prefix: environment variables ``PREFIX`` + ``KEY`` override keys, ``__`` separating
            nested keys (``APP_DB__TIMEOUT=5`` sets ``db.timeout``), converted to the declared
            types.
        on_change: called with ``(old, new)`` after each swap; see :meth:`LiveConfig.on_change`.
        history: versions kept for rollback (default: the ``history`` setting, 16).
        watch: watch the file; False reads it only on :meth:`LiveConfig.reload`.

    Returns:
        The live configuration, at version 1.

    Raises:
        ConfigError: the file cannot be read, parsed or validated (names file, line or key).
        ValueError: the extension is not a known format.
        TypeError: ``schema`` is none of the kinds above.
        ModuleNotFoundError: the format's parser is not installed (PyYAML).

    Examples:
        >>> import hotswap
        >>> with hotswap.live_config("app.toml", schema=Settings) as config:  # doctest: +SKIP
        ...     config.value.db.timeout
    """
    return LiveConfig(
        path,
        schema=schema,
        env_prefix=env_prefix,
        on_change=on_change,
        history=history,
        watch=watch,
    )
