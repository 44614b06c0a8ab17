"""Describing a live module as a symbol table, for the first reload after an import.

hotswap does not read every source file at import time (that would cost start-up time), so the
first reload of a module has no old source to diff against. The baseline is then what is live:
the signatures come from the functions' code objects, which are exactly what callers call.
Digests are unknown (``fingerprint=None``); whether such a definition changed is decided after
the new code ran, by comparing objects (see ``_update.same``).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import reprlib
import types
from typing import Any

from hotswap._engine.importcache import old_statements
from hotswap._engine.members import (
    Members,
    class_members,
    owned_function,
    signature_defaults_match,
)
from hotswap._engine.switch import is_instance
from hotswap._plan import statements as _statements
from hotswap._plan import symbols as _symbols
from hotswap._plan.oldcode import Told
from hotswap._plan.symbols import Param, Signature, Symbol, Symbols

__all__ = (
    "MODULE_ATTRIBUTES",
    "function_signature",
    "is_submodule",
    "live_symbols",
    "owned_function",
    "synthesize",
)

# Set by the import system, not by the module's source.
MODULE_ATTRIBUTES = frozenset(
    {
        "__name__",
        "__doc__",
        "__package__",
        "__loader__",
        "__spec__",
        "__path__",
        "__file__",
        "__cached__",
        "__builtins__",
        # The compiler's, for module annotations (3.14+: PEP 649/749): _engine.annotations
        # keeps them, they are never user functions or names.
        "__annotations__",
        "__annotate__",
        "__conditional_annotations__",
    }
)

_repr = reprlib.Repr()
_repr.maxstring = 30
_repr.maxother = 30


def _default_text(value: object) -> str:
    try:
        return _repr.repr(value)
    except Exception:
        return "..."


def function_signature(function: types.FunctionType, *, implicit: bool) -> Signature:
    """The :class:`~hotswap._plan.symbols.Signature` of a live function, read from its code
    object."""
    code = function.__code__
    names = code.co_varnames
    positional = code.co_argcount
    keyword_only = code.co_kwonlyargcount
    defaults = function.__defaults__ or ()
    kwdefaults = function.__kwdefaults__ or {}
    first_default = positional - len(defaults)
    params: list[Param] = []
    for index in range(positional):
        kind = (
            _symbols.POSITIONAL_ONLY
            if index < code.co_posonlyargcount
            else _symbols.POSITIONAL_OR_KEYWORD
        )
        default = _default_text(defaults[index - first_default]) if index >= first_default else None
        params.append(Param(names[index], kind, default))
    cursor = positional + keyword_only
    if code.co_flags & inspect.CO_VARARGS:
        params.append(Param(names[cursor], _symbols.VAR_POSITIONAL))
        cursor += 1
    for name in names[positional : positional + keyword_only]:
        default = _default_text(kwdefaults[name]) if name in kwdefaults else None
        params.append(Param(name, _symbols.KEYWORD_ONLY, default))
    if code.co_flags & inspect.CO_VARKEYWORDS:
        params.append(Param(names[cursor], _symbols.VAR_KEYWORD))
    flags = code.co_flags
    if flags & inspect.CO_ASYNC_GENERATOR:
        call = _symbols.ASYNC_GENERATOR
    elif flags & inspect.CO_COROUTINE:
        call = _symbols.COROUTINE
    elif flags & inspect.CO_GENERATOR:
        call = _symbols.GENERATOR
    else:
        call = _symbols.PLAIN
    return Signature(tuple(params), call, implicit)


def _attribute(value: object, name: str) -> str | bool | None:
    """A string or bool attribute of any object a module holds, or None: whatever the lookup
    raises, and whatever the value is otherwise (its ``__eq__`` is never called)."""
    try:
        found = getattr(value, name, None)
    except Exception:
        return None
    return found if type(found) is str or type(found) is bool else None


def _callable_symbol(
    qualname: str, kind: str, value: object, globals_: dict[str, Any], *, implicit: bool
) -> Symbol | None:
    function = owned_function(value, globals_)
    # Functions generated from strings (dataclass and namedtuple methods) share the module's
    # globals but have no definition in its source: they are not symbols.
    if function is None or function.__code__.co_filename.startswith("<"):
        return None
    # Only describe the call when the unwrapped function *is* this definition: a decorator's
    # wrapper without functools.wraps has the wrapper's signature, not the def's.
    signature = None
    if function.__code__.co_name == qualname.rpartition(".")[2]:
        signature = function_signature(function, implicit=implicit)
    return Symbol(
        qualname,
        kind,
        function.__code__.co_firstlineno,
        None,
        signature,
        reloadable=_attribute(value, "__hotswap_reloadable__") is True,
    )


def _member(qualname: str, value: object, module: str, globals_: dict[str, Any]) -> list[Symbol]:
    if is_instance(value, staticmethod):
        symbol = _callable_symbol(
            qualname, _symbols.STATICMETHOD, value.__func__, globals_, implicit=False
        )
    elif is_instance(value, classmethod):
        symbol = _callable_symbol(
            qualname, _symbols.CLASSMETHOD, value.__func__, globals_, implicit=True
        )
    elif is_instance(value, property):
        if owned_function(value.fget, globals_) is None:
            return []
        line = value.fget.__code__.co_firstlineno  # type: ignore[union-attr]
        return [Symbol(qualname, _symbols.PROPERTY, line, None, settable=value.fset is not None)]
    elif is_instance(value, type):
        return _class_symbols(qualname, value, module, globals_)
    else:
        symbol = _callable_symbol(qualname, _symbols.METHOD, value, globals_, implicit=True)
    return [] if symbol is None else [symbol]


def _class_symbols(qualname: str, cls: type, module: str, globals_: dict[str, Any]) -> list[Symbol]:
    if _attribute(cls, "__module__") != module or cls.__qualname__ != qualname:
        return []
    members: list[Symbol] = []
    for key, value in list(vars(cls).items()):
        members += _member(f"{qualname}.{key}", value, module, globals_)
    line = min((s.lineno for s in members), default=1)
    reloadable = _attribute(cls, "__hotswap_reloadable__") is True
    head = Symbol(qualname, _symbols.CLASS, max(line - 1, 1), None, reloadable=reloadable)
    return [head, *members]


def is_submodule(name: str, key: str, value: object) -> bool:
    """``package.key`` is a submodule the import system set on its package, not a name the
    package's source binds."""
    return is_instance(value, types.ModuleType) and value.__name__ == f"{name}.{key}"


def live_symbols(module: types.ModuleType) -> Symbols:
    """The symbol table of what ``module`` holds now, as far as live objects tell."""
    name = module.__name__
    namespace = vars(module)
    symbols: list[Symbol] = []
    for key, value in list(namespace.items()):
        if key in MODULE_ATTRIBUTES or is_submodule(name, key, value):
            continue
        found: list[Symbol] = []
        if is_instance(value, type):
            found = _class_symbols(key, value, name, namespace)
        elif _attribute(value, "__qualname__") == key:
            symbol = _callable_symbol(key, _symbols.FUNCTION, value, namespace, implicit=False)
            found = [] if symbol is None else [symbol]
        if not found:
            found = [Symbol(key, _symbols.NAME, 1, None)]
        symbols += found
    return Symbols.of(symbols)


# --- a live source for modules whose imported source is unknown -----------------------------


def _same_code(a: types.CodeType, b: types.CodeType) -> bool:
    return _symbols.code_key(a) == _symbols.code_key(b)


def _codes_by_name(code: types.CodeType) -> dict[str, types.CodeType]:
    return {c.co_name: c for c in code.co_consts if isinstance(c, types.CodeType)}


def _imports_of(new: _statements.ModuleSource) -> ast.Import | None:
    """One ``import`` binding every name the module's top-level imports bind.

    The compiler reads an attribute of an imported name (``math.hypot(a, b)``) with other
    bytecode than one of any other name (CPython 3.11+: no method call for a module's
    attributes), so a definition compiled alone, without its module's imports, would never
    match the code the module ran.
    """
    names = sorted(
        {n for s in new.statements if s.info.kind == _statements.IMPORT for n in s.info.binds}
        - {"*"}
    )
    if not names:
        return None
    node = ast.Import(names=[ast.alias(name="sys", asname=n) for n in names])
    return ast.fix_missing_locations(ast.copy_location(node, ast.Pass(lineno=1, col_offset=0)))


@dataclasses.dataclass
class _Compiled:
    """How the definitions of the new source compile, for comparison with the live code."""

    new: _statements.ModuleSource
    path: str
    # (name, first line) -> the code of each top-level definition, from one compile of the
    # whole source (about a quarter of compiling each definition alone); None: not made yet,
    # or the source would not compile whole (each definition is then compiled alone).
    top: dict[tuple[str, int], types.CodeType] | None = None
    imports: ast.Import | None = None
    tried: bool = False
    # first line -> how a class statement compares with its live class (see _class_members)
    members: dict[int, Members | None] = dataclasses.field(default_factory=dict)
    whole: types.CodeType | bool | None = None  # the whole compile; False: it failed

    def module_code(self) -> types.CodeType | None:
        """The new source compiled whole (None: it does not compile)."""
        if self.whole is None:
            try:
                self.whole = compile(
                    self.new.source, self.path, "exec", flags=self.new.flags, dont_inherit=True
                )
            except (SyntaxError, ValueError):
                self.whole = False
        return self.whole if isinstance(self.whole, types.CodeType) else None

    def code_of(self, stmt: _statements.Statement) -> types.CodeType | None:
        """The code object ``stmt`` (a ``def`` or ``class``) makes in its module."""
        if not self.tried:
            self.tried = True
            self.imports = _imports_of(self.new)
            kinds = (_statements.DEF, _statements.CLASS)
            defined = sum(len(s.text) for s in self.new.statements if s.info.kind in kinds)
            # Whole when definitions make most of the text: a huge file of constants with a
            # few functions compiles those alone.
            if self.new.source and 2 * defined >= len(self.new.source):
                whole = self.module_code()
                if whole is not None:
                    self.top = {
                        (c.co_name, c.co_firstlineno): c
                        for c in whole.co_consts
                        if isinstance(c, types.CodeType)
                    }
        name = stmt.info.name
        found = None if self.top is None else self.top.get((str(name), stmt.first))
        if found is not None:
            return found
        module_tree = _statements.parse_statement_module(stmt)
        if self.imports is not None:
            module_tree.body.insert(0, self.imports)
        try:
            code = compile(module_tree, self.path, "exec", flags=self.new.flags, dont_inherit=True)
        except SyntaxError:
            return None
        return _codes_by_name(code).get(str(name))


def _unchanged(
    stmt: _statements.Statement,
    namespace: dict[str, Any],
    module: str,
    compiled: _Compiled,
) -> bool | None:
    """Whether the live objects show that ``stmt`` is what the module ran (best effort); None
    when they cannot tell (an import, a statement with effects only, a value no literal
    describes)."""
    info = stmt.info
    if info.kind in (_statements.MAIN, _statements.FUTURE):
        return True
    if info.binds and not all(n in namespace for n in info.binds if n != "*"):
        return False
    if info.kind == _statements.DOC:
        return bool(namespace.get("__doc__") == ast.literal_eval(stmt.text.strip()))
    if info.kind in (_statements.DEF, _statements.CLASS) and info.name is not None:
        made = compiled.code_of(stmt)
        value = namespace.get(info.name)
        if made is None:
            return False
        if info.kind == _statements.DEF:
            inner = owned_function(value, namespace)
            if inner is None or not _same_code(inner.__code__, made):
                return False
            # The code object does not hold the defaults: the def statement evaluates them.
            signature = next((s.signature for s in info.symbols if s.qualname == info.name), None)
            return signature_defaults_match(signature, inner)
        found = _class_members(stmt, namespace, module, compiled)
        return found is not None and not found
    if info.kind == _statements.OTHER and len(info.binds) == 1:
        tree = ast.parse(stmt.text).body[0]
        if isinstance(tree, ast.Assign) and len(tree.targets) == 1:
            try:
                literal = ast.literal_eval(tree.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return None  # not a literal: nothing live tells
            current = namespace.get(next(iter(info.binds)))
            if isinstance(current, list | dict | set) and type(current) is type(literal):
                return True  # a container the program may have filled: its state is kept
            if type(current) is not type(literal) or not isinstance(literal, _PLAIN):
                return False
            try:
                return bool(current == literal)
            except Exception:
                return False
    return None  # an import or a statement with effects only: nothing live tells


def _class_members(
    stmt: _statements.Statement, namespace: dict[str, Any], module: str, compiled: _Compiled
) -> Members | None:
    """How a class statement differs from the live class it names, member by member; None
    when there is no such class of this module to compare with (or the statement does not
    compile): the statement is then changed as a whole."""
    name = stmt.info.name
    value = namespace.get(str(name))
    made = compiled.code_of(stmt)
    if made is None or not isinstance(value, type) or value.__module__ != module:
        return None
    if value.__qualname__ != name:
        return None
    # Its own lines are enough: the comparison reads no line numbers from the tree.
    node = ast.parse(stmt.text).body[0]
    if not isinstance(node, ast.ClassDef):
        return None
    return class_members(node, value, made, namespace, stmt.first)


def _marker_symbols(stmt: _statements.Statement, found: Members | None) -> tuple[Symbol, ...]:
    """The symbols a changed statement's stand-in carries: none (every name it defines is
    then new to the report), or, for a class whose live members were compared, the new
    statement's own where a member is unchanged, another digest where it changed, and the
    live class's functions that the new source drops, so the report names the members that
    changed (``Model.total``), as a reload with the old source does."""
    if found is None:
        return ()
    kept: list[Symbol] = []
    for symbol in stmt.info.symbols:
        parts = symbol.qualname.split(".")
        if any(".".join(parts[:end]) in found.added for end in range(1, len(parts) + 1)):
            continue  # new, or a member of a nested class that is new
        if symbol.qualname in found.changed:
            kept.append(dataclasses.replace(symbol, fingerprint=f"live:{symbol.fingerprint}"))
        else:
            kept.append(symbol)
    return (*kept, *found.removed)


_PLAIN = (int, float, complex, str, bytes, bool, tuple, list, dict, set, frozenset, type(None))


def _acts_only(stmt: _statements.Statement) -> bool:
    return stmt.info.kind == _statements.OTHER and not stmt.info.binds


def _plain(stmt: _statements.Statement) -> bool:
    """A statement other than a definition, the docstring and the main block."""
    return stmt.info.kind in (_statements.OTHER, _statements.IMPORT)


def _gone_statements(told: Told) -> list[_statements.Statement]:
    """Stand-ins for the statements of the imported code that only acted and are no longer in
    the file (or changed): the reload takes back what they registered where it can, as for
    any removed statement, else reports them (their lines are the imported source's)."""
    made = []
    for n, gone in enumerate(told.gone):
        info = _statements.Info(
            digest=f"gone-code-{n}",
            kind=_statements.OTHER,
            reads=gone.loads,
            called=gone.loads,
            called_attributes=gone.calls,
            mutates=gone.stores,
        )
        made.append(_statements.Statement(f"\0gone code {n}", gone.line, gone.line, info))
    return made


def synthesize(
    module: types.ModuleType,
    new: _statements.ModuleSource,
    path: str,
    unknown: list[int] | None = None,
    *,
    cache: bool = True,
) -> _statements.ModuleSource:
    """A stand-in for the unknown source ``module`` runs: the statements of ``new`` that the
    live objects (or the import's bytecode cache) show unchanged, a changed marker for the
    others (definitions keep their decorator and header digests, so they are updated in place
    or merged as usual), and a marker binding each function or class of the module that
    ``new`` no longer defines. ``unknown`` receives the indices of the statements that only
    act and that nothing tells apart: taken for what ran, though whether they did is not
    known (no bytecode cache of the imported source is left). ``cache`` False: the bytecode
    cache is not read (the warm-up, which confirms a file the module was imported from)."""
    namespace = vars(module)
    name = module.__name__
    statements: list[_statements.Statement] = []
    compiled = _Compiled(new, path)
    verdicts = [_unchanged(stmt, namespace, name, compiled) for stmt in new.statements]
    told = None
    if cache:
        # The bytecode cache decides for plain statements: what they hold now may be the
        # program's (a value it set since), what the module ran is not; and it tells the
        # statements that only acted and are gone, whatever is left.
        asked = [i for i, v in enumerate(verdicts) if v is not True and _plain(new.statements[i])]
        told = old_statements(module, path, new.statements, compiled.module_code, asked)
    for index, stmt in enumerate(new.statements):
        same = verdicts[index]
        if told is not None and index in told.ran:
            same = told.ran[index]
            if not same and told.whole:
                # Not in the code the module ran, and nothing of that code changed or went:
                # new, so it runs as added (else it runs as changed, and what it fills is
                # built again, as after a change of it).
                continue
        elif same is None:
            same = True  # assumed: it ran as written (an import, a value the program holds)
            if told is None and unknown is not None and _acts_only(stmt):
                unknown.append(index)
        if same:
            statements.append(stmt)
            continue
        found = None
        if stmt.info.kind == _statements.CLASS and stmt.info.name is not None:
            found = _class_members(stmt, namespace, name, compiled)
        # ``placed`` afresh: replace() would share the new statement's placed symbols.
        marker = dataclasses.replace(
            stmt.info, digest=f"live-{index}", symbols=_marker_symbols(stmt, found), placed={}
        )
        statements.append(_statements.Statement(f"\0live {index}", stmt.first, stmt.last, marker))
    if told is not None:
        statements += _gone_statements(told)
    bound = {n for s in new.statements for n in s.info.binds}
    for key, value in list(namespace.items()):
        if key in bound or key in MODULE_ATTRIBUTES or is_submodule(name, key, value):
            continue
        defined = (isinstance(value, type) and value.__module__ == name) or owned_function(
            value, namespace
        ) is not None
        if defined:
            info = _statements.Info(
                digest=f"gone-{key}", kind=_statements.OTHER, binds=frozenset({key})
            )
            statements.append(_statements.Statement(f"\0gone {key}", 0, 0, info))
    return _statements.ModuleSource("", new.flags, statements, {})
