"""The audit policy: new and changed statements may not use denied names (issue 16, point 4)."""

from __future__ import annotations

import ast
import pickle
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hotswap
from hotswap._config.settings import AuditPolicy
from hotswap._plan import audit as _audit

SHOP = textwrap.dedent(
    """
    import os
    import subprocess as sp

    RATE = 2

    def price(amount):
        return amount * RATE
    """
)

POLICY = {"deny": ["os.system", "subprocess.*", "eval", "exec", "pickle.loads"]}


def test_audit_rejects_a_denied_call_before_anything_runs(project):
    shop = project.load("shop", SHOP)
    hotswap.configure(audit=POLICY)
    new = SHOP.replace("RATE = 2", "RATE = 3") + "\ndef clean():\n    os.system('rm -rf /tmp/x')\n"
    result = project.reload("shop", new)
    assert not result.ok
    assert not result.rolled_back
    assert isinstance(result.error, hotswap.AuditError)
    line = new.splitlines().index("    os.system('rm -rf /tmp/x')") + 1
    assert str(result.error) == (
        f"src/shop.py:{line}: call to os.system is denied by the audit policy"
    )
    assert result.error.names == ((line, "call to", "os.system"),)
    assert (result.error.module, result.error.lineno) == ("shop", line)
    assert shop.RATE == 2  # nothing ran
    assert not hasattr(shop, "clean")
    assert result.version == 1
    copy = pickle.loads(pickle.dumps(result))
    assert copy.error.names == result.error.names
    assert str(copy.error) == str(result.error)


def test_audit_is_off_by_default(project):
    shop = project.load("shop", SHOP)
    result = project.reload("shop", SHOP + "\ndef clean():\n    return os.system\n")
    assert result.ok
    assert shop.clean() is shop.os.system


DENIED = [
    ("import os\ndef f():\n    os.system('x')\n", "call to", "os.system"),
    ("import subprocess as sp\ndef f():\n    sp.run(['x'])\n", "call to", "subprocess.run"),
    ("from os import system\ndef f():\n    system('x')\n", "call to", "os.system"),
    ("from os import system as go\ndef f():\n    go('x')\n", "call to", "os.system"),
    ("import os.path\ndef f():\n    os.system('x')\n", "call to", "os.system"),
    ("import os as o\nHANDLER = o.system\n", "use of", "os.system"),
    ("def f():\n    getattr(__import__('os'), 'system')('x')\n", "call to", "os.system"),
    ("def f():\n    return getattr(__import__('os'), 'system')\n", "use of", "os.system"),
    (
        "import importlib\ndef f():\n    importlib.import_module('subprocess').Popen('x')\n",
        "call to",
        "subprocess.Popen",
    ),
    ("def f(text):\n    return eval(text)\n", "call to", "eval"),
    ("def f(text):\n    exec(text)\n", "call to", "exec"),
    ("import builtins\ndef f(text):\n    return builtins.eval(text)\n", "call to", "eval"),
    ("def f(t):\n    return __builtins__['eval'](t)\n", "call to", "eval"),
    ("from pickle import loads as undump\ndef f(b):\n    undump(b)\n", "call to", "pickle.loads"),
    ("import sys\ndef f():\n    sys.modules['os'].system('x')\n", "call to", "os.system"),
    ("import os\ndef f():\n    vars(os)['system']('x')\n", "call to", "os.system"),
    ("import os\ndef f():\n    os.__dict__['system']('x')\n", "call to", "os.system"),
    ("from os import *\ndef f():\n    system('x')\n", "call to", "os.system"),
    (
        "import subprocess as sp\nrun = sp.run\ndef f():\n    run('x')\n",
        "call to",
        "subprocess.run",
    ),
    ("import os\ndef f(name):\n    getattr(os, name)('x')\n", "dynamic attribute of", "os"),
    ("def f():\n    import subprocess as s\n    s.call('x')\n", "call to", "subprocess.call"),
    ("import os\nclass C:\n    run = staticmethod(os.system)\n", "use of", "os.system"),
    ("import os\n@os.system\ndef f():\n    pass\n", "use of", "os.system"),
]


@pytest.mark.parametrize(
    ("source", "what", "name"), DENIED, ids=[f"{i}-{d[2]}" for i, d in enumerate(DENIED)]
)
def test_audit_follows_aliases_and_dynamic_spellings(source, what, name):
    tree = ast.parse(source)
    with pytest.raises(hotswap.AuditError) as caught:
        _audit.check("mod", "mod.py", tree.body, tree, policy=AuditPolicy(**POLICY))
    assert (what, name) in [(w, n) for _, w, n in caught.value.names]
    assert f"{what} {name} is denied by the audit policy" in str(caught.value)


ALLOWED = [
    "import os\ndef f(p):\n    return os.path.join(p, 'x')\n",
    "import subprocess\n",  # importing is not using
    "import os\ndef f():\n    return os.getcwd()\n",
    "def f(system):\n    return system\n",
    "import ast\ndef f(t):\n    return ast.literal_eval(t)\n",
    "import os\ndef f():\n    return getattr(os, 'sep')\n",
    "def f(obj, name):\n    return getattr(obj, name)\n",
]


@pytest.mark.parametrize("source", ALLOWED)
def test_audit_lets_other_names_through(source):
    tree = ast.parse(source)
    _audit.check("mod", "mod.py", tree.body, tree, policy=AuditPolicy(**POLICY))


def test_audit_allow_overrides_a_broader_deny():
    policy = AuditPolicy(deny=("subprocess.*",), allow=("subprocess.run",))
    source = "import subprocess as sp\ndef f():\n    sp.run('x')\n    sp.Popen('x')\n"
    tree = ast.parse(source)
    with pytest.raises(hotswap.AuditError) as caught:
        _audit.check("mod", "mod.py", tree.body, tree, policy=policy)
    assert caught.value.names == ((4, "call to", "subprocess.Popen"),)


def test_audit_lists_every_denied_use(project):
    project.load("shop", SHOP)
    hotswap.configure(audit=POLICY)
    new = SHOP + "\ndef a(t):\n    return eval(t)\n\ndef b():\n    sp.check_call('x')\n"
    result = project.reload("shop", new)
    message = str(result.error)
    assert message.splitlines()[0].endswith("call to eval is denied by the audit policy")
    assert "call to subprocess.check_call is denied by the audit policy" in message
    assert len(result.error.names) == 2


def test_audit_scans_only_new_and_changed_statements(project):
    legacy = SHOP + "\ndef legacy():\n    return os.system\n"
    shop = project.load("shop", legacy)
    # Until hotswap has seen the module's source, every statement is scanned: seen once here.
    assert project.reload("shop", legacy.replace("RATE = 2", "RATE = 3")).ok
    hotswap.configure(audit=POLICY)
    result = project.reload("shop", legacy.replace("RATE = 2", "RATE = 4"))
    assert result.ok, result.error
    assert shop.RATE == 4
    changed = legacy.replace("return os.system", "return os.system  # still denied")
    changed = changed.replace("def legacy():", "def legacy(flag=False):")
    assert isinstance(project.reload("shop", changed).error, hotswap.AuditError)


def test_audit_follows_aliases_bound_by_unchanged_statements(project):
    base = SHOP + "\ntry:\n    from os import system as go\nexcept ImportError:\n    go = None\n"
    base += "\nlaunch = sp.Popen\n"
    project.load("shop", base)
    assert project.reload("shop", base.replace("RATE = 2", "RATE = 3")).ok  # source now known
    hotswap.configure(audit=POLICY)
    for body, name in (
        ("sp.check_output('x')", "subprocess.check_output"),
        ("go('x')", "os.system"),
        ("launch('x')", "subprocess.Popen"),
    ):
        result = project.reload("shop", base + f"\ndef new():\n    return {body}\n")
        assert isinstance(result.error, hotswap.AuditError), body
        assert result.error.names[0][1:] == ("call to", name)


def test_audit_scans_what_changed_even_on_the_first_reload(project):
    # The source a module was imported from is known (hotswap/_sources.py), so the first
    # reload audits the difference, like every later one: code that was already live passes.
    project.load("shop", SHOP + "\ndef legacy():\n    return os.system\n")
    hotswap.configure(audit=POLICY)
    new = SHOP.replace("RATE = 2", "RATE = 3") + "\ndef legacy():\n    return os.system\n"
    result = project.reload("shop", new)
    assert result.ok, result.error
    result = project.reload("shop", new.replace("return os.system", "return os.system('x')"))
    assert isinstance(result.error, hotswap.AuditError)


def test_audit_follows_relative_imports(project):
    project.write("pkg.secret", "def wipe():\n    return 'wiped'\n")
    project.load("pkg.mod", "from .secret import wipe as w\n\nVALUE = 1\n")
    hotswap.configure(audit={"deny": ["pkg.secret.*"]})
    result = project.reload("pkg.mod", "from .secret import wipe as w\n\nVALUE = w()\n")
    assert isinstance(result.error, hotswap.AuditError)
    assert result.error.names[0][1:] == ("call to", "pkg.secret.wipe")


def test_audit_true_uses_the_default_deny_list(project):
    project.load("shop", SHOP)
    settings = hotswap.configure(audit=True)
    assert settings.audit is not None
    assert "subprocess.*" in settings.audit.deny
    result = project.reload("shop", SHOP + "\ndef f():\n    sp.Popen('x')\n")
    assert isinstance(result.error, hotswap.AuditError)
    hotswap.configure(audit=False)
    assert hotswap.reload("shop").ok


def test_audit_setting_rejects_a_malformed_table(project):
    with pytest.raises(ValueError, match="audit"):
        hotswap.configure(audit={"deny": "os.system"})
    with pytest.raises(ValueError, match="audit"):
        hotswap.configure(audit={"forbid": ["os.system"]})


def test_audit_from_pyproject(project, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.hotswap]\naudit = {deny = ["os.system"], allow = ["os.getcwd"]}\n'
    )
    project.load("shop", SHOP)
    result = project.reload("shop", SHOP + "\ndef f():\n    os.system('x')\n")
    assert isinstance(result.error, hotswap.AuditError)
    assert hotswap.configure().audit == AuditPolicy(deny=("os.system",), allow=("os.getcwd",))


def test_audit_from_the_environment(project, monkeypatch):
    monkeypatch.setenv("HOTSWAP_AUDIT", '{"deny": ["eval"]}')
    project.load("shop", SHOP)
    result = project.reload("shop", SHOP + "\ndef f(t):\n    return eval(t)\n")
    assert isinstance(result.error, hotswap.AuditError)


IDENTIFIERS = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda s: s not in {"subprocess", "os", "f", "x"} and not __import__("keyword").iskeyword(s)
)


@given(alias=IDENTIFIERS, member=st.sampled_from(["run", "Popen", "call", "check_output"]))
def test_audit_any_alias_of_a_denied_module_is_followed(alias, member):
    source = f"import subprocess as {alias}\ndef f(x):\n    return {alias}.{member}(x)\n"
    tree = ast.parse(source)
    with pytest.raises(hotswap.AuditError) as caught:
        _audit.check("mod", "mod.py", tree.body[1:], tree, policy=AuditPolicy(**POLICY))
    assert caught.value.names == ((3, "call to", f"subprocess.{member}"),)


@given(alias=IDENTIFIERS, member=st.sampled_from(["dumps", "JSONDecoder", "loads"]))
def test_audit_any_alias_of_an_allowed_module_passes(alias, member):
    source = f"import json as {alias}\ndef f(x):\n    return {alias}.{member}(x)\n"
    tree = ast.parse(source)
    _audit.check("mod", "mod.py", tree.body, tree, policy=AuditPolicy(**POLICY))
