"""The AST diff and the compatibility rules (DESIGN §6).

Pure functions over symbol tables (see ``_symbols``): two tables give a :class:`ChangeSet` (what
changed, with lines) and a list of :class:`Finding` (what would break callers of the old
version).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from hotswap._plan.symbols import (
    ASYNC_GENERATOR,
    CLASS,
    COROUTINE,
    GENERATOR,
    KEYWORD_ONLY,
    NAME,
    PLAIN,
    POSITIONAL_ONLY,
    POSITIONAL_OR_KEYWORD,
    PROPERTY,
    VAR_KEYWORD,
    VAR_POSITIONAL,
    Signature,
    Symbol,
    Symbols,
)

__all__ = ("ChangeSet", "Finding", "check", "diff", "is_public")

_REMOVED = "(removed)"
_ARTICLE = {PLAIN: "a", COROUTINE: "a", GENERATOR: "a", ASYNC_GENERATOR: "an"}


@dataclass(frozen=True)
class ChangeSet:
    """The difference between two symbol tables.

    ``unknown`` holds names defined by both whose old definition is not known (the old side was
    described from live objects): whether they changed is decided by comparing objects.
    ``lines`` maps each name to its line in the new source (the old one for removed names).
    """

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    lines: Mapping[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.unknown)

    def is_changed(self, qualname: str) -> bool | None:
        """True when ``qualname`` changed or is new, False when unchanged, None when unknown."""
        if qualname in self._changed_or_added:
            return True
        if qualname in self._unknown:
            return None
        return False

    # cached_property writes the instance __dict__ directly, so it works on a frozen dataclass.
    @cached_property
    def _changed_or_added(self) -> frozenset[str]:
        return frozenset(self.changed) | frozenset(self.added)

    @cached_property
    def _unknown(self) -> frozenset[str]:
        return frozenset(self.unknown)


@dataclass(frozen=True)
class Finding:
    """A change that could break callers of the old version."""

    symbol: str
    old: str
    new: str
    lineno: int
    reason: str
    public: bool
    reloadable: bool = False

    def format(self, where: str) -> str:
        """``where: old -> new: reason``, where ``where`` is ``module (file:line)``."""
        if self.new == _REMOVED:
            return f"{where}: {self.old}: {self.reason}"
        return f"{where}: {self.old} -> {self.new}: {self.reason}"


def is_public(qualname: str) -> bool:
    """A name is public unless a part of it starts with a single underscore (dunders are public)."""
    return not any(
        part.startswith("_") and not (part.startswith("__") and part.endswith("__"))
        for part in qualname.split(".")
    )


# --- the diff -----------------------------------------------------------------------------------


def _top(qualname: str) -> str:
    return qualname.split(".", 1)[0]


def diff(old: Symbols, new: Symbols) -> ChangeSet:
    """What changed from ``old`` to ``new``.

    A definition counts as changed when its own digest changed, or when a module-level name it
    uses while being evaluated (a decorator, a default, a base class) was added, removed or
    changed: it has to be evaluated again, so its old object would be stale.
    """
    added = new.keys() - old.keys()
    removed = old.keys() - new.keys()
    common = old.keys() & new.keys()
    changed: set[str] = set()
    unknown: set[str] = set()
    for name in common:
        before, after = old[name], new[name]
        if before.kind != after.kind:
            changed.add(name)
        elif before is after:
            continue  # reused from the cache: the same text
        elif before.fingerprint is None or after.fingerprint is None:
            unknown.add(name)
        elif before.fingerprint != after.fingerprint:
            changed.add(name)
    dirty = {_top(name) for name in added | removed} | {n for n in changed if "." not in n}
    # Propagate through evaluation-time dependencies until nothing more changes.
    pending = True
    while pending:
        pending = False
        for name in common - changed:
            if (old[name].deps | new[name].deps) & dirty:
                changed.add(name)
                unknown.discard(name)
                if "." not in name:
                    dirty.add(name)
                pending = True
    lines = {name: new.line(name) for name in new}
    lines.update({name: old.line(name) for name in removed})

    def ordered(names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(names, key=lambda n: (lines[n], n)))

    return ChangeSet(
        added=ordered(added),
        changed=ordered(changed),
        removed=ordered(removed),
        unknown=ordered(unknown),
        lines=lines,
    )


# --- compatibility ------------------------------------------------------------------------------


def _inherited(symbols: Symbols, cls: str, member: str, depth: int = 0) -> bool:
    """Whether a class of the module that ``cls`` may derive from (a name its definition
    uses, such as a base) provides ``member``."""
    found = symbols.get(cls)
    if found is None or depth > 8:
        return False
    for base in found.deps:
        if base == cls or symbols.get(base) is None or symbols[base].kind != found.kind:
            continue
        if f"{base}.{member}" in symbols or _inherited(symbols, base, member, depth + 1):
            return True
    return False


def check(old: Symbols, new: Symbols) -> list[Finding]:
    """Every change from ``old`` to ``new`` that could break a caller of the old version.

    Findings are made for private names too (``public`` says which); the policy decides what to
    reject.
    """
    findings: list[Finding] = []
    for name, symbol in old.items():
        if symbol.kind == NAME:
            continue
        after = new.get(name)
        if after is symbol:
            continue  # reused from the cache: the same text (asked first: most symbols are)
        before = symbol
        # Members of a @reloadable class are held to the checks like the class.
        if not before.reloadable and _in_reloadable_class(name, old):
            before = replace(before, reloadable=True)
        parent = name.rpartition(".")[0]
        if after is None:
            if parent and parent not in new:
                continue  # reported once, for the class that holds it
            if parent and _inherited(new, parent, name.rpartition(".")[2]):
                continue  # an override removed: the base class's method answers the calls
            what = "reloadable " if before.reloadable else ""
            findings.append(_finding(before, None, old.line(name), f"{what}{before.kind} removed"))
            continue
        line = new.line(name)
        if after.kind == NAME:
            reason = f"was a {before.kind}, now a plain name"
            findings.append(_finding(before, after, line, reason))
            continue
        if before.kind != after.kind:
            reason = f"was a {before.kind}, now a {after.kind}"
            findings.append(_finding(before, after, line, reason))
            continue
        if before.kind == PROPERTY and before.settable and not after.settable:
            findings.append(_finding(before, after, line, "property no longer has a setter"))
        if before.signature is not None and after.signature is not None:
            for reason in _signature_breaks(before.signature, after.signature):
                findings.append(_finding(before, after, line, reason))
    findings.sort(key=lambda f: (f.lineno, f.symbol))
    return findings


def _in_reloadable_class(name: str, symbols: Mapping[str, Symbol]) -> bool:
    parts = name.split(".")
    for end in range(1, len(parts)):
        owner = symbols.get(".".join(parts[:end]))
        if owner is not None and owner.kind == CLASS and owner.reloadable:
            return True
    return False


def _describe(symbol: Symbol | None, name: str) -> str:
    if symbol is None:
        return _REMOVED
    if symbol.signature is not None:
        return symbol.signature.format(name)
    return name


def _finding(before: Symbol, after: Symbol | None, line: int, reason: str) -> Finding:
    name = before.qualname
    return Finding(
        symbol=name,
        old=_describe(before, name),
        new=_describe(after, name),
        lineno=line,
        reason=reason,
        public=is_public(name),
        reloadable=before.reloadable,
    )


def _signature_breaks(old: Signature, new: Signature) -> list[str]:
    reasons: list[str] = []
    if old.call != new.call:
        reasons.append(f"was {_ARTICLE[old.call]} {old.call}, now {_ARTICLE[new.call]} {new.call}")
    before = old.caller_params
    after = new.caller_params
    old_positional = [p for p in before if p.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)]
    new_positional = [p for p in after if p.kind in (POSITIONAL_ONLY, POSITIONAL_OR_KEYWORD)]
    new_by_name = {p.name: p for p in after if p.kind not in (VAR_POSITIONAL, VAR_KEYWORD)}
    old_names = {p.name for p in before}
    new_varargs = any(p.kind == VAR_POSITIONAL for p in after)
    renamed_to: set[str] = set()
    moved = False

    for index, param in enumerate(old_positional):
        if param.kind == POSITIONAL_ONLY:
            # Callers pass it by position only, so its name is free to change.
            if index < len(new_positional):
                counterpart = new_positional[index]
                if counterpart.kind != POSITIONAL_ONLY and counterpart.name not in old_names:
                    renamed_to.add(counterpart.name)
                if param.default is not None and counterpart.default is None:
                    reasons.append(f"parameter '{param.name}' no longer has a default")
            elif not new_varargs:
                reasons.append(f"positional parameter '{param.name}' removed")
            continue
        match = new_by_name.get(param.name)
        if match is None:
            slot = new_positional[index] if index < len(new_positional) else None
            if slot is not None and slot.name not in old_names:
                reasons.append(f"parameter '{param.name}' renamed to '{slot.name}'")
                renamed_to.add(slot.name)
            else:
                reasons.append(f"parameter '{param.name}' removed")
            continue
        if match.kind == KEYWORD_ONLY:
            reasons.append(f"parameter '{param.name}' became keyword-only")
        elif match.kind == POSITIONAL_ONLY:
            reasons.append(f"parameter '{param.name}' became positional-only")
        elif new_positional.index(match) != index:
            moved = True
        if param.default is not None and match.default is None:
            reasons.append(f"parameter '{param.name}' no longer has a default")

    if moved:
        old_order = ", ".join(p.name for p in old_positional)
        new_order = ", ".join(p.name for p in new_positional)
        reasons.append(f"positional parameters reordered ({old_order} -> {new_order})")

    old_keyword_only = [p for p in before if p.kind == KEYWORD_ONLY]
    for param in old_keyword_only:
        match = new_by_name.get(param.name)
        if match is None or match.kind == POSITIONAL_ONLY:
            reasons.append(f"parameter '{param.name}' removed")
        elif param.default is not None and match.default is None:
            reasons.append(f"parameter '{param.name}' no longer has a default")

    for index, param in enumerate(new_positional):
        if param.name in old_names or param.name in renamed_to or param.default is not None:
            continue
        if param.kind == POSITIONAL_ONLY and index < len(old_positional):
            continue
        reasons.append(f"required parameter '{param.name}' added")
    for param in after:
        if param.kind == KEYWORD_ONLY and param.default is None and param.name not in old_names:
            reasons.append(f"required keyword-only parameter '{param.name}' added")

    if any(p.kind == VAR_POSITIONAL for p in before) and not new_varargs:
        reasons.append("*args dropped")
    if any(p.kind == VAR_KEYWORD for p in before) and not any(p.kind == VAR_KEYWORD for p in after):
        reasons.append("**kwargs dropped")
    return reasons
