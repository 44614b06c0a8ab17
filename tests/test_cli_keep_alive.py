"""``hotswap run --keep-alive``, ``-q``/``-v``, colours and ``--help``, through real processes."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import textwrap

import pytest

from hotswap._ops import console as _console

pytestmark = pytest.mark.watcher


def write(path, source):
    path.write_text(textwrap.dedent(source))


def test_cli_keep_alive_reruns_after_a_fix_in_an_imported_module(tmp_path, hotswap_program):
    write(tmp_path / "helper.py", "def value():\n    return 1 / 0\n")
    write(
        tmp_path / "app.py",
        """
        import os
        import helper
        print("pid", os.getpid(), flush=True)
        print("result:", helper.value(), flush=True)
        """,
    )
    program = hotswap_program(["run", "--keep-alive", "app.py"], tmp_path)
    first = program.expect("pid ")
    program.expect("ZeroDivisionError: division by zero")
    program.expect("waiting for a save")
    write(tmp_path / "helper.py", "def value():\n    return 'fixed'\n")
    program.expect("running app.py again")
    assert program.expect("pid ") == first  # the same process, its imports kept
    program.expect("result: fixed")
    assert program.wait() == 0
    assert not any("runpy" in line for line in program.seen)  # hotswap's frames are hidden


def test_cli_keep_alive_waits_through_syntax_errors_in_the_script(tmp_path, hotswap_program):
    script = tmp_path / "app.py"
    script.write_text("print('result:', 1 +)\n")
    program = hotswap_program(["run", "--keep-alive", "app.py"], tmp_path)
    program.expect("SyntaxError")
    program.expect("waiting for a save")
    script.write_text("raise ValueError('still wrong')\n")
    program.expect("ValueError: still wrong")
    program.expect("waiting for a save")
    script.write_text("print('result:', 42)\n")
    program.expect("result: 42")
    assert program.wait() == 0


def test_cli_keep_alive_rejected_fix_keeps_waiting(tmp_path, hotswap_program):
    write(tmp_path / "helper.py", "def value():\n    return 1 / 0\n")
    write(tmp_path / "app.py", "import helper\nprint('result:', helper.value(), flush=True)\n")
    program = hotswap_program(["run", "--keep-alive", "app.py"], tmp_path)
    program.expect("waiting for a save")
    write(tmp_path / "helper.py", "def value(:\n    return 2\n")
    program.expect("helper: rejected")
    write(tmp_path / "helper.py", "def value():\n    return 2\n")
    program.expect("result: 2")
    assert program.wait() == 0
    # The rejected save did not run the entry again (it would have crashed and waited again).
    assert sum("waiting for a save" in line for line in program.seen) == 1
    assert sum("running app.py again" in line for line in program.seen) == 1


def test_cli_crash_without_keep_alive_exits_one(tmp_path):
    (tmp_path / "app.py").write_text("raise KeyError('boom')\n")
    done = subprocess.run(
        [sys.executable, "-m", "hotswap", "run", "app.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "KeyError: 'boom'" in done.stderr
    assert 'File "' in done.stderr
    assert "runpy" not in done.stderr


SELF_EDITING = """
import pathlib
import threading

import hotswap._ops.events

def answer():
    return "old"

reloaded = threading.Event()
hotswap._ops.events.subscribe(lambda result: reloaded.set())
path = pathlib.Path(__file__)
path.write_text(path.read_text().replace('return "o' + 'ld"', 'return "n' + 'ew"'))
if not reloaded.wait(30):
    raise SystemExit("no reload")
print("answer:", answer())
"""


@pytest.mark.parametrize(("flag", "shown"), [("-q", False), ("-v", True), (None, True)])
def test_cli_quiet_and_verbose(tmp_path, flag, shown):
    (tmp_path / "app.py").write_text(SELF_EDITING)
    command = [sys.executable, "-m", "hotswap", "run", *([flag] if flag else []), "app.py"]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "answer: new"
    assert ("__main__: v2 live, ~answer" in done.stderr) is shown
    stamped = re.search(r"^\d\d:\d\d:\d\d hotswap: __main__: v2 live", done.stderr, re.M)
    assert (stamped is not None) is (flag == "-v")
    assert "\033[" not in done.stderr  # not a terminal: no colours


def test_cli_run_help_documents_the_options(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "hotswap", "run", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for text in (
        "--keep-alive",
        "--restart-on GLOB",
        "--no-restart",
        "-q, --quiet",
        "-v, --verbose",
        "NO_COLOR",
        "restart_on_failure",
        "requirements*.txt",
        "~price (L12-18)",
        "fork",
    ):
        assert text in done.stdout, text


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_console_colours_only_on_a_terminal_without_no_color():
    assert _console.use_colour(Terminal(), environ={})
    assert not _console.use_colour(Terminal(), environ={"NO_COLOR": "1"})
    assert _console.use_colour(Terminal(), environ={"NO_COLOR": ""})
    assert not _console.use_colour(io.StringIO(), environ={})


def test_console_lines_are_coloured_by_outcome(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = Terminal()
    handler = _console.setup(0, stream)
    logger = logging.getLogger("hotswap.test")
    try:
        logger.info("hotswap: shop: v2 live, ~price (L1-2)")
        logger.warning("hotswap: shop: rejected, still v2")
        logger.info("hotswap: shop: unchanged (v2, 0.1 ms)")
        logger.log(_console.NOTICE, "hotswap: restarting")
        logger.debug("not shown at verbosity 0")
    finally:
        logging.getLogger("hotswap").removeHandler(handler)
        logging.getLogger("hotswap").propagate = True
        logging.getLogger("hotswap").setLevel(logging.NOTSET)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "\033[32mhotswap: shop: v2 live, ~price (L1-2)\033[0m",
        "\033[31mhotswap: shop: rejected, still v2\033[0m",
        "\033[2mhotswap: shop: unchanged (v2, 0.1 ms)\033[0m",
        "\033[36mhotswap: restarting\033[0m",
    ]


def test_cli_keep_alive_reruns_a_module_entry(tmp_path, hotswap_program):
    package = tmp_path / "tool"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("raise RuntimeError('not yet')\n")
    program = hotswap_program(["run", "--keep-alive", "-m", "tool.cli"], tmp_path)
    program.expect("RuntimeError: not yet")
    program.expect("waiting for a save")
    (package / "cli.py").write_text("print('tool ran')\n")
    program.expect("running -m tool.cli again")
    program.expect("tool ran")
    assert program.wait() == 0


def test_cli_restart_on_with_no_restart_is_a_usage_error(tmp_path):
    (tmp_path / "app.py").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "hotswap", "run", "--no-restart", "--restart-on", "*.ini", "app.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--restart-on needs restarts" in done.stderr


def run_on_a_terminal(tmp_path, environ):
    """Run ``hotswap run app.py`` with stderr on a pseudo-terminal; what it wrote there."""
    pty = pytest.importorskip("pty")
    primary, secondary = pty.openpty()
    env = {**os.environ, **environ}
    if "NO_COLOR" not in environ:
        env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "hotswap", "run", "app.py"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed: the program is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert process.wait(60) == 0
    return b"".join(chunks).decode()


def test_cli_status_lines_are_coloured_on_a_terminal(tmp_path):
    (tmp_path / "app.py").write_text(SELF_EDITING)
    shown = run_on_a_terminal(tmp_path, {})
    assert "\033[32mhotswap: __main__: v2 live, ~answer" in shown
    (tmp_path / "app.py").write_text(SELF_EDITING)
    plain = run_on_a_terminal(tmp_path, {"NO_COLOR": "1"})
    assert "hotswap: __main__: v2 live, ~answer" in plain
    assert "\033[" not in plain
