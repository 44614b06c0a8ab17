"""Settings: ``enable()``/``configure()`` arguments, ``[tool.hotswap]`` in pyproject.toml, and
``HOTSWAP_*`` environment variables.

Precedence, lowest first: defaults, pyproject.toml (found from the working directory upwards),
environment variables, then explicit arguments.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotswap._ops import forks as _forks
from hotswap.exceptions import ConfigError

__all__ = (
    "DEFAULT_DENY",
    "POLICIES",
    "AuditPolicy",
    "AutoRollback",
    "CanaryPolicy",
    "Settings",
    "SignaturePolicy",
    "configure",
    "current",
    "end_call",
    "for_call",
    "load",
    "value_of",
)

logger = logging.getLogger(__name__)

POLICIES = ("strict", "warn", "off")

# What ``audit = true`` denies: running other programs, evaluating text as code, and
# unpickling (which can run anything).
DEFAULT_DENY = (
    "os.system",
    "os.popen",
    "os.exec*",
    "os.spawn*",
    "subprocess.*",
    "eval",
    "exec",
    "pickle.loads",
    "pickle.load",
    "marshal.loads",
)


@dataclass(frozen=True)
class AuditPolicy:
    """Names the new code of a change may not use (see ``docs/operating.md``).

    Attributes:
        deny: dotted names or ``fnmatch`` patterns (``"os.system"``, ``"subprocess.*"``,
            ``"eval"``); a use of the name or of anything under it is denied.
        allow: exceptions to ``deny`` (``"subprocess.run"``); the longer match wins.
    """

    deny: tuple[str, ...] = DEFAULT_DENY
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignaturePolicy:
    """Changed files apply only with a valid Ed25519 signature beside them (``<file>.sig``).

    Attributes:
        public_keys: PEM files of the keys whose signatures are accepted (absolute: relative
            paths are resolved against the pyproject.toml folder, or the working directory
            for ``configure()`` and the environment).
    """

    public_keys: tuple[str, ...]


@dataclass(frozen=True)
class CanaryPolicy:
    """The watcher tries every change as a canary first (see ``docs/operating.md``).

    Attributes: the arguments of :func:`hotswap.canary` of the same names.
    """

    weight: float = 0.1
    min_calls: int = 100
    max_error_rate: float = 0.01
    promote_after: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0 or not 0.0 <= self.max_error_rate <= 1.0:
            raise ValueError("weight and max_error_rate must be between 0 and 1")
        if self.min_calls < 0 or (self.promote_after is not None and self.promote_after < 1):
            raise ValueError("min_calls must be >= 0 and promote_after >= 1 (or None)")


@dataclass(frozen=True)
class AutoRollback:
    """Roll a committed version back by itself when its calls fail (see ``docs/operating.md``).

    Attributes:
        window: seconds after a commit during which the new version's calls are counted.
        min_calls: calls counted before the error rate can decide.
        max_error_rate: the error rate above which (and above the previous version's) the
            version is rolled back.
    """

    window: float = 30.0
    min_calls: int = 50
    max_error_rate: float = 0.05

    def __post_init__(self) -> None:
        if self.window <= 0 or self.min_calls < 1 or not 0.0 <= self.max_error_rate <= 1.0:
            raise ValueError("window must be > 0, min_calls >= 1, max_error_rate in [0, 1]")


@dataclass(frozen=True)
class Settings:
    """hotswap's settings.

    Attributes:
        policy: what to do with a change that could break callers: ``"strict"`` rejects it,
            ``"warn"`` applies it with a :class:`~hotswap.HotswapWarning`, ``"off"`` skips
            the check.
        history: versions kept per module for rollback.
        pin_timeout: seconds a reload waits for pinned sections before it fails. The
            watcher then tries the change again by itself once the sections that held it off
            have left (pauses from 0.1 s doubling to 30 s between refusals; given up with a
            warning after 5 minutes).
        debounce: longest wait, in seconds, for a file to settle after an event.
        polling: use watchdog's polling observer (network and container file systems).
        paths: files and directories to watch (empty: the default, see ``enable()``).
        exclude: glob patterns of paths never reloaded by the watcher.
        switch_interval: while the watcher runs, the GIL switch interval is at most this many
            seconds (0: leave the program's alone). Each hop of a file event between threads
            waits for the GIL up to this long behind a busy main thread: with Python's 5 ms
            default, a save took 12-18 ms to go live behind a CPU-bound main thread, 3-5 ms
            with 1 ms. It changes nothing for a program with one busy thread.
        audit: the :class:`AuditPolicy` new code is scanned against before it runs, or None
            (off, the default). Given as ``{"deny": [...], "allow": [...]}``, ``True`` (the
            default deny list) or ``False``.
        require_signature: the :class:`SignaturePolicy` changed files must satisfy, or None
            (off, the default). Given as ``{"public_keys": [...]}`` or ``False``.
        restart_on_failure: under ``hotswap run``, restart the program (from its warm
            template, see docs/cli.md) when a reload fails, instead of keeping the last good
            code; a syntax error is the exception: a fresh start would fail on it too.
        canary: the :class:`CanaryPolicy` the watcher tries each change with, or None (off,
            the default). Given as ``{"weight": 0.1, "promote_after": 500, ...}``, ``True``
            (the defaults) or ``False``.
        auto_rollback: the :class:`AutoRollback` bound, or None (off, the default). Given as
            ``{"window": 30.0, "min_calls": 50, "max_error_rate": 0.05}``, ``True`` or
            ``False``.
        verbose: ``enable()`` prints a status line on stderr for every reload, as
            ``hotswap run`` does, for programs started with plain ``python``.
        commit_timeout: in a fleet (``docs/fleets.md``), seconds the coordinator waits for
            each worker's vote and commit; a worker whose pinned requests keep it from
            committing retries within it. Past it the release is aborted (or rolled back
            everywhere) and the log names the worker.
    """

    policy: str = "strict"
    history: int = 16
    pin_timeout: float = 5.0
    debounce: float = 0.05
    polling: bool = False
    paths: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    switch_interval: float = 0.001
    audit: AuditPolicy | None = None
    require_signature: SignaturePolicy | None = None
    restart_on_failure: bool = False
    canary: CanaryPolicy | None = None
    auto_rollback: AutoRollback | None = None
    verbose: bool = False
    commit_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            message = f"policy must be one of {', '.join(map(repr, POLICIES))}, not {self.policy!r}"
            raise ValueError(message)
        if self.history < 1:
            message = f"history must keep at least 1 version, not {self.history}"
            raise ValueError(message)
        if self.pin_timeout < 0 or self.debounce < 0 or self.switch_interval < 0:
            message = "pin_timeout, debounce and switch_interval must not be negative"
            raise ValueError(message)
        if self.commit_timeout <= 0:
            message = f"commit_timeout must be more than 0 seconds, not {self.commit_timeout}"
            raise ValueError(message)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _audit(value: Any, source: str, base: Path) -> AuditPolicy | None:
    decided, value = _switched(AuditPolicy, value, source)
    if decided:
        return value  # type: ignore[no-any-return]
    if not isinstance(value, dict) or set(value) - {"deny", "allow"}:
        message = f"{source} must be a table with 'deny' and 'allow' lists, not {value!r}"
        raise ValueError(message)
    deny = value.get("deny", DEFAULT_DENY)
    allow = value.get("allow", ())
    return AuditPolicy(deny=_names(deny, source, "deny"), allow=_names(allow, source, "allow"))


def _signature(value: Any, source: str, base: Path) -> SignaturePolicy | None:
    if isinstance(value, str):
        text = _text_setting(value, source)
        # In the environment a plain list of key files is enough: keys separated by os.pathsep.
        value = text if not isinstance(text, str) else {"public_keys": text.split(os.pathsep)}
    if value is None or value is False:
        return None
    if isinstance(value, SignaturePolicy):
        return value
    keys = value.get("public_keys") if isinstance(value, dict) else None
    if not keys or set(value) != {"public_keys"}:
        message = f"{source} must be a table with a non-empty 'public_keys' list, not {value!r}"
        raise ValueError(message)
    paths = _names(keys, source, "public_keys")
    return SignaturePolicy(tuple(str(base / os.path.expanduser(p)) for p in paths))


def _switched(kind: type[Any], value: Any, source: str) -> tuple[bool, Any]:
    """What every table setting accepts besides a table: text (an environment variable: JSON or
    a boolean word), None or False (off), True (the defaults), an instance. Returns (True, the
    setting) for those, else (False, the table to read)."""
    if isinstance(value, str):
        value = _text_setting(value, source)
    if value is None or value is False:
        return True, None
    if value is True:
        return True, kind()
    if isinstance(value, kind):
        return True, value
    return False, value


def _policy_table(kind: type[Any], value: Any, source: str) -> Any:
    decided, value = _switched(kind, value, source)
    if decided:
        return value
    known = {f.name for f in dataclasses.fields(kind)}
    if not isinstance(value, dict) or set(value) - known:
        message = f"{source} must be a table with keys among {sorted(known)}, not {value!r}"
        raise ValueError(message)
    try:
        return kind(**value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {value!r} is not valid: {error}") from error


def _canary(value: Any, source: str, base: Path) -> CanaryPolicy | None:
    return _policy_table(CanaryPolicy, value, source)  # type: ignore[no-any-return]


def _auto_rollback(value: Any, source: str, base: Path) -> AutoRollback | None:
    return _policy_table(AutoRollback, value, source)  # type: ignore[no-any-return]


def _text_setting(value: str, source: str) -> Any:
    """A table setting given as text (an environment variable): JSON, or a boolean word."""
    text = value.strip()
    if text.lower() in ("", "0", "false", "no", "off"):
        return None
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.startswith("{"):
        import json  # here: only an environment variable holding a table needs it

        try:
            return json.loads(text)
        except ValueError as error:
            message = f"{source}: {text!r} is not a JSON table: {error}"
            raise ValueError(message) from error
    return text


def _names(value: Any, source: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        message = f"{source}: '{what}' must be a list of strings, not {value!r}"
        raise ValueError(message)
    return tuple(value)


# Settings that are tables, and how to read each; ``base`` anchors relative paths.
_TABLES = {
    "audit": _audit,
    "require_signature": _signature,
    "canary": _canary,
    "auto_rollback": _auto_rollback,
}


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _coerce(
    name: str, value: Any, source: str, base: Path | None = None, filename: str | None = None
) -> Any:
    """``value`` of setting ``name`` as its type, checked; ``source`` says where it came from
    (``/app/pyproject.toml [tool.hotswap] debounce``, ``HOTSWAP_DEBOUNCE``, ``configure()``),
    ``filename`` is the pyproject.toml it was read from, if any.

    Raises:
        ConfigError: a value of the wrong type or out of range; the message names the source.
    """
    try:
        return _checked(name, value, source, base)
    except ValueError as error:
        message = str(error)
        if not message.startswith(source):
            message = f"{source}: {value!r} is not valid: {message}"
        raise ConfigError(message, filename=filename, key=name) from error


def value_of(name: str, value: Any, source: str) -> Any:
    """``value`` as setting ``name`` holds it (a table as its policy object), checked."""
    return _coerce(name, value, source)


def _checked(name: str, value: Any, source: str, base: Path | None) -> Any:
    kind = _FIELDS[name].type
    if name in _TABLES:
        try:
            return _TABLES[name](value, source, Path.cwd() if base is None else base)
        except (TypeError, AttributeError) as error:
            raise ValueError(str(error)) from error
    text = value.strip() if isinstance(value, str) else None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        message = f"expected a boolean ({'/'.join(_TRUE[1:])} or {'/'.join(_FALSE[1:])})"
        raise ValueError(message)
    if kind == "tuple[str, ...]":
        if text is not None:
            return tuple(p for p in value.split(os.pathsep) if p)
        if isinstance(value, list | tuple) and all(isinstance(p, str | os.PathLike) for p in value):
            return tuple(os.fspath(p) for p in value)
        raise ValueError("expected a list of strings")
    if kind == "str":
        if text is None:
            raise ValueError("expected a string")
        if name == "policy" and text not in POLICIES:
            raise ValueError(f"expected one of {', '.join(map(repr, POLICIES))}")
        return text
    if kind not in ("int", "float"):
        return str(value)
    # Numbers: a bool is an int to Python, never to a user.
    number: int | float
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a{'n' * (kind == 'int')} {kind}")
    try:
        number = int(value) if kind == "int" else float(value)
    except ValueError:
        raise ValueError(f"expected a{'n' * (kind == 'int')} {kind}") from None
    if kind == "int" and isinstance(value, float) and number != value:
        raise ValueError("expected a whole number")
    if name == "history" and number < 1:
        raise ValueError("at least 1 version must be kept")
    if name == "commit_timeout" and number == 0:
        raise ValueError("a fleet needs more than 0 seconds to commit")
    if not number >= 0 or number == float("inf"):  # also refuses nan
        raise ValueError("expected a finite number of seconds, not negative")
    return number


def _pyproject_table(start: Path) -> tuple[dict[str, Any], str]:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            # Imported here, not at the top: it costs 5 ms, and most runs need none.
            import tomllib

            try:
                with candidate.open("rb") as handle:
                    data = tomllib.load(handle)
            except (OSError, tomllib.TOMLDecodeError) as error:
                logger.warning("hotswap: ignoring %s: %s", candidate, error)
                return {}, ""
            table = data.get("tool", {}).get("hotswap", {})
            return (table if isinstance(table, dict) else {}), str(candidate)
    return {}, ""


def load(start: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from pyproject.toml (searched upwards from ``start``) and the environment."""
    values: dict[str, Any] = {}
    table, where = _pyproject_table(Path.cwd() if start is None else start)
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            logger.warning("hotswap: %s: unknown setting [tool.hotswap] %s", where, key)
            continue
        source = f"{where} [tool.hotswap] {key}"
        values[name] = _coerce(name, value, source, Path(where).parent, filename=where)
    env = os.environ if environ is None else environ
    for name in _FIELDS:
        variable = f"HOTSWAP_{name.upper()}"
        if variable in env:
            values[name] = _coerce(name, env[variable], variable)
    return Settings(**values)


_lock = _forks.guarded(threading.Lock(), "settings")
_current: Settings | None = None  # configure(), [tool.hotswap], HOTSWAP_*
# The arguments of the enable() call whose watcher runs: in force while it runs, never written
# into the settings (a later enable() or %load_ext must not inherit another call's paths).
_call: dict[str, Any] = {}
_effective: Settings | None = None  # _current with _call applied


def current() -> Settings:
    """The settings in force (loaded on first use), with the running watcher's ``enable()``
    arguments applied."""
    global _current, _effective
    with _lock:
        if _current is None:
            _current = load()
        if not _call:
            return _current
        if _effective is None:
            _effective = dataclasses.replace(_current, **_call)
        return _effective


def configure(**changes: Any) -> Settings:
    """Change settings for this process; unknown names raise ``TypeError``."""
    global _current, _effective
    coerced = _coerced(changes, "configure")
    with _lock:
        base = _current if _current is not None else load()
        _current = dataclasses.replace(base, **coerced)
        _effective = None
    return current()


def for_call(**changes: Any) -> Settings:
    """The settings for one ``enable()`` call: ``changes`` (None: unset) over the settings,
    in force until :func:`end_call`, never written into them."""
    global _call, _effective
    coerced = _coerced(changes, "enable")
    with _lock:
        _call = coerced
        _effective = None
    return current()


def end_call() -> None:
    """The watcher started by :func:`for_call`'s ``enable()`` stopped: its arguments end."""
    global _call, _effective
    with _lock:
        _call = {}
        _effective = None


def _coerced(changes: dict[str, Any], function: str) -> dict[str, Any]:
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        message = f"unknown setting(s): {', '.join(sorted(unknown))}"
        raise TypeError(message)
    # None means "leave as it is" (enable()'s unset arguments); False turns a table setting off.
    return {k: _coerce(k, v, f"{function}({k}=...)") for k, v in changes.items() if v is not None}


def reset() -> None:
    """Forget the settings, so the next use loads them again (for tests)."""
    global _current, _call, _effective
    with _lock:
        _current = None
        _call = {}
        _effective = None
