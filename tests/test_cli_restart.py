"""The restart fallback of ``hotswap run``, through real processes: a warm template forks each
run; a --restart-on file, new dependencies or a failed reload (restart_on_failure) restart the
program with fresh state and say why; a dependency that starts threads at import makes runs
start in a new interpreter instead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.watcher

APP = """
import os
import threading

import state

state.RUNS.append(os.getpid())
print(f"ready pid={os.getpid()} parent={os.getppid()} runs={len(state.RUNS)}", flush=True)
threading.Event().wait()
"""


@pytest.fixture
def app(tmp_path):
    (tmp_path / "state.py").write_text("RUNS = []\n")
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "settings.ini").write_text("[main]\n")
    return tmp_path


def pid_of(line):
    return dict(word.split("=") for word in line.split()[1:])["pid"]


def test_cli_restart_on_glob_restarts_a_fork_with_fresh_state(app, hotswap_program):
    program = hotswap_program(["run", "--restart-on", "*.ini", "app.py"], app)
    first = program.expect("ready ")
    assert first.endswith("runs=1")
    assert f"parent={program.process.pid}" in first  # forked by the supervisor
    (app / "settings.ini").write_text("[main]\nvalue = 2\n")
    reason = program.expect("restarting app.py")
    assert "settings.ini changed (--restart-on *.ini)" in reason
    assert "a fork of the warm template" in reason
    second = program.expect("ready ")
    assert second.endswith("runs=1")
    assert pid_of(second) != pid_of(first)


def test_cli_requirements_change_restarts_from_scratch(app, hotswap_program):
    (app / "requirements.txt").write_text("flask\n")
    program = hotswap_program(["run", "app.py"], app)
    first = program.expect("ready ")
    (app / "requirements.txt").write_text("flask\nhttpx\n")
    reason = program.expect("restarting app.py from scratch")
    assert "requirements.txt changed: the dependencies may have changed" in reason
    second = program.expect("ready ")
    assert second.endswith("runs=1")
    assert pid_of(second) != pid_of(first)
    assert f"parent={program.process.pid}" in second  # the same command, started again


def test_cli_restart_on_failure_restarts_on_a_rejected_reload(tmp_path, hotswap_program):
    (tmp_path / "shop.py").write_text("def price(amount, currency='EUR'):\n    return 'v1'\n")
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import threading
            import shop
            args = (10,)  # a call strict cannot judge: it may pass currency
            print("price", shop.price(*args), flush=True)
            threading.Event().wait()
            """
        )
    )
    env = {"HOTSWAP_RESTART_ON_FAILURE": "1"}
    program = hotswap_program(["run", "app.py"], tmp_path, env)
    program.expect("price v1")
    # Dropping a parameter callers may pass is rejected in place; a fresh start runs it.
    (tmp_path / "shop.py").write_text("def price(amount):\n    return 'v2'\n")
    program.expect("shop: rejected")
    reason = program.expect("restarting app.py")
    assert "restart_on_failure" in reason
    assert "parameter 'currency' removed" in reason
    program.expect("price v2")


def test_cli_restart_on_failure_does_not_restart_for_a_syntax_error(tmp_path, hotswap_program):
    (tmp_path / "shop.py").write_text("def price():\n    return 'v1'\n")
    (tmp_path / "app.py").write_text(
        "import threading\nimport shop\nprint('price', shop.price(), flush=True)\n"
        "threading.Event().wait()\n"
    )
    program = hotswap_program(["run", "app.py"], tmp_path, {"HOTSWAP_RESTART_ON_FAILURE": "1"})
    program.expect("price v1")
    (tmp_path / "shop.py").write_text("def price(:\n    return 'v2'\n")
    program.expect("shop: rejected")
    (tmp_path / "shop.py").write_text("def price():\n    return 'v3'\n")
    program.expect("shop: v2 live")
    assert not any("restarting" in line for line in program.seen)


def test_cli_fork_unsafe_template_runs_each_time_in_a_new_interpreter(app, hotswap_program):
    deps = app / "deps"
    deps.mkdir()
    (deps / "busy_dependency.py").write_text(
        "import threading\n"
        "threading.Thread(target=threading.Event().wait, name='busy-worker', daemon=True).start()\n"
    )
    (app / "app.py").write_text("import busy_dependency\n" + APP)
    program = hotswap_program(
        [
            "run",
            "--watch",
            str(app / "app.py"),
            "--watch",
            str(app / "state.py"),
            "--restart-on",
            "*.ini",
            "app.py",
        ],
        app,
        {"PYTHONPATH": str(deps)},
    )
    why = program.expect("restarts start a new interpreter, not a fork")
    assert "thread(s) started at import (busy-worker)" in why
    first = program.expect("ready ")
    (app / "settings.ini").write_text("[main]\nvalue = 3\n")
    reason = program.expect("restarting app.py")
    assert "in a new interpreter" in reason
    second = program.expect("ready ")
    assert second.endswith("runs=1")
    assert pid_of(second) != pid_of(first)


def test_cli_no_restart_runs_in_the_command_process(app, hotswap_program):
    program = hotswap_program(["run", "--no-restart", "app.py"], app)
    line = program.expect("ready ")
    assert f"pid={program.process.pid}" in line


def test_cli_supervised_program_exit_status_passes_through(tmp_path, hotswap_program):
    (tmp_path / "app.py").write_text("import sys\nprint('args', sys.argv[1:])\nsys.exit(7)\n")
    program = hotswap_program(["run", "app.py", "x", "--y"], tmp_path)
    program.expect("args ['x', '--y']")
    assert program.wait() == 7


def test_bench_restart_runs(tmp_path):
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_restart.py"
    done = subprocess.run(
        [sys.executable, str(bench), "1", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| cold: a new interpreter |" in done.stdout
    assert "| hotswap: fork of the warm template |" in done.stdout


def test_cli_sigterm_reaches_the_program(app, hotswap_program):
    program = hotswap_program(["run", "app.py"], app)
    child = int(pid_of(program.expect("ready ")))
    program.process.terminate()
    assert program.wait() == -signal.SIGTERM  # as for python app.py
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # gone, and reaped by the supervisor


def test_config_restart_on_failure_from_pyproject(tmp_path):
    from hotswap._config import settings as _config

    assert _config.load(tmp_path, environ={}).restart_on_failure is False
    (tmp_path / "pyproject.toml").write_text("[tool.hotswap]\nrestart_on_failure = true\n")
    assert _config.load(tmp_path, environ={}).restart_on_failure is True
    environ = {"HOTSWAP_RESTART_ON_FAILURE": "0"}
    assert _config.load(tmp_path, environ=environ).restart_on_failure is False


def test_cli_forked_run_ends_like_python(tmp_path, hotswap_program):
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import atexit
            import threading

            atexit.register(print, "atexit ran", flush=True)
            release = threading.Event()
            worker = threading.Thread(target=lambda: (release.wait(60), print("worker done")))
            worker.start()
            print("main done", flush=True)
            release.set()
            """
        )
    )
    program = hotswap_program(["run", "app.py"], tmp_path)
    program.expect("main done")
    assert program.wait() == 0
    assert "worker done" in program.seen  # a non-daemon thread is waited for
    assert program.seen[-1] == "atexit ran"


# The program waits in slices: CPython loses a SIGINT that lands just before a wait without a
# timeout blocks (docs/limits.md); a slice's end sees it. What is tested is the supervisor's part.
WAITS = """
import threading

print("ready", flush=True)
while not threading.Event().wait(0.2):
    pass
"""


def test_cli_sigint_to_the_command_interrupts_the_program(tmp_path, hotswap_program):
    (tmp_path / "app.py").write_text(WAITS)
    program = hotswap_program(["run", "app.py"], tmp_path)
    program.expect("ready")
    program.process.send_signal(signal.SIGINT)  # no terminal: as an IDE's stop button does
    assert program.wait() == 130


def test_cli_sigint_while_a_run_stops_for_a_restart_ends_the_command(tmp_path, hotswap_program):
    (tmp_path / "settings.ini").write_text("[main]\n")
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import os, signal, sys, time

            def stopping(signum, frame):
                print("stopping", flush=True)
                while not os.path.exists("go"):  # the test sends SIGINT meanwhile
                    time.sleep(0.01)
                sys.exit(0)

            signal.signal(signal.SIGTERM, stopping)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a run that ignores it
            print("ready", flush=True)
            while True:
                time.sleep(0.2)
            """
        )
    )
    program = hotswap_program(["run", "--restart-on", "*.ini", "app.py"], tmp_path)
    program.expect("ready")
    (tmp_path / "settings.ini").write_text("[main]\nvalue = 2\n")
    program.expect("stopping")
    program.process.send_signal(signal.SIGINT)  # between two runs: no run starts after it
    (tmp_path / "go").write_text("")
    assert program.wait() == 130
    assert "ready" not in program.seen[program.seen.index("stopping") :]


def test_template_dependencies_are_third_party_imports_run_at_import(tmp_path):
    from hotswap._cli import template as _template
    from hotswap._plan.modules import Scope

    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "__init__.py").write_text("from . import inner\n")
    (app / "pkg" / "inner.py").write_text("import decimal\n")
    (app / "main.py").write_text(
        "import json\nimport pkg\nfrom pkg.inner import decimal\n"
        "try:\n    import csv\nexcept ImportError:\n    csv = None\n"
        "def later():\n    import sqlite3\n"
    )
    sys.path.insert(0, str(app))
    try:
        found = _template.dependencies(str(app / "main.py"), Scope([str(app)]))
    finally:
        sys.path.remove(str(app))
    assert sorted(found) == ["csv", "decimal", "json"]  # sqlite3 is imported lazily
    assert "pkg" not in sys.modules  # the program's own modules were read, not imported


def test_triggers_see_changed_and_new_files(tmp_path, monkeypatch):
    from hotswap._cli import triggers as _triggers

    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_text("a\n")
    (tmp_path / "notes.txt").write_text("x\n")
    triggers = _triggers.Triggers([str(tmp_path)], ["conf/*.yaml"])
    assert triggers.changed() is None
    (tmp_path / "notes.txt").write_text("not a trigger\n")
    (tmp_path / "requirements.txt").write_text("a\nb\n")
    why, stale = triggers.changed()
    assert why == "requirements.txt changed: the dependencies may have changed"
    assert stale
    assert triggers.changed() is None
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.yaml").write_text("k: v\n")
    (tmp_path / "fast.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\0")
    monkeypatch.setattr(_triggers, "_RESCAN", 0.0)  # look for new files at once
    assert triggers.changed() == (
        "conf/app.yaml changed (--restart-on conf/*.yaml); "
        "C extension fast.cpython-311-x86_64-linux-gnu.so changed",
        False,
    )
    assert triggers.changed() is None
