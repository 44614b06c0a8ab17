"""The hotswap command: run (a script, a -m module) and demo."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.watcher

# A program that edits its own source while it runs and waits for the reload; its top-level
# statements must not run again (definitions only), or it would edit itself forever.
SELF_EDITING = textwrap.dedent(
    """
    import pathlib
    import threading

    import hotswap._ops.events

    def answer():
        return "old"

    if __name__ == "__main__":
        reloaded = threading.Event()
        hotswap._ops.events.subscribe(lambda result: reloaded.set())
        path = pathlib.Path(__file__)
        path.write_text(path.read_text().replace('return "o' + 'ld"', 'return "n' + 'ew"'))
        if not reloaded.wait(10):
            raise SystemExit("no reload")
        print("answer:", answer())
    """
)


def hotswap_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotswap", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_run_script_that_edits_itself(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SELF_EDITING)
    done = hotswap_command("run", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "answer: new"
    assert "__main__: v2 live, ~answer" in done.stderr


def test_cli_run_module_that_edits_itself(tmp_path):
    package = tmp_path / "tool"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(SELF_EDITING)
    done = hotswap_command("run", "-m", "tool.cli", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "answer: new"


def test_cli_run_passes_arguments_and_exit_codes(tmp_path):
    script = tmp_path / "args.py"
    script.write_text("import sys\nprint(sys.argv[1:])\nraise SystemExit(3)\n")
    done = hotswap_command("run", str(script), "a", "--flag", cwd=tmp_path)
    assert done.returncode == 3
    assert done.stdout.strip() == "['a', '--flag']"


def test_cli_run_without_a_target_is_a_usage_error(tmp_path):
    done = hotswap_command("run", cwd=tmp_path)
    assert done.returncode == 2
    assert "name a script" in done.stderr
    missing = hotswap_command("run", "nope.py", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


def test_cli_demo_exits_zero(tmp_path):
    done = hotswap_command("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "v2 live, ~price" in done.stdout
    assert "invalid syntax" in done.stdout
    assert "parameter 'currency' removed" in done.stdout
    assert "rolled back, v1 live" in done.stdout
    assert "demo finished" in done.stdout


def test_cli_version(tmp_path):
    done = hotswap_command("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("hotswap ")


def test_cli_run_unknown_module_is_a_usage_error(tmp_path):
    done = hotswap_command("run", "-m", "no_such_module_here", cwd=tmp_path)
    assert done.returncode == 2
    assert "no module named 'no_such_module_here'" in done.stderr
