"""``__main__`` under ``hotswap run`` (DESIGN §5.6): constants and functions above the running
statement apply; the running loop and what follows never run again, and say so."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.watcher

PROGRAM = textwrap.dedent(
    """
    import multiprocessing  # aliases this module as __mp_main__, as servers do
    import pathlib
    import sys
    import time

    OUT = pathlib.Path(sys.argv[1])
    SPEED = 1

    def tick():
        return "a"

    with open(OUT.with_suffix(".starts"), "a") as log:
        log.write("loop started\\n")

    while not OUT.with_suffix(".stop").exists():
        OUT.write_text(f"{SPEED} {tick()}")
        time.sleep(0.005)
    """
)


def wait_for(condition, timeout: float = 30.0) -> bool:
    """Poll a condition on the program's output file (the program runs in another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_main_constants_and_functions_apply_and_the_loop_is_never_rerun(tmp_path):
    script = tmp_path / "app.py"
    out = tmp_path / "out.txt"
    script.write_text(PROGRAM)
    process = subprocess.Popen(
        [sys.executable, "-m", "hotswap", "run", str(script), str(out)],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()

    def said(text: str) -> bool:
        return any(text in line for line in list(lines))

    try:
        assert wait_for(lambda: read(out) == "1 a"), read(out)
        applied = PROGRAM.replace("SPEED = 1", "SPEED = 10").replace('return "a"', 'return "b"')
        script.write_text(applied)
        assert wait_for(lambda: read(out) == "10 b"), read(out)
        # An edit of the running loop cannot apply: reported, never run.
        script.write_text(applied.replace("time.sleep(0.005)", "time.sleep(0.006)"))
        assert wait_for(lambda: said("not applied: L16 (running since line 16")), lines
        # A failed reload: the loop must not start again after it either.
        script.write_text(applied.replace("SPEED = 10", "SPEED = 1 / 0"))
        assert wait_for(lambda: said("rolled back")), lines
        script.write_text(applied.replace("SPEED = 10", "SPEED = 20"))
        assert wait_for(lambda: read(out) == "20 b"), read(out)
    finally:
        (tmp_path / "out.stop").touch()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)
        assert process.stderr is not None
        process.stderr.close()
    stderr = "".join(lines)
    assert process.returncode == 0, stderr
    assert read(tmp_path / "out.starts") == "loop started\n"
    assert "__main__: v2 live, ~SPEED (L8), ~tick (L10-11)" in stderr
    assert "ZeroDivisionError" in stderr
    assert "__mp_main__" not in stderr
    assert stderr.count("v2 live") == 1  # one module, reloaded once per change
