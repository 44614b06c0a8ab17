"""The exceptions and warnings hotswap reports.

A failed reload never raises out of :func:`hotswap.reload`: the exception is returned in
:attr:`hotswap.ReloadResult.error`. Every message names the module, the file and the line, and
says why, e.g. ``shop.pricing (shop/pricing.py:14): ZeroDivisionError: division by zero``.

Examples:
    >>> import hotswap
    >>> result = hotswap.reload("json")           # doctest: +SKIP
    >>> isinstance(result.error, hotswap.HotswapError)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = (
    "AuditError",
    "CanaryError",
    "ConfigError",
    "ExecutionError",
    "HotswapError",
    "HotswapWarning",
    "IncompatibleChangeError",
    "MigrationError",
    "ModuleNotReloadableError",
    "PinTimeoutError",
    "ReentrantReloadError",
    "SignatureError",
    "SourceSyntaxError",
    "VerificationError",
    "VersionNotFoundError",
)


class Finding(Protocol):
    """One problem the compatibility check found (``hotswap._plan.diff.Finding`` is the one it
    makes; this module sits below the check and names only what it reads)."""

    @property
    def lineno(self) -> int:
        """The line of the problem in the new source (in the old one for a removal)."""
        ...


class HotswapError(Exception):
    """Base of every error hotswap reports.

    A plain ``Exception`` subclass so that ``except Exception`` in user code (a server's error
    handler, say) also sees it. ``module``, ``filename`` and ``lineno`` say where the problem is,
    when it is known.
    """

    def __init__(
        self,
        message: str,
        *,
        module: str | None = None,
        filename: str | None = None,
        lineno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.module = module
        self.filename = filename
        self.lineno = lineno

    def __str__(self) -> str:
        # The message, always: OSError (the base of TimeoutError) would otherwise format its
        # errno and filename fields instead.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Results travel (pickled to another process, deep-copied by tools) with their error.
        # The default reduction calls ``cls(*args)``, which the keyword-only fields of the
        # subclasses refuse; rebuild from the message and restore every field instead.
        state = dict(self.__dict__)
        if isinstance(self, SyntaxError):  # its fields live in C slots, not in __dict__
            for name in ("msg", "filename", "lineno", "offset", "text", "end_lineno"):
                state[name] = getattr(self, name)
            state["end_offset"] = self.end_offset
        # The original exception travels too, unless it cannot: the default reduction of an
        # exception keeps neither its cause nor its context, and a user's exception whose
        # ``__init__`` does not take its ``args`` back fails to load (the result must not).
        cause = self.__cause__
        if cause is not None and _round_trips(cause):
            state["__cause__"] = cause
        return (_rebuild, (type(self), self.args), state)

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        for name, value in (state or {}).items():
            setattr(self, name, value)


def _round_trips(error: BaseException) -> bool:
    import pickle  # here: only a result or error that is pickled or copied needs it

    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # whatever a user's exception does when it is rebuilt
        return False
    return True


def _rebuild(cls: type[HotswapError], args: tuple[Any, ...]) -> HotswapError:
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)
    return error


class ModuleNotReloadableError(HotswapError, LookupError):
    """The module is not loaded, has no Python source file, or lies outside the watched paths.

    A ``LookupError``: hotswap looked for something (a module, its source) and did not find it.
    """


class SourceSyntaxError(HotswapError, SyntaxError):
    """The new source does not compile; nothing was executed.

    Also a ``SyntaxError``, so tools that show syntax errors (``filename``, ``lineno``,
    ``offset``, ``text``) can show this one.
    """

    def __init__(self, message: str, *, module: str, error: SyntaxError) -> None:
        HotswapError.__init__(
            self, message, module=module, filename=error.filename, lineno=error.lineno
        )
        self.msg = message
        self.offset = error.offset
        self.text = error.text
        self.end_lineno = error.end_lineno
        self.end_offset = error.end_offset

    def __str__(self) -> str:
        return self.msg


class IncompatibleChangeError(HotswapError):
    """The change would break callers of the old code, and the policy rejects it.

    Raised by the compatibility check before any new code runs. ``findings`` lists each problem
    (symbol, old and new signature, line, reason).
    """

    def __init__(
        self,
        message: str,
        *,
        module: str,
        filename: str,
        findings: Sequence[Finding],
    ) -> None:
        lineno = findings[0].lineno if findings else None
        super().__init__(message, module=module, filename=filename, lineno=lineno)
        self.findings = tuple(findings)


class ExecutionError(HotswapError):
    """The new code raised while it executed; the module was rolled back to its snapshot.

    The original exception is the ``__cause__``.
    """


class MigrationError(ExecutionError):
    """``__hotswap_migrate__`` raised; the module was rolled back to its snapshot."""


class VerificationError(ExecutionError):
    """``__hotswap_verify__`` raised after commit; the module was rolled back to its snapshot."""


class PinTimeoutError(HotswapError, TimeoutError):
    """Pinned sections did not leave within the bound; the reload changed nothing.

    A ``TimeoutError`` because waiting is what failed, not the new code.
    """


class ReentrantReloadError(HotswapError, RuntimeError):
    """A reload was started from code that a reload is running (module code or a hook).

    A ``RuntimeError``: it is a programming error in the caller, and waiting would deadlock.
    """


class VersionNotFoundError(HotswapError, LookupError):
    """``rollback(to=N)`` named a version that the module's history does not hold."""


class AuditError(HotswapError):
    """The new code uses a name the audit policy denies (``os.system``, ``eval``...); nothing
    ran.

    Its own kind of :class:`HotswapError`, not a ``PermissionError`` (an ``OSError`` about
    files): the code is refused by a rule the program configured. ``names`` lists each denied
    name found, as ``(line, what, name)``, e.g. ``(3, "call to", "os.system")``.
    """

    def __init__(
        self,
        message: str,
        *,
        module: str,
        filename: str,
        names: Sequence[tuple[int, str, str]],
    ) -> None:
        lineno = names[0][0] if names else None
        super().__init__(message, module=module, filename=filename, lineno=lineno)
        self.names = tuple(names)


class SignatureError(HotswapError):
    """A changed file has no valid signature while signatures are required; nothing ran.

    Its own kind of :class:`HotswapError` for the same reason as :class:`AuditError`. ``reason``
    is one word: ``"missing"``, ``"stale"`` (signed for other content), ``"invalid"`` (does not
    verify with any accepted key) or ``"unavailable"`` (no key or no ``cryptography`` to check
    it with: hotswap refuses rather than apply unchecked code).
    """

    def __init__(self, message: str, *, module: str | None, filename: str, reason: str) -> None:
        super().__init__(message, module=module, filename=filename)
        self.reason = reason


class CanaryError(HotswapError):
    """A canary could not start (nothing changed), or a reload or rollback of a module was
    asked for while a canary of it runs (promote or abort it first).

    A change that acts on objects both versions share when it runs (a changed decorator that
    registers a route, a top-level call, a class body changed beyond its methods) cannot be
    tried beside the live version: ``hotswap.reload()`` applies it.
    """


class HotswapWarning(UserWarning):
    """Warns of a change applied under policy ``"warn"`` that could break callers (pointing
    at the user's file and line), and of a second :func:`hotswap.enable` whose arguments
    differ from the running watcher's (pointing at that call)."""


class ConfigError(HotswapError, ValueError):
    """A configuration file could not be read, parsed or validated, or an ``on_change``
    callback refused the new value; the previous value stays in force.

    A ``ValueError``: the file's content (or an environment override) is a bad value for the
    schema. ``filename`` is the file, ``lineno`` the line when the format reports one, ``key``
    the dotted key (``db.timeout``, ``servers[1].port``) when the problem is one value. The
    parser's or validator's exception, if any, is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        filename: str | None = None,
        lineno: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, filename=filename, lineno=lineno)
        self.key = key
